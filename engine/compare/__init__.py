"""Compare: two runs cell by cell and pocket by pocket, against the programme targets.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "compare_runs": "kantong.engine.compare.run",
    "write_comparison": "kantong.engine.compare.run",
    "Comparison": "kantong.engine.compare.run",
    "match_pockets": "kantong.engine.compare.pockets",
    "pocket_changes": "kantong.engine.compare.pockets",
    "target_table": "kantong.engine.compare.targets",
    "Target": "kantong.engine.compare.targets",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
