"""Publish: statistical disclosure control, the ``PublishedRun`` gate and exports.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "PublishedRun": "kantong.engine.publish.published",
    "plan_suppression": "kantong.engine.publish.privacy",
    "SuppressionPlan": "kantong.engine.publish.privacy",
    "export_layer": "kantong.engine.publish.export",
    "ExportSummary": "kantong.engine.publish.export",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
