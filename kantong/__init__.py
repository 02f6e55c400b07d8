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
>>> sorted(n for n in kantong.__all__ if n.startswith(("build", "Publ", "create")))
['PublishedRun', 'build_run', 'create_app']
>>> kantong.build_run is kantong.engine.build_run
True
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

from kantong.engine import __all__ as _ENGINE_ALL  # noqa: E402 (needs __version__ above)

__all__ = ["__version__", *sorted({"engine", "webmap", *_EXPORTS, *_ENGINE_ALL})]


def __getattr__(name: str) -> Any:
    if name in ("engine", "webmap"):
        return importlib.import_module(f"kantong.{name}")
    module = _EXPORTS.get(name) or ("kantong.engine" if name in _ENGINE_ALL else None)
    if module is None:
        raise AttributeError(f"module 'kantong' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
