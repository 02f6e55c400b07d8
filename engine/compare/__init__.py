"""Compare: two runs cell by cell and pocket by pocket, against the programme targets.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, run="compare_runs write_comparison Comparison",
    pockets="match_pockets pocket_changes", targets="target_table Target")
