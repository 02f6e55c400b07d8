"""Inputs: household registers, facility layers, rasters, boundaries and code systems.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "read_households": "kantong.engine.inputs.households",
    "validate_households": "kantong.engine.inputs.households",
    "IngestResult": "kantong.engine.inputs.households",
    "read_facilities": "kantong.engine.inputs.facilities",
    "FacilityResult": "kantong.engine.inputs.facilities",
    "open_raster": "kantong.engine.inputs.rasters",
    "RasterLayer": "kantong.engine.inputs.rasters",
    "iter_tables": "kantong.engine.inputs.tables",
    "is_partitioned": "kantong.engine.inputs.partitions",
    "list_parts": "kantong.engine.inputs.partitions",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
