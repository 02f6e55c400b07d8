"""Publish: statistical disclosure control, the ``PublishedRun`` gate and exports.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, published="PublishedRun", privacy="plan_suppression SuppressionPlan",
    export="export_layer ExportSummary")
