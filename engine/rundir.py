"""The run directory's manifest: what went into a run, with which parameters, what it cost.

This module owns ``manifest.json``: :func:`read_manifest` is the one reader (a missing or
unreadable manifest is always a :class:`~kantong.engine.errors.RunError`);
:func:`write_manifest` and :func:`merge_manifest` are the (atomic) writers. The manifest
records inputs (path, size, sha256), parameters, the configuration, counts per
input, the travel-time method, timings per stage, cells per resolution and the peak
memory of the process. Later stages (pockets) add their own sections.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kantong.engine.atomic import atomic_dir, cleanup, write_json
from kantong.engine.constants import CELLS_FILE, MANIFEST_FILE
from kantong.engine.errors import InputError, RunError, first_line

_CHUNK = 1 << 20
_MAX_MANIFEST_BYTES = 16 << 20
logger = logging.getLogger(__name__)


def file_record(path: str | Path) -> dict[str, Any]:
    """Return ``{"path", "size", "sha256"}`` of an input file (read in 1 MiB chunks).

    Raises
    ------
    InputError
        If ``path`` is not a regular file (a directory, ``/dev/zero``, a FIFO: reading
        those would never end or mean nothing).
    """
    p = Path(path)
    if not p.is_file():
        what = "not found" if not p.exists() else "not a regular file"
        raise InputError(f"{p}: {what}")
    return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": _sha256(p)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def peak_memory_mib() -> float:
    """Return the peak resident memory of this process in MiB (``resource.getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with a ``Z`` suffix (seconds)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """Return a new random run id (UUID4 hex)."""
    return uuid.uuid4().hex


class Timer:
    """Wall-clock seconds per named stage.

    Examples
    --------
    >>> timer = Timer()
    >>> with timer("ingest"):
    ...     pass
    >>> sorted(timer.seconds)
    ['ingest']
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Time the ``with`` block; repeated stages add up."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def total(self) -> float:
        """Return seconds since the timer was made."""
        return time.perf_counter() - self._start

    def as_dict(self) -> dict[str, float]:
        """Return rounded stage seconds plus ``total``."""
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["total"] = round(self.total(), 3)
        return out


def json_safe(obj: Any) -> Any:
    """Return ``obj`` with NaN/inf floats replaced by ``None`` and paths made strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return json_safe(obj.item())
    return obj


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a run directory.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    RunError
        If the manifest is missing, not valid UTF-8 JSON, or not a JSON object.
    """
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise RunError(f"{path}: manifest missing; not a complete run directory "
                       "(made by `kantong build`?)")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise RunError(f"{path}: larger than {_MAX_MANIFEST_BYTES >> 20} MiB; not a manifest "
                       "written by kantong")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise RunError(f"{path}: not valid JSON ({first_line(exc)})") from None
    if not isinstance(manifest, dict):
        raise RunError(f"{path}: manifest is not a JSON object")
    return manifest


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` atomically (NaN/inf as ``null``); return what was written.

    Parameters
    ----------
    run_dir : str or Path
        The run directory (or the temporary directory a build is writing).
    manifest : dict
        The whole manifest.

    Returns
    -------
    dict
        The JSON-safe manifest as written.
    """
    manifest = json_safe(manifest)
    write_json(Path(run_dir) / MANIFEST_FILE, manifest)
    return manifest


def merge_manifest(run_dir: str | Path, sections: dict[str, Any]) -> dict[str, Any]:
    """Replace top-level sections of an existing manifest (e.g. ``"pockets"``), keep the rest.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    sections : dict
        Section name -> new content.

    Returns
    -------
    dict
        The manifest as written; a sealed manifest (one with file hashes) is resealed
        (:func:`seal_manifest`), since the caller has just written the files it describes.

    Raises
    ------
    RunError
        If the run has no readable manifest (see :func:`read_manifest`).
    """
    manifest = read_manifest(run_dir)
    manifest.update(sections)
    if SEAL_KEY in manifest:  # a sealed run whose writer just replaced files: record them
        return seal_manifest(run_dir, manifest, output_of=str(manifest.get(OUTPUT_OF_KEY)))
    return write_manifest(run_dir, manifest)


# ---- integrity: SHA-256 of every file of a run ---------------------------------------------
#: Manifest key: relative path -> {"size", "sha256"} of every file of the run.
FILES_KEY = "files"
#: Manifest key: SHA-256 of the manifest itself (canonical JSON without this key).
SEAL_KEY = "manifest_sha256"
#: Manifest key naming the command whose output the directory is.
OUTPUT_OF_KEY = "output_of"


def _run_files(run_dir: Path) -> list[Path]:
    """Regular files of a run directory (recursive), without the manifest and temporaries."""
    out = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if any(part.startswith(".kantong-") for part in rel.parts):
            continue
        if rel.as_posix() == MANIFEST_FILE or path.is_dir():
            continue
        out.append(path)
    return out


def file_hashes(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Return ``{relative path: {"size", "sha256"}}`` of every file of a run directory.

    Parameters
    ----------
    run_dir
        A run directory; ``manifest.json`` and Kantong temporaries are left out.

    Returns
    -------
    dict
        Sorted by path (POSIX separators).
    """
    root = Path(run_dir)
    return {p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
            for p in _run_files(root)}


def _seal_of(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != SEAL_KEY}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal_manifest(run_dir: str | Path, manifest: dict[str, Any], *, output_of: str = "build"
                  ) -> dict[str, Any]:
    """Record the hashes of every file of ``run_dir`` in ``manifest`` and write it atomically.

    Parameters
    ----------
    run_dir
        The (complete) run directory.
    manifest
        The manifest to write; ``files``, ``output_of`` and ``manifest_sha256`` are set.
    output_of
        The command whose output the directory is.

    Returns
    -------
    dict
        The manifest as written.
    """
    root = Path(run_dir)
    out = json_safe(dict(manifest))
    out[OUTPUT_OF_KEY] = output_of
    out[FILES_KEY] = file_hashes(root)
    out[SEAL_KEY] = _seal_of(out)
    write_json(root / MANIFEST_FILE, out)
    return out


def verify_run(run_dir: str | Path, *, trust: bool = False) -> dict[str, Any]:
    """Check a run directory against the hashes of its manifest; return the manifest.

    Every file listed must exist with its size and SHA-256, no other file may be present,
    and the manifest must match its own seal. A killed writer's leftovers are cleaned up
    first (:func:`engine.atomic.cleanup`).

    Parameters
    ----------
    run_dir
        A run directory written by ``kantong build``.
    trust
        Skip the hash checks (``--trust-run``); the manifest must still be readable.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    RunError
        A missing directory or manifest, or a run that does not match its manifest
        (one line naming the first differing file).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    cleanup(root.parent)
    cleanup(root)
    if not (root / CELLS_FILE).exists() and not (root / MANIFEST_FILE).exists():
        raise RunError(f"{root}: not a run directory ({CELLS_FILE} and {MANIFEST_FILE} missing; "
                       "made by `kantong build`?)")
    manifest = read_manifest(root)
    if trust:
        logger.warning("%s: integrity check skipped (--trust-run)", root)
        return manifest
    listed = manifest.get(FILES_KEY)
    if not isinstance(listed, dict) or SEAL_KEY not in manifest:
        raise RunError(f"{root}: the manifest records no file hashes (a run written by an older "
                       "kantong, or edited); rebuild it, or pass --trust-run to use it as it is")
    if manifest.get(SEAL_KEY) != _seal_of(manifest):
        raise RunError(f"{root / MANIFEST_FILE}: the manifest was edited after the run was "
                       "written; refusing a tampered run (--trust-run skips this check)")
    present = {p.relative_to(root).as_posix(): p for p in _run_files(root)}
    extra = sorted(set(present) - set(listed))
    if extra:
        raise RunError(f"{root}: holds {extra[0]!r}, which is not part of the run"
                       f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}; refusing "
                       "a tampered run (--trust-run skips this check)")
    for rel, record in listed.items():
        path = present.get(rel)
        if path is None:
            raise RunError(f"{root}: {rel} is missing; refusing an incomplete run")
        ok = isinstance(record, dict) and path.stat().st_size == record.get("size") \
            and _sha256(path) == record.get("sha256")
        if not ok:
            raise RunError(f"{root / rel}: content differs from the hash in the manifest; "
                           "refusing a tampered run (--trust-run skips this check)")
    logger.info("%s: %d files match their SHA-256", root, len(listed))
    return manifest


#: Top-level entries of a run written by a Kantong without file hashes (recognised as runs).
_LEGACY_ENTRIES = frozenset({"cells.parquet", "rollups", "rejects.csv", "facilities.parquet",
                             "friction.tif", "travel", "pockets.parquet", "pockets.geojson",
                             "sites", MANIFEST_FILE})


def is_run_output(path: str | Path, *, output_of: str = "build") -> bool:
    """Return whether ``path`` is a run written by ``kantong <output_of>`` holding nothing else.

    A run is recognised by its manifest: it names the command and lists every file of the
    directory (a run of an older Kantong without file hashes: only known run entries).
    Used to decide whether ``--out`` may be replaced.

    Parameters
    ----------
    path
        A directory.
    output_of
        The command that must have written it.

    Returns
    -------
    bool
    """
    root = Path(path)
    try:
        manifest = read_manifest(root)
    except RunError:
        return False
    listed = manifest.get(FILES_KEY)
    if isinstance(listed, dict):
        present = {p.relative_to(root).as_posix() for p in _run_files(root)}
        return manifest.get(OUTPUT_OF_KEY) == output_of and present <= set(listed)
    names = {p.name for p in root.iterdir() if not p.name.startswith(".kantong-")}
    return output_of == "build" and "run_id" in manifest and names <= _LEGACY_ENTRIES


@contextmanager
def update_run(run_dir: str | Path, *, trust: bool = False, verify: bool = True,
               output_of: str = "build") -> Iterator[Path]:
    """Update a run directory as one unit: yield a copy, then swap it in, resealed.

    The copy is made of hard links (cheap); writers must replace files rather than edit
    them in place (:func:`engine.atomic.atomic_path` does). On success the manifest on the
    copy is resealed (hashes of every file) and the copy replaces the run in one atomic
    exchange; on an exception the run is untouched.

    Parameters
    ----------
    run_dir
        The run directory (verified first unless ``trust``).
    trust
        Skip the integrity check of the current run (``--trust-run``, logged).
    verify
        ``False`` when the caller has just verified the run itself (no second check).
    output_of
        Command recorded in the resealed manifest.

    Yields
    ------
    Path
        The working copy; write the new files there.
    """
    if verify:
        verify_run(run_dir, trust=trust)
    with atomic_dir(run_dir, seed=True) as tmp:
        yield tmp
        seal_manifest(tmp, read_manifest(tmp), output_of=output_of)


__all__ = ["FILES_KEY", "OUTPUT_OF_KEY", "SEAL_KEY", "Timer", "file_hashes", "file_record",
           "is_run_output", "json_safe", "merge_manifest", "new_run_id", "peak_memory_mib",
           "read_manifest", "seal_manifest", "update_run", "utc_now", "verify_run",
           "write_manifest"]
