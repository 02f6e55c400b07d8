"""Pockets: hot spots, contiguous poverty pockets, Inpres strategies and priority scores.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, run="find_pockets write_pockets PocketSummary",
    hotspots="gi_star hot_cells eb_rate bh_adjust",
    contiguity="assign_pockets pocket_labels dissolve_pockets",
    strategy="recommend_strategy explain_strategy", score="score_cells",
    scan="scan_windows", detect="detect_pockets", recovery="planted_cells recovery_scores",
    villages="find_village_pockets village_neighbours")
