"""Partitioned Parquet inputs: list the files, plan row-group pieces, read one piece.

A partitioned register is a directory of Parquet files (``part-00000.parquet`` ...), a
glob (``/data/hh/*.parquet``) or either as an fsspec URL (``s3://bucket/hh/``,
``gs://...``; the matching fsspec package, e.g. ``s3fs``, must be installed wherever
the files are read). A single Parquet file is a partitioned input of one file.

**Order.** Files are sorted by their path (so ``part-00009`` comes before ``part-00010``
when the numbers are zero-padded); rows keep their file order. "First" (for the
duplicate ``household_id`` rule) means the lowest ``(file, row)`` in that order, the
same order the local backend reads them in.

**Pieces.** A piece is a run of consecutive row groups of one file holding about
``target_rows`` rows; it is the unit of work of the Dask backend and knows its row offset
in its file, so rejects carry the same 1-based record numbers as a local build.
Reading a piece converts exactly like :func:`kantong.engine.inputs.tables.iter_tables` (same column
resolution, GeoParquet decoding and reprojection), so a piece validates to the same rows.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kantong.engine.errors import EmptyInputError, InputError, first_line
from kantong.engine.inputs.tables import (
    GEOMETRY,
    PARQUET_SUFFIXES,
    decode_geometry,
    geoframe,
    parquet_geometry,
)

logger = logging.getLogger(__name__)

#: Characters that make a households argument a glob pattern.
GLOB_CHARS = frozenset("*?[")
_CHUNK = 1 << 20

Resolve = Callable[[list[str]], dict[str, str]]
Check = Callable[..., None]


def is_url(spec: str | Path) -> bool:
    """Return True when ``spec`` is an fsspec URL (``s3://...``, ``gs://...``, ``file://...``)."""
    return "://" in str(spec)


def is_partitioned(spec: str | Path) -> bool:
    """Return True when ``spec`` names several files: a directory, a glob or a URL."""
    text = str(spec)
    return is_url(text) or bool(GLOB_CHARS & set(text)) or Path(text).is_dir()


def _is_part(name: str) -> bool:
    """Return True for data files: Parquet suffix, not hidden, not ``_metadata``."""
    base = name.rsplit("/", 1)[-1]
    return (not base.startswith((".", "_"))
            and any(base.lower().endswith(s) for s in PARQUET_SUFFIXES))


def _filesystem(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with dask
        raise InputError(f"{url}: reading URLs needs fsspec (pip install fsspec)") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise InputError(f"{url}: cannot open this URL ({exc}); install the fsspec backend "
                         "for its scheme, e.g. s3fs for s3://") from None
    return fs, path


def list_parts(spec: str | Path) -> list[str]:
    """Return the Parquet files of a partitioned input, sorted by path.

    Parameters
    ----------
    spec
        A Parquet file, a directory (searched recursively for ``*.parquet``,
        ``*.geoparquet``, ``*.pq``; hidden and ``_``-prefixed files skipped), a glob, or
        any of these as an fsspec URL.

    Returns
    -------
    list of str
        Local paths, or full URLs (``s3://bucket/key``) for URL inputs.

    Raises
    ------
    InputError
        Nothing matches, or a matched file is not Parquet.

    Examples
    --------
    >>> list_parts("demo/households_synthetic")  # doctest: +SKIP
    ['demo/households_synthetic/part-00000.parquet', ...]
    """
    text = str(spec)
    if is_url(text):
        fs, path = _filesystem(text)
        if GLOB_CHARS & set(path):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = fs.find(path)
        elif fs.exists(path):
            found = [path]
        else:
            raise InputError(f"{text}: households not found")
        files = sorted(f for f in found if _is_part(f))
        files = [fs.unstrip_protocol(f) for f in files]
    elif GLOB_CHARS & set(text):
        files = sorted(f for f in glob.glob(text, recursive=True)
                       if Path(f).is_file() and _is_part(f))
    elif Path(text).is_dir():
        files = sorted(str(p) for p in Path(text).rglob("*") if p.is_file()
                       and _is_part(p.name)
                       and not any(part.startswith((".", "_"))
                                   for part in p.relative_to(text).parts[:-1]))
    elif Path(text).is_file():
        if not _is_part(Path(text).name):
            raise InputError(f"{text}: the Dask backend reads Parquet files only "
                             "(convert CSV with `kantong demo-data --format parquet` or pyarrow)")
        files = [text]
    else:
        raise InputError(f"{text}: households not found")
    if not files:
        raise InputError(f"{text}: no Parquet file found (expected *.parquet files)")
    return files


def _open(path: str) -> pq.ParquetFile:
    try:
        if is_url(path):
            fs, inner = _filesystem(path)
            return pq.ParquetFile(fs.open(inner, "rb"))
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None


@dataclass(frozen=True)
class Piece:
    """A run of consecutive row groups of one Parquet file: one unit of work.

    Attributes
    ----------
    index
        Position of the piece in (file, row) order, 0-based, over the whole input.
    path
        The file (local path or URL).
    file_index
        Position of the file in :func:`list_parts` order.
    row_groups
        Row-group numbers in the file.
    row_offset
        Rows of the file before this piece (its first record is ``row_offset + 1``).
    rows
        Rows in the piece.
    """

    index: int
    path: str
    file_index: int
    row_groups: tuple[int, ...]
    row_offset: int
    rows: int


def plan_pieces(paths: Sequence[str], *, target_rows: int = 1_000_000,
                resolve: Resolve | None = None, check: Check | None = None) -> list[Piece]:
    """Split files into pieces of whole row groups holding about ``target_rows`` rows each.

    Only the Parquet footers are read. Row groups are never split, so a piece holds at
    least one row group; a file with one huge row group is one piece (write files with
    row groups of about a million rows, as ``kantong demo-data --partitions`` does).

    Parameters
    ----------
    paths
        Files in order (from :func:`list_parts`).
    target_rows
        Rows per piece to aim for.
    resolve, check
        When given, the columns of every file are checked from its schema (no row is
        read), as :func:`read_piece` would, so a bad file fails before any work starts.

    Returns
    -------
    list of Piece
        In (file, row) order; files without rows give no piece.

    Raises
    ------
    InputError, MissingColumnError, CRSError
        A file is unreadable, lacks a required column, or ``target_rows < 1``.
    """
    if target_rows < 1:
        raise InputError(f"rows per piece must be >= 1, got {target_rows}")
    pieces: list[Piece] = []
    for file_index, path in enumerate(paths):
        pfile = _open(path)
        if resolve is not None and check is not None:
            _columns(pfile, path, resolve, check)
        meta = pfile.metadata
        groups: list[int] = []
        offset = start = 0
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            if n == 0:
                continue
            if groups and offset - start + n > target_rows:
                pieces.append(Piece(len(pieces), path, file_index, tuple(groups), start,
                                    offset - start))
                groups, start = [], offset
            groups.append(rg)
            offset += n
        if groups:
            pieces.append(Piece(len(pieces), path, file_index, tuple(groups), start,
                                offset - start))
    return pieces


def read_piece(piece: Piece, *, resolve: Resolve, check: Check,
               only: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one piece with canonical column names, converted like ``iter_tables``.

    Parameters
    ----------
    piece
        From :func:`plan_pieces`.
    resolve, check
        Column resolution and check, as for :func:`kantong.engine.inputs.tables.iter_tables`
        (e.g. :func:`kantong.engine.inputs.households.canonical_columns` and
        :func:`kantong.engine.inputs.households.check_columns`).
    only
        Canonical columns to read (default all the resolved ones and the geometry);
        with ``only`` the geometry is read only when ``"geometry"`` is listed.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        GeoDataFrame (EPSG:4326) when the file is GeoParquet and the geometry is read.

    Raises
    ------
    InputError, MissingColumnError, CRSError
        Unreadable file, missing required column, geometry without CRS.
    """
    pfile = _open(piece.path)
    mapping, geom_col, crs, encoding = _columns(pfile, piece.path, resolve, check)
    if only is not None:
        mapping = {k: v for k, v in mapping.items() if v in only}
        if GEOMETRY not in only:
            geom_col = None
    columns = list(mapping) + ([geom_col] if geom_col else [])
    try:
        table = pfile.read_row_groups(list(piece.row_groups), columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{piece.path}: cannot read Parquet data ({first_line(exc)})") from None
    attrs = table.select(list(mapping)).to_pandas().rename(columns=mapping)
    if geom_col:
        geoms = decode_geometry(table.column(geom_col), encoding)
        return geoframe(attrs, geoms, crs, piece.path, [])
    return attrs


def _columns(pfile: pq.ParquetFile, path: str, resolve: Resolve, check: Check
             ) -> tuple[dict[str, str], str | None, Any, str | None]:
    """Return the column mapping and GeoParquet geometry (column, CRS, encoding) of a file."""
    schema = pfile.schema_arrow
    geo_raw = (schema.metadata or {}).get(b"geo")
    geo = json.loads(geo_raw) if geo_raw else None
    geom_names = set(geo.get("columns", {})) if geo else set()
    mapping = resolve([n for n in schema.names if n not in geom_names])
    present = set(mapping.values())
    geom_col = crs = encoding = None
    if geo:
        geom_col, crs, encoding = parquet_geometry(Path(path), geo)
        present.add(GEOMETRY)
    check(present, source=path)
    return mapping, geom_col, crs, encoding


def iter_part_batches(paths: Sequence[str], *, batch_rows: int, resolve: Resolve,
                      check: Check) -> Iterator[tuple[Piece, pd.DataFrame]]:
    """Stream every piece of ``paths`` in (file, row) order: bounded memory, one process.

    This is how the local backend reads a partitioned input: one piece at a time, so a
    caller keeping a ``seen_ids`` set across pieces applies keep-first exactly like the
    Dask backend.

    Yields
    ------
    tuple
        ``(piece, frame)``; the frame as from :func:`read_piece`.

    Raises
    ------
    EmptyInputError
        No file holds a row.
    """
    pieces = plan_pieces(paths, target_rows=batch_rows, resolve=resolve, check=check)
    if not pieces:
        raise EmptyInputError(f"{paths[0] if paths else 'households'}: holds no household rows")
    for piece in pieces:
        yield piece, read_piece(piece, resolve=resolve, check=check)


def household_batches(households: str | Path, *, batch_rows: int, schema: Any = None,
                      sheet: str | int | None = None, header_row: int | None = None
                      ) -> Iterator[tuple[str, int, pd.DataFrame]]:
    """Stream a register (one file of any format, or partitioned Parquet) in batches.

    This is the read loop of the local backend: one batch in memory at a time, in
    (file, row) order, each with the file it comes from and its row offset in that file.

    Parameters
    ----------
    households
        A file (CSV, Parquet, any vector format; read by
        :func:`kantong.engine.inputs.households.iter_household_batches`) or a partitioned Parquet
        input
        (directory, glob, URL; see :func:`list_parts`).
    batch_rows
        Rows per batch (Parquet: whole row groups up to about this many rows).
    schema
        Column and label mapping (:class:`kantong.engine.inputs.schema.Schema`, preset name
        or file; ``None`` for the built-in one); pass the same to ``validate_households``.
    sheet, header_row
        Workbooks only (see :func:`kantong.engine.inputs.excel.read_sheet`).

    Yields
    ------
    tuple
        ``(source, row_offset, raw batch)``: pass them to
        :func:`kantong.engine.inputs.households.validate_households` with one shared ``seen_ids``
        set.
    """
    from kantong.engine.inputs.households import iter_household_batches
    from kantong.engine.inputs.schema import Schema

    schema = Schema.load(schema)
    if is_partitioned(households):
        if sheet is not None or header_row is not None:
            raise InputError(f"{households}: a sheet or header row applies to Excel "
                             "workbooks only")
        for piece, raw in iter_part_batches(list_parts(households), batch_rows=batch_rows,
                                            resolve=schema.resolve, check=schema.check):
            yield piece.path, piece.row_offset, raw
        return
    offset = 0
    for raw in iter_household_batches(households, batch_rows=batch_rows, schema=schema,
                                      sheet=sheet, header_row=header_row):
        yield str(households), offset, raw
        offset += len(raw)


def file_records(paths: Sequence[str], *, hash_files: bool = True) -> list[dict[str, Any]]:
    """Return ``{"path", "size", "sha256"}`` per file (URLs: ``size`` and fsspec ``ukey``).

    Remote files are not downloaded to hash them: their record holds the storage's own
    key (ETag or modification stamp) as ``ukey``.
    """
    out = []
    for path in paths:
        if is_url(path):
            fs, inner = _filesystem(path)
            info = fs.info(inner)
            try:
                ukey = fs.ukey(inner)
            except (NotImplementedError, OSError, AttributeError):  # pragma: no cover
                ukey = None
            out.append({"path": path, "size": int(info.get("size") or 0), "ukey": ukey})
            continue
        p = Path(path)
        record: dict[str, Any] = {"path": str(p.resolve()), "size": p.stat().st_size}
        if hash_files:
            digest = hashlib.sha256()
            with open(p, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
            record["sha256"] = digest.hexdigest()
        out.append(record)
    return out



__all__ = ["Piece", "file_records", "household_batches", "is_partitioned", "is_url",
           "iter_part_batches", "list_parts", "plan_pieces", "read_piece"]
