"""Inputs: household registers, facility layers, rasters, boundaries and code systems.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, households="read_households validate_households IngestResult",
    facilities="read_facilities FacilityResult", rasters="open_raster RasterLayer",
    tables="iter_tables", partitions="is_partitioned list_parts")
