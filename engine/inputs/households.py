"""Read and validate the household register (P3KE-style): every row accepted or rejected.

Formats: CSV (``lon``/``lat`` columns), Parquet and GeoParquet, and any vector
format pyogrio reads (GeoJSON, GeoPackage, Shapefile, FlatGeobuf ...). Columns
are matched case-insensitively with a few aliases; personal fields and unknown
columns are never read past this module. Each row ends up either in
``accepted`` (typed, in EPSG:4326) or in ``rejects`` with one short reason; the
reasons, aliases and rules are documented in ``docs/input-schema.md``.

Validation is vectorised: one pass of numpy/pandas operations per batch, with
low-cardinality columns (desil, members, booleans, village codes) parsed on
their unique values only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from kantong.engine.build.placement import StudyArea, place_by_village
from kantong.engine.constants import (
    DEPRIVATION_FIELDS,
    DESIL_VALUES,
    HOUSEHOLD_ID,
    PRECISION_POINT,
    PRECISION_VILLAGE,
    WGS84,
)
from kantong.engine.errors import CRSError, EmptyInputError, MissingColumnError
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.tables import GEOMETRY, iter_tables

logger = logging.getLogger(__name__)

#: Canonical column -> accepted spellings (matched case-insensitively, first present wins).
ALIASES: dict[str, tuple[str, ...]] = {
    "household_id": ("household_id", "hh_id", "id_rumah_tangga", "id_keluarga", "idrt"),
    "lon": ("lon", "longitude", "lng", "long", "x", "bujur"),
    "lat": ("lat", "latitude", "y", "lintang"),
    "desil": ("desil", "decile", "desil_kesejahteraan"),
    "members": ("members", "jumlah_art", "household_size", "hh_size", "jumlah_anggota"),
    "village_code": ("village_code", "kode_desa", "kode_kelurahan", "kode_desa_kelurahan",
                     "desa_code"),
    **{field: (field,) for field in DEPRIVATION_FIELDS},
}
#: Columns every register must hold (location: lon+lat, a point geometry or village_code).
REQUIRED = ("household_id", "desil", "members", *DEPRIVATION_FIELDS)
#: Spellings of booleans (compared after strip + lower-case).
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "ya", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "tidak", "0", "0.0"})
#: Largest household size accepted (the int16 range of the ``members`` column).
MAX_MEMBERS = np.iinfo(np.int16).max
#: Bounding box used to recognise swapped coordinates when no study area is given.
INDONESIA_BOUNDS = (94.5, -11.5, 141.5, 6.5)

REJECT_COLUMNS = ("source", "row", "record_id", "reason")
_TEXT = frozenset({"household_id", "village_code"})
#: Village codes as read -> normalised BPS code (or None); grows with the distinct codes seen.
_VILLAGE_MEMO: dict[str, str | None] = {}


@dataclass(frozen=True, eq=False)
class IngestResult:
    """Accepted and rejected household rows of one register file.

    Attributes
    ----------
    accepted
        ``household_id`` (string), ``lon``, ``lat`` (float64, EPSG:4326, always filled),
        ``desil`` (int8 1-4), ``members`` (int16 >= 1), ``village_code`` (string, BPS code
        or NA), ``location_precision`` (``"point"`` | ``"village"``), and one bool column per
        :data:`kantong.engine.constants.DEPRIVATION_FIELDS`.
    rejects
        ``source`` (file name), ``row`` (1-based record number), ``record_id``
        (``household_id`` as read, may be empty), ``reason``.
    read
        Rows read; ``len(accepted) + len(rejects) == read``.
    village_located
        Accepted households placed from their village code.
    source
        The path as given.
    """

    accepted: pd.DataFrame
    rejects: pd.DataFrame
    read: int
    village_located: int
    source: str


def canonical_columns(names: list[str]) -> dict[str, str]:
    """Map the columns of a file to canonical names; unknown and personal columns are left out.

    Parameters
    ----------
    names
        Column names as read.

    Returns
    -------
    dict
        ``{name as read: canonical name}``. Where several spellings of one column are present
        the earliest in :data:`ALIASES` wins (``lon`` before ``longitude`` before ``x``).
    """
    lowered: dict[str, str] = {}
    for name in names:
        lowered.setdefault(str(name).strip().lower(), name)
    out = {}
    for canonical, spellings in ALIASES.items():
        for spelling in spellings:
            if spelling in lowered:
                out[lowered[spelling]] = canonical
                break
    return out


def check_columns(present: set[str], *, source: str) -> None:
    """Raise :class:`MissingColumnError` if canonical columns ``present`` lack a required one.

    ``present`` holds ``"geometry"`` when the source has a geometry column.
    """
    missing = [col for col in REQUIRED if col not in present]
    if missing:
        raise MissingColumnError(
            f"{source}: missing required column(s) {', '.join(missing)} "
            "(see docs/input-schema.md for accepted names)")
    if ("lon" in present) != ("lat" in present):
        have, lack = ("lon", "lat") if "lon" in present else ("lat", "lon")
        raise MissingColumnError(f"{source}: has a {have} column but no {lack} column")
    if not {"lon", GEOMETRY, "village_code"} & present:
        raise MissingColumnError(
            f"{source}: no location: needs lon/lat columns, a point geometry or village_code")


def iter_household_batches(path: str | Path, *, batch_rows: int = 1_000_000
                           ) -> Iterator[pd.DataFrame]:
    """Stream a household file as raw batches with canonical column names.

    Parameters
    ----------
    path
        CSV, Parquet/GeoParquet, or a vector file pyogrio reads.
    batch_rows
        Rows per batch (Parquet by record batches via pyarrow, CSV by pandas chunks,
        vector files by pyogrio Arrow batches).

    Yields
    ------
    pandas.DataFrame or geopandas.GeoDataFrame
        Only schema columns, renamed to canonical names (personal and unknown columns are
        never read). Sources with a geometry yield GeoDataFrames in EPSG:4326 (reprojected
        if needed). Values are not validated yet: pass each batch to
        :func:`validate_households` with the running ``row_offset`` and a shared
        ``seen_ids`` set.

    Examples
    --------
    >>> seen, offset = set(), 0
    >>> for batch in iter_household_batches("register.parquet"):      # doctest: +SKIP
    ...     part = validate_households(batch, source="register.parquet",
    ...                                row_offset=offset, seen_ids=seen)
    ...     offset += len(batch)

    Raises
    ------
    InputError, MissingColumnError, CRSError, EmptyInputError
        The file cannot be used at all (format, columns, CRS, zero rows).
    """
    yield from iter_tables(path, batch_rows=batch_rows, resolve=canonical_columns,
                           check=check_columns, text_columns=_TEXT,
                           empty_message="holds no household rows")


class _Reasons:
    """One reject reason per row, stored as small integer codes (0 = no reason yet)."""

    def __init__(self, n: int) -> None:
        self.code = np.zeros(n, dtype=np.int16)
        self.labels: list[str] = [""]

    def code_of(self, text: str) -> int:
        if text not in self.labels:
            self.labels.append(text)
        return self.labels.index(text)

    @property
    def open(self) -> np.ndarray:
        """Rows without a reason so far."""
        return self.code == 0

    def fail(self, mask: np.ndarray, text: str) -> None:
        """Give ``text`` to the rows of ``mask`` that have no reason yet."""
        hit = mask & (self.code == 0)
        if hit.any():
            self.code[hit] = self.code_of(text)

    def suffix(self, mask: np.ndarray, text: str) -> None:
        """Append ``text`` to the reasons of the rows of ``mask`` (which have one)."""
        for old in np.unique(self.code[mask & (self.code > 0)]):
            rows = mask & (self.code == old)
            self.code[rows] = self.code_of(self.labels[old] + text)

    def merge(self, other: _Reasons) -> None:
        """Give the rows without a reason the reason ``other`` holds for them."""
        for old in np.unique(other.code[other.code > 0]):
            self.fail(other.code == old, other.labels[old])

    def text(self, rows: np.ndarray) -> pd.Series:
        """Return the reasons of ``rows`` as strings."""
        return _take_strings(self.labels, self.code[rows].astype(np.int64))


def _take_strings(values: list[str] | np.ndarray, codes: np.ndarray) -> pd.Series:
    """Return ``values[codes]`` as a pandas string Series (fast, via Arrow take)."""
    taken = pa.array(np.asarray(values, dtype=object), type=pa.large_string()).take(
        pa.array(codes, type=pa.int64()))
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([taken])))


def _duplicates(ids: np.ndarray, blank: np.ndarray, seen_ids: set | None) -> np.ndarray:
    """Return the rows whose id appeared before (in this batch or in ``seen_ids``).

    Uses set operations (C loops) for the common case of no duplicates; ``seen_ids`` is
    updated in place with this batch's ids.
    """
    out = np.zeros(ids.size, dtype=bool)
    given = ids[~blank].tolist()
    batch = set(given)
    overlap = (seen_ids & batch) if seen_ids else set()
    if len(batch) < len(given) or overlap:
        series = pd.Series(ids, dtype=object)
        out = (series.duplicated(keep="first").to_numpy() | series.isin(overlap).to_numpy())
        out &= ~blank
    if seen_ids is not None:
        seen_ids |= batch
    return out


def blank_strings(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return ``s`` as stripped strings (NA for blanks) and the blank mask."""
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (values == np.round(values))
        if integral[~np.isnan(values)].all():  # ids read as float because of blanks
            s = pd.Series(pd.array(values, dtype="Float64").astype("Int64"), index=s.index)
    out = s.astype("string").str.strip()
    out = out.mask(out == "")
    return out, out.isna().to_numpy()


def _factorised(s: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Return codes and unique values as stripped, lower-case strings (NA-safe)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, pd.Series(uniques, dtype=object).astype("string").str.strip().str.lower()


def _parse_number(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(values, blank, non_numeric)``: float64 values, NaN where unusable."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return values, np.isnan(values), np.zeros(len(s), dtype=bool)
    codes, uniques = _factorised(s)
    parsed = pd.to_numeric(uniques.mask(uniques == ""), errors="coerce")
    parsed = np.append(parsed.to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    blank_u = np.append((uniques.isna() | (uniques == "")).to_numpy(), True)
    values, blank = parsed[codes], blank_u[codes]  # code -1 (NA) picks the appended entry
    return values, blank, ~blank & np.isnan(values)


def _parse_bool(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(values, blank, invalid)`` for a boolean column in any accepted spelling."""
    n = len(s)
    if pd.api.types.is_bool_dtype(s.dtype):
        blank = s.isna().to_numpy()
        return s.fillna(False).to_numpy(dtype=bool), blank, np.zeros(n, dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        blank = np.isnan(v)
        return v == 1, blank, ~blank & (v != 1) & (v != 0)
    codes, uniques = _factorised(s)
    truth = np.append(uniques.isin(TRUE_WORDS).to_numpy(), False)
    falsity = np.append(uniques.isin(FALSE_WORDS).to_numpy(), False)
    blank_u = np.append((uniques.isna() | (uniques == "")).to_numpy(), True)
    values, blank = truth[codes], blank_u[codes]  # code -1 (NA) picks the appended entry
    return values, blank, ~blank & ~values & ~falsity[codes]


def _village_codes(s: pd.Series | None, n: int) -> tuple[pd.Series, np.ndarray]:
    """Return normalised BPS village codes (NA where unusable) and the 'code given' mask."""
    if s is None:
        return pd.Series(pd.array([None] * n, dtype="string")), np.zeros(n, dtype=bool)
    raw, blank = blank_strings(s)
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    new = [code for code in uniques if code not in _VILLAGE_MEMO]
    if new:
        normal = boundaries.normalise_village_codes(pd.Series(new, dtype="string"))
        _VILLAGE_MEMO.update(zip(new, normal.to_numpy(dtype=object, na_value=None), strict=True))
    lookup = [_VILLAGE_MEMO[code] for code in uniques] + [None]  # blanks -> None
    return _take_strings(lookup, np.where(codes < 0, len(lookup) - 1, codes)), ~blank


def _coordinates(frame: pd.DataFrame, geometry: gpd.GeoSeries | None
                 ) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    """Return lon, lat and a first reason (missing / non-numeric / non-point) per row."""
    n = len(frame)
    reason = _Reasons(n)
    if geometry is not None:
        geoms = geometry.to_numpy()
        empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        kind = shapely.get_type_id(geoms)
        point = ~empty & ((kind == 0) | ((kind == 4) & (shapely.get_num_geometries(geoms) == 1)))
        first = shapely.get_geometry(geoms, 0)  # a Point stays itself; a MultiPoint's only part
        lon = np.where(point, shapely.get_x(first), np.nan)
        lat = np.where(point, shapely.get_y(first), np.nan)
        reason.fail(empty, "missing coordinates")
        reason.fail(~point, "non-point geometry")
        return lon, lat, reason
    if "lon" not in frame:
        reason.fail(np.ones(n, dtype=bool), "missing coordinates")
        return np.full(n, np.nan), np.full(n, np.nan), reason
    lon, lon_blank, lon_bad = _parse_number(frame["lon"])
    lat, lat_blank, lat_bad = _parse_number(frame["lat"])
    reason.fail(lon_blank | lat_blank, "missing coordinates")
    reason.fail(lon_bad | lat_bad, "non-numeric coordinates")
    return lon, lat, reason


def _locate(lon: np.ndarray, lat: np.ndarray, reason: _Reasons, area: StudyArea | None) -> None:
    """Complete ``reason`` (no reason = usable point) with range, swap and study-area checks."""
    usable = reason.open
    with np.errstate(invalid="ignore"):
        lon_ok = np.abs(lon) <= 180.0
        lat_ok = np.abs(lat) <= 90.0
    in_range = usable & lon_ok & lat_ok
    if area is not None:
        inside = np.zeros(lon.size, dtype=bool)
        inside[in_range] = area.contains(lon[in_range], lat[in_range])
        with np.errstate(invalid="ignore"):
            swap_ok = usable & ~inside & (np.abs(lat) <= 180.0) & (np.abs(lon) <= 90.0)
        swapped = np.zeros(lon.size, dtype=bool)
        swapped[swap_ok] = area.contains(lat[swap_ok], lon[swap_ok])
    else:
        inside = in_range
        west, south, east, north = INDONESIA_BOUNDS
        with np.errstate(invalid="ignore"):
            swapped = ~lat_ok & (lat >= west) & (lat <= east) & (lon >= south) & (lon <= north)
    reason.fail(swapped, "lat/lon swapped")
    reason.fail(~lon_ok, "lon out of range")
    reason.fail(~lat_ok, "lat out of range")
    reason.fail(~inside, "outside study area")


def _geometry_of(raw: pd.DataFrame, source: str) -> gpd.GeoSeries | None:
    """Return the point geometry of a GeoDataFrame batch in EPSG:4326 (None for tables)."""
    if not isinstance(raw, gpd.GeoDataFrame) or raw._geometry_column_name not in raw:
        return None
    geometry = raw.geometry
    if geometry.crs is None:
        raise CRSError(f"{source}: household layer has no CRS")
    if not pyproj.CRS(geometry.crs).equals(WGS84, ignore_axis_order=True):
        logger.info("reprojecting %s from %s to %s", source, geometry.crs, WGS84)
        geometry = geometry.to_crs(WGS84)
    return geometry.reset_index(drop=True)


def _resolve_area(study_area: gpd.GeoDataFrame | StudyArea | BaseGeometry | None
                  ) -> StudyArea | None:
    return None if study_area is None else StudyArea.from_layer(study_area)


def validate_households(raw: pd.DataFrame, *, source: str, row_offset: int = 0,
                        study_area: gpd.GeoDataFrame | StudyArea | BaseGeometry | None = None,
                        seen_ids: set | None = None) -> IngestResult:
    """Validate one batch of household rows.

    Parameters
    ----------
    raw
        A batch from :func:`iter_household_batches`, or any frame with the schema columns
        (aliases and any letter case accepted; other columns are dropped).
    source
        Path of the file the batch comes from (rejects carry its file name).
    row_offset
        Rows of the file before this batch (record numbers are ``row_offset + 1 ...``).
    study_area
        Polygons (any CRS) or a prepared :class:`~kantong.engine.build.placement.StudyArea`; points
        outside are unusable.
    seen_ids
        Household ids of earlier batches. Updated in place with this batch's ids, so a
        later duplicate of an id is rejected whatever batch it is in.

    Returns
    -------
    IngestResult
        Accepted rows (typed) and rejects; see :class:`IngestResult`.

    Raises
    ------
    MissingColumnError
        A required column is absent.

    Examples
    --------
    >>> result = validate_households(frame, source="register.csv")   # doctest: +SKIP
    >>> result.read == len(result.accepted) + len(result.rejects)     # doctest: +SKIP
    True
    """
    geometry = _geometry_of(raw, source)
    names = canonical_columns([c for c in raw.columns if geometry is None or c != geometry.name])
    check_columns(set(names.values()) | ({GEOMETRY} if geometry is not None else set()),
                  source=source)
    frame = pd.DataFrame(raw[list(names)]).rename(columns=names).reset_index(drop=True)
    n = len(frame)
    area = _resolve_area(study_area)
    reasons = _Reasons(n)

    ids, id_blank = blank_strings(frame[HOUSEHOLD_ID])
    ids_obj = ids.to_numpy(dtype=object, na_value=None)
    reasons.fail(id_blank, "missing household_id")
    reasons.fail(_duplicates(ids_obj, id_blank, seen_ids), "duplicate household_id")

    desil, blank, bad = _parse_number(frame["desil"])
    reasons.fail(blank, "missing desil")
    reasons.fail(bad | ~np.isin(desil, DESIL_VALUES), "invalid desil")
    members, blank, bad = _parse_number(frame["members"])
    reasons.fail(blank, "missing members")
    with np.errstate(invalid="ignore"):
        reasons.fail(bad | ~((members >= 1) & (members <= MAX_MEMBERS)
                             & (members == np.round(members))), "invalid members")
    flags = {}
    for field in DEPRIVATION_FIELDS:
        flags[field], blank, bad = _parse_bool(frame[field])
        reasons.fail(blank, f"missing {field}")
        reasons.fail(bad, f"invalid {field}")

    lon, lat, where = _coordinates(frame, geometry)
    _locate(lon, lat, where, area)
    village, code_given = _village_codes(frame.get("village_code"), n)
    village_ok = village.notna().to_numpy()
    place = reasons.open & ~where.open & village_ok
    if place.any():
        plon, plat = place_by_village(
            pd.DataFrame({HOUSEHOLD_ID: ids_obj[place], "village_code": village[place].to_numpy()}),
            study_area=area)
        lon[place], lat[place] = plon, plat
        placed_ok = np.isfinite(plon) & np.isfinite(plat)
        if area is not None:
            placed_ok &= area.contains(plon, plat)
        rows = np.flatnonzero(place)
        where.code[rows[placed_ok]] = 0
        where.code[rows[~placed_ok]] = where.code_of("outside study area")
        place[rows[~placed_ok]] = False
    where.suffix(~where.open & code_given & ~village_ok, "; unknown village_code")
    reasons.merge(where)

    ok = reasons.open
    accepted = pd.DataFrame({
        HOUSEHOLD_ID: ids[ok].reset_index(drop=True),
        "lon": lon[ok],
        "lat": lat[ok],
        "desil": desil[ok].astype(np.int8),
        "members": members[ok].astype(np.int16),
        "village_code": village[ok].reset_index(drop=True),
        "location_precision": _take_strings([PRECISION_POINT, PRECISION_VILLAGE],
                                            place[ok].astype(np.int64)),
        **{field: values[ok] for field, values in flags.items()},
    })
    bad_rows = np.flatnonzero(~ok)
    rejects = pd.DataFrame({
        "source": pd.array([Path(source).name] * bad_rows.size, dtype="string"),
        "row": bad_rows.astype(np.int64) + row_offset + 1,
        "record_id": pd.array(ids_obj[bad_rows], dtype="string").fillna(""),
        "reason": reasons.text(bad_rows),
    })
    return IngestResult(accepted=accepted, rejects=rejects, read=n,
                        village_located=int(place.sum()), source=str(source))


def read_households(path: str | Path, *,
                    study_area: gpd.GeoDataFrame | StudyArea | BaseGeometry | None = None,
                    chunk_rows: int | None = None) -> IngestResult:
    """Read and validate a household register file.

    Parameters
    ----------
    path
        CSV, Parquet/GeoParquet, GeoJSON, GeoPackage or any vector format pyogrio reads.
    study_area
        Polygons (any CRS); points outside are unusable (placed from the village code
        when it is valid, else rejected).
    chunk_rows
        Validate in batches of this many rows (bounded memory); ``None`` reads at once.

    Returns
    -------
    IngestResult
        Accepted households and rejects; ``read == len(accepted) + len(rejects)``.

    Raises
    ------
    InputError, MissingColumnError, CRSError, EmptyInputError
        The file cannot be used at all.

    Examples
    --------
    >>> from kantong.engine.inputs.boundaries import province_polygon
    >>> result = read_households("households.csv",
    ...                          study_area=province_polygon("61"))  # doctest: +SKIP
    >>> result.accepted.columns[:4].tolist()                         # doctest: +SKIP
    ['household_id', 'lon', 'lat', 'desil']
    """
    area = _resolve_area(study_area)
    # one batch when chunk_rows is None: duplicates are found within it, no id set needed
    seen: set | None = set() if chunk_rows is not None else None
    parts: list[IngestResult] = []
    offset = 0
    for batch in iter_tables(path, batch_rows=chunk_rows, resolve=canonical_columns,
                             check=check_columns, text_columns=_TEXT,
                             empty_message="holds no household rows"):
        parts.append(validate_households(batch, source=str(path), row_offset=offset,
                                         study_area=area, seen_ids=seen))
        offset += len(batch)
    if offset == 0:
        raise EmptyInputError(f"{path}: holds no household rows")
    accepted = pd.concat([p.accepted for p in parts], ignore_index=True) if len(parts) > 1 \
        else parts[0].accepted
    rejects = pd.concat([p.rejects for p in parts], ignore_index=True) if len(parts) > 1 \
        else parts[0].rejects
    located = sum(p.village_located for p in parts)
    logger.info("%s: %d rows read, %d accepted (%d placed from village code), %d rejected",
                path, offset, len(accepted), located, len(rejects))
    if len(accepted) == 0:
        logger.warning("%s: every household row was rejected", path)
    return IngestResult(accepted=accepted, rejects=rejects, read=offset,
                        village_located=located, source=str(path))


__all__ = ["ALIASES", "REQUIRED", "IngestResult", "canonical_columns", "check_columns",
           "iter_household_batches", "read_households", "validate_households"]
