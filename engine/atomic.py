"""Atomic writes: every output goes to a temporary sibling first, then is renamed.

A reader never sees a half-written file, and a failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)


def _make_parent(final: Path) -> None:
    """Create the folder of ``final``; a file in the way is a one-line ``InputError``."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{final}: cannot write here: {final.parent} is not a directory "
                         "(a file is in the way)") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path
        Final destination of the file.

    Yields
    ------
    Path
        A temporary path in the same directory (same file system, so the rename is atomic).
        The caller writes the whole file there. On an exception it is removed.

    Examples
    --------
    >>> with atomic_path("out.geojson") as tmp:  # doctest: +SKIP
    ...     gdf.to_file(tmp, driver="GeoJSON")
    """
    final = Path(path)
    _make_parent(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + final.suffix,
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # let writers that refuse to overwrite create it themselves
    try:
        yield tmp
        os.replace(tmp, final)
        logger.debug("wrote %s", final)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place on success.

    An existing directory at ``path`` is replaced only once the new one is complete.
    On an exception the temporary directory is removed and ``path`` is untouched.
    """
    final = Path(path)
    _make_parent(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        logger.debug("wrote directory %s", final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (NaN refused) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
