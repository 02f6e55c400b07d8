"""Kantong engine: households, facilities and rasters to H3 cells, pockets and priorities.

The public entry points are importable from here; they load lazily (on first attribute
access) so that ``import engine`` and ``kantong --help`` stay fast.

Examples
--------
>>> import engine
>>> paths = engine.make_demo("demo", households=20_000)            # doctest: +SKIP
>>> summary = engine.build_run(paths.households, out="run",
...                            facilities=paths.facilities,
...                            friction=paths.friction)             # doctest: +SKIP
>>> published = engine.PublishedRun("run")                          # doctest: +SKIP
>>> published.pockets().head()                                      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Config": "engine.config",
    "make_demo": "engine.demo",
    "read_households": "engine.ingest",
    "read_facilities": "engine.facilities",
    "open_raster": "engine.rasters",
    "build_run": "engine.build",
    "households_to_cell_sums": "engine.grid",
    "rollup_cells": "engine.grid",
    "zonal_stats": "engine.zonal",
    "TravelSurface": "engine.travel",
    "gi_star": "engine.hotspots",
    "find_pockets": "engine.pockets",
    "write_pockets": "engine.pockets",
    "score_cells": "engine.score",
    "recommend_strategy": "engine.strategy",
    "plan_sites": "engine.sites_run",
    "greedy_cover": "engine.siting",
    "exact_cover": "engine.siting",
    "PublishedRun": "engine.published",
    "export_layer": "engine.export",
    "compare_runs": "engine.compare",
    "write_comparison": "engine.compare",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
