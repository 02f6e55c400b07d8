"""Kantong: a geospatial targeting engine for Indonesia's extreme-poverty programme.

One import name, two parts:

* :mod:`kantong.engine` (the ``engine/`` folder): registers, facilities and rasters to
  H3 cells, poverty pockets, priorities, sites, privacy-safe publishing, comparisons.
* :mod:`kantong.webmap` (the ``webmap/`` folder): the Flask tile server and the offline
  Folium viewer, reading runs only through :class:`~kantong.engine.PublishedRun`.

The public entry points are importable from here and load lazily, so ``import kantong``
stays fast.

Examples
--------
>>> import kantong
>>> kantong.__version__
'0.2.0'
>>> sorted(n for n in kantong.__all__ if n.startswith("build"))
['build_run']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: public name -> module that defines it (the engine's entry points, the app factory, the CLI)
_EXPORTS: dict[str, str] = {
    "create_app": "kantong.webmap",
    "main": "kantong.engine.cli",
}

__all__ = ["__version__", "engine", "webmap", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in ("engine", "webmap"):
        return importlib.import_module(f"kantong.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        engine = importlib.import_module("kantong.engine")
        if name in engine.__all__:
            value = getattr(engine, name)
            globals()[name] = value
            return value
        raise AttributeError(f"module 'kantong' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    engine = importlib.import_module("kantong.engine")
    return sorted({*__all__, *engine.__all__})
