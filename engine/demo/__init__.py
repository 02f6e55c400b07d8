"""Demo: the synthetic P3KE-style register, facilities and friction, and the cached demo run.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "make_demo": "kantong.engine.demo.make",
    "DemoPaths": "kantong.engine.demo.make",
    "make_partitioned_demo": "kantong.engine.demo.partitions",
    "ensure_demo_run": "kantong.engine.demo.cached_run",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
