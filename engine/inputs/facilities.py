"""Read and validate a facility layer (puskesmas, posyandu, schools, water points ...).

Any vector format GDAL reads (GeoJSON, GeoPackage, Shapefile ...), GeoParquet,
or a CSV/Parquet table with ``lon``/``lat`` columns (WGS84 degrees). Layers are
reprojected to EPSG:4326 (logged); a geometry without a CRS is refused. Polygon
footprints become their representative point (a point inside the polygon).
Every row is accepted or rejected with a reason (``docs/input-schema.md``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from kantong.engine.build.placement import StudyArea
from kantong.engine.constants import WGS84
from kantong.engine.errors import EmptyInputError, InputError, MissingColumnError
from kantong.engine.inputs.schema import FACILITY_ALIASES, Schema, near_matches, normalise_name
from kantong.engine.inputs.tables import GEOMETRY, iter_tables
from kantong.engine.inputs.values import parse_number

logger = logging.getLogger(__name__)

#: Canonical column -> accepted spellings of the built-in schema (names compared
#: normalised: ``Lat_`` matches ``lat_``). ``type`` is overridden by ``type_column``.
ALIASES: dict[str, tuple[str, ...]] = dict(FACILITY_ALIASES)
#: Default distance (km) beyond the study area within which facilities are kept.
DEFAULT_BUFFER_KM = 50.0
_TEXT = frozenset({"facility_id", "type", "name"})
_POINT, _MULTIPOINT, _POLYGON, _MULTIPOLYGON = 0, 4, 3, 6


@dataclass(frozen=True, eq=False)
class FacilityResult:
    """Accepted and rejected rows of one facility layer.

    Attributes
    ----------
    accepted
        ``facility_id`` (string), ``type`` (string, lower-case, stripped), ``name`` (string,
        NA when absent), ``geometry`` (Point, EPSG:4326).
    rejects
        ``source`` (file name), ``row`` (1-based record number), ``record_id``
        (``facility_id`` as read, may be empty), ``reason``.
    read
        Rows read; ``len(accepted) + len(rejects) == read``.
    source
        The path as given.
    beyond_study_area
        Accepted facilities outside the study area but within the buffer.
    """

    accepted: gpd.GeoDataFrame
    rejects: pd.DataFrame
    read: int
    source: str
    beyond_study_area: int = 0


def _capacity(column: pd.Series | None, n: int, reason: np.ndarray) -> np.ndarray | None:
    """Parse the optional capacity column; rows with a bad value get a reject reason."""
    if column is None:
        return None
    given = _strings(column, n).notna().to_numpy()
    value = pd.to_numeric(_strings(column, n), errors="coerce").to_numpy(dtype=np.float64,
                                                                         na_value=np.nan)
    bad = given & ~(np.isfinite(value) & (value >= 0))
    reason[bad & (reason == None)] = "capacity not a number >= 0"  # noqa: E711
    return value


def _resolver(schema: Schema, type_column: str | None):
    spellings = dict(schema.facility_columns)
    if type_column is not None and normalise_name(type_column) != "type":
        spellings["type"] = (type_column,)

    def resolve(names: list[str]) -> dict[str, str]:
        lookup: dict[str, str] = {}
        for name in names:
            lookup.setdefault(normalise_name(name), name)
        out: dict[str, str] = {}
        for canonical, options in spellings.items():
            for spelling in options:
                src = lookup.get(normalise_name(spelling))
                if src is not None and src not in out:
                    out[src] = canonical
                    break
        return out

    def check(present: set[str], *, source: str, columns: list[str] | None = None) -> None:
        hint = _hint(spellings, columns)
        if "type" not in present:
            named = f"{type_column!r}" if type_column else "(type, jenis_faskes, ...)"
            raise MissingColumnError(f"{source}: missing facility type column {named}"
                                     + hint("type") + "; choose one with --facility-type-column")
        if GEOMETRY not in present and not {"lon", "lat"} <= present:
            raise MissingColumnError(f"{source}: no location: needs a geometry or lon/lat "
                                     "columns" + hint("lon", "lat"))

    return resolve, check


def _hint(spellings: dict[str, tuple[str, ...]], columns: list[str] | None):
    def hint(*fields: str) -> str:
        if columns is None:
            return ""
        close = near_matches([s for f in fields for s in spellings[f]], columns)
        shown = ", ".join(map(str, columns[:40]))
        return (f"; closest: {', '.join(close)}" if close else "") + f"; file columns: {shown}"
    return hint


def _strings(s: pd.Series | None, n: int) -> pd.Series:
    """Return stripped strings with blanks as NA (integral floats printed without ``.0``)."""
    if s is None:
        return pd.Series(pd.array([None] * n, dtype="string"))
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.isnan(v) | (v == np.round(v))):
            s = pd.Series(pd.array(v, dtype="Float64").astype("Int64"))
    out = s.astype("string").str.strip().reset_index(drop=True)
    return out.mask(out == "")


def _points(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return lon, lat (EPSG:4326) and a reason per row (None when usable)."""
    n = len(frame)
    reason = np.full(n, None, dtype=object)
    if isinstance(frame, gpd.GeoDataFrame):
        geoms = frame.geometry.to_numpy()
        empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        kind = shapely.get_type_id(geoms)
        parts = shapely.get_num_geometries(geoms)
        point = ~empty & ((kind == _POINT) | ((kind == _MULTIPOINT) & (parts == 1)))
        area = ~empty & np.isin(kind, (_POLYGON, _MULTIPOLYGON))
        pts = np.full(n, None, dtype=object)
        pts[point] = shapely.get_geometry(geoms[point], 0)
        pts[area] = shapely.point_on_surface(geoms[area])
        if area.any():
            logger.info("%d polygon facilities replaced by their representative point", area.sum())
        lon = np.where(point | area, shapely.get_x(pts), np.nan)
        lat = np.where(point | area, shapely.get_y(pts), np.nan)
        reason[empty] = "missing geometry"
        reason[~empty & ~point & ~area] = "non-point geometry"
    else:
        lon, lon_blank, lon_bad = parse_number(frame["lon"])
        lat, lat_blank, lat_bad = parse_number(frame["lat"])
        blank = lon_blank | lat_blank
        reason[blank] = "missing geometry"
        reason[~blank & (lon_bad | lat_bad)] = "non-numeric coordinates"
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0))
    reason[bad & (reason == None)] = "coordinates out of range"  # noqa: E711
    return lon, lat, reason


def within_buffer(area: StudyArea, lon: np.ndarray, lat: np.ndarray, km: float) -> np.ndarray:
    """Return which points (EPSG:4326) lie inside the study area or within ``km`` of it.

    Distances are measured in an azimuthal equidistant projection centred on the study
    area (exact from the centre, within about 1 % over a province); the test is
    vectorised (``shapely.dwithin``).
    """
    inside = area.contains(lon, lat)
    if km <= 0 or inside.all():
        return inside
    west, south, east, north = area.bounds
    proj4 = (f"+proj=aeqd +lat_0={(south + north) / 2:.6f} +lon_0={(west + east) / 2:.6f} "
             "+datum=WGS84 +units=m")
    to_m = pyproj.Transformer.from_crs(WGS84, pyproj.CRS.from_proj4(proj4), always_xy=True)
    logger.debug("facility buffer: measuring in %s", proj4)
    geom = shapely.transform(area.geometry, lambda xy: np.column_stack(
        to_m.transform(xy[:, 0], xy[:, 1])))
    shapely.prepare(geom)
    rest = np.flatnonzero(~inside & np.isfinite(lon) & np.isfinite(lat))
    x, y = to_m.transform(lon[rest], lat[rest])
    near = shapely.dwithin(geom, shapely.points(x, y), km * 1000.0)
    out = inside.copy()
    out[rest[near]] = True
    return out


def read_facilities(path: str | Path, *,
                    study_area: gpd.GeoDataFrame | StudyArea | BaseGeometry | None = None,
                    type_column: str | None = None, buffer_km: float = DEFAULT_BUFFER_KM,
                    schema: Schema | str | Path | None = None, sheet: str | int | None = None,
                    header_row: int | None = None) -> FacilityResult:
    """Read a facility layer and validate each feature.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, Shapefile or any vector format GDAL reads; GeoParquet; an
        Excel workbook or a CSV/Parquet table with ``lon``/``lat`` (WGS84 degrees) columns
        (real list headers such as ``lat_``, ``long_``, ``lintang``, ``bujur`` work).
    study_area
        Polygons (any CRS); facilities farther than ``buffer_km`` outside are rejected.
    type_column
        Column holding the facility type (names compared normalised); ``None`` accepts
        the schema's spellings (``type``, ``jenis_faskes``, ``bentuk_pendidikan`` ...).
    buffer_km
        Facilities up to this distance beyond the study area are kept (they serve border
        villages, even across a provincial or national border); 0 keeps only those inside.
    schema
        Column spellings and type labels (``[facilities]`` of a schema file; the ``p3ke``
        preset maps ``PUSKESMAS``, ``RS``, ``SD`` ...); ``None`` for the built-in one.
    sheet, header_row
        Workbooks only (see :func:`kantong.engine.inputs.excel.read_sheet`).

    Returns
    -------
    FacilityResult
        Accepted points (EPSG:4326) and rejects. Types go through the schema's label
        mapping; other types are lower-cased and stripped and kept under their own name.

    Raises
    ------
    InputError, MissingColumnError, CRSError, EmptyInputError
        Unreadable file, no type column, no location, a geometry without CRS, zero rows.

    Examples
    --------
    >>> result = read_facilities("puskesmas.xlsx", schema="p3ke")  # doctest: +SKIP
    >>> result.accepted["type"].value_counts()                   # doctest: +SKIP
    """
    if not buffer_km >= 0:
        raise InputError(f"facility buffer must be >= 0 km, got {buffer_km}")
    schema = Schema.load(schema)
    resolve, check = _resolver(schema, type_column)
    frames = list(iter_tables(path, batch_rows=None, resolve=resolve, check=check,
                              text_columns=_TEXT, empty_message="holds no facility rows",
                              sheet=sheet, header_row=header_row))
    if not frames:  # iter_tables raises first; kept for type checkers
        raise EmptyInputError(f"{path}: holds no facility rows")
    frame = frames[0].reset_index(drop=True)
    n = len(frame)
    ids = _strings(frame.get("facility_id"), n)
    types = schema.facility_type(_strings(frame["type"], n))
    names = _strings(frame.get("name"), n)
    lon, lat, where = _points(frame)
    reason = np.full(n, None, dtype=object)
    reason[(ids.duplicated(keep="first") & ids.notna()).to_numpy()] = "duplicate facility_id"
    reason[types.isna().to_numpy() & (reason == None)] = "missing type"  # noqa: E711
    open_ = reason == None  # noqa: E711
    reason[open_] = where[open_]
    capacity = _capacity(frame.get("capacity"), n, reason)
    beyond = 0
    if study_area is not None:
        area = StudyArea.from_layer(study_area)
        usable = reason == None  # noqa: E711
        kept = np.zeros(n, dtype=bool)
        kept[usable] = within_buffer(area, lon[usable], lat[usable], buffer_km)
        beyond = int((kept & ~area.contains(lon, lat)).sum())
        reason[usable & ~kept] = "outside study area"
    ok = reason == None  # noqa: E711
    row = np.arange(1, n + 1)
    generated = (Path(path).stem + ":" + pd.Series(row[ok]).astype("string")).astype("string")
    facility_id = ids[ok].reset_index(drop=True).fillna(generated)
    accepted = gpd.GeoDataFrame(
        {"facility_id": facility_id, "type": types[ok].reset_index(drop=True),
         "name": names[ok].reset_index(drop=True)},
        geometry=gpd.points_from_xy(lon[ok], lat[ok]), crs=WGS84)
    if capacity is not None:  # optional column: NaN where blank
        accepted.insert(3, "capacity", capacity[ok])
    rejects = pd.DataFrame({
        "source": pd.array([Path(path).name] * int((~ok).sum()), dtype="string"),
        "row": row[~ok].astype(np.int64),
        "record_id": ids[~ok].fillna("").reset_index(drop=True),
        "reason": pd.array(reason[~ok], dtype="string"),
    })
    logger.info("%s: %d facilities read, %d accepted (%s; %d beyond the study area within "
                "%g km), %d rejected", path, n, len(accepted),
                ", ".join(f"{k} {v}" for k, v in accepted["type"].value_counts().items()),
                beyond, buffer_km, len(rejects))
    return FacilityResult(accepted=accepted, rejects=rejects, read=n, source=str(path),
                          beyond_study_area=beyond)


__all__ = ["ALIASES", "DEFAULT_BUFFER_KM", "FacilityResult", "read_facilities", "within_buffer"]
