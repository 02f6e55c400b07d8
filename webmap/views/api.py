"""The ``api`` blueprint: JSON and GeoJSON of the served run and the health check.

Every answer comes from :class:`kantong.engine.publish.published.PublishedRun` (withheld cells,
small
pockets and small site counts never appear). GeoJSON is RFC 7946 (EPSG:4326 longitude,
latitude; no ``crs`` member).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from flask import Blueprint, Response, abort, current_app, jsonify

from kantong.engine.build.sums import precision_of_manifest
from kantong.engine.h3ids import canonical_cell
from kantong.engine.inputs import boundaries
from kantong.engine.publish.export import COORDINATE_DECIMALS, geojson_dict, layer_frame
from kantong.webmap.config import zoom_table
from kantong.webmap.tiling import colors
from kantong.webmap.views.responses import cached
from kantong.webmap.views.tiles import legend_response, published, service

bp = Blueprint("api", __name__)

GEOJSON_MIMETYPE: Final = "application/geo+json"
#: Feature ``id`` column of each layer.
ID_COLUMNS: Final = {"cells": "h3", "pockets": "pocket_id"}
#: GeoJSON of a layer with no feature.
EMPTY_COLLECTION: Final = b'{"type":"FeatureCollection","features":[]}'
_lock = threading.Lock()
#: Shape of an H3 cell id (checked before h3, which overflows on longer hex strings).


def to_geojson(frame: gpd.GeoDataFrame, *, id_column: str | None = None,
               metadata: dict[str, Any] | None = None) -> bytes:
    """Serialise a layer as a compact RFC 7946 FeatureCollection (UTF-8 bytes).

    Uses :func:`kantong.engine.publish.export.geojson_dict` (the export module's serialiser), so
    downloads
    and ``kantong export`` write the same GeoJSON.
    """
    doc = geojson_dict(frame, metadata=metadata, id_column=id_column)
    return json.dumps(doc, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _published_layer(layer: str) -> bytes:
    """Return the GeoJSON bytes of the published ``pockets`` or ``sites`` (cached per app)."""
    key = f"kantong_geojson_{layer}"
    ext = current_app.extensions
    with _lock:
        if key not in ext:
            if layer == "sites" and published().sites().empty:
                # no `kantong sites` yet (kantong.engine.publish.export refuses to export nothing):
                # the map
                # API answers an empty collection
                ext[key] = EMPTY_COLLECTION
            else:
                frame, _, _ = layer_frame(published(), layer)
                ext[key] = to_geojson(frame, id_column=ID_COLUMNS.get(layer))
        return ext[key]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return JSON-ready records (NaN/NA as null, numpy scalars as Python)."""
    return json.loads(frame.to_json(orient="records", force_ascii=False))


def _geojson_response(data: bytes, *, filename: str | None = None) -> Response:
    response = Response(data, mimetype=GEOJSON_MIMETYPE)
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return cached(response)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: ``{"status": "ok", "run_id": ...}`` (reads no data)."""
    response = jsonify({"status": "ok", "run_id": published().run_id})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/run")
def run_info() -> Response:
    """Run metadata and counts that are safe to publish (sums over published data only)."""
    run = published()
    svc = service()
    base = svc.level(run.base_resolution).attributes
    w, s, e, n = svc.bounds()
    lon, lat, zoom = svc.center()
    pockets = run.pockets()
    sites = run.sites()
    body = {
        "run_id": run.run_id,
        "created": run.manifest.get("created"),
        "engine_version": run.manifest.get("engine_version"),
        "synthetic": bool(run.manifest.get("synthetic", False)),
        # share located by coordinates vs by village code only (issue 19); not named
        # after the household column location_precision, which never leaves the engine
        "household_location": precision_of_manifest(run.manifest),
        "resolutions": list(run.resolutions),
        "base_resolution": run.base_resolution,
        "min_households": run.min_households,
        "bounds": [w, s, e, n],
        "center": [lon, lat],
        "zoom": zoom,
        "zoom_resolutions": zoom_table(run.resolutions),
        "counts": {
            "published_cells": int(len(base)),
            "withheld_cells": int(run.withheld()),
            "households_in_published_cells": round(float(base["households"].sum())),
            "extreme_households_in_published_cells": round(float(
                base["extreme_households"].sum()))
            if "extreme_households" in base else None,
            "pockets": int(len(pockets)),
            "sites": int(len(sites)),
            "regencies": int(len(run.regencies())),
        },
        "indicators": svc.indicators(),
    }
    return cached(jsonify(body))


@bp.get("/api/indicators")
def indicators() -> Response:
    """List the raster layers: ``[{id, label, unit, colormap, tiles, legend, tilejson}]``."""
    root = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")  # never the Host
    out = []
    for name in service().indicators():
        info = colors.describe(name)
        out.append({"id": name, **info,
                    "tiles": f"{root}/tiles/{name}/{{z}}/{{x}}/{{y}}.png",
                    "legend": f"{root}/tiles/{name}/legend.json",
                    "tilejson": f"{root}/tiles/{name}.json"})
    return cached(jsonify(out))


@bp.get("/api/legend/<indicator>")
def legend_alias(indicator: str) -> Response:
    """Alias of ``/tiles/<indicator>/legend.json``."""
    return legend_response(indicator)


@bp.get("/api/pockets")
def pockets() -> Response:
    """Return the published pockets as a GeoJSON FeatureCollection."""
    return _geojson_response(_published_layer("pockets"))


@bp.get("/api/sites")
def sites() -> Response:
    """Return the published sites as GeoJSON (an empty collection when there are none)."""
    return _geojson_response(_published_layer("sites"))


@bp.get("/api/cells/<h3_id>")
def cell(h3_id: str) -> Response:
    """One published cell as JSON; 400 for an invalid H3 id, 404 if unknown or withheld."""
    canonical = canonical_cell(h3_id)  # lower case, no leading zero; None when invalid
    if canonical is None:
        abort(400, description=f"not a valid H3 cell id: {h3_id[:20]!r}")
    record = published().cell(canonical)
    if record is None:
        abort(404, description=f"cell {h3_id} is not published in this run")
    return cached(jsonify(record))


@bp.get("/api/regencies")
def regencies() -> Response:
    """Per-regency summaries (consistent with the published cells)."""
    return cached(jsonify(_records(published().regencies())))


def regency_outlines() -> bytes:
    """Return the simplified regency outlines of the run's provinces as GeoJSON (cached)."""
    ext = current_app.extensions
    with _lock:
        if "kantong_regency_outlines" not in ext:
            base = service().level(published().base_resolution).attributes
            codes = set(base["province_code"].dropna().astype(str)) \
                if "province_code" in base else set()
            reg = boundaries.regencies()
            if codes:
                reg = reg[reg["province_code"].astype(str).isin(codes)]
            reg = reg[["province_code", "province_name", "regency_code", "regency_name",
                       "geometry"]].reset_index(drop=True)
            tol = float(current_app.config["BOUNDARY_SIMPLIFY_DEG"])
            geoms = shapely.simplify(reg.geometry.to_numpy(), tol, preserve_topology=True)
            geoms = shapely.transform(geoms, lambda xy: np.round(xy, COORDINATE_DECIMALS))
            reg = reg.set_geometry(gpd.GeoSeries(geoms, crs=reg.crs))
            ext["kantong_regency_outlines"] = to_geojson(reg, id_column="regency_code")
        return ext["kantong_regency_outlines"]


@bp.get("/api/boundaries/regencies.geojson")
def regency_boundaries() -> Response:
    """Regency outlines (BPS 2020) of the run's provinces, simplified (offline background)."""
    return _geojson_response(regency_outlines())
