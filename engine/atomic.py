"""Atomic, crash-safe writes, and the rules of which paths a command may write.

Every output goes to a temporary sibling first (name prefix :data:`TEMP_PREFIX`, with the
writer's process id), then is renamed into place:

- :func:`atomic_path`: one file.
- :func:`atomic_dir`: one directory, swapped in with a single ``renameat2(RENAME_EXCHANGE)``
  on Linux, so a crash at any instant leaves the old or the new directory complete. Where the
  exchange is unavailable the old directory is parked under :data:`OLD_PREFIX` for the two
  renames, and :func:`cleanup` puts it back if the process died in between.
- :func:`atomic_files`: several sibling files as one unit: all are written as temporaries,
  then a journal (:data:`JOURNAL_PREFIX`) listing the renames is committed, the renames are
  done and the journal removed. :func:`cleanup` finishes the renames of a journal left by a
  killed process (roll forward) and removes temporaries no live process owns.

Every writer calls :func:`cleanup` on the folder it writes to first, so whatever a killed
run left behind is finished or removed by the next run. The ownership checks
(:func:`claim_dir`, :func:`claim_file`) decide whether an ``--out`` may be replaced at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)

#: Name prefix of every temporary file or directory Kantong writes (then ``<pid>-``).
TEMP_PREFIX = ".kantong-tmp-"
#: Name prefix of an old directory parked during a two-rename swap (then ``<pid>-``).
OLD_PREFIX = ".kantong-old-"
#: Name prefix of a committed journal of renames (then ``<pid>-``).
JOURNAL_PREFIX = ".kantong-journal-"
_PREFIXES = (TEMP_PREFIX, OLD_PREFIX, JOURNAL_PREFIX)
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _make_parent(final: Path) -> None:
    """Create the folder of ``final``; a file in the way is a one-line ``InputError``."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{final}: cannot write here: {final.parent} is not a directory "
                         "(a file is in the way)") from None


def _sibling(final: Path, prefix: str = TEMP_PREFIX) -> Path:
    """Return an unused name beside ``final``: ``<prefix><pid>-<random>-<name>``."""
    return final.with_name(f"{prefix}{os.getpid()}-{secrets.token_hex(4)}-{final.name}")


def _owner(name: str) -> tuple[str, int, str] | None:
    """Return ``(prefix, pid, final name)`` of a Kantong temporary name, else ``None``."""
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            pid, _, rest = name[len(prefix):].partition("-")
            _, _, final = rest.partition("-")
            if pid.isdigit() and final:
                return prefix, int(pid), final
    return None


def _alive(pid: int) -> bool:
    """Return whether a process ``pid`` exists (this one included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def cleanup(folder: str | os.PathLike[str]) -> list[str]:
    """Finish or remove what killed Kantong processes left in ``folder``.

    Journals of dead processes are rolled forward (their renames completed); a directory
    parked by an interrupted two-rename swap is put back when its destination is missing,
    else removed; temporaries of dead processes are removed. Entries of live processes are
    left alone.

    Parameters
    ----------
    folder
        A directory Kantong writes into (missing: nothing to do).

    Returns
    -------
    list of str
        What was done, one line per entry (also logged).
    """
    root = Path(folder)
    done: list[str] = []
    try:
        entries = sorted(root.iterdir()) if root.is_dir() else []
    except OSError:
        return done
    owned = [(p, _owner(p.name)) for p in entries]
    owned = [(p, o) for p, o in owned if o is not None and not _alive(o[1])]
    try:
        for path, (prefix, _, _) in owned:
            if prefix == JOURNAL_PREFIX:
                done += _replay(path)
        for path, (prefix, _, final) in owned:
            if prefix == OLD_PREFIX and path.exists():
                target = root / final
                if not target.exists():
                    os.replace(path, target)
                    done.append(f"restored {target} from an interrupted swap")
                else:
                    _remove(path)
                    done.append(f"removed {path.name}")
            elif prefix == TEMP_PREFIX and path.exists():
                _remove(path)
                done.append(f"removed {path.name}")
    except OSError as exc:  # a read-only folder: leave it for a writer
        logger.debug("cleanup of %s stopped: %s", root, exc)
    for line in done:
        logger.warning("cleanup of %s: %s", root, line)
    return done


def _replay(journal: Path) -> list[str]:
    """Complete the renames of a committed journal, then remove it."""
    try:
        moves = json.loads(journal.read_text(encoding="utf-8"))["moves"]
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)
        return [f"removed unreadable journal {journal.name}"]
    out = []
    for tmp, final in moves:
        if Path(tmp).exists():
            os.replace(tmp, final)
            out.append(f"completed {final}")
    journal.unlink(missing_ok=True)
    return out


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
        A temporary path in the same directory (same file system, so the rename is atomic),
        ending in the final name (same suffix). It does not exist yet. The caller writes
        the whole file there. On an exception it is removed.

    Examples
    --------
    >>> with atomic_path("out.geojson") as tmp:  # doctest: +SKIP
    ...     gdf.to_file(tmp, driver="GeoJSON")
    """
    final = Path(path)
    _make_parent(final)
    cleanup(final.parent)
    tmp = _sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
        logger.debug("wrote %s", final)
    finally:
        if tmp.exists():
            _remove(tmp)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    logger.debug("renameat2 exchange unavailable (errno %d)", ctypes.get_errno())
    return False


def _link_tree(src: Path, dst: Path) -> None:
    """Fill ``dst`` with hard links (copies where linking fails) of the files under ``src``."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    for entry in src.iterdir():
        if _owner(entry.name) is not None:
            continue
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, copy_function=link)
        else:
            link(str(entry), str(target))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, seed: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place on success.

    Parameters
    ----------
    path
        Final directory.
    seed
        Start the temporary directory as a hard-linked copy of the existing ``path``
        (copy-on-write update of a run: writers must replace files, never edit them in
        place; :func:`atomic_path` and Parquet/GeoJSON writers do).

    Yields
    ------
    Path
        The temporary directory; on an exception it is removed and ``path`` is untouched.
        On success ``path`` is replaced in one atomic exchange (see module docstring).
    """
    final = Path(path)
    _make_parent(final)
    cleanup(final.parent)
    if final.exists() and not final.is_dir():
        raise InputError(f"{final}: exists and is not a directory; refusing to replace it")
    tmp = _sibling(final)
    tmp.mkdir()
    try:
        if seed and final.is_dir():
            _link_tree(final, tmp)
        yield tmp
        _fsync_dir(tmp)
        if final.exists():
            if not _exchange(tmp, final):
                old = _sibling(final, OLD_PREFIX)
                os.replace(final, old)
                os.replace(tmp, final)
                _remove(old)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
        logger.debug("wrote directory %s", final)
    finally:
        if tmp.exists():  # the new directory on failure, the old one after an exchange
            _remove(tmp)


@contextlib.contextmanager
def atomic_files(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Yield temporary paths for several sibling files; rename them all in as one unit.

    The renames are recorded first in a journal beside the files, so a crash during them
    is completed by the next :func:`cleanup` of that folder: the set is either all old or,
    once cleaned up, all new.

    Parameters
    ----------
    paths
        Final files, all in one directory.

    Yields
    ------
    list of Path
        One temporary path per final path (same order); none exists yet.

    Raises
    ------
    InputError
        If the files are not in one directory.
    """
    finals = [Path(p) for p in paths]
    folders = {p.parent.resolve() for p in finals}
    if len(folders) > 1:
        raise InputError("files written as one unit must share a directory: "
                         + ", ".join(map(str, finals)))
    if not finals:
        yield []
        return
    _make_parent(finals[0])
    cleanup(finals[0].parent)
    tmps = [_sibling(p) for p in finals]
    journal = _sibling(finals[0].parent / "journal.json", JOURNAL_PREFIX)
    try:
        yield tmps
        moves = [[str(t.absolute()), str(f.absolute())] for t, f in zip(tmps, finals, strict=True)
                 if t.exists()]
        with atomic_path(journal) as jtmp:
            jtmp.write_text(json.dumps({"pid": os.getpid(), "moves": moves}), encoding="utf-8")
        for tmp, final in moves:
            os.replace(tmp, final)
        journal.unlink()
        _fsync_dir(finals[0].parent)
    finally:
        for tmp in tmps:
            if tmp.exists():
                _remove(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (NaN refused) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


# ---- ownership: may a command write there? ------------------------------------------------
def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_inputs(out: Path, inputs: Iterable[str | os.PathLike[str] | None], *, flag: str,
                  what: str = "input") -> None:
    target = _resolved(out)
    for item in inputs:
        if item is None or "://" in str(item) or any(c in str(item) for c in "*?["):
            continue
        inp = _resolved(item)
        if _within(inp, target):
            raise InputError(f"{out}: {flag} holds the {what} {item}; refusing to replace it "
                             "(choose another " + flag + ")")
        if _within(target, inp):
            raise InputError(f"{out}: {flag} lies inside the {what} {item}; refusing to write "
                             "there (choose another " + flag + ")")


def claim_dir(out: str | os.PathLike[str], *, command: str, marker: str,
              recognise: Callable[[Path], bool],
              inputs: Iterable[str | os.PathLike[str] | None] = (), flag: str = "--out",
              what: str = "input") -> None:
    """Check that ``command`` may replace the directory ``out`` (else ``InputError``).

    ``out`` may be absent, empty, or a previous output of the same command: its ``marker``
    file exists and ``recognise(out)`` accepts it. It may never hold or lie inside one of
    ``inputs``.

    Parameters
    ----------
    out
        The output directory.
    command
        Command name, for messages (``build``).
    marker
        File that identifies a previous output (``manifest.json``).
    recognise
        Called with ``out`` when ``marker`` exists; True if it is a previous output of this
        command whose content may be replaced (no foreign files).
    inputs
        Input paths of this invocation (``None`` and URLs/globs are skipped).
    flag
        Option name for messages.
    what
        What the inputs are, for messages (``run directory``).
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"{out}: {flag} exists and is not a directory; refusing to replace it")
    _check_inputs(path, inputs, flag=flag, what=what)
    if not path.exists():
        return
    cleanup(path)
    entries = [e.name for e in path.iterdir() if _owner(e.name) is None]
    if not entries:
        return
    if (path / marker).is_file() and recognise(path):
        return
    shown = ", ".join(sorted(entries)[:5]) + (" ..." if len(entries) > 5 else "")
    raise InputError(f"{out}: {flag} is not empty and not a previous `kantong {command}` output "
                     f"(holds {shown}); refusing to replace it: choose an empty or new directory")


def claim_file(out: str | os.PathLike[str], *, command: str,
               recognise: Callable[[Path], bool],
               inputs: Iterable[str | os.PathLike[str] | None] = (), flag: str = "--out",
               inside_ok: str | os.PathLike[str] | None = None) -> None:
    """Check that ``command`` may write the file ``out`` (else ``InputError``).

    ``out`` may be absent or a previous output of the same command (``recognise(out)``).
    It may not be (or lie inside) one of ``inputs``, nor lie inside any Kantong run
    directory other than ``inside_ok``.

    Parameters
    ----------
    out
        The output file.
    command
        Command name, for messages.
    recognise
        Called with an existing ``out``; True if it is a previous output of this command.
    inputs
        Input paths of this invocation.
    flag
        Option name for messages.
    inside_ok
        A run directory this command updates as a whole (``sites`` writes into its run).
    """
    path = Path(out)
    if path.exists() and not path.is_file():
        raise InputError(f"{out}: {flag} exists and is not a regular file; refusing to replace it")
    _check_inputs(path, inputs, flag=flag)
    target = _resolved(path)
    allowed = _resolved(inside_ok) if inside_ok is not None else None
    for parent in target.parents:
        if (parent / "manifest.json").is_file() and (parent / "cells.parquet").is_file():
            if parent != allowed:
                raise InputError(f"{out}: {flag} lies inside the run directory {parent}; "
                                 "refusing to write there (choose a path outside the run)")
            break
    if path.exists() and not recognise(path):
        raise InputError(f"{out}: {flag} exists and is not a previous `kantong {command}` "
                         "output; refusing to overwrite it (remove it or choose another name)")


def is_png(path: str | os.PathLike[str]) -> bool:
    """Return whether ``path`` is a PNG image (a plot a command may replace)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


__all__ = ["JOURNAL_PREFIX", "OLD_PREFIX", "TEMP_PREFIX", "atomic_dir", "atomic_files",
           "atomic_path", "claim_dir", "claim_file", "cleanup", "is_png", "write_json",
           "write_text"]
