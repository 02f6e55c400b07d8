"""A HiGHS solver instance that keeps the console clean.

``highspy.Highs()`` prints its banner (version, copyright) on the process's standard output
from C++, which Python's ``redirect_stdout`` cannot catch and which would mix with the
CLI's own output (or a table piped into another program). :func:`new_highs` creates the
instance with file descriptor 1 pointed at a temporary file, sends what was printed to the
debug log, and silences later output (``h.silent()``). :func:`set_threads` sets a thread
count that HiGHS honours whatever ran before it in the process.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading

import highspy

logger = logging.getLogger(__name__)

_FD_LOCK = threading.Lock()

__all__ = ["new_highs", "set_threads"]


def new_highs() -> highspy.Highs:
    """Return a silent ``highspy.Highs`` instance; its banner goes to the debug log.

    Returns
    -------
    highspy.Highs
        A new solver with console output switched off.

    Examples
    --------
    >>> type(new_highs()).__name__
    'Highs'
    """
    with _FD_LOCK, tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            os.dup2(sink.fileno(), 1)
            h = highspy.Highs()
            h.silent()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        banner = sink.read().decode("utf-8", "replace").strip()
    if banner:
        logger.debug("HiGHS: %s", " | ".join(banner.splitlines()))
    return h


def set_threads(h: highspy.Highs, threads: int) -> highspy.HighsStatus:
    """Set the ``threads`` option of ``h`` and return HiGHS's status for it.

    HiGHS sizes a process-wide task scheduler at its first run and refuses another thread
    count later ("global scheduler has already been initialized"; the model stays
    "Not Set"), so a new scheduler is started first.

    Examples
    --------
    >>> h = new_highs()
    >>> set_threads(h, 1) == highspy.HighsStatus.kOk, h.getOptionValue("threads")[1]
    (True, 1)
    """
    highspy.Highs.resetThreadScheduler(True)
    return h.setOptionValue("threads", int(threads))
