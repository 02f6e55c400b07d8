"""Build: households placed and fused into H3 cells, with travel times and raster statistics.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, run="build_run BuildSummary",
    grid="households_to_cell_sums rollup_cells cell_polygons cell_centres",
    placement="StudyArea place_by_village village_cell_weights",
    sums="allocate_village_sums location_precision", travel="TravelSurface StraightLine",
    zonal="zonal_stats cell_means cell_population",
    friction="build_friction target_grid write_friction", speeds="SpeedTable read_speed_table")
