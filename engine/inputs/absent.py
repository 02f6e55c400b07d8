"""Deprivation indicators a register does not hold: absent, never counted as "not deprived".

A schema may mark an indicator ``optional`` (the P3KE preset does so for
``child_out_of_school``, whose column name varies between exports). When a register lacks
it, ingest leaves the field out of the accepted households (:class:`IngestResult.absent`),
and the build records it in the manifest (``register.absent_indicators``) and writes its
count and share columns as missing (NaN) in every cell, rollup and village table, so the
score and the strategy leave it out (their weights are renormalised over the indicators
present) and the viewer shows "not in this register".
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from kantong.engine.constants import DEPRIVATIONS

#: Cell columns that depend on ``receives_assistance`` besides its own count and share.
_ASSISTANCE_DERIVED = ("assistance_gap",)


def absent_columns(absent: Iterable[str]) -> list[str]:
    """Return the cell columns that are missing when the indicators ``absent`` are.

    Examples
    --------
    >>> absent_columns(["child_out_of_school"])
    ['n_child_out_of_school', 'share_child_out_of_school']
    """
    out: list[str] = []
    for name in absent:
        _, count, share = DEPRIVATIONS[name]
        out += [count, share]
        if name == "receives_assistance":
            out += list(_ASSISTANCE_DERIVED)
    return out


def with_placeholders(households: pd.DataFrame, absent: Iterable[str]) -> pd.DataFrame:
    """Return accepted households with a False column per absent indicator.

    The aggregation stages sum every indicator; the placeholder lets them run, and
    :func:`blank_absent` turns the resulting counts into NaN before anything is written.
    """
    missing = [name for name in absent if name not in households.columns]
    if not missing:
        return households
    return households.assign(**{name: np.zeros(len(households), dtype=bool)
                                for name in missing})


def blank_absent(frame: pd.DataFrame, absent: Iterable[str]) -> pd.DataFrame:
    """Return ``frame`` with the columns of absent indicators set to NaN (float)."""
    cols = [c for c in absent_columns(absent) if c in frame.columns]
    if not cols:
        return frame
    frame = frame.copy()
    for col in cols:
        frame[col] = np.full(len(frame), np.nan)
    return frame


__all__ = ["absent_columns", "blank_absent", "with_placeholders"]
