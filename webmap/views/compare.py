"""The ``compare`` blueprint: change layers of ``kantong serve --run NEW --compare OLD``.

When the app is configured with ``COMPARE_RUN_DIR`` (``KANTONG_COMPARE_RUN_DIR``), the served
run is the *new* run and the compare run the *old* one
(:class:`kantong.webmap.tiling.change.CompareService`). This module only maps URLs to it,
with the responders the other blueprints use (:mod:`kantong.webmap.views.responses`).

URLs:

* ``/tiles/change_extreme_households/<z>/<x>/<y>.png`` and
  ``/tiles/change_extreme_rate/<z>/<x>/<y>.png`` - raster tiles of the change (new - old);
  ``.../legend.json`` - their legends.
* ``/api/compare`` - summary: runs, resolution, cell presence counts, pocket statuses.
* ``/api/compare/regencies`` - the regency table (extreme rate and target indicators in both
  runs, change, distance to the targets) with the target definitions.
* ``/api/compare/pockets.geojson`` - pocket groups with their status (RFC 7946).

The viewer page shows the change rasters as base layers, the pocket statuses as an overlay
and a small regency table (:class:`kantong.webmap.page.compare_layers.ComparePageLayers`,
from :func:`page_layers`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from flask import Blueprint, Flask, Response, current_app, jsonify

from kantong.engine.compare.pockets import STATUSES
from kantong.engine.compare.targets import targets_record
from kantong.engine.errors import ConfigError
from kantong.engine.publish.published import PublishedRun
from kantong.webmap.page.compare_layers import ComparePageLayers
from kantong.webmap.tiling.change import CHANGE_LAYERS, CompareService
from kantong.webmap.tiling.render import EMPTY_PNG
from kantong.webmap.views.responses import cached, requested_resolution, tile_response
from kantong.webmap.views.tiles import parse_tile

logger = logging.getLogger(__name__)

bp = Blueprint("compare", __name__)

#: Key of the service in ``app.extensions``.
EXTENSION: Final = "kantong_compare"


def page_layers(svc: CompareService) -> ComparePageLayers:
    """Return the layers the viewer page adds for a comparison."""
    return ComparePageLayers(svc.comparison())


def service() -> CompareService:
    """Return the compare service of the current app."""
    return current_app.extensions[EXTENSION]


def _tile(layer: str, z: str, x: str, y: str) -> Response:
    zi, xi, yi = parse_tile(z, x, y)
    svc = service()
    return tile_response(svc.etag(layer, zi, xi, yi), lambda: svc.png(layer, zi, xi, yi),
                         "image/png", EMPTY_PNG)


def _legend(layer: str) -> Response:
    svc = service()
    res = requested_resolution(svc.resolutions, svc.resolution_for_zoom)
    return cached(jsonify(svc.legend(layer, resolution=res)))


for _name in CHANGE_LAYERS:  # static paths: they take precedence over /tiles/<indicator>/...
    bp.add_url_rule(f"/tiles/{_name}/<z>/<x>/<y>.png", endpoint=f"tile_{_name}",
                    view_func=_tile, defaults={"layer": _name})
    bp.add_url_rule(f"/tiles/{_name}/legend.json", endpoint=f"legend_{_name}",
                    view_func=_legend, defaults={"layer": _name})


@bp.get("/api/compare")
def summary() -> Response:
    """Summary of the comparison: runs, resolution, cell presence, pocket statuses."""
    return cached(jsonify(service().summary()))


@bp.get("/api/compare/regencies")
def regencies() -> Response:
    """Regency table: extreme rate and target indicators in both runs, change, gap."""
    return cached(jsonify({"targets": targets_record(), "regencies": service().regencies()}))


@bp.get("/api/compare/pockets.geojson")
def pockets() -> Response:
    """Pocket groups with status (persisting, shrinking, growing, new, resolved)."""
    response = Response(service().pockets_geojson(), mimetype="application/geo+json")
    return cached(response)


def init_app(app: Flask, compare_dir: str | Path) -> CompareService:
    """Serve the changes between ``compare_dir`` (earlier) and the app's run (later).

    The earlier run is read through its own :class:`PublishedRun` with a threshold of at
    least the served run's ``K`` (and at least its own configured one).

    Parameters
    ----------
    app
        An app made by :func:`webmap.create_app` (its served run is the later run).
    compare_dir
        Run directory of the earlier run.

    Returns
    -------
    CompareService

    Raises
    ------
    ConfigError
        If ``compare_dir`` is the served run or the runs share no resolution.
    RunError
        If ``compare_dir`` is not a run directory.
    """
    new: PublishedRun = app.extensions["kantong"]
    path = Path(compare_dir).resolve()
    if path == new.run_dir.resolve():
        raise ConfigError(f"{path}: the compare run is the served run")
    old = PublishedRun(path)
    if old.min_households < new.min_households:
        old = PublishedRun(path, min_households=new.min_households)
    app.config["COMPARE_RUN_DIR"] = str(path)
    svc = CompareService(old, new, cache_bytes=max(int(app.config["TILE_CACHE_BYTES"]) // 4, 0))
    app.extensions[EXTENSION] = svc
    app.register_blueprint(bp)
    logger.info("serving changes from run %s to run %s", old.run_id, new.run_id)
    return svc


__all__ = ["CHANGE_LAYERS", "EXTENSION", "STATUSES", "CompareService", "ComparePageLayers", "bp",
           "init_app", "page_layers"]
