"""Stream input tables (CSV, Parquet/GeoParquet, any vector format pyogrio reads) in batches.

Shared by the household and facility readers. Each batch holds only the columns
the caller's ``resolve`` function maps (renamed to canonical names), so personal
and unknown columns are never parsed. Sources with a geometry yield
GeoDataFrames in EPSG:4326 (reprojected and logged when the source has another
CRS); a geometry without a CRS is refused. Values are not validated here.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import logging
import lzma
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pyogrio.errors
import pyproj
import shapely

from kantong.engine.constants import WGS84
from kantong.engine.errors import CRSError, EmptyInputError, InputError, first_line
from kantong.engine.inputs.excel import EXCEL_SUFFIXES, iter_excel

logger = logging.getLogger(__name__)

#: Name of the geometry column of yielded GeoDataFrames.
GEOMETRY = "geometry"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_DELIMITERS = (",", ";", "\t", "|")
_WHOLE = 1 << 62  # batch size meaning "everything at once"

Resolve = Callable[[list[str]], dict[str, str]]
Check = Callable[..., None]

#: Codec error handler for CSV text: bytes that are not valid UTF-8 (an Excel cp1252
#: export) are decoded as Windows-1252, or Latin-1 for the 5 bytes cp1252 leaves undefined.
#: Lossless and one-to-one, so distinct ids stay distinct (U+FFFD replacement would merge
#: them into false duplicates), and it works wherever the bad byte is in a streamed file.
_CP1252_FALLBACK = "kantong-cp1252-fallback"
_fallbacks = threading.local()  # per-thread count of fallback decodes (for the warning)


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    text = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in bad)
    _fallbacks.count = getattr(_fallbacks, "count", 0) + 1
    return text, exc.end


codecs.register_error(_CP1252_FALLBACK, _cp1252_fallback)


def table_kind(path: Path) -> str:
    """Return ``"csv"``, ``"excel"``, ``"parquet"`` or ``"vector"`` from the file name."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in CSV_SUFFIXES:
        return "csv"
    if last in PARQUET_SUFFIXES:
        return "parquet"
    if last in EXCEL_SUFFIXES:
        return "excel"
    return "vector"


def _is_wgs84(crs: Any) -> bool:
    return pyproj.CRS.from_user_input(crs).equals(pyproj.CRS(WGS84), ignore_axis_order=True)


def _check_degrees(geoms: np.ndarray, crs: Any, source: str) -> None:
    """Refuse a layer said to be in degrees whose every coordinate is outside the degree range.

    That is a projected layer (metres) with a missing or wrong CRS - typically a GeoJSON
    without a ``crs`` member, which GDAL reads as WGS84 - not a set of bad rows.
    """
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return
    bounds = shapely.bounds(geoms[present])
    outside = ((np.abs(bounds[:, [0, 2]]) > 180).any(axis=1)
               | (np.abs(bounds[:, [1, 3]]) > 90).any(axis=1))
    if outside.all():
        raise CRSError(f"{source}: every coordinate is outside -180..180 / -90..90 although the "
                       f"layer's CRS is {pyproj.CRS.from_user_input(crs).name} (degrees); the "
                       "file is probably in a projected CRS (metres) with a missing CRS: "
                       "declare the right one")


def geoframe(frame: pd.DataFrame, geoms: np.ndarray, crs: Any, source: str,
              logged: list[bool]) -> gpd.GeoDataFrame:
    """Attach decoded ``geoms`` in ``crs`` to ``frame``, reprojected to EPSG:4326.

    ``logged`` is a one-element flag so that a streamed file logs its reprojection once.
    """
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, index=frame.index, crs=crs),
                           crs=crs)
    if pyproj.CRS.from_user_input(crs).is_geographic:
        _check_degrees(np.asarray(gdf.geometry.array), crs, source)
    if not _is_wgs84(crs):
        if not logged:
            logger.info("reprojecting %s from %s to %s", source, pyproj.CRS(crs).name, WGS84)
            logged.append(True)
        gdf = gdf.to_crs(WGS84)
    else:
        gdf = gdf.set_crs(WGS84, allow_override=True)
    return gdf


#: Longest line accepted in a CSV register, in bytes (a longer one: not a register).
MAX_LINE_BYTES = 1 << 20


class _LineLimit(io.RawIOBase):
    """A binary stream that raises ``InputError`` on a line longer than ``limit`` bytes.

    Reads are capped at ``limit`` bytes, so a longer line always spans two reads and is
    caught by counting the bytes since the last newline (``bytes.find``: C speed).
    """

    def __init__(self, raw: Any, path: Path, limit: int = MAX_LINE_BYTES) -> None:
        self._raw, self._path, self._limit, self._run = raw, path, limit, 0

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        data = self._raw.read(min(len(buffer), self._limit))
        n = len(data)
        first = data.find(b"\n")
        if first < 0:
            self._run += n
        else:
            if self._run + first > self._limit:
                self._run += first
            else:
                self._run = n - data.rfind(b"\n") - 1
        if self._run > self._limit:
            raise InputError(f"{self._path}: a line is longer than {self._limit >> 20} MiB; "
                             "not a CSV register (a binary file?)")
        buffer[:n] = data
        return n

    def close(self) -> None:  # noqa: D102
        self._raw.close()
        super().close()


def _open_csv(path: Path) -> io.BufferedReader:
    """Open a (possibly compressed) CSV as a line-length-limited binary stream."""
    opener = _COMPRESSED.get(path.suffix.lower(), open)
    return io.BufferedReader(_LineLimit(opener(path, "rb"), path))


def _sniff_delimiter(path: Path) -> str:
    try:
        with _open_csv(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig",
                                                      errors="replace") as handle:
            header = handle.readline()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"{path}: cannot read file ({exc})") from None
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _iter_csv(path: Path, batch_rows: int | None, resolve: Resolve, check: Check,
              text: set[str]) -> Iterator[pd.DataFrame]:
    sep = _sniff_delimiter(path)
    options: dict[str, Any] = {"sep": sep, "encoding": "utf-8-sig",
                               "encoding_errors": _CP1252_FALLBACK}
    try:
        with _open_csv(path) as handle:
            names = list(pd.read_csv(handle, nrows=0, **options).columns)
    except InputError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError,
            EOFError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({first_line(exc)})") from None
    mapping = resolve(names)
    check(set(mapping.values()), source=str(path), columns=names)
    options |= {"usecols": list(mapping), "chunksize": batch_rows or _WHOLE,
                "dtype": {orig: "str" for orig, canon in mapping.items() if canon in text}}
    warned = [False]
    try:
        for chunk in _csv_chunks(path, options, warned):
            yield chunk.rename(columns=mapping)
    except InputError:
        raise
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({first_line(exc)})") from None


def _csv_chunks(path: Path, options: dict[str, Any], warned: list[bool]) -> Iterator[pd.DataFrame]:
    """Yield pandas chunks; mixed-type columns are expected (parsed downstream), not warned.

    Logs one warning (``warned`` records it) when a chunk held bytes that are not UTF-8.
    """
    before = getattr(_fallbacks, "count", 0)  # opening the reader already decodes a block
    with _open_csv(path) as handle, pd.read_csv(handle, **options) as reader:
        while True:
            with warnings.catch_warnings():  # scoped to the read, never across a yield
                warnings.simplefilter("ignore", pd.errors.DtypeWarning)
                try:
                    chunk = next(reader)
                except StopIteration:
                    return
            if not warned[0] and getattr(_fallbacks, "count", 0) != before:
                warned[0] = True
                logger.warning("%s is not valid UTF-8; bytes that are not UTF-8 were decoded "
                               "as Windows-1252 (cp1252)", path)
            yield chunk


def parquet_geometry(path: Path, geo: dict) -> tuple[str, Any, str]:
    """Return ``(column, crs, encoding)`` of a GeoParquet file's primary geometry column.

    Raises :class:`~kantong.engine.errors.CRSError` or :class:`~kantong.engine.errors.InputError`
    when the
    ``geo`` metadata gives no usable CRS or an unsupported encoding.
    """
    column = geo.get("primary_column", GEOMETRY)
    meta = geo.get("columns", {}).get(column, {})
    if "crs" not in meta:
        crs: Any = "OGC:CRS84"  # GeoParquet: an absent crs means OGC:CRS84
    elif meta["crs"] is None:
        raise CRSError(f"{path}: GeoParquet geometry has no CRS")
    else:
        try:
            crs = pyproj.CRS.from_user_input(meta["crs"])
        except pyproj.exceptions.CRSError as exc:
            raise CRSError(f"{path}: unreadable GeoParquet CRS ({first_line(exc)})") from None
    encoding = str(meta.get("encoding", "WKB")).lower()
    if encoding not in ("wkb", "point"):
        raise InputError(f"{path}: GeoParquet geometry encoding {encoding!r} is not supported "
                         "(use WKB or point)")
    return column, crs, encoding


def decode_geometry(column: pa.Array | pa.ChunkedArray, encoding: str) -> np.ndarray:
    """Decode a GeoParquet geometry column (``WKB`` or native ``point``) to shapely objects."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if encoding == "point":
        x = column.field("x").to_numpy(zero_copy_only=False)
        y = column.field("y").to_numpy(zero_copy_only=False)
        geoms = shapely.points(x, y)
        geoms[~column.is_valid().to_numpy(zero_copy_only=False)] = None
        return geoms
    return shapely.from_wkb(column.to_numpy(zero_copy_only=False))


def _iter_parquet(path: Path, batch_rows: int | None, resolve: Resolve, check: Check,
                  logged: list[bool]) -> Iterator[pd.DataFrame]:
    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    schema = pfile.schema_arrow
    geo_raw = (schema.metadata or {}).get(b"geo")
    geo = json.loads(geo_raw) if geo_raw else None
    geom_names = set(geo.get("columns", {})) if geo else set()
    names = [n for n in schema.names if n not in geom_names]
    mapping = resolve(names)
    geom_col = crs = encoding = None
    present = set(mapping.values())
    if geo:
        geom_col, crs, encoding = parquet_geometry(path, geo)
        present.add(GEOMETRY)
    check(present, source=str(path), columns=names)
    columns = list(mapping) + ([geom_col] if geom_col else [])
    try:
        if batch_rows is None:
            batches: Iterator[Any] = iter([pfile.read(columns=columns)])
        else:
            batches = pfile.iter_batches(batch_size=batch_rows, columns=columns)
        for batch in batches:
            attrs = batch.select(list(mapping)).to_pandas().rename(columns=mapping)
            if geom_col:
                yield geoframe(attrs, decode_geometry(batch.column(geom_col), encoding), crs,
                                str(path), logged)
            else:
                yield attrs
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: cannot read Parquet data ({first_line(exc)})") from None


def _iter_vector(path: Path, batch_rows: int | None, resolve: Resolve, check: Check,
                 logged: list[bool]) -> Iterator[pd.DataFrame]:
    try:
        layers = pyogrio.list_layers(path)
        if len(layers) == 0:
            raise InputError(f"{path}: holds no layer")
        layer = layers[0][0]
        info = pyogrio.read_info(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise InputError(f"{path}: not a readable table or vector file ({first_line(exc)})"
                         ) from None
    if len(layers) > 1:
        logger.info("%s holds %d layers; reading the first, %r", path, len(layers), layer)
    if info["features"] == 0:
        return  # iter_tables raises EmptyInputError (a layer without features has no schema)
    names = [str(f) for f in info["fields"]]
    mapping = resolve(names)
    has_geom = info["geometry_type"] is not None
    present = set(mapping.values()) | ({GEOMETRY} if has_geom else set())
    check(present, source=str(path), columns=names)
    if has_geom and info["crs"] is None:
        raise CRSError(f"{path}: layer {layer!r} has no CRS")
    try:
        with pyogrio.raw.open_arrow(path, layer=layer, columns=list(mapping),
                                    read_geometry=has_geom, batch_size=batch_rows or 65_536,
                                    use_pyarrow=True) as (meta, reader):
            geom_name = meta.get("geometry_name") or "wkb_geometry"
            parts = []
            for batch in reader:
                attrs = batch.select(list(mapping)).to_pandas().rename(columns=mapping)
                if has_geom:
                    attrs = geoframe(attrs, shapely.from_wkb(
                        batch.column(geom_name).to_numpy(zero_copy_only=False)), info["crs"],
                        str(path), logged)
                if batch_rows is None:
                    parts.append(attrs)
                else:
                    yield attrs
            if batch_rows is None and parts:
                yield pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
            pyogrio.errors.FieldError) as exc:
        raise InputError(f"{path}: cannot read layer {layer!r} ({first_line(exc)})") from None


def iter_tables(path: str | Path, *, batch_rows: int | None, resolve: Resolve, check: Check,
                text_columns: set[str] | frozenset[str] = frozenset(),
                empty_message: str = "holds no rows", sheet: str | int | None = None,
                header_row: int | None = None) -> Iterator[pd.DataFrame]:
    """Yield the rows of a table file in batches with canonical column names.

    Parameters
    ----------
    path
        CSV (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``/``.bz2``/``.xz``; delimiter
        sniffed from the header among ``, ; TAB |``), an Excel workbook (``.xlsx``,
        ``.xlsm``, ``.xlsb``, ``.xls``, ``.ods``; see :mod:`kantong.engine.inputs.excel`),
        Parquet/GeoParquet, or any vector format pyogrio reads (first layer).
    batch_rows
        Rows per batch; ``None`` yields one batch.
    resolve
        Maps the file's column names to ``{name as read: canonical name}``; other columns
        are not read.
    check
        Called as ``check(canonical_names, source=path, columns=file_columns)`` before any
        row is read; raises when a required column is missing. A geometry counts as the
        name ``"geometry"``.
    text_columns
        Canonical columns read as text from CSV (ids and codes keep leading zeros).
    empty_message
        Message of the :class:`EmptyInputError` raised when the file holds no rows.
    sheet, header_row
        Workbooks only: sheet name or 0-based index, and the 1-based header row; both
        detected when ``None`` (an error for other formats).

    Yields
    ------
    pandas.DataFrame or geopandas.GeoDataFrame
        GeoDataFrames (EPSG:4326) for sources with a geometry.

    Raises
    ------
    InputError, CRSError, EmptyInputError
        Missing or unreadable file, geometry without a CRS, zero rows.
    """
    path = Path(path)
    if not path.is_file():  # a FIFO or device (/dev/zero) would never end
        raise InputError(f"{path}: " + ("not a regular file" if path.exists()
                                        else "file not found"))
    if batch_rows is not None and batch_rows < 1:
        raise InputError(f"batch_rows must be >= 1, got {batch_rows}")
    kind = table_kind(path)
    if kind != "excel" and (sheet is not None or header_row is not None):
        raise InputError(f"{path}: a sheet or header row applies to Excel workbooks only")
    logged: list[bool] = []
    if kind == "excel":
        batches = iter_excel(path, batch_rows=batch_rows, resolve=resolve, check=check,
                             score=lambda names: len(resolve(list(names))), sheet=sheet,
                             header_row=header_row)
    elif kind == "csv":
        batches = _iter_csv(path, batch_rows, resolve, check, set(text_columns))
    elif kind == "parquet":
        batches = _iter_parquet(path, batch_rows, resolve, check, logged)
    else:
        batches = _iter_vector(path, batch_rows, resolve, check, logged)
    total = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        total += len(batch)
        yield batch
    if total == 0:
        raise EmptyInputError(f"{path}: {empty_message}")



def read_vector_layer(path: str | Path, *, what: str) -> gpd.GeoDataFrame:
    """Read a whole vector layer (boundaries, roads, rivers ...) that must carry a CRS.

    Parameters
    ----------
    path : str or Path
        Any vector format GDAL reads (GeoPackage, GeoJSON, Shapefile ...).
    what : str
        What the layer is, for messages (``"boundaries"``, ``"roads"`` ...).

    Returns
    -------
    geopandas.GeoDataFrame
        The layer in its own CRS.

    Raises
    ------
    InputError
        If the file is missing or unreadable.
    CRSError
        If the layer has no CRS.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} file not found")
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio raises several unrelated types
        raise InputError(f"{path}: cannot read {what} ({first_line(exc)})") from None
    if gdf.crs is None:
        raise CRSError(f"{path}: the {what} layer has no CRS: set one (e.g. EPSG:4326)")
    return gdf


__all__ = ["GEOMETRY", "iter_tables", "read_vector_layer", "table_kind"]
