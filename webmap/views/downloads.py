"""The ``downloads`` blueprint: published layers as GeoJSON, CSV or GeoPackage files.

``/download/<layer>.<format>`` with ``layer`` one of ``cells``, ``pockets``, ``sites`` and
``format`` one of ``geojson`` (RFC 7946, provenance in the foreign member ``kantong``),
``csv`` (no geometry; ``lon``/``lat`` of a point inside each feature; provenance in the
``X-Kantong-Provenance`` header and in :mod:`kantong.engine.publish.export`'s sidecar
form on request) or ``gpkg`` (GeoPackage 1.2, provenance in the layer description and the
``KANTONG_PROVENANCE`` metadata). Filters: ``?regency=CODE`` (any layer), ``?pocket=ID``
(the pocket's published cells, or the pocket itself; not for sites) and ``?resolution=R``
(cells). Files are made from :class:`kantong.engine.publish.published.PublishedRun` only,
with :mod:`kantong.engine.publish.export`, once per parameter set, then served from a
bounded in-memory cache (``DOWNLOAD_CACHE_BYTES``). ``HEAD`` gives the size
(``Content-Length``) without the body; byte ranges are answered (``206``) for GDAL's
``/vsicurl/``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Final

import geopandas as gpd
from flask import Blueprint, Response, abort, current_app, request

from kantong.engine.errors import InputError
from kantong.engine.publish.export import (
    export_frame,
    geojson_text,
    layer_frame,
    provenance,
)
from kantong.engine.publish.published import PublishedRun
from kantong.webmap.views.tiles import ascii_int, published, service

bp = Blueprint("downloads", __name__)

#: Layers offered as downloads.
DOWNLOAD_LAYERS: Final = ("cells", "pockets", "sites")
#: Download format -> media type.
FORMATS: Final = {"geojson": "application/geo+json", "csv": "text/csv",
                  "gpkg": "application/geopackage+sqlite3"}
#: Feature ``id`` column of each layer.
ID_COLUMNS: Final = {"cells": "h3", "pockets": "pocket_id"}


def _pocket_filter(run: PublishedRun, layer: str, frame: gpd.GeoDataFrame,
                   pocket: int) -> gpd.GeoDataFrame:
    if layer == "sites":
        raise InputError("?pocket= applies to the cells and pockets layers, not to sites")
    if pocket not in set(run.pockets()["pocket_id"].astype("int64")):
        raise InputError(f"pocket {pocket} is not published in this run")
    ids = frame["pocket_id"].astype("Int64")
    return frame[(ids == pocket).fillna(False).to_numpy()]


def make_file(run: PublishedRun, layer: str, fmt: str, *, resolution: int | None = None,
              regency: str | None = None, pocket: int | None = None) -> bytes:
    """Return the bytes of one download file.

    Parameters
    ----------
    run
        The privacy gate of the served run.
    layer, fmt
        One of :data:`DOWNLOAD_LAYERS` and one of :data:`FORMATS`.
    resolution, regency, pocket
        Filters (see the module docstring).

    Returns
    -------
    bytes
        The file, with provenance (run, K, filters, export time).

    Raises
    ------
    InputError
        Unknown regency or pocket, or a filter that does not apply to the layer.
    """
    frame, _, _ = layer_frame(run, layer, resolution=resolution, regency=regency)
    if pocket is not None:
        frame = _pocket_filter(run, layer, frame, pocket)
    meta = provenance(run, layer=layer, resolution=resolution, regency=regency)
    meta["pocket"] = pocket
    if fmt == "geojson":
        return geojson_text(frame, metadata=meta, id_column=ID_COLUMNS.get(layer)).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="kantong-download-") as folder:
        path = Path(folder) / f"{layer}.{fmt}"
        export_frame(frame, path, fmt=fmt, layer=layer, metadata=meta)
        return path.read_bytes()


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@bp.route("/download/<layer>.<fmt>", methods=["GET", "HEAD"])
def download(layer: str, fmt: str) -> Response:
    """Download a published layer (``?regency=``, ``?pocket=``, ``?resolution=``)."""
    if layer not in DOWNLOAD_LAYERS:
        abort(404, description=f"unknown layer {layer[:32]!r}; one of {', '.join(DOWNLOAD_LAYERS)}")
    if fmt not in FORMATS:
        abort(404, description=f"unknown format {fmt[:16]!r}; one of {', '.join(FORMATS)}")
    run = published()
    if layer == "sites" and run.sites().empty:
        abort(404, description="no sites in this run; choose them first with `kantong sites`")
    res_text = request.args.get("resolution")
    res = ascii_int(res_text, digits=2)
    if res_text is not None and res is None:
        abort(400, description=f"resolution must be an integer, got {res_text[:16]!r}")
    pocket_text = request.args.get("pocket")
    pocket = ascii_int(pocket_text, digits=9)
    if pocket_text is not None and pocket is None:
        abort(400, description=f"pocket must be an integer id, got {pocket_text[:16]!r}")
    regency = request.args.get("regency")
    max_age = current_app.config["API_MAX_AGE"]
    etag = service().etag("download", f"{layer}.{fmt}", -1 if res is None else res,
                          -1 if pocket is None else pocket, regency or "")
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
        del response.headers["Content-Type"]
        response.set_etag(etag)
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
        return response
    cache = current_app.extensions["kantong_downloads"]
    key = (layer, fmt, res, regency, pocket)
    data = cache.get(key, None)
    if data is None:
        data = make_file(run, layer, fmt, resolution=res, regency=regency, pocket=pocket)
        cache.put(key, data)
    response = Response(data, mimetype=FORMATS[fmt])
    suffix = "".join([f"_r{res}" if res is not None else "", f"_{regency}" if regency else "",
                      f"_pocket{pocket}" if pocket is not None else ""])
    name = _safe_filename(f"kantong_{run.run_id}_{layer}{suffix}.{fmt}")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if fmt == "csv":
        meta = provenance(run, layer=layer, resolution=res, regency=regency)
        response.headers["X-Kantong-Provenance"] = json.dumps(
            {k: meta[k] for k in ("run_id", "min_households", "layer", "statement")},
            ensure_ascii=True)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response.make_conditional(request, accept_ranges=True, complete_length=len(data))


__all__ = ["DOWNLOAD_LAYERS", "FORMATS", "bp", "make_file"]
