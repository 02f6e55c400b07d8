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
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
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
from kantong.engine.errors import CRSError, EmptyInputError
from kantong.engine.inputs.schema import FALSE_WORDS, TRUE_WORDS, Schema
from kantong.engine.inputs.tables import GEOMETRY, iter_tables
from kantong.engine.inputs.values import (
    RowReasons,
    blank_strings,
    duplicates,
    first_value,
    parse_number,
    take_strings,
)
from kantong.engine.inputs.village_codes import CodeSystem, codes_to_bps, detect_system

logger = logging.getLogger(__name__)

#: Canonical column -> accepted spellings of the built-in schema (see
#: :meth:`~kantong.engine.inputs.schema.Schema.default`; names are compared normalised).
ALIASES: dict[str, tuple[str, ...]] = {
    **Schema.default().columns,
    **{field: (field,) for field in DEPRIVATION_FIELDS},
}
#: Columns every register must hold (location: lon+lat, a point geometry or village_code).
REQUIRED = ("household_id", "desil", "members", *DEPRIVATION_FIELDS)
#: Largest household size accepted (the int16 range of the ``members`` column).
MAX_MEMBERS = np.iinfo(np.int16).max
#: Bounding box used to recognise swapped coordinates when no study area is given.
INDONESIA_BOUNDS = (94.5, -11.5, 141.5, 6.5)

REJECT_COLUMNS = ("source", "row", "record_id", "reason")
_TEXT = frozenset({"household_id", "village_code"})


@dataclass(frozen=True, eq=False)
class IngestResult:
    """Accepted and rejected household rows of one register file.

    Attributes
    ----------
    accepted
        ``household_id`` (string), ``lon``, ``lat`` (float64, EPSG:4326, always filled),
        ``desil`` (int8 1-4), ``members`` (int16 >= 1), ``village_code`` (string, BPS code
        or NA), ``location_precision`` (``"point"`` | ``"village"``), and one bool column per
        :data:`kantong.engine.constants.DEPRIVATION_FIELDS` the register holds (see
        ``absent``).
    rejects
        ``source`` (file name), ``row`` (1-based record number), ``record_id``
        (``household_id`` as read, may be empty), ``reason``.
    read
        Rows read; ``len(accepted) + len(rejects) == read``.
    village_located
        Accepted households placed from their village code.
    source
        The path as given.
    absent
        Deprivation indicators the register does not hold (optional in its schema): not
        in ``accepted`` at all, never filled in as false.
    examples
        ``{reason: one offending value}`` for reasons that have one (never a personal
        field; ids are not repeated here).
    village_codes
        The village-code system decided for the file (``None`` without codes).
    """

    accepted: pd.DataFrame
    rejects: pd.DataFrame
    read: int
    village_located: int
    source: str
    absent: tuple[str, ...] = ()
    examples: dict[str, str] = field(default_factory=dict)
    village_codes: CodeSystem | None = None


def canonical_columns(names: list[str]) -> dict[str, str]:
    """Map the columns of a file to canonical names with the built-in schema.

    Parameters
    ----------
    names
        Column names as read.

    Returns
    -------
    dict
        ``{name as read: canonical name}``; unknown and personal columns are left out.
        Where several spellings of one column are present the earliest in :data:`ALIASES`
        wins (``lon`` before ``longitude`` before ``x``).
    """
    return Schema.default().resolve(names)


def check_columns(present: set[str], *, source: str, columns: list[str] | None = None) -> None:
    """Raise :class:`MissingColumnError` if canonical columns ``present`` cannot make a register.

    ``present`` holds ``"geometry"`` when the source has a geometry; ``columns`` (the
    file's own names) are listed in the message with the closest matches.
    """
    Schema.default().check(present, source=source, columns=columns)


def iter_household_batches(path: str | Path, *, batch_rows: int | None = 1_000_000,
                           schema: Schema | str | Path | None = None,
                           sheet: str | int | None = None, header_row: int | None = None
                           ) -> Iterator[pd.DataFrame]:
    """Stream a household file as raw batches with resolved column names.

    Parameters
    ----------
    path
        CSV, Excel workbook, Parquet/GeoParquet, or a vector file pyogrio reads.
    batch_rows
        Rows per batch (Parquet by record batches via pyarrow, CSV by pandas chunks,
        vector files by pyogrio Arrow batches, workbooks by slices of the sheet).
    schema
        A :class:`~kantong.engine.inputs.schema.Schema`, a preset name (``"p3ke"``) or a
        schema file; ``None`` for the built-in one.
    sheet, header_row
        Workbooks only: the sheet (name or 0-based index) and the 1-based header row;
        detected when ``None``.

    Yields
    ------
    pandas.DataFrame or geopandas.GeoDataFrame
        Only schema columns, renamed (personal and unknown columns are never read).
        Sources with a geometry yield GeoDataFrames in EPSG:4326 (reprojected if
        needed). Values are not validated yet: pass each batch to
        :func:`validate_households` with the same ``schema``, the running ``row_offset``
        and a shared ``seen_ids`` set.

    Raises
    ------
    InputError, MissingColumnError, CRSError, EmptyInputError
        The file cannot be used at all (format, columns, CRS, zero rows).

    Examples
    --------
    >>> seen, offset = set(), 0
    >>> for batch in iter_household_batches("register.xlsx", schema="p3ke"):  # doctest: +SKIP
    ...     part = validate_households(batch, source="register.xlsx", schema="p3ke",
    ...                                row_offset=offset, seen_ids=seen)
    ...     offset += len(batch)
    """
    schema = Schema.load(schema)
    yield from iter_tables(path, batch_rows=batch_rows, resolve=schema.resolve,
                           check=schema.check, text_columns=_text_columns(schema),
                           empty_message="holds no household rows", sheet=sheet,
                           header_row=header_row)


def _text_columns(schema: Schema) -> frozenset[str]:
    """Batch columns read as text from CSV: ids, codes and every labelled indicator part."""
    labelled = {schema.part_key(name, i) for name, ind in schema.indicators.items()
                for i, part in enumerate(ind.parts) if part.true or part.kind == "count"}
    return _TEXT | labelled


def _village_codes(s: pd.Series | None, n: int, system: CodeSystem | str, source: str
                   ) -> tuple[pd.Series, np.ndarray, pd.Series, CodeSystem | None]:
    """Return BPS village codes, the 'code given' mask, the code problems, the system.

    Codes are NA where unusable; a problem (``unknown village_code`` ...) says why a given
    code gives no village.
    """
    if s is None:
        na = pd.Series(pd.array([None] * n, dtype="string"))
        return na, np.zeros(n, dtype=bool), na, None
    raw, blank = blank_strings(s)
    decided = system if isinstance(system, CodeSystem) else detect_system(
        raw, source=source, system=system)
    bps, why = codes_to_bps(raw, decided)
    return bps, ~blank, why, decided


def _coordinates(frame: pd.DataFrame, geometry: gpd.GeoSeries | None
                 ) -> tuple[np.ndarray, np.ndarray, RowReasons]:
    """Return lon, lat and a first reason (missing / non-numeric / non-point) per row."""
    n = len(frame)
    reason = RowReasons(n)
    if geometry is not None:
        geoms = geometry.to_numpy()
        empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        kind = shapely.get_type_id(geoms)
        point = ~empty & ((kind == 0) | ((kind == 4) & (shapely.get_num_geometries(geoms) == 1)))
        first = shapely.get_geometry(geoms, 0)  # a Point stays itself; a MultiPoint's only part
        lon, lat = np.full(n, np.nan), np.full(n, np.nan)
        lon[point] = shapely.get_x(first[point])  # GEOS refuses x of an empty point
        lat[point] = shapely.get_y(first[point])
        reason.fail(empty, "missing coordinates")
        reason.fail(~point, "non-point geometry")
        return lon, lat, reason
    if "lon" not in frame:
        reason.fail(np.ones(n, dtype=bool), "missing coordinates")
        return np.full(n, np.nan), np.full(n, np.nan), reason
    lon, lon_blank, lon_bad = parse_number(frame["lon"])
    lat, lat_blank, lat_bad = parse_number(frame["lat"])
    reason.fail(lon_blank | lat_blank, "missing coordinates")
    reason.fail(lon_bad | lat_bad, "non-numeric coordinates")
    return lon, lat, reason


def _locate(lon: np.ndarray, lat: np.ndarray, reason: RowReasons, area: StudyArea | None) -> None:
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
                        seen_ids: set | None = None, schema: Schema | str | Path | None = None,
                        village_codes: CodeSystem | str = "auto") -> IngestResult:
    """Validate one batch of household rows.

    Parameters
    ----------
    raw
        A batch from :func:`iter_household_batches`, or any frame with the schema's
        columns (file spellings accepted; other columns are dropped).
    source
        Path of the file the batch comes from (rejects carry its file name).
    row_offset
        Rows of the file before this batch (record numbers are ``row_offset + 1 ...``).
    study_area
        Polygons (any CRS) or a prepared :class:`~kantong.engine.build.placement.StudyArea`;
        points outside are unusable.
    seen_ids
        Household ids of earlier batches. Updated in place with this batch's ids, so a
        later duplicate of an id is rejected whatever batch it is in.
    schema
        Column and label mapping (a :class:`~kantong.engine.inputs.schema.Schema`, a preset
        name or a schema file; ``None`` for the built-in one).
    village_codes
        ``"auto"`` (decide the code system from this batch's codes), ``"bps"``,
        ``"kemendagri"``, or the :class:`~kantong.engine.inputs.village_codes.CodeSystem` of
        an earlier batch of the same file (see :mod:`kantong.engine.inputs.village_codes`).

    Returns
    -------
    IngestResult
        Accepted rows (typed) and rejects; see :class:`IngestResult`.

    Raises
    ------
    MissingColumnError
        A required column is absent.
    InputError
        The village codes are ambiguous between the two code systems.

    Examples
    --------
    >>> result = validate_households(frame, source="register.csv")   # doctest: +SKIP
    >>> result.read == len(result.accepted) + len(result.rejects)     # doctest: +SKIP
    True
    """
    schema = Schema.load(schema)
    geometry = _geometry_of(raw, source)
    names = _batch_columns([c for c in raw.columns if geometry is None or c != geometry.name],
                           schema)
    present = set(names.values()) | ({GEOMETRY} if geometry is not None else set())
    schema.check(present, source=source, columns=list(raw.columns))
    frame = pd.DataFrame(raw[list(names)]).rename(columns=names).reset_index(drop=True)
    fields, absent = schema.present_fields(present)
    n = len(frame)
    area = _resolve_area(study_area)
    reasons = RowReasons(n)

    ids, id_blank = blank_strings(frame[HOUSEHOLD_ID])
    ids_obj = ids.to_numpy(dtype=object, na_value=None)
    reasons.fail(id_blank, "missing household_id")
    reasons.fail(duplicates(ids_obj, id_blank, seen_ids), "duplicate household_id")

    desil = schema.read_desil(frame["desil"])
    reasons.fail(desil.blank, "missing desil")
    reasons.fail(desil.invalid | ~np.isin(desil.values, DESIL_VALUES), "invalid desil",
                 desil.example)
    members, blank, bad = parse_number(frame["members"])
    reasons.fail(blank, "missing members")
    with np.errstate(invalid="ignore"):
        wrong = bad | ~((members >= 1) & (members <= MAX_MEMBERS)
                        & (members == np.round(members)))
    reasons.fail(wrong, "invalid members", first_value(frame["members"], wrong & ~blank))
    flags = {}
    for name in DEPRIVATION_FIELDS:
        if name not in fields:
            continue
        got = schema.read_indicator(frame, name)
        flags[name] = got.values
        reasons.fail(got.blank, f"missing {name}")
        reasons.fail(got.invalid, f"invalid {name}", got.example)

    lon, lat, where = _coordinates(frame, geometry)
    _locate(lon, lat, where, area)
    village, code_given, code_problem, system = _village_codes(
        frame.get("village_code"), n, village_codes, source)
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
    unusable = ~where.open & code_given & ~village_ok
    for problem in code_problem[unusable].dropna().unique():
        rows = unusable & code_problem.eq(problem).to_numpy(dtype=bool, na_value=False)
        where.suffix(rows, f"; {problem}")
        if "village_code" in frame:
            where.examples.setdefault(problem, first_value(frame["village_code"], rows))
    reasons.merge(where)

    ok = reasons.open
    accepted = pd.DataFrame({
        HOUSEHOLD_ID: ids[ok].reset_index(drop=True),
        "lon": lon[ok],
        "lat": lat[ok],
        "desil": desil.values[ok].astype(np.int8),
        "members": members[ok].astype(np.int16),
        "village_code": village[ok].reset_index(drop=True),
        "location_precision": take_strings([PRECISION_POINT, PRECISION_VILLAGE],
                                           place[ok].astype(np.int64)),
        **{name: values[ok] for name, values in flags.items()},
    })
    bad_rows = np.flatnonzero(~ok)
    rejects = pd.DataFrame({
        "source": pd.array([Path(source).name] * bad_rows.size, dtype="string"),
        "row": bad_rows.astype(np.int64) + row_offset + 1,
        "record_id": pd.array(ids_obj[bad_rows], dtype="string").fillna(""),
        "reason": reasons.text(bad_rows),
    })
    examples = reasons.used_examples()
    for reason in pd.unique(rejects["reason"]):  # "<coordinate reason>; <code problem>"
        base, _, problem = str(reason).partition("; ")
        if problem and reason not in examples and problem in where.examples:
            examples[reason] = where.examples[problem]
    return IngestResult(accepted=accepted, rejects=rejects, read=n,
                        village_located=int(place.sum()), source=str(source),
                        absent=tuple(absent), examples=examples, village_codes=system)


def _batch_columns(columns: list[str], schema: Schema) -> dict[str, str]:
    """Map a batch's columns to batch keys: keys already resolved stay, others resolve."""
    keys = schema.wanted()
    out = {c: c for c in columns if c in keys}
    taken = set(out.values())
    for src, key in schema.resolve([c for c in columns if c not in keys]).items():
        if key not in taken:
            out[src] = key
            taken.add(key)
    return out


def summarise_rejects(rejects: pd.DataFrame, examples: dict[str, str], *, top: int = 3) -> str:
    """Return the ``top`` commonest reject reasons with their counts and one example each.

    Examples
    --------
    >>> import pandas as pd
    >>> r = pd.DataFrame({"reason": ["invalid desil"] * 2 + ["missing members"]})
    >>> summarise_rejects(r, {"invalid desil": "Desil 9"})
    "invalid desil (2, e.g. 'Desil 9'), missing members (1)"
    """
    if len(rejects) == 0:
        return ""
    counts = rejects["reason"].value_counts().head(top)
    parts = []
    for reason, count in counts.items():
        example = examples.get(str(reason))
        parts.append(f"{reason} ({count:,}, e.g. {example!r})" if example
                     else f"{reason} ({count:,})")
    return ", ".join(parts)


def read_households(path: str | Path, *,
                    study_area: gpd.GeoDataFrame | StudyArea | BaseGeometry | None = None,
                    chunk_rows: int | None = None, schema: Schema | str | Path | None = None,
                    sheet: str | int | None = None, header_row: int | None = None,
                    village_codes: str = "auto") -> IngestResult:
    """Read and validate a household register file.

    Parameters
    ----------
    path
        CSV, Excel workbook, Parquet/GeoParquet, GeoJSON, GeoPackage or any vector format
        pyogrio reads.
    study_area
        Polygons (any CRS); points outside are unusable (placed from the village code
        when it is valid, else rejected).
    chunk_rows
        Validate in batches of this many rows (bounded memory); ``None`` reads at once.
    schema
        Column and label mapping: a preset name (``"p3ke"``), a schema file, or ``None``.
    sheet, header_row
        Workbooks: sheet name or 0-based index, and 1-based header row (else detected).
    village_codes
        ``"auto"``, ``"bps"`` or ``"kemendagri"`` (see
        :mod:`kantong.engine.inputs.village_codes`). The system decided on the first batch
        holds for the whole file.

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
    >>> result = read_households("p3ke.xlsx", schema="p3ke",
    ...                          study_area=province_polygon("61"))  # doctest: +SKIP
    >>> result.accepted.columns[:4].tolist()                         # doctest: +SKIP
    ['household_id', 'lon', 'lat', 'desil']
    """
    schema = Schema.load(schema)
    area = _resolve_area(study_area)
    # one batch when chunk_rows is None: duplicates are found within it, no id set needed
    seen: set | None = set() if chunk_rows is not None else None
    parts: list[IngestResult] = []
    offset = 0
    system: CodeSystem | str = village_codes
    for batch in iter_household_batches(path, batch_rows=chunk_rows, schema=schema,
                                        sheet=sheet, header_row=header_row):
        part = validate_households(batch, source=str(path), row_offset=offset,
                                   study_area=area, seen_ids=seen, schema=schema,
                                   village_codes=system)
        parts.append(part)
        system = lock_code_system(system, part)
        offset += len(batch)
    if offset == 0:
        raise EmptyInputError(f"{path}: holds no household rows")
    result = combine_results(parts, source=str(path))
    logger.info("%s: %d rows read, %d accepted (%d placed from village code), %d rejected",
                path, result.read, len(result.accepted), result.village_located,
                len(result.rejects))
    if len(result.accepted) == 0:
        logger.warning("%s: every household row was rejected; most common: %s", path,
                       summarise_rejects(result.rejects, result.examples))
    return result


def lock_code_system(current: CodeSystem | str, part: IngestResult) -> CodeSystem | str:
    """Return the code system later batches of a file use: the first one decided."""
    if isinstance(current, CodeSystem) or part.village_codes is None \
            or part.village_codes.system == "none":
        return current
    return part.village_codes


def combine_results(parts: list[IngestResult], *, source: str) -> IngestResult:
    """Concatenate the results of the batches of one file."""
    accepted = pd.concat([p.accepted for p in parts], ignore_index=True) if len(parts) > 1 \
        else parts[0].accepted
    rejects = pd.concat([p.rejects for p in parts], ignore_index=True) if len(parts) > 1 \
        else parts[0].rejects
    examples: dict[str, str] = {}
    for p in parts:
        for k, v in p.examples.items():
            examples.setdefault(k, v)
    system = next((p.village_codes for p in parts if p.village_codes is not None), None)
    return IngestResult(accepted=accepted, rejects=rejects, read=sum(p.read for p in parts),
                        village_located=sum(p.village_located for p in parts), source=source,
                        absent=parts[0].absent, examples=examples, village_codes=system)


__all__ = ["ALIASES", "FALSE_WORDS", "REQUIRED", "TRUE_WORDS", "IngestResult",
           "canonical_columns", "check_columns", "combine_results", "iter_household_batches",
           "lock_code_system", "read_households", "summarise_rejects", "validate_households"]
