"""``kantong build``: households, facilities and rasters fused into a run directory.

Stages (each timed in the manifest):

1. study area: ``--boundaries`` polygons, or ``--province``, or all Kalimantan provinces;
2. facilities: read and validated (:mod:`kantong.engine.inputs.facilities`);
3. travel: one least-cost travel-time raster per facility type over the friction surface
   (:mod:`kantong.engine.build.travel`), or the straight-line fallback without one;
4. households: streamed in batches
   (:func:`kantong.engine.inputs.households.iter_household_batches`), each
   validated, indexed to H3 and reduced to per-cell partial sums
   (:class:`kantong.engine.build.grid.CellAccumulator`); travel minutes are sampled at each
   household so
   that ``travel_min_<type>`` is the mean over the cell's households;
5. cells: geometry, centre, shares and administrative codes;
6. population and ``--raster`` means per cell (:mod:`kantong.engine.build.zonal`);
7. rollups to resolutions ``min_rollup_resolution .. R-1`` (exact sums);
8. write everything to a temporary directory, then the pockets stage, then rename.

A failure at any point leaves no run directory behind (:func:`kantong.engine.atomic.atomic_dir`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import pyproj
import rasterio

from kantong.engine import __version__, datapaths, progress
from kantong.engine.atomic import atomic_dir, atomic_path, claim_dir
from kantong.engine.build.grid import (
    CellAccumulator,
    cells_frame,
    order_columns,
    rollup_cells,
)
from kantong.engine.build.placement import StudyArea
from kantong.engine.build.sums import PartialSums, location_precision, village_totals
from kantong.engine.build.travel import (
    LEAST_COST_METHOD,
    STRAIGHT_LINE_METHOD,
    STRAIGHT_LINE_SPEED_KMH,
    HouseholdValues,
    StraightLine,
    TravelSurface,
    type_slug,
)
from kantong.engine.build.zonal import cell_means, cell_population
from kantong.engine.config import Config
from kantong.engine.constants import (
    CELLS_FILE,
    FACILITIES_FILE,
    FRICTION_FILE,
    MANIFEST_FILE,
    REJECTS_FILE,
    ROLLUP_DIR,
    VILLAGES_FILE,
    WGS84,
)
from kantong.engine.errors import EmptyInputError, InputError
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.absent import blank_absent, with_placeholders
from kantong.engine.inputs.facilities import read_facilities
from kantong.engine.inputs.households import (
    lock_code_system,
    summarise_rejects,
    validate_households,
)
from kantong.engine.inputs.options import ReadOptions
from kantong.engine.inputs.partitions import (
    file_records,
    household_batches,
    is_partitioned,
    list_parts,
)
from kantong.engine.inputs.rasters import open_raster
from kantong.engine.inputs.tables import read_vector_layer
from kantong.engine.rundir import (
    Timer,
    file_record,
    is_run_output,
    merge_manifest,
    new_run_id,
    peak_memory_mib,
    seal_manifest,
    utc_now,
    write_manifest,
)

logger = logging.getLogger(__name__)

#: Sub-directory of travel-time rasters in a run directory.
TRAVEL_DIR = "travel"
#: Marker for "use the bundled GHS-POP raster" (the default of ``population``).
BUNDLED = "bundled"
#: Households validated and aggregated per batch.
DEFAULT_BATCH_ROWS = 1_000_000
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REJECT_COLUMNS = ["source", "row", "record_id", "reason"]
#: Where the households stage runs (see engine/build/dask_backend.py).
BACKENDS = ("local", "dask")


@dataclass
class BuildSummary:
    """What a build did: counts, cells per resolution, timings and the manifest."""

    run_dir: Path
    counts: dict[str, dict[str, int]]
    cells: dict[str, int]
    timings: dict[str, float]
    manifest: dict[str, Any] = field(repr=False)


def check_raster_name(name: str) -> str:
    """Return ``name`` if it is usable as ``<name>_mean`` (lower-case identifier), else raise."""
    if not _NAME.match(name):
        raise InputError(f"raster name {name!r} must be a lower-case identifier like 'elevation'")
    return name


def is_synthetic_input(households: str | Path) -> bool:
    """Tell whether a household register is synthetic demo data.

    True when its file (or partition directory) name says ``synthetic`` - as every file
    ``kantong demo-data`` writes does - or a ``metadata.json`` beside it carries the
    synthetic label. The flag travels into the manifest, the web map and every export.
    """
    path = Path(str(households))
    if "synthetic" in path.name.lower() or "synthetic" in path.parent.name.lower():
        return True
    meta = path.parent / "metadata.json"
    try:
        label = json.loads(meta.read_text(encoding="utf-8")).get("label", "")
    except (OSError, ValueError, AttributeError):
        return False
    return "SYNTHETIC" in str(label).upper()


def read_study_area(*, boundaries_path: str | Path | None = None,
                    province: str | None = None) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Return the study-area polygons (EPSG:4326) and a manifest description of them.

    ``boundaries_path`` wins over ``province``; without either, all Kalimantan provinces.
    """
    if boundaries_path is not None:
        path = Path(boundaries_path)
        gdf = read_vector_layer(path, what="boundaries")
        gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        if gdf.empty or not gdf.geom_type.isin(["Polygon", "MultiPolygon"]).any():
            raise InputError(f"{path}: boundaries layer holds no polygon")
        if not pyproj.CRS(gdf.crs).equals(WGS84, ignore_axis_order=True):
            logger.info("reprojecting boundaries %s from %s to %s", path, gdf.crs, WGS84)
            gdf = gdf.to_crs(WGS84)
        return gdf[["geometry"]], {"kind": "boundaries", "path": str(path)}
    if province is not None:
        code = boundaries.check_province(province)
        return boundaries.province_polygon(code)[["geometry"]], {"kind": "province",
                                                                  "province": code}
    return boundaries.provinces()[["geometry"]], {"kind": "Kalimantan provinces"}


def _write_raster(path: Path, data: np.ndarray, *, transform: Any, crs: Any, units: str) -> None:
    height, width = data.shape
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": width,
               "height": height, "crs": crs, "transform": transform, "nodata": np.nan,
               "compress": "zstd", "zstd_level": 1, "predictor": 3, "num_threads": "ALL_CPUS"}
    if height >= 256 and width >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32), 1)
        dst.update_tags(units=units)


def _reject_summary(rejects: list[pd.DataFrame]) -> str:
    if not rejects:
        return ""
    reasons = pd.concat(rejects)["reason"].value_counts().head(3)
    return "; most common: " + ", ".join(f"{r} ({n})" for r, n in reasons.items())


def _register_record(reading: ReadOptions, register: dict[str, Any], codes: Any
                     ) -> dict[str, Any]:
    """Return the manifest record of how the register was read (schema, codes, absences)."""
    return {"schema": reading.loaded_schema.name,
            "absent_indicators": register.get("absent", []),
            "village_codes": codes.to_dict() if hasattr(codes, "to_dict") else codes}


def _all_rejected(households: str | Path, out: str | Path, read: int,
                  rejects: list[pd.DataFrame], register: dict[str, Any]) -> str:
    """Write the rejects of a register with no accepted row beside ``out``; return the message.

    No run can be made from zero households, so the run directory is not written; the
    rejects table still is, as ``<out>.rejects.csv``, with the three commonest reasons
    (one example value each, never a personal field) in the message.
    """
    table = pd.concat([r for r in rejects if len(r)], ignore_index=True)[_REJECT_COLUMNS] \
        if any(len(r) for r in rejects) else pd.DataFrame(columns=_REJECT_COLUMNS)
    target = Path(out).parent / f"{Path(out).name}.{REJECTS_FILE}"
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False)
    summary = summarise_rejects(table, register.get("examples", {}))
    return (f"{households}: no household was accepted ({read:,} read, all rejected; "
            f"rejects written to {target}); most common: {summary}")


def _cells_bounds(cells: np.ndarray) -> tuple[float, float, float, float]:
    west, south, east, north = h3v.cells_bounds(cells)
    return float(west), float(south), float(east), float(north)


@dataclass
class _TravelSamplers:
    """Travel-time samplers of a run: least-cost rasters, straight lines, or nothing."""

    info: dict[str, Any]
    warnings: list[str]
    rasters: dict[str, np.ndarray] = field(default_factory=dict)
    surface: TravelSurface | None = None
    straight: dict[str, StraightLine] = field(default_factory=dict)

    def values(self) -> HouseholdValues:
        """Return the picklable per-household sampler (shared with the Dask backend)."""
        return HouseholdValues(rasters=self.rasters if self.surface is not None else {},
                               straight=self.straight,
                               transform=self.surface.transform if self.surface else None,
                               crs=self.surface.crs if self.surface else None)


def _prepare_travel(facilities: gpd.GeoDataFrame | None, friction: str | Path | None, *,
                    bounds: tuple[float, float, float, float], run_dir: Path,
                    speed_kmh: float = STRAIGHT_LINE_SPEED_KMH) -> _TravelSamplers:
    """Compute (and write) the travel-time rasters, or set up the straight-line fallback."""
    layer = surface = None
    if friction is not None:
        # validated (and kept for `kantong sites`) even without facilities to measure from
        layer = open_raster(friction, name="friction", study_area_bounds=bounds)
        try:
            surface = TravelSurface.from_friction(layer.data, transform=layer.transform,
                                                  crs=layer.crs)
        except InputError as exc:
            raise InputError(f"{friction}: {exc}") from None
        _write_raster(run_dir / FRICTION_FILE, layer.data, transform=layer.transform,
                      crs=layer.crs, units="minutes per metre")
    if facilities is None:
        warnings = ["a friction surface was given without facilities: no travel times"] \
            if friction is not None else []
        return _TravelSamplers({"method": None, "types": {}}, warnings)
    slugs = facilities["type"].map(type_slug)
    lon, lat = facilities.geometry.x.to_numpy(), facilities.geometry.y.to_numpy()
    travel = _TravelSamplers({"types": {}}, [])
    if friction is None:
        travel.info.update(method=STRAIGHT_LINE_METHOD, speed_kmh=speed_kmh,
                           per_cell="mean over the cell's households of the great-circle "
                                    "distance to the nearest facility at the assumed speed")
        for t in sorted(slugs.unique()):
            sel = (slugs == t).to_numpy()
            travel.straight[t] = StraightLine(lon[sel], lat[sel], speed_kmh=speed_kmh)
            travel.info["types"][t] = {"facilities": int(sel.sum())}
        return travel
    travel.surface = surface
    travel.info.update(method=LEAST_COST_METHOD,
                       pixel_size_m={"dx": surface.pixel.dx, "dy": surface.pixel.dy},
                       max_scale_error=surface.pixel.max_scale_error,
                       per_cell="mean over the cell's households of the travel time of the "
                                "pixel holding each")
    types = sorted(slugs.unique())
    points = {t: (lon[(slugs == t).to_numpy()], lat[(slugs == t).to_numpy()]) for t in types}
    by_type = surface.travel_minutes_by_type(points, workers=2)  # one pass per type, 2 threads
    for t in types:
        sel = (slugs == t).to_numpy()
        minutes, ignored = by_type[t]
        travel.rasters[t] = minutes
        _write_raster(run_dir / TRAVEL_DIR / f"{t}.tif", minutes, transform=layer.transform,
                      crs=layer.crs, units="minutes")
        travel.info["types"][t] = {"facilities": int(sel.sum()),
                                   "ignored_outside_friction": ignored,
                                   "raster": f"{TRAVEL_DIR}/{t}.tif"}
        if ignored:
            travel.warnings.append(f"{ignored} {t} facilities outside the friction raster "
                                   "(or on nodata) were ignored")
    return travel


def build_run(households: str | Path, *, out: str | Path, facilities: str | Path | None = None,
              friction: str | Path | None = None,
              rasters: Mapping[str, str | Path] | None = None,
              population: str | Path | None = BUNDLED,
              boundaries_path: str | Path | None = None, province: str | None = None,
              config: Config | None = None, pockets: bool = True,
              batch_rows: int = DEFAULT_BATCH_ROWS, backend: str = "local",
              scheduler: str | None = None, workers: int | None = None,
              reading: ReadOptions | None = None) -> BuildSummary:
    """Build a run directory (see docs/architecture.md) from the inputs of one run.

    Parameters
    ----------
    households
        Household register (CSV, Parquet, GeoPackage ...), or a partitioned Parquet
        register: a directory, a glob or an fsspec URL (see
        :mod:`kantong.engine.inputs.partitions`).
    out
        Run directory to create (replaced atomically if it exists).
    facilities
        Facility points with a ``type`` column; gives ``travel_min_<type>`` columns.
    friction
        Friction raster in minutes per metre; without it travel times are straight-line.
    rasters
        ``{name: path}``: each gives a ``<name>_mean`` column.
    population
        Count raster of persons (default: the bundled GHS-POP 1 km raster; ``None``: no
        population, the column is NaN).
    boundaries_path, province
        Study area (polygons in any CRS, or a Kalimantan province code); default all
        Kalimantan provinces.
    config
        Configuration (``build.resolution``, ``build.min_rollup_resolution``, pockets ...).
    pockets
        Run the pockets stage (:func:`kantong.engine.pockets.run.write_pockets`) before finishing.
    batch_rows
        Households validated and aggregated per batch (bounds memory).
    backend
        ``"local"`` (this process, streaming) or ``"dask"`` (households stage on a Dask
        cluster, see :mod:`kantong.engine.build.dask_backend` and docs/distributed.md).
    scheduler
        Dask scheduler address; ``None`` starts a LocalCluster (``backend="dask"`` only).
    workers
        Worker processes of that LocalCluster (default 2).
    reading
        How the register and facilities are read: schema (``p3ke`` ...), sheet, header
        row, village-code system, facility type column and buffer
        (:class:`~kantong.engine.inputs.options.ReadOptions`; default: all detected).

    Returns
    -------
    BuildSummary
        Counts, cells per resolution, timings and the manifest written.

    Raises
    ------
    InputError, EmptyInputError, CRSError, NoOverlapError
        An input cannot be used; no run directory is left behind.

    Examples
    --------
    >>> build_run("households.csv", out="run", facilities="facilities.geojson",
    ...           friction="friction.tif")  # doctest: +SKIP
    """
    config = config or Config()
    reading = reading or ReadOptions()
    if backend == "dask" and (reading.schema is not None or reading.sheet is not None
                              or reading.header_row is not None
                              or reading.village_codes != "auto"):
        raise InputError("a schema, sheet, header row or village-code system needs the local "
                         "backend (the Dask backend reads canonical Parquet registers)")
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "dask" and (scheduler is not None or workers is not None):
        raise InputError("a Dask scheduler or worker count needs backend='dask'")
    resolution = config.build.resolution
    rasters = {check_raster_name(k): Path(v) for k, v in (rasters or {}).items()}
    if population == BUNDLED:
        population = datapaths.data_file(datapaths.POPULATION_TIF)
    timer = Timer()
    manifest: dict[str, Any] = {
        "run_id": new_run_id(), "created": utc_now(), "engine_version": __version__,
        "parameters": {
            "households": str(households), "facilities": facilities and str(facilities),
            "friction": friction and str(friction),
            "rasters": {k: str(v) for k, v in rasters.items()},
            "population": population and str(population),
            "boundaries": boundaries_path and str(boundaries_path), "province": province,
            "resolution": resolution, "pockets": pockets, "out": str(out),
            "batch_rows": batch_rows, "backend": backend, "scheduler": scheduler,
            "reading": reading.to_dict(),
        },
        "config": config.to_dict(),
    }
    claim_dir(out, command="build", marker=MANIFEST_FILE, recognise=is_run_output,
              inputs=[households, facilities, friction, population, boundaries_path,
                      *rasters.values()])
    with timer("inputs"):
        inputs = {}
        for key, path in (("households", households), ("facilities", facilities),
                          ("friction", friction),
                          ("population", population), ("boundaries", boundaries_path)):
            if key == "households" and is_partitioned(path):
                inputs[key] = {"path": str(path), "files": file_records(list_parts(path))}
                continue
            if path is not None:
                if not Path(path).exists():
                    raise InputError(f"{path}: {key} file not found")
                inputs[key] = file_record(path)
        for name, path in rasters.items():
            if not path.exists():
                raise InputError(f"{path}: raster file not found")
            inputs[f"raster:{name}"] = file_record(path)
        manifest["inputs"] = inputs
        manifest["synthetic"] = is_synthetic_input(households)
    with timer("study_area"):
        area_gdf, area_info = read_study_area(boundaries_path=boundaries_path, province=province)
        area = StudyArea.from_layer(area_gdf)
        bounds = area.bounds
    counts: dict[str, dict[str, int]] = {}
    rejects: list[pd.DataFrame] = []
    warnings_: list[str] = []

    with atomic_dir(out) as tmp, contextlib.ExitStack() as stack:
        # facilities and travel-time surfaces --------------------------------------------
        fac = None
        if facilities is not None:
            with timer("facilities"), progress.stage("reading facilities"):
                fac = read_facilities(facilities, study_area=area, **reading.facility_kwargs())
                counts["facilities"] = {"read": fac.read, "accepted": len(fac.accepted),
                                        "rejected": len(fac.rejects),
                                        "beyond_study_area": fac.beyond_study_area}
                rejects.append(fac.rejects)
                if len(fac.accepted) == 0:
                    raise EmptyInputError(f"{facilities}: no facility was accepted"
                                          + _reject_summary([fac.rejects]))
        with timer("travel"), progress.stage("travel time to facilities"):
            travel = _prepare_travel(fac.accepted if fac is not None else None, friction,
                                     bounds=reading.grow(bounds) if fac is not None else bounds,
                                     run_dir=tmp, speed_kmh=config.build.straight_line_kmh)
            warnings_.extend(travel.warnings)

        # households, in batches (or on Dask) ----------------------------------------------
        hh_rejects: list[pd.DataFrame] = []
        register: dict[str, Any] = {"examples": {}}  # how the register read (local backend)
        if backend == "dask":
            sums, partial, read, accepted, located = _dask_households(
                households, travel, area=area, resolution=resolution, batch_rows=batch_rows,
                scheduler=scheduler, workers=workers, timer=timer, rejects=hh_rejects,
                manifest=manifest, population_raster=population)
        else:
            household_values = travel.values()
            # village-located households: summed per village, allocated to cells at the end
            acc = CellAccumulator(resolution=resolution, population_raster=population,
                                  sampler=household_values)
            read = located = 0
            seen: set = set()
            codes: Any = reading.village_codes
            bar = stack.enter_context(progress.stage("reading and fusing households"))
            for source, offset, batch in _timed_batches(
                    household_batches(households, batch_rows=batch_rows,
                                      **reading.batch_kwargs()), timer):
                bar.advance(len(batch))
                with timer("households"):
                    res = validate_households(batch, source=source, row_offset=offset,
                                              study_area=area, seen_ids=seen,
                                              schema=reading.loaded_schema, village_codes=codes)
                    codes = lock_code_system(codes, res)
                    register["absent"] = list(res.absent)
                    for reason, example in res.examples.items():
                        register["examples"].setdefault(reason, example)
                    read += res.read
                    located += res.village_located
                    hh_rejects.append(res.rejects)
                    ok = with_placeholders(res.accepted, res.absent)
                    acc.add(ok, values=household_values(ok))
            accepted = acc.households
            partial = acc.partial()
            sums = acc.result()
            manifest["backend"] = {"name": "local", "workers": 1, "threads": os.cpu_count()}
            manifest["register"] = _register_record(reading, register, codes)
        rejects.extend(hh_rejects)
        counts["households"] = {"read": read, "accepted": accepted, "rejected": read - accepted,
                                "village_located": located}
        manifest["location_precision"] = location_precision(accepted, located)
        if accepted == 0:
            raise EmptyInputError(_all_rejected(households, out, read, hh_rejects, register))

        # cells, population, rasters ------------------------------------------------------
        with timer("cells"), progress.stage("cells"):
            admin_provinces = (area_info["province"],) if "province" in area_info else None
            cells = cells_frame(sums, resolution=resolution, provinces=admin_provinces)
            absent = register.get("absent", [])
            cells = blank_absent(cells, absent)
            ids = cells_to_uint64(cells["h3"])
            cell_bounds = _cells_bounds(ids)
        with timer("population"), progress.stage("population per cell"):
            if population is not None:
                pop = open_raster(population, name="population", study_area_bounds=cell_bounds)
                cells["population"] = cell_population(pop, ids)
            else:
                cells["population"] = np.nan
        with timer("rasters"), progress.stage("raster means per cell"):
            for name, path in rasters.items():
                layer = open_raster(path, name=name, study_area_bounds=cell_bounds)
                cells[f"{name}_mean"] = cell_means(layer, ids)
        cells = order_columns(cells)
        area_info["provinces_with_households"] = sorted(
            cells["province_code"].dropna().unique().tolist())

        # rollups and outputs -----------------------------------------------------------------
        cell_counts = {str(resolution): len(cells)}
        with timer("rollups"), progress.stage("rollups"):
            rollups = {}
            for r in range(config.build.min_rollup_resolution, resolution):
                rollups[r] = blank_absent(rollup_cells(cells, resolution=r,
                                                       provinces=admin_provinces), absent)
                cell_counts[str(r)] = len(rollups[r])
        with timer("write"), progress.stage("writing the run directory"):
            cells.to_parquet(tmp / CELLS_FILE, index=False)
            blank_absent(village_totals(partial), absent).to_parquet(tmp / VILLAGES_FILE,
                                                                     index=False)
            (tmp / ROLLUP_DIR).mkdir(exist_ok=True)
            for r, frame in rollups.items():
                frame.to_parquet(tmp / ROLLUP_DIR / f"cells_r{r}.parquet", index=False)
            all_rejects = [r for r in rejects if len(r)]
            table = pd.concat(all_rejects, ignore_index=True)[_REJECT_COLUMNS] if all_rejects \
                else pd.DataFrame(columns=_REJECT_COLUMNS)
            table.to_csv(tmp / REJECTS_FILE, index=False)
            if fac is not None:
                keep = [c for c in ("facility_id", "type", "name", "capacity", "geometry")
                        if c in fac.accepted.columns]  # capacity: optional, kantong sites
                fac.accepted[keep].to_parquet(tmp / FACILITIES_FILE, index=False)
        manifest.update({
            "study_area": area_info, "counts": counts, "travel_time": travel.info,
            "population": {
                "raster": population and str(population),
                "method": "mean pixel density (value / geodesic pixel area) over the pixel "
                          "centres in the cell times the cell area; the pixel under the "
                          "centre when the cell holds no pixel centre"},
            "raster_means": {f"{k}_mean": str(v) for k, v in rasters.items()},
            "admin_attribution": "district polygon (BPS 2020) holding the cell centre; "
                                 "nearest district (EPSG:6933) for centres in none",
            "cells": cell_counts, "warnings": warnings_,
        })
        manifest = _write_manifest(tmp, manifest, timer)
        if pockets:
            with timer("pockets"), progress.stage("poverty pockets"):
                from kantong.engine.pockets.run import write_pockets

                write_pockets(tmp, config)
            manifest = _write_manifest(tmp, manifest, timer, merge=True)
        manifest = seal_manifest(tmp, manifest)  # last write: hashes of every file
    logger.info("build: %d households in %d cells, %s", accepted, len(cells), out)
    return BuildSummary(Path(out), counts, cell_counts, timer.as_dict(), manifest)


def _dask_households(households: str | Path, travel: _TravelSamplers, *, area: StudyArea,
                     resolution: int, batch_rows: int, scheduler: str | None,
                     workers: int | None, timer: Timer, rejects: list[pd.DataFrame],
                     manifest: dict[str, Any], population_raster: str | Path | None = None
                     ) -> tuple[pd.DataFrame, PartialSums, int, int, int]:
    """Run the households stage on Dask; return ``(sums, partial, read, accepted, located)``."""
    from kantong.engine.build.dask_backend import DEFAULT_WORKERS, dask_client, dask_households

    values = travel.values()
    with contextlib.ExitStack() as stack:
        with timer("cluster"):
            client, info = stack.enter_context(
                dask_client(scheduler, workers=workers or DEFAULT_WORKERS))
        with timer("households"):
            out = dask_households(households, client=client, cluster=info,
                                 resolution=resolution, study_area=area,
                                 values=values if values.names else None, batch_rows=batch_rows,
                                 population_raster=population_raster)
        with timer("cluster"):
            stack.close()
    rejects.append(out.rejects)
    manifest["backend"] = out.manifest_section()
    return out.sums, out.partial, out.read, out.accepted, out.village_located


def _timed_batches(batches: Any, timer: Timer) -> Any:
    """Yield from ``batches`` with the time spent reading counted as ``read``."""
    iterator = iter(batches)
    while True:
        with timer("read"):
            try:
                batch = next(iterator)
            except StopIteration:
                return
        yield batch


def _write_manifest(run_dir: Path, manifest: dict[str, Any], timer: Timer, *,
                    merge: bool = False) -> dict[str, Any]:
    """Write the manifest with the current timings and peak memory; return what was written.

    With ``merge`` the sections other stages added to the file (``pockets``) are kept.
    """
    manifest["timings_s"] = timer.as_dict()
    manifest["peak_memory_mib"] = peak_memory_mib()
    if merge and (run_dir / MANIFEST_FILE).exists():
        return merge_manifest(run_dir, manifest)
    return write_manifest(run_dir, manifest)


__all__ = ["BACKENDS", "BUNDLED", "BuildSummary", "TRAVEL_DIR", "build_run", "check_raster_name",
           "read_study_area"]
