"""Build: households placed and fused into H3 cells, with travel times and raster statistics.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "build_run": "kantong.engine.build.run",
    "BuildSummary": "kantong.engine.build.run",
    "households_to_cell_sums": "kantong.engine.build.grid",
    "rollup_cells": "kantong.engine.build.grid",
    "cell_polygons": "kantong.engine.build.grid",
    "cell_centres": "kantong.engine.build.grid",
    "StudyArea": "kantong.engine.build.placement",
    "place_by_village": "kantong.engine.build.placement",
    "TravelSurface": "kantong.engine.build.travel",
    "StraightLine": "kantong.engine.build.travel",
    "zonal_stats": "kantong.engine.build.zonal",
    "cell_means": "kantong.engine.build.zonal",
    "cell_population": "kantong.engine.build.zonal",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
