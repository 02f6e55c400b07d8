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
import math
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kantong.engine.atomic import write_json
from kantong.engine.constants import MANIFEST_FILE
from kantong.engine.errors import RunError, first_line

_CHUNK = 1 << 20


def file_record(path: str | Path) -> dict[str, Any]:
    """Return ``{"path", "size", "sha256"}`` of an input file (read in 1 MiB chunks)."""
    p = Path(path)
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": digest.hexdigest()}


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
        The manifest as written.

    Raises
    ------
    RunError
        If the run has no readable manifest (see :func:`read_manifest`).
    """
    manifest = read_manifest(run_dir)
    manifest.update(sections)
    return write_manifest(run_dir, manifest)


__all__ = ["Timer", "file_record", "json_safe", "merge_manifest", "new_run_id",
           "peak_memory_mib", "read_manifest", "utc_now", "write_manifest"]
