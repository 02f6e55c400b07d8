"""Dask backend of ``kantong build``: ingest, H3 fusion and cell sums over a cluster.

The households stage of a build (read, validate, place, index to H3, per-cell sums) runs
as Dask tasks over the pieces of a partitioned Parquet input
(:mod:`kantong.engine.inputs.partitions`);
everything after the per-cell sums (cell table, population, rollups, pockets, scores)
runs on the client exactly as in a local build. Each piece goes through the very same
functions as a local batch: :func:`kantong.engine.inputs.households.validate_households` and
:func:`kantong.engine.build.grid.households_to_partial_sums`; the partial tables are summed with a
``dask.dataframe`` groupby, so counts are identical to a local build and float means agree
to rounding (summation order).

**Duplicates across pieces.** Locally a ``seen_ids`` set follows the batches, so the first
row of an id in (file, row) order is kept and every later one is rejected. Here:

1. every piece hashes its (normalised, non-blank) ids, one 64-bit hash per distinct id,
   split by hash range into buckets; one reducer per bucket finds the hashes present in
   more than one piece (a hash-partitioned reduction: no task holds every hash);
2. the pieces return the ids (as text) behind those few hashes, so hash collisions are
   resolved exactly; an id found in several pieces gets its first piece;
3. each piece validates with ``seen_ids`` = the ids whose first piece comes before it;
   within a piece, keep-first is applied by ``validate_households`` itself.

Every read row is either accepted or rejected: ``accepted + rejected == read`` over all
pieces, checked before returning.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from kantong.engine import __version__, datapaths
from kantong.engine.build.grid import households_to_partial_sums
from kantong.engine.build.placement import StudyArea
from kantong.engine.build.sums import PartialSums, empty_sums
from kantong.engine.build.travel import HouseholdValues
from kantong.engine.errors import EmptyInputError, EngineError, InputError, first_line
from kantong.engine.inputs.households import (
    blank_strings,
    canonical_columns,
    check_columns,
    validate_households,
)
from kantong.engine.inputs.partitions import Piece, list_parts, plan_pieces, read_piece
from kantong.engine.rundir import Timer, peak_memory_mib

logger = logging.getLogger(__name__)

#: Default number of worker processes of the LocalCluster started without ``--scheduler``.
DEFAULT_WORKERS = 2
#: Threads per worker process of the LocalCluster (the engine's numpy/h3ronpy code
#: parallelises itself; one task per process keeps memory per worker bounded).
DEFAULT_THREADS_PER_WORKER = 1
#: Data files every worker reads (study-area placement from village codes, admin codes).
WORKER_DATA_FILES = (datapaths.VILLAGES, datapaths.VILLAGE_POINTS,
                     datapaths.DESA_POINTS_KEMENDAGRI, datapaths.POPULATION_TIF)
_REJECT_COLUMNS = ["source", "row", "record_id", "reason"]
_ID = "household_id"
_FNV_PRIME = np.uint64(0x100000001B3)
#: Id hashes per reducer of the duplicate check (sets the number of buckets).
_ROWS_PER_BUCKET = 4_000_000


@dataclass(frozen=True)
class ClusterInfo:
    """What ran the build: scheduler address, workers and threads."""

    scheduler: str
    workers: int
    threads: int
    local: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict for the manifest."""
        return {"scheduler": self.scheduler, "workers": self.workers,
                "threads": self.threads, "threads_per_worker": self.threads // max(self.workers, 1),
                "local_cluster": self.local}


@dataclass(frozen=True, eq=False)
class DaskHouseholds:
    """Result of the households stage on Dask.

    Attributes
    ----------
    sums
        Per-cell sums indexed by ``uint64`` cell (as
        :func:`kantong.engine.build.grid.households_to_cell_sums`,
        summed over every piece); pass to :func:`kantong.engine.build.grid.cells_frame`.
    rejects
        ``source, row, record_id, reason`` of every rejected row, in (file, row) order.
    read, accepted, village_located
        Row counts over all pieces (``read == accepted + len(rejects)``).
    files, pieces
        Input files (in order) and pieces processed.
    cluster
        The cluster used.
    timings
        Wall seconds per stage on the client (``plan``, ``duplicates``, ``households``,
        ``combine``).
    task_seconds
        Seconds summed over all tasks per step on the workers (``read``, ``validate``,
        ``values``, ``aggregate``).
    worker_peak_memory_mib
        Peak resident memory of each worker process over its lifetime (for a long-lived
        cluster this may predate the build).
    partial
        The exact point (per cell) and village (per village) sums before the village
        allocation (for the per-village table of the run).
    """

    sums: pd.DataFrame
    rejects: pd.DataFrame
    read: int
    accepted: int
    village_located: int
    files: list[str]
    pieces: int
    cluster: ClusterInfo
    timings: dict[str, float]
    task_seconds: dict[str, float]
    worker_peak_memory_mib: dict[str, float] = field(default_factory=dict)
    partial: PartialSums | None = field(default=None, repr=False)

    def manifest_section(self) -> dict[str, Any]:
        """Return the ``backend`` section of the run manifest."""
        return {"name": "dask", **self.cluster.to_dict(), "files": len(self.files),
                "pieces": self.pieces, "timings_s": self.timings,
                "task_seconds": self.task_seconds,
                "worker_peak_memory_mib": self.worker_peak_memory_mib}


# ---------------------------------------------------------------------------- cluster


def _worker_report() -> dict[str, Any]:
    """Run on each worker: engine version and whether the bundled data is there."""
    missing = []
    for rel in WORKER_DATA_FILES:
        try:
            datapaths.data_file(rel)
        except InputError:
            missing.append(rel)
    return {"engine_version": __version__, "data_root": str(datapaths.data_root()),
            "missing": missing}


def check_workers(client: Any) -> None:
    """Raise :class:`InputError` when a worker runs another engine version or lacks data.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    """
    reports = client.run(_worker_report)
    if not reports:
        raise InputError(f"Dask scheduler {client.scheduler.address} has no worker")
    for worker, rep in reports.items():
        if rep["engine_version"] != __version__:
            raise InputError(f"Dask worker {worker} runs kantong {rep['engine_version']}, this "
                             f"client {__version__}: install the same version on every worker")
        if rep["missing"]:
            raise InputError(f"Dask worker {worker}: bundled data missing under "
                             f"{rep['data_root']} ({rep['missing'][0]} ...): set "
                             "KANTONG_DATA_DIR on the workers to a copy of data/")


@contextmanager
def dask_client(scheduler: str | None = None, *, workers: int = DEFAULT_WORKERS,
                threads_per_worker: int = DEFAULT_THREADS_PER_WORKER,
                memory_limit: str | None = "auto", timeout: str = "30s"
                ) -> Iterator[tuple[Any, ClusterInfo]]:
    """Connect to a Dask scheduler, or start a LocalCluster of processes; close on exit.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts a
        ``LocalCluster`` that is shut down when the block ends.
    workers, threads_per_worker
        Size of the LocalCluster (ignored with ``scheduler``).
    memory_limit
        Per-worker memory limit of the LocalCluster (Dask syntax, ``"4GiB"``; ``"auto"``
        shares the machine's memory).
    timeout
        How long to try connecting to ``scheduler``.

    Yields
    ------
    tuple
        ``(distributed.Client, ClusterInfo)``.

    Raises
    ------
    InputError
        The scheduler cannot be reached, has no worker, or a worker runs another
        engine version or lacks the bundled data.

    Examples
    --------
    >>> with dask_client(workers=2) as (client, info):  # doctest: +SKIP
    ...     print(info.workers, info.threads)
    2 2
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("the Dask backend needs dask: pip install "
                         "'dask[dataframe,distributed]' (or kantong[dask])") from None
    if workers < 1 or threads_per_worker < 1:
        raise InputError(f"workers and threads per worker must be >= 1, got {workers}, "
                         f"{threads_per_worker}")
    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                   processes=True, dashboard_address=None,
                                   memory_limit=memory_limit, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(f"cannot connect to the Dask scheduler {scheduler} "
                                 f"({first_line(exc)})"
                                 ) from None
        try:
            check_workers(client)
            info = client.scheduler_info(n_workers=-1)["workers"]
            ci = ClusterInfo(scheduler=str(client.scheduler.address), workers=len(info),
                             threads=sum(w["nthreads"] for w in info.values()),
                             local=cluster is not None)
            logger.info("Dask: %d workers, %d threads at %s", ci.workers, ci.threads,
                        ci.scheduler)
            yield client, ci
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------- tasks


def hash_strings(values: pd.Series) -> np.ndarray:
    """Return a 64-bit hash per string (no missing values), vectorised over Arrow buffers.

    A polynomial hash of the UTF-8 bytes (one vectorised step per byte position) mixed
    with the length and a splitmix64 finaliser: about seven times faster than
    ``pandas.util.hash_pandas_object`` on ids of 10-20 characters. Equal
    strings always get equal hashes (in every process); unequal strings almost never do,
    and callers compare the strings themselves where it matters.

    Parameters
    ----------
    values
        Strings without missing values.

    Returns
    -------
    numpy.ndarray
        ``uint64``, one per value.
    """
    arr = pa.array(values.array if hasattr(values.array, "__arrow_array__")
                   else values.to_numpy(dtype=object), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        raise ValueError("hash_strings: missing values")
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset: arr.offset + n + 1]
    start = offsets[:-1]
    lengths = np.diff(offsets)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None \
        else np.empty(0, np.uint8)
    h = np.zeros(n, dtype=np.uint64)
    shortest = int(lengths.min())
    for j in range(int(lengths.max())):  # a loop over byte positions, not over strings
        if j < shortest:
            h = h * _FNV_PRIME + data[start + j]
        else:
            rows = np.flatnonzero(lengths > j)
            h[rows] = h[rows] * _FNV_PRIME + data[start[rows] + j]
    h ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def _piece_ids(piece: Piece) -> tuple[pd.Series, np.ndarray]:
    """Return the normalised non-blank ids of a piece (as ingest sees them) and hashes."""
    raw = read_piece(piece, resolve=canonical_columns, check=check_columns, only=(_ID,))
    ids, blank = blank_strings(raw[_ID])
    given = ids[~blank]
    return given, hash_strings(given)


def _piece_id_hashes(piece: Piece, buckets: int) -> list[np.ndarray]:
    """Distinct id hashes of a piece, sorted, split into ``buckets`` ranges of the hash."""
    _, h = _piece_ids(piece)
    h = _sorted_unique(h)
    edges = np.searchsorted(h, _bucket_edges(buckets))
    return np.split(h, edges)


def _bucket_edges(buckets: int) -> np.ndarray:
    """Inner edges splitting the uint64 range into ``buckets`` (a power of 2) equal ranges."""
    bits = buckets.bit_length() - 1
    return (np.arange(1, buckets, dtype=np.uint64) << np.uint64(64 - bits)) if bits else \
        np.empty(0, dtype=np.uint64)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Return the distinct values, sorted (sort + mask: ~10x faster than numpy 2.4's unique)."""
    s = np.sort(values)
    return s[np.r_[True, s[1:] != s[:-1]]] if s.size else s


def _shared_hashes(*parts: np.ndarray) -> np.ndarray:
    """Hashes present in more than one part (each part holds distinct hashes)."""
    every = np.sort(np.concatenate(parts)) if parts else np.empty(0, np.uint64)
    return _sorted_unique(every[1:][every[1:] == every[:-1]])


def _bucket(parts: list[np.ndarray], b: int) -> np.ndarray:
    return parts[b]


def _piece_candidate_ids(piece: Piece, candidates: np.ndarray) -> pd.DataFrame:
    """Distinct ids of a piece whose hash is a candidate (sorted array), with the piece."""
    given, h = _piece_ids(piece)
    at = np.minimum(np.searchsorted(candidates, h), max(candidates.size - 1, 0))
    hit = given[candidates[at] == h].unique() if candidates.size else given.iloc[:0]
    return pd.DataFrame({_ID: pd.array(np.asarray(hit, dtype=object), dtype="string"),
                         "piece": np.full(len(hit), piece.index, dtype=np.int64)})


@dataclass(frozen=True, eq=False)
class _PieceResult:
    sums: pd.DataFrame
    villages: pd.DataFrame
    rejects: pd.DataFrame
    read: int
    accepted: int
    located: int
    seconds: dict[str, float]


def _process_piece(piece: Piece, *, area: StudyArea, values: HouseholdValues | None,
                   first_piece: pd.Series, resolution: int) -> _PieceResult:
    """Read, validate and aggregate one piece (runs on a worker)."""
    t0 = time.perf_counter()
    raw = read_piece(piece, resolve=canonical_columns, check=check_columns)
    t1 = time.perf_counter()
    shapely.prepare(area.geometry)  # preparation does not survive pickling
    seen = set(first_piece.index[first_piece.to_numpy() < piece.index])
    res = validate_households(raw, source=piece.path, row_offset=piece.row_offset,
                              study_area=area, seen_ids=seen)
    del raw
    t2 = time.perf_counter()
    vals = values(res.accepted) if values is not None else {}
    t3 = time.perf_counter()
    part = households_to_partial_sums(res.accepted, resolution=resolution, values=vals)
    t4 = time.perf_counter()
    return _PieceResult(sums=part.cells.reset_index(), villages=part.villages,
                        rejects=res.rejects, read=res.read,
                        accepted=len(res.accepted), located=res.village_located,
                        seconds={"read": t1 - t0, "validate": t2 - t1, "values": t3 - t2,
                                 "aggregate": t4 - t3})


def _sums_of(result: _PieceResult) -> pd.DataFrame:
    return result.sums


def _summary_of(result: _PieceResult) -> dict[str, Any]:
    return {"rejects": result.rejects, "read": result.read, "accepted": result.accepted,
            "located": result.located, "seconds": result.seconds,
            "villages": result.villages}


# ---------------------------------------------------------------------------- driver


def first_pieces_of_shared_ids(client: Any, pieces: Sequence[Piece]) -> dict[str, int]:
    """Return ``{household_id: index of its first piece}`` for ids found in several pieces.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    pieces
        All pieces of the input, in order.

    Returns
    -------
    dict
        Only ids present (non-blank, normalised as ingest does) in two pieces or more.
    """
    if len(pieces) < 2:
        return {}
    # hash-partitioned reduction: bucket b of every piece goes to reducer b, so no task
    # holds more than about rows / buckets hashes. (dask.dataframe's value_counts with
    # split_out does the same; on 20 M ids its shuffle took ~10 s, these reducers ~1.3 s.)
    rows = sum(p.rows for p in pieces)
    buckets = 1 << max(2, math.ceil(math.log2(max(1, rows / _ROWS_PER_BUCKET))))
    buckets = min(buckets, 256)
    per_piece = client.map(_piece_id_hashes, list(pieces), buckets=buckets, pure=False)
    shared = [client.submit(_shared_hashes,
                            *[client.submit(_bucket, f, b, pure=False) for f in per_piece],
                            pure=False)
              for b in range(buckets)]
    candidates = np.sort(np.concatenate(client.gather(shared)))
    del per_piece, shared
    logger.info("duplicates: %d id hashes in several pieces", candidates.size)
    if candidates.size == 0:
        return {}
    cand = client.scatter(candidates, broadcast=True)
    found = client.gather(client.map(_piece_candidate_ids, list(pieces), candidates=cand,
                                     pure=False))
    table = pd.concat(found, ignore_index=True)
    agg = table.groupby(_ID)["piece"].agg(["min", "nunique"])
    agg = agg[agg["nunique"] > 1]
    return {str(k): int(v) for k, v in agg["min"].items()}


def dask_households(households: str | Path, *, client: Any, cluster: ClusterInfo,
                    resolution: int, study_area: StudyArea,
                    values: HouseholdValues | None = None,
                    batch_rows: int = 1_000_000,
                    population_raster: str | Path | None = None) -> DaskHouseholds:
    """Run the households stage of a build on Dask: validate, place, index, sum per cell.

    Parameters
    ----------
    households
        Partitioned Parquet input: a directory, a glob, a file, or an fsspec URL of
        these (see :func:`kantong.engine.inputs.partitions.list_parts`). Workers read the files
        themselves: paths must be valid on every worker (shared storage or URLs).
    client, cluster
        From :func:`dask_client`.
    resolution
        H3 resolution of the cells.
    study_area
        Prepared study area (shipped once to every worker).
    values
        Per-household travel minutes to average per cell.
    batch_rows
        Rows per piece to aim for (pieces are whole Parquet row groups).
    population_raster
        Raster of the village weights (default: the bundled GHS-POP grid). Village-located
        households are summed per village on the workers and allocated to cells once, on
        the client, exactly as a local build does.

    Returns
    -------
    DaskHouseholds
        Per-cell sums, rejects, counts, timings.

    Raises
    ------
    InputError, MissingColumnError, CRSError, EmptyInputError
        No usable file, a required column missing, no row at all.

    Examples
    --------
    >>> with dask_client(workers=2) as (client, info):  # doctest: +SKIP
    ...     out = dask_households("hh/", client=client, cluster=info, resolution=8,
    ...                           study_area=area)
    >>> out.read == out.accepted + len(out.rejects)  # doctest: +SKIP
    True
    """
    import dask.dataframe as dd

    timer = Timer()
    with timer("plan"):
        files = list_parts(households)
        pieces = plan_pieces(files, target_rows=batch_rows, resolve=canonical_columns,
                             check=check_columns)
        if not pieces:
            raise EmptyInputError(f"{households}: holds no household rows")
    logger.info("dask: %d files, %d pieces, %d rows", len(files), len(pieces),
                sum(p.rows for p in pieces))
    with timer("duplicates"):
        firsts = first_pieces_of_shared_ids(client, pieces)
    logger.info("dask: %d household ids appear in several pieces", len(firsts))
    with timer("households"):
        area_f = client.scatter(study_area, broadcast=True, hash=False)
        values_f = client.scatter(values, broadcast=True, hash=False) if values else None
        # a Series is one object (a dict would be scattered value by value)
        firsts_f = client.scatter(pd.Series(firsts, dtype=np.int64), broadcast=True,
                                  hash=False)
        results = client.map(_process_piece, pieces, area=area_f, values=values_f,
                             first_piece=firsts_f, resolution=resolution, pure=False)
        summaries = client.gather(client.map(_summary_of, results, pure=False))
    with timer("combine"):
        # like CellAccumulator.add, pieces without an accepted household add nothing
        kept = [r for r, s in zip(results, summaries, strict=True) if s["accepted"]]
        if kept:
            sums_f = client.map(_sums_of, kept, pure=False)
            meta = client.submit(_empty_like, sums_f[0]).result()
            parts = dd.from_delayed(sums_f, meta=meta, verify_meta=False)
            total = client.compute(parts.groupby("cell").sum(split_every=8), sync=True)
            del sums_f
            sums = total.sort_index()
            sums.index = pd.Index(sums.index.to_numpy(dtype=np.uint64), name="cell")
        else:
            sums = empty_sums()
        del results, kept
        # village-located households: exact per-village totals, allocated once (as locally)
        village_parts = [s["villages"] for s in summaries if len(s["villages"])]
        villages = (pd.concat(village_parts).groupby(level=0, sort=True).sum()
                    if village_parts else empty_sums("village_code"))
        partial = PartialSums(cells=sums, villages=villages, resolution=resolution)
        sums = partial.combine(population_raster=population_raster, sampler=values)
    read = sum(s["read"] for s in summaries)
    accepted = sum(s["accepted"] for s in summaries)
    located = sum(s["located"] for s in summaries)
    frames = [s["rejects"] for s in summaries if len(s["rejects"])]
    rejects = (pd.concat(frames, ignore_index=True)[_REJECT_COLUMNS] if frames
               else pd.DataFrame(columns=_REJECT_COLUMNS))
    in_cells = float(sums["households"].sum())
    if read != accepted + len(rejects) or not np.isclose(in_cells, accepted, rtol=1e-9):
        raise EngineError(f"{households}: rows lost on Dask: read {read}, accepted {accepted}, "
                          f"rejected {len(rejects)}, in cells {in_cells:.6g}")
    task_seconds: dict[str, float] = {}
    for s in summaries:
        for k, v in s["seconds"].items():
            task_seconds[k] = task_seconds.get(k, 0.0) + v
    logger.info("dask: %d rows read, %d accepted (%d from village code), %d rejected, "
                "%d cells", read, accepted, located, len(rejects), len(sums))
    worker_peaks = {str(k): float(v) for k, v in client.run(peak_memory_mib).items()}
    return DaskHouseholds(sums=sums, rejects=rejects, read=read, accepted=accepted,
                          village_located=located, files=files, pieces=len(pieces),
                          cluster=cluster, timings=timer.as_dict(),
                          task_seconds={k: round(v, 3) for k, v in task_seconds.items()},
                          worker_peak_memory_mib=worker_peaks, partial=partial)


def _empty_like(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


__all__ = ["DEFAULT_THREADS_PER_WORKER", "DEFAULT_WORKERS", "ClusterInfo", "DaskHouseholds",
           "HouseholdValues", "check_workers", "dask_client", "dask_households",
           "first_pieces_of_shared_ids", "hash_strings"]
