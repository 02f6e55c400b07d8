"""Progress people can see: one reporter threaded through the pipeline stages.

Library code announces work with :func:`stage` (a context manager) and advances it; by
default nothing is shown (the engine never writes to a terminal on its own). The CLI
installs a :class:`TqdmReporter` with :func:`reporting` when standard error is a terminal
and ``-q`` was not given, so long builds, travel, sites, exports and the first
``kantong serve`` say what they are doing. The active reporter lives in a
:class:`contextvars.ContextVar`, so threads and embedding applications are unaffected.

Examples
--------
>>> with stage("fusing households", total=3) as bar:
...     for _ in range(3):
...         bar.advance()
>>> bar.done
3
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol

__all__ = ["Bar", "Reporter", "TqdmReporter", "reporting", "stage"]


class Bar:
    """One stage in progress: counts what is done and forwards it to a display.

    Parameters
    ----------
    label : str
        What the stage does, for people.
    total : int or None
        Units of work, when known.
    """

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units done."""
        self.done += n
        self._show(n)

    def _show(self, n: int) -> None:
        """Display hook; the silent bar shows nothing."""

    def close(self) -> None:
        """Finish the display of this stage."""


class Reporter(Protocol):
    """Makes :class:`Bar` objects for stages."""

    def bar(self, label: str, total: int | None) -> Bar:
        """Return the bar of a new stage."""


class _TqdmBar(Bar):
    def __init__(self, label: str, total: int | None, stream: IO[str]) -> None:
        from tqdm import tqdm

        super().__init__(label, total)
        self._tqdm = tqdm(total=total, desc=label, file=stream, leave=False,
                          dynamic_ncols=True, mininterval=0.25, unit="")

    def _show(self, n: int) -> None:
        self._tqdm.update(n)

    def close(self) -> None:
        self._tqdm.close()
        print(f"  {self.label}: done", file=self._tqdm.fp)


class TqdmReporter:
    """Progress bars on a stream (standard error by default) with ``tqdm``.

    Parameters
    ----------
    stream : file-like, optional
        Where bars are drawn; ``sys.stderr`` when omitted.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def bar(self, label: str, total: int | None) -> Bar:
        """Return a ``tqdm`` bar for a new stage."""
        return _TqdmBar(label, total, self.stream)


class _Silent:
    def bar(self, label: str, total: int | None) -> Bar:
        return Bar(label, total)


_SILENT = _Silent()
_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "kantong_progress", default=None)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Use ``reporter`` for every :func:`stage` inside the ``with`` block.

    Parameters
    ----------
    reporter : Reporter
        For example ``TqdmReporter()``.

    Yields
    ------
    Reporter
        The reporter now active.
    """
    token = _REPORTER.set(reporter)
    try:
        yield reporter
    finally:
        _REPORTER.reset(token)


@contextmanager
def stage(label: str, total: int | None = None) -> Iterator[Bar]:
    """Announce a stage of work to the active reporter (silent unless the CLI set one).

    Parameters
    ----------
    label : str
        What the stage does, for people (``"travel time to puskesmas"``).
    total : int or None, optional
        Units of work, when known.

    Yields
    ------
    Bar
        Call ``bar.advance(n)`` as work gets done.
    """
    bar = (_REPORTER.get() or _SILENT).bar(label, total)
    try:
        yield bar
    finally:
        bar.close()
