"""Pockets: hot spots, contiguous poverty pockets, Inpres strategies and priority scores.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "find_pockets": "kantong.engine.pockets.run",
    "write_pockets": "kantong.engine.pockets.run",
    "PocketSummary": "kantong.engine.pockets.run",
    "gi_star": "kantong.engine.pockets.hotspots",
    "hot_cells": "kantong.engine.pockets.hotspots",
    "eb_rate": "kantong.engine.pockets.hotspots",
    "bh_adjust": "kantong.engine.pockets.hotspots",
    "assign_pockets": "kantong.engine.pockets.contiguity",
    "pocket_labels": "kantong.engine.pockets.contiguity",
    "dissolve_pockets": "kantong.engine.pockets.contiguity",
    "recommend_strategy": "kantong.engine.pockets.strategy",
    "explain_strategy": "kantong.engine.pockets.strategy",
    "score_cells": "kantong.engine.pockets.score",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
