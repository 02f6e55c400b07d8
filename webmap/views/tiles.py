"""The ``tiles`` blueprint: raster and vector tiles, legends and TileJSON of the served run.

URLs (see docs/webmap.md):

* ``/tiles/<indicator>/<z>/<x>/<y>.png`` - 256 px PNG of the published cells coloured by an
  indicator (or ``pocket``); a transparent PNG where there is no published cell.
* ``/tiles/cells/<z>/<x>/<y>.pbf`` - Mapbox Vector Tile 2.1, layer ``cells``; ``204 No
  Content`` where there is no published cell.
* ``/tiles/<indicator>/legend.json`` (alias ``/api/legend/<indicator>``) - the colour scale.
* ``/tiles/<name>.json`` - TileJSON 3.0.0 of ``cells`` (vector) or of an indicator (raster).
* ``/tiles/cells/metadata.json`` - the same for GDAL's MVT driver (MBTiles metadata keys).

Tiles carry a strong ``ETag`` (``If-None-Match`` gives ``304``) and ``Cache-Control:
public``. Invalid ``z/x/y`` give ``400``, unknown layers ``404`` (JSON ``{"error": ...}``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from flask import Blueprint, Response, abort, current_app, jsonify

from kantong.engine.publish.published import PublishedRun
from kantong.webmap.config import (
    MAX_ZOOM,
    MVT_EXTENT,
    TILE_SIZE,
    TILEJSON_MAXZOOM,
    TILEJSON_MINZOOM,
    zoom_table,
)
from kantong.webmap.tiling import colors
from kantong.webmap.tiling.mvt import LAYER_NAME, layer_description
from kantong.webmap.tiling.render import EMPTY_PNG
from kantong.webmap.tiling.service import TileService
from kantong.webmap.views.responses import requested_resolution, tile_response

bp = Blueprint("tiles", __name__, url_prefix="/tiles")

#: Media type of Mapbox Vector Tiles.
MVT_MIMETYPE: Final = "application/vnd.mapbox-vector-tile"
_INT: Final = re.compile(r"[0-9]{1,8}")
ATTRIBUTION: Final = "Kantong (privacy-safe H3 aggregates); boundaries BPS 2020"


def service() -> TileService:
    """Return the tile service of the current app."""
    return current_app.extensions["kantong_tiles"]


def published() -> PublishedRun:
    """Return the published run of the current app."""
    return current_app.extensions["kantong"]


def ascii_int(text: str | None, *, digits: int = 8) -> int | None:
    """Return ``text`` as an int if it is 1..``digits`` ASCII digits, else ``None``.

    ``str.isdigit`` is not enough: it accepts superscripts (``"²"``) that ``int`` rejects
    and other scripts' digits (``"٣"``) that ``int`` reads.

    Examples
    --------
    >>> ascii_int("08"), ascii_int("²"), ascii_int("-1"), ascii_int("123456789")
    (8, None, None, None)
    """
    if text is None or not _INT.fullmatch(text) or len(text) > digits:
        return None
    return int(text)


def parse_tile(z: str, x: str, y: str) -> tuple[int, int, int]:
    """Validate XYZ tile coordinates from a URL; abort with 400 when invalid.

    Examples
    --------
    >>> parse_tile("6", "51", "31")
    (6, 51, 31)
    """
    for name, value in (("z", z), ("x", x), ("y", y)):
        if not _INT.fullmatch(value):
            abort(400, description=f"tile {name} must be a non-negative integer of at most 8 "
                                   f"digits, got {value[:16]!r}")
    zi, xi, yi = int(z), int(x), int(y)
    if zi > MAX_ZOOM:
        abort(400, description=f"zoom {zi} is above the maximum {MAX_ZOOM}")
    n = 1 << zi
    if xi >= n or yi >= n:
        abort(400, description=f"tile {zi}/{xi}/{yi} does not exist (x and y must be < {n})")
    return zi, xi, yi


def check_indicator(indicator: str) -> str:
    """Return ``indicator`` if the run serves it as a raster layer, else abort with 404."""
    if not service().has_indicator(indicator):
        abort(404, description=f"unknown indicator {indicator[:64]!r}; see /api/indicators")
    return indicator


def _tile_response(kind: str, name: str, z: int, x: int, y: int, produce: Any,
                   mimetype: str, empty: bytes | None) -> Response:
    return tile_response(service().etag(kind, name, z, x, y), produce, mimetype, empty)


@bp.get("/<indicator>/<z>/<x>/<y>.png")
def png_tile(indicator: str, z: str, x: str, y: str) -> Response:
    """Raster tile of an indicator (transparent where there is no published cell)."""
    check_indicator(indicator)
    zi, xi, yi = parse_tile(z, x, y)
    return _tile_response("png", indicator, zi, xi, yi,
                          lambda: service().png(indicator, zi, xi, yi), "image/png", EMPTY_PNG)


@bp.get("/cells/<z>/<x>/<y>.pbf")
def mvt_tile(z: str, x: str, y: str) -> Response:
    """Vector tile of the published cells (204 where there is none)."""
    zi, xi, yi = parse_tile(z, x, y)
    return _tile_response("mvt", LAYER_NAME, zi, xi, yi, lambda: service().mvt(zi, xi, yi),
                          MVT_MIMETYPE, None)


def legend_response(indicator: str) -> Response:
    """Return the legend of ``indicator`` (``?resolution=R`` or ``?z=Z``; default: base)."""
    check_indicator(indicator)
    svc = service()
    res = requested_resolution(svc.run.resolutions, svc.resolution_for_zoom)
    response = jsonify(svc.legend(indicator, resolution=res))
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['API_MAX_AGE']}"
    return response


@bp.get("/<indicator>/legend.json")
def legend(indicator: str) -> Response:
    """Legend of an indicator: ``{indicator, label, unit, stops, domain, ...}``."""
    return legend_response(indicator)


def _root() -> str:
    """Return the base of published URLs: ``PUBLIC_URL`` (``serve --public-url``), else ``""``.

    Never the request's ``Host`` header: responses are cached publicly, and a forged Host
    would otherwise end up in every cached TileJSON (root-relative URLs without a base).
    """
    return str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")


def tilejson(name: str) -> dict[str, Any]:
    """Return the TileJSON 3.0.0 document of ``cells`` or of a raster indicator."""
    svc = service()
    run = svc.run
    w, s, e, n = svc.bounds()
    lon, lat, zoom = svc.center()
    doc: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": f"kantong {run.run_id} {name}",
        "version": "1.0.0",
        "attribution": ATTRIBUTION,
        "scheme": "xyz",
        "minzoom": TILEJSON_MINZOOM,
        "maxzoom": TILEJSON_MAXZOOM,
        "bounds": [round(w, 6), round(s, 6), round(e, 6), round(n, 6)],
        "center": [round(lon, 6), round(lat, 6), zoom],
        "resolutions": zoom_table(run.resolutions)[TILEJSON_MINZOOM:TILEJSON_MAXZOOM + 1],
    }
    if name == LAYER_NAME:
        base = svc.level(run.base_resolution).attributes
        doc["description"] = (f"Published H3 cells of run {run.run_id} (cells with fewer than "
                              f"{run.min_households} households withheld); extent {MVT_EXTENT}")
        doc["format"] = "pbf"
        doc["tiles"] = [f"{_root()}/tiles/{LAYER_NAME}/{{z}}/{{x}}/{{y}}.pbf"]
        doc["vector_layers"] = [layer_description(base, minzoom=TILEJSON_MINZOOM,
                                                  maxzoom=TILEJSON_MAXZOOM)]
    else:
        check_indicator(name)
        info = colors.describe(name)
        doc["description"] = f"{info['label']} ({info['unit']}), run {run.run_id}"
        doc["format"] = "png"
        doc["tiles"] = [f"{_root()}/tiles/{name}/{{z}}/{{x}}/{{y}}.png"]
        doc["tileSize"] = TILE_SIZE
        doc["legend"] = f"{_root()}/tiles/{name}/legend.json"
    return doc


@bp.get("/cells/metadata.json")
def mvt_metadata() -> Response:
    """MBTiles-style ``metadata.json`` of the vector tiles, for GDAL (``MVT:<url>/tiles/cells``)."""
    doc = tilejson(LAYER_NAME)
    meta = {
        "name": doc["name"], "description": doc["description"], "version": "2",
        "format": "pbf", "type": "overlay", "attribution": doc["attribution"],
        "minzoom": str(doc["minzoom"]), "maxzoom": str(doc["maxzoom"]),
        "bounds": ",".join(str(v) for v in doc["bounds"]),
        "center": ",".join(str(v) for v in doc["center"]),
        "json": json.dumps({"vector_layers": doc["vector_layers"]}),
    }
    response = jsonify(meta)
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['API_MAX_AGE']}"
    return response


@bp.get("/<name>.json")
def tilejson_view(name: str) -> Response:
    """TileJSON 3.0.0 of the vector ``cells`` layer or of a raster indicator."""
    if name != LAYER_NAME:
        check_indicator(name)
    response = jsonify(tilejson(name))
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['API_MAX_AGE']}"
    return response
