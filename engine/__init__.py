"""Kantong engine: households, facilities and rasters to H3 cells, pockets and priorities.

The public entry points are re-exported here as the stages land; helper names
start with ``_``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
