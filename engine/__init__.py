"""Kantong engine: households, facilities and rasters to H3 cells, pockets and priorities.

The public entry points are importable from here; they load lazily (on first attribute
access) so that ``import engine`` and ``kantong --help`` stay fast.

Examples
--------
>>> import kantong.engine as engine
>>> paths = engine.make_demo("demo", households=20_000)            # doctest: +SKIP
>>> summary = engine.build_run(paths.households, out="run",
...                            facilities=paths.facilities,
...                            friction=paths.friction)             # doctest: +SKIP
>>> published = engine.PublishedRun("run")                          # doctest: +SKIP
>>> published.pockets().head()                                      # doctest: +SKIP
"""

from __future__ import annotations

from kantong import __version__
from kantong.engine._lazy import lazy_exports

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Config": "kantong.engine.config",
    "make_demo": "kantong.engine.demo.make",
    "read_households": "kantong.engine.inputs.households",
    "read_facilities": "kantong.engine.inputs.facilities",
    "open_raster": "kantong.engine.inputs.rasters",
    "build_run": "kantong.engine.build.run",
    "households_to_cell_sums": "kantong.engine.build.grid",
    "rollup_cells": "kantong.engine.build.grid",
    "zonal_stats": "kantong.engine.build.zonal",
    "TravelSurface": "kantong.engine.build.travel",
    "gi_star": "kantong.engine.pockets.hotspots",
    "find_pockets": "kantong.engine.pockets.run",
    "write_pockets": "kantong.engine.pockets.run",
    "score_cells": "kantong.engine.pockets.score",
    "recommend_strategy": "kantong.engine.pockets.strategy",
    "plan_sites": "kantong.engine.sites.run",
    "greedy_cover": "kantong.engine.sites.solvers",
    "exact_cover": "kantong.engine.sites.solvers",
    "PublishedRun": "kantong.engine.publish.published",
    "export_layer": "kantong.engine.publish.export",
    "compare_runs": "kantong.engine.compare.run",
    "plot_pockets": "kantong.engine.pockets.run",
    "plot_change_map": "kantong.engine.plots",
    "plot_regency_ranking": "kantong.engine.plots",
    "plot_regency_targets": "kantong.engine.plots",
    "write_comparison": "kantong.engine.compare.run",
}



_names, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_names]
