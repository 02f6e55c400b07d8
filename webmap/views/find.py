"""The ``find`` blueprint: search, cell lookup, existing facilities and ground context.

URLs (JSON unless said otherwise; see docs/webmap.md):

* ``/api/search?q=TEXT`` - regencies, kecamatan, villages (shipped BPS 2020 names) and
  published pocket ids matching ``TEXT``: ``{"query", "results": [{name, kind, codes,
  centre: [lon, lat], bbox: [w, s, e, n]}]}`` (:mod:`kantong.webmap.search`).
* ``/api/locate?lat=&lon=&z=`` - the H3 cell id at a point, at the resolution the map draws
  at zoom ``z`` (default: the base resolution): ``{"h3", "resolution", "published"}``. Any
  point has an id; ``published`` says whether ``/api/cells/<h3>`` has it (the same answer
  as its 404).
* ``/api/facilities`` - existing facilities of the run (public infrastructure points, not
  households) as GeoJSON: ``type``, ``name``, ``facility_id``.
* ``/api/context/places.json`` - rivers and towns for the map background (Natural Earth,
  public domain; every GeoNames town of ``data/boundaries/``, CC BY 4.0, most of them with
  an unknown population) around the run's area: ``{"rivers", "places"}``, the most
  populous first.
* ``/api/context/districts.geojson`` - kecamatan outlines (BPS 2020) of the run's regencies.
* ``/api/context/villages.json`` - village names and points (BPS 2020) of the run's
  regencies: ``{"villages": [[lon, lat, name], ...]}``.

Everything of the run comes through :class:`kantong.engine.publish.published.PublishedRun`;
the context layers are shipped public data (``data/context/``, ``data/boundaries/``).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any, Final

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from flask import Blueprint, Response, abort, current_app, jsonify, request

from kantong.engine import datapaths
from kantong.engine.inputs import boundaries
from kantong.engine.publish.export import geojson_text, round_and_orient
from kantong.webmap.search import MAX_QUERY, SearchIndex
from kantong.webmap.views.responses import cached
from kantong.webmap.views.tiles import ascii_int, published, service

bp = Blueprint("find", __name__)

GEOJSON_MIMETYPE: Final = "application/geo+json"
#: Simplification tolerance of the kecamatan outlines (degrees, about 55 m).
DISTRICT_TOLERANCE: Final = 0.0005
#: Margin around the run's cells within which context features are kept (degrees).
CONTEXT_MARGIN: Final = 0.5
_lock = threading.Lock()


def _once(key: str, build: Callable[[], Any]) -> Any:
    """Return ``app.extensions[key]``, built by ``build()`` on first use (thread-safe)."""
    ext = current_app.extensions
    with _lock:
        if key not in ext:
            ext[key] = build()
        return ext[key]


def _regency_codes() -> list[str]:
    return [str(c) for c in published().regencies()["regency_code"]]


def search_index() -> SearchIndex:
    """Return the search index of the current app (built on first use)."""
    return _once("kantong_search", lambda: SearchIndex(_regency_codes(), published().pockets()))


@bp.get("/api/search")
def search() -> Response:
    """Places and pockets matching ``?q=`` (at most 20, best first)."""
    query = request.args.get("q", "")
    if len(query) > MAX_QUERY:
        abort(400, description=f"q is longer than {MAX_QUERY} characters")
    limit = ascii_int(request.args.get("limit", "10"), digits=2)
    if limit is None or not 1 <= limit <= 20:
        abort(400, description="limit must be an integer in 1..20")
    return cached(jsonify({"query": query, "results": search_index().search(query, limit=limit)}))


def _coordinate(name: str, bound: float) -> float:
    text = request.args.get(name)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > bound:
        abort(400, description=f"{name} must be a number in -{bound:g}..{bound:g}")
    return value


@bp.get("/api/locate")
def locate() -> Response:
    """Return the H3 cell id at ``?lat=&lon=`` at the resolution drawn at zoom ``?z=``."""
    lat, lon = _coordinate("lat", 90.0), _coordinate("lon", 180.0)
    run = published()
    if "z" in request.args:
        z = ascii_int(request.args["z"], digits=2)
        if z is None or z > 24:
            abort(400, description="z must be an integer in 0..24")
        res = service().resolution_for_zoom(z)
    else:
        res = run.base_resolution
    cell = h3.latlng_to_cell(lat, lon, res)
    return cached(jsonify({"h3": cell, "resolution": res,
                           "published": run.cell(cell) is not None}))


@bp.get("/api/facilities")
def facilities() -> Response:
    """Existing facilities of the run (GeoJSON points; an empty collection when none)."""
    def build() -> str:
        frame = published().facilities()
        return geojson_text(round_and_orient(frame), id_column="facility_id"
                            if "facility_id" in frame.columns else None)
    response = Response(_once("kantong_facilities", build), mimetype=GEOJSON_MIMETYPE)
    return cached(response)


def _area() -> shapely.Polygon:
    w, s, e, n = service().bounds()
    m = CONTEXT_MARGIN
    return shapely.box(w - m, s - m, e + m, n + m)


def _features(frame: gpd.GeoDataFrame, columns: dict[str, str]) -> dict[str, Any]:
    frame = frame.rename(columns=columns)[[*columns.values(), "geometry"]]
    return json.loads(geojson_text(round_and_orient(frame)))


def _places() -> dict[str, Any]:
    area = _area()
    rivers = gpd.read_file(datapaths.data_file(datapaths.CONTEXT_RIVERS), engine="pyogrio")
    rivers = rivers[rivers.intersects(area)]
    rivers = rivers.set_geometry(rivers.geometry.intersection(area))
    places = gpd.read_file(datapaths.data_file(datapaths.CONTEXT_PLACES), engine="pyogrio")
    places = places[places.within(area)].rename(columns={"NAME": "name", "POP_MAX": "population"})
    towns = pd.read_csv(datapaths.data_file(datapaths.TOWNS))
    towns = gpd.GeoDataFrame(towns[["name", "population"]],
                             geometry=gpd.points_from_xy(towns["lon"], towns["lat"]), crs=4326)
    towns = towns[towns.within(area)]
    # a GeoNames town within 5 km of a Natural Earth place is the same town
    if len(places) and len(towns):
        gap = shapely.distance(towns.geometry.to_numpy()[:, None],
                               places.geometry.to_numpy()[None, :]).min(axis=1)
        towns = towns[gap >= 0.05]
    both = pd.concat([places[["name", "population", "geometry"]], towns], ignore_index=True)
    both = gpd.GeoDataFrame(both, geometry="geometry", crs=4326).sort_values(
        "population", ascending=False)
    return {"rivers": _features(rivers, {"name": "name"}),
            "places": _features(both, {"name": "name", "population": "population"}),
            "attribution": "Natural Earth (public domain); GeoNames (CC BY 4.0)"}


@bp.get("/api/context/places.json")
def context_places() -> Response:
    """Rivers (Natural Earth) and towns (Natural Earth, GeoNames) around the run's area."""
    return cached(jsonify(_once("kantong_context_places", _places)))


def _districts() -> str:
    dist = boundaries.districts()
    dist = dist[dist["regency_code"].astype(str).isin(set(_regency_codes()))]
    dist = dist[["district_code", "district_name", "regency_code", "geometry"]]
    geoms = shapely.simplify(dist.geometry.to_numpy(), DISTRICT_TOLERANCE, preserve_topology=True)
    dist = dist.set_geometry(gpd.GeoSeries(geoms, index=dist.index, crs=dist.crs))
    return geojson_text(round_and_orient(dist.reset_index(drop=True)), id_column="district_code")


@bp.get("/api/context/districts.geojson")
def context_districts() -> Response:
    """Kecamatan outlines (BPS 2020, simplified to about 55 m) of the run's regencies."""
    return cached(Response(_once("kantong_context_districts", _districts),
                         mimetype=GEOJSON_MIMETYPE))


def _coast() -> str:
    """Return the run's provinces' outlines (coast, land borders) at the shipped precision."""
    codes = {code[:2] for code in _regency_codes()}
    prov = boundaries.provinces()
    prov = prov[prov["province_code"].astype(str).isin(codes)]
    lines = gpd.GeoDataFrame({"province_code": prov["province_code"].astype(str).to_numpy()},
                             geometry=prov.geometry.boundary.to_numpy(), crs=prov.crs)
    return geojson_text(round_and_orient(lines.reset_index(drop=True)),
                        id_column="province_code")


@bp.get("/api/context/coast.geojson")
def context_coast() -> Response:
    """Province outlines (coastline) unsimplified, for the map from zoom 10 (BPS 2020)."""
    return cached(Response(_once("kantong_context_coast", _coast),
                           mimetype=GEOJSON_MIMETYPE))


def _villages() -> dict[str, Any]:
    pts = boundaries.village_points()
    pts = pts[pts["regency_code"].astype(str).isin(set(_regency_codes()))]
    pts = pts.sort_values("area_km2", ascending=False)  # larger villages labelled first
    lon = np.round(pts["lon"].to_numpy(dtype="float64"), 5)
    lat = np.round(pts["lat"].to_numpy(dtype="float64"), 5)
    return {"villages": [[float(x), float(y), str(n)] for x, y, n in
                         zip(lon, lat, pts["village_name"], strict=True)],
            "attribution": "BPS 2020 via HDX (CC BY 3.0 IGO)"}


@bp.get("/api/context/villages.json")
def context_villages() -> Response:
    """Village names and representative points (BPS 2020) of the run's regencies."""
    return cached(jsonify(_once("kantong_context_villages", _villages)))


__all__ = ["bp", "search_index"]
