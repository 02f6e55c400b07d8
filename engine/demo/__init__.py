"""Demo: the synthetic P3KE-style register, facilities and friction, and the cached demo run.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, make="make_demo DemoPaths", partitions="make_partitioned_demo",
    cached_run="ensure_demo_run")
