"""The demand side of site planning: cells, weights, travel model, existing facilities.

* :func:`load_run` reads ``cells.parquet`` (the columns siting needs) and the manifest.
* :func:`select_regency` restricts the cells to one regency (BPS code).
* :func:`demand_weights` weighs each cell: extreme-poor households, or desil 1-4 households
  weighted by :data:`DEMAND_WEIGHTS`.
* :class:`CoverageModel` is the run's travel model: least-cost over ``friction.tif``, else
  straight-line distance at the build's speed.
* :func:`existing_facilities` reads the run's facilities of a type (all of them serve the
  cells, wherever they are) and counts those inside the regency of a regency-scoped run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from kantong.engine.build.sums import precision_of_manifest
from kantong.engine.build.travel import type_slug
from kantong.engine.constants import CELLS_FILE, FACILITIES_FILE, FRICTION_FILE, WGS84
from kantong.engine.errors import (
    CRSError,
    InputError,
    MissingColumnError,
    RunError,
    first_line,
)
from kantong.engine.inputs import boundaries
from kantong.engine.publish.validate import validate_cells
from kantong.engine.rundir import verify_run
from kantong.engine.sites.coverage import (
    STRAIGHT_LINE_SPEED_KMH,
    Coverage,
    FrictionSurface,
    straight_line_coverage,
    travel_coverage,
)

logger = logging.getLogger(__name__)

#: Household weights of ``--demand weighted`` by welfare decile (desil 1 = extreme poor).
DEMAND_WEIGHTS: Final = {1: 1.0, 2: 0.5, 3: 0.25, 4: 0.125}
#: Columns of ``cells.parquet`` that site planning reads.
CELL_COLUMNS: Final = ["h3", "lon", "lat", "households", "persons", "extreme_households",
                       "extreme_persons", "households_desil_1", "households_desil_2",
                       "households_desil_3", "households_desil_4", "regency_code",
                       "regency_name"]
#: Optional columns read when present (population for capacities, build travel times).
_OPTIONAL_COLUMNS: Final = ("population",)


def load_run(run_dir: Path, *, trust: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return the run's cells (siting columns) and its manifest.

    Parameters
    ----------
    run_dir
        A run directory of ``kantong build``.
    trust
        Skip the SHA-256 check of the run's files (``--trust-run``); cells are validated
        either way.

    Returns
    -------
    cells, manifest
        Cells with :data:`CELL_COLUMNS` (plus ``population`` and ``travel_min_<type>``
        columns when the run has them) and the manifest as a dict.

    Raises
    ------
    RunError, MissingColumnError
        Not a run directory, unreadable cells, missing columns, a tampered run or invalid
        cells (invalid or duplicated H3 ids, negative counts).
    """
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    cells_path = run_dir / CELLS_FILE
    if not cells_path.exists():
        raise RunError(f"{run_dir}: not a run directory (no {CELLS_FILE})")
    manifest = verify_run(run_dir, trust=trust)  # a tampered run is refused
    try:
        have = set(pq.read_schema(cells_path).names)
        missing = [c for c in CELL_COLUMNS if c not in have]
        if missing:
            raise MissingColumnError(f"{cells_path}: missing columns {', '.join(missing)}")
        extra = [c for c in sorted(have) if c in _OPTIONAL_COLUMNS or c.startswith("travel_min_")]
        cells = pd.read_parquet(cells_path, columns=CELL_COLUMNS + extra)
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        if isinstance(exc, MissingColumnError):
            raise
        raise RunError(f"{cells_path}: not a readable Parquet file ({first_line(exc)})") from None
    # village-located households are expected (fractional) counts (issue 19)
    precision = precision_of_manifest(manifest) or {}
    validate_cells(cells, source=cells_path, require=("h3", "regency_code"),
                   expected_counts=precision.get("counts") == "expected")
    cells["regency_code"] = cells["regency_code"].astype("string")
    cells["regency_name"] = cells["regency_name"].astype("string")
    return cells.reset_index(drop=True), manifest


def select_regency(cells: pd.DataFrame, regency: str | None, cells_path: Path) -> pd.DataFrame:
    """Return the cells of one regency (all cells when ``regency`` is empty).

    Raises
    ------
    InputError
        An unknown regency code, or a regency with no households in the run.
    """
    if not regency:
        return cells
    code = str(regency).strip()
    if (cells["regency_code"] == code).any():
        return cells[cells["regency_code"] == code].reset_index(drop=True)
    known = boundaries.regencies()
    if code in set(known["regency_code"]):
        name = known.loc[known["regency_code"] == code, "regency_name"].iat[0]
        raise InputError(f"{cells_path}: regency {code} ({name}) has no households in this run")
    raise InputError(f"unknown regency code {code!r}: expected a BPS 4-digit Kalimantan "
                     "regency code such as 6111 (Kayong Utara)")


def demand_weights(cells: pd.DataFrame, demand: str) -> np.ndarray:
    """Return the demand weight of each cell.

    Parameters
    ----------
    cells
        Cells with ``extreme_households`` and ``households_desil_1`` .. ``_4``.
    demand
        ``"extreme"`` (extreme-poor households) or ``"weighted"`` (desil 1-4 households
        weighted by ``DEMAND_WEIGHTS``: 1, 0.5, 0.25, 0.125).

    Returns
    -------
    numpy.ndarray
        float64 weights, one per cell.

    Examples
    --------
    >>> cells = pd.DataFrame({"extreme_households": [2, 0], "households_desil_1": [2, 0],
    ...                       "households_desil_2": [2, 4], "households_desil_3": [0, 0],
    ...                       "households_desil_4": [0, 8]})
    >>> demand_weights(cells, "weighted").tolist()
    [3.0, 3.0]
    """
    if demand == "extreme":
        return cells["extreme_households"].to_numpy(dtype=np.float64)
    if demand == "weighted":
        return sum(wt * cells[f"households_desil_{d}"].to_numpy(dtype=np.float64)
                   for d, wt in DEMAND_WEIGHTS.items())
    raise InputError(f"unknown demand {demand!r}: use extreme or weighted")


class CoverageModel:
    """The run's travel model: least-cost over ``friction.tif``, else straight line.

    Parameters
    ----------
    run_dir
        The run directory.
    manifest
        Its manifest (the straight-line speed is read from ``travel_time.speed_kmh``).
    """

    def __init__(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        path = run_dir / FRICTION_FILE
        self.surface = FrictionSurface.from_file(path) if path.exists() else None
        self.method = "least-cost" if self.surface is not None else "straight-line"
        speed = (manifest.get("travel_time") or {}).get("speed_kmh")
        self.speed_kmh = float(speed) if speed else STRAIGHT_LINE_SPEED_KMH
        if self.surface is None:
            logger.warning("%s has no %s: coverage uses straight-line distance at %.0f km/h",
                           run_dir, FRICTION_FILE, self.speed_kmh)

    def coverage(self, src: pd.DataFrame, dst: pd.DataFrame, max_minutes: float, *,
                 surface: FrictionSurface | None = None,
                 point_limits: np.ndarray | None = None) -> Coverage:
        """Return which sources reach which points within ``max_minutes`` (and the minutes).

        Parameters
        ----------
        src, dst
            Frames with ``lon``/``lat`` (EPSG:4326).
        max_minutes
            Time limit.
        surface
            Another friction surface (the coarse one of the shortlist).
        point_limits
            Per-point limits that shorten least-cost searches (see
            :func:`~kantong.engine.sites.coverage.travel_coverage`).

        Returns
        -------
        Coverage
        """
        args = (src["lon"].to_numpy(float), src["lat"].to_numpy(float),
                dst["lon"].to_numpy(float), dst["lat"].to_numpy(float))
        if self.surface is None:
            return straight_line_coverage(*args, max_minutes=max_minutes,
                                          speed_kmh=self.speed_kmh)
        return travel_coverage(surface or self.surface, *args, max_minutes=max_minutes,
                               point_limits=point_limits)


@dataclass(frozen=True, eq=False)
class Existing:
    """Existing facilities of one type.

    Attributes
    ----------
    points
        ``facility_id``, ``lon``, ``lat`` (and ``capacity`` when the facilities carry one)
        of every facility of the type in the run: all of them serve the cells.
    in_scope
        How many lie inside the regency of a regency-scoped run (all of them otherwise).
    """

    points: pd.DataFrame
    in_scope: int


def existing_facilities(run_dir: Path, facility_type: str, regency: str | None) -> Existing:
    """Return the run's facilities of a type and how many lie in the regency.

    Parameters
    ----------
    run_dir
        The run directory (``facilities.parquet``).
    facility_type
        Facility type; matched by :func:`~kantong.engine.build.travel.type_slug`.
    regency
        BPS regency code of a regency-scoped run, or None.

    Returns
    -------
    Existing
    """
    path = run_dir / FACILITIES_FILE
    empty = pd.DataFrame({"facility_id": pd.Series([], dtype="string"), "lon": [], "lat": []})
    if not path.exists():
        logger.warning("%s not found: no existing facilities", path)
        return Existing(points=empty, in_scope=0)
    fac = gpd.read_parquet(path)
    if fac.crs is None:
        raise CRSError(f"{path}: facilities have no CRS")
    slug = type_slug(facility_type)
    slugs = fac["type"].astype(str).map(type_slug)
    if not (slugs == slug).any():
        logger.warning("%s has no %s facilities (types: %s): nothing counts as already served",
                       path, slug, ", ".join(sorted(slugs.unique())) or "none")
    fac = fac[(slugs == slug).to_numpy()]
    fac = fac[fac.geometry.notna() & ~fac.geometry.is_empty]
    if fac.crs.to_epsg() != 4326:
        logger.info("reprojecting facilities from %s to %s", fac.crs, WGS84)
        fac = fac.to_crs(WGS84)
    pts = fac.geometry.representative_point()
    out = pd.DataFrame({"facility_id": fac["facility_id"].astype("string").to_numpy(),
                        "lon": pts.x.to_numpy(), "lat": pts.y.to_numpy()})
    if "capacity" in fac.columns:
        out["capacity"] = pd.to_numeric(fac["capacity"], errors="coerce").to_numpy(float)
    out = out.sort_values("facility_id", kind="stable").reset_index(drop=True)
    in_scope = len(out)
    if regency and len(out):
        reg = boundaries.regencies()
        poly = reg.loc[reg["regency_code"] == str(regency).strip(), ["geometry"]]
        inside = gpd.sjoin(gpd.GeoDataFrame(geometry=gpd.points_from_xy(out["lon"], out["lat"]),
                                            crs=WGS84), poly, how="inner", predicate="within")
        in_scope = int(inside.index.nunique())
    return Existing(points=out, in_scope=in_scope)


__all__ = ["DEMAND_WEIGHTS", "CELL_COLUMNS", "Existing", "CoverageModel", "demand_weights",
           "existing_facilities", "load_run", "select_regency"]
