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
import shapely
from shapely.geometry.base import BaseGeometry

from kantong.engine.build.placement import StudyArea
from kantong.engine.constants import WGS84
from kantong.engine.errors import EmptyInputError, MissingColumnError
from kantong.engine.inputs.tables import GEOMETRY, iter_tables

logger = logging.getLogger(__name__)

#: Canonical column -> accepted spellings (case-insensitive). ``type`` is overridden by
#: the ``type_column`` argument when that is not ``"type"``.
ALIASES: dict[str, tuple[str, ...]] = {
    "facility_id": ("facility_id", "id", "osm_id", "kode_fasilitas", "fasilitas_id"),
    "type": ("type", "facility_type", "jenis", "amenity"),
    "name": ("name", "nama", "nama_fasilitas"),
    "lon": ("lon", "longitude", "lng", "long", "x", "bujur"),
    "lat": ("lat", "latitude", "y", "lintang"),
}
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
    """

    accepted: gpd.GeoDataFrame
    rejects: pd.DataFrame
    read: int
    source: str


def _resolver(type_column: str):
    spellings = dict(ALIASES)
    if type_column.strip().lower() != "type":
        spellings["type"] = (type_column.strip().lower(),)

    def resolve(names: list[str]) -> dict[str, str]:
        lowered: dict[str, str] = {}
        for name in names:
            lowered.setdefault(str(name).strip().lower(), name)
        out = {}
        for canonical, options in spellings.items():
            for spelling in options:
                if spelling in lowered and lowered[spelling] not in out:
                    out[lowered[spelling]] = canonical
                    break
        return out

    def check(present: set[str], *, source: str) -> None:
        if "type" not in present:
            raise MissingColumnError(f"{source}: missing facility type column {type_column!r}")
        if GEOMETRY not in present and not {"lon", "lat"} <= present:
            raise MissingColumnError(f"{source}: no location: needs a geometry or lon/lat columns")

    return resolve, check


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
        lon = pd.to_numeric(frame["lon"].astype("string").str.strip(), errors="coerce")
        lat = pd.to_numeric(frame["lat"].astype("string").str.strip(), errors="coerce")
        lon = lon.to_numpy(dtype=np.float64, na_value=np.nan)
        lat = lat.to_numpy(dtype=np.float64, na_value=np.nan)
        blank = (_strings(frame["lon"], n).isna() | _strings(frame["lat"], n).isna()).to_numpy()
        reason[blank] = "missing geometry"
        reason[~blank & (np.isnan(lon) | np.isnan(lat))] = "non-numeric coordinates"
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0))
    reason[bad & (reason == None)] = "coordinates out of range"  # noqa: E711
    return lon, lat, reason


def read_facilities(path: str | Path, *,
                    study_area: gpd.GeoDataFrame | StudyArea | BaseGeometry | None = None,
                    type_column: str = "type") -> FacilityResult:
    """Read a facility layer and validate each feature.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, Shapefile or any vector format GDAL reads; GeoParquet; or a
        CSV/Parquet table with ``lon``/``lat`` (WGS84 degrees) columns.
    study_area
        Polygons (any CRS); facilities outside are rejected.
    type_column
        Column holding the facility type (matched case-insensitively). With the default
        ``"type"``, ``facility_type``, ``jenis`` and ``amenity`` are also accepted.

    Returns
    -------
    FacilityResult
        Accepted points (EPSG:4326) and rejects. Types are lower-cased and stripped;
        unknown types are kept under their own name.

    Raises
    ------
    InputError, MissingColumnError, CRSError, EmptyInputError
        Unreadable file, no type column, no location, a geometry without CRS, zero rows.

    Examples
    --------
    >>> result = read_facilities("puskesmas.gpkg", type_column="jenis")  # doctest: +SKIP
    >>> result.accepted["type"].value_counts()                          # doctest: +SKIP
    """
    resolve, check = _resolver(type_column)
    frames = list(iter_tables(path, batch_rows=None, resolve=resolve, check=check,
                              text_columns=_TEXT, empty_message="holds no facility rows"))
    if not frames:  # iter_tables raises first; kept for type checkers
        raise EmptyInputError(f"{path}: holds no facility rows")
    frame = frames[0].reset_index(drop=True)
    n = len(frame)
    ids = _strings(frame.get("facility_id"), n)
    types = _strings(frame["type"], n).str.lower()
    names = _strings(frame.get("name"), n)
    lon, lat, where = _points(frame)
    reason = np.full(n, None, dtype=object)
    reason[(ids.duplicated(keep="first") & ids.notna()).to_numpy()] = "duplicate facility_id"
    reason[types.isna().to_numpy() & (reason == None)] = "missing type"  # noqa: E711
    open_ = reason == None  # noqa: E711
    reason[open_] = where[open_]
    if study_area is not None:
        area = StudyArea.from_layer(study_area)
        outside = ~area.contains(lon, lat) & (reason == None)  # noqa: E711
        reason[outside] = "outside study area"
    ok = reason == None  # noqa: E711
    row = np.arange(1, n + 1)
    generated = (Path(path).stem + ":" + pd.Series(row[ok]).astype("string")).astype("string")
    facility_id = ids[ok].reset_index(drop=True).fillna(generated)
    accepted = gpd.GeoDataFrame(
        {"facility_id": facility_id, "type": types[ok].reset_index(drop=True),
         "name": names[ok].reset_index(drop=True)},
        geometry=gpd.points_from_xy(lon[ok], lat[ok]), crs=WGS84)
    rejects = pd.DataFrame({
        "source": pd.array([Path(path).name] * int((~ok).sum()), dtype="string"),
        "row": row[~ok].astype(np.int64),
        "record_id": ids[~ok].fillna("").reset_index(drop=True),
        "reason": pd.array(reason[~ok], dtype="string"),
    })
    logger.info("%s: %d facilities read, %d accepted (%s), %d rejected", path, n, len(accepted),
                ", ".join(f"{k} {v}" for k, v in accepted["type"].value_counts().items()),
                len(rejects))
    return FacilityResult(accepted=accepted, rejects=rejects, read=n, source=str(path))


__all__ = ["ALIASES", "FacilityResult", "read_facilities"]
