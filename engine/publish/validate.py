"""Validation of a run's cell tables on load: ids, counts, rollup sums.

A run that passes its hash check (:func:`kantong.engine.rundir.verify_run`) may still have
been written by a buggy tool, or be used with ``--trust-run``. Every reader of cells
checks what the privacy rules and the solvers rely on: unique, valid H3 ids of one
resolution, non-negative integer counts, sub-counts not above their totals, a regency
for every cell, and (:func:`check_rollup`) coarser levels that are exact sums.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kantong.engine.errors import InputError, RunError
from kantong.engine.h3ids import cells_to_uint64, parent_cells

logger = logging.getLogger(__name__)

#: Count columns that must be non-negative integers when present.
COUNT_COLUMNS = ("households", "persons", "extreme_households", "extreme_persons",
                 "households_desil_1", "households_desil_2", "households_desil_3",
                 "households_desil_4", "households_village_located")
#: (part, whole): the part can never exceed the whole.
_PARTS = (("extreme_households", "households"), ("extreme_persons", "persons"),
          ("households", "persons"))


def validate_cells(cells: pd.DataFrame, *, source: str | Path,
                   resolution: int | None = None, require: tuple[str, ...] = ("h3",),
                   expected_counts: bool | None = None) -> np.ndarray:
    """Check one cell table; return its ``uint64`` H3 ids.

    Parameters
    ----------
    cells
        A cell table (``h3`` hex ids and any count columns).
    source
        File name for messages.
    resolution
        Required resolution of every id (default: that of the first id).
    require
        Columns that must be present (``regency_code`` for privacy and sites).
    expected_counts
        Whether counts may be fractional: the expected shares of households located by
        village code only (docs/pockets.md). ``None`` reads it from the table: float
        counts with some ``households_village_located`` above zero.

    Returns
    -------
    numpy.ndarray
        The ids as ``uint64``, in row order.

    Raises
    ------
    RunError
        One line naming the first problem: a missing column, an invalid, duplicated or
        mixed-resolution id, a negative, fractional or missing count, a part above its
        whole.
    """
    missing = [c for c in require if c not in cells.columns]
    if missing:
        raise RunError(f"{source}: missing column(s) {', '.join(missing)}")
    if len(cells) == 0:
        raise RunError(f"{source}: holds no cells")
    try:
        ids = cells_to_uint64(cells["h3"].astype(object).to_numpy(), what=f"{source} h3 id")
    except InputError as exc:
        raise RunError(str(exc)) from None
    res = ((ids >> np.uint64(52)) & np.uint64(0xF)).astype(np.int64)
    want = int(res[0]) if resolution is None else resolution
    if (res != want).any():
        i = int(np.flatnonzero(res != want)[0])
        raise RunError(f"{source}: cell {cells['h3'].iloc[i]!r} is at resolution {res[i]}, "
                       f"not {want} like the others")
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        raise RunError(f"{source}: cell {cells['h3'].iloc[int(np.flatnonzero(dup)[0])]!r} "
                       f"appears {int(dup.sum()) + 1}+ times; cell ids must be unique")
    if expected_counts is None:
        expected_counts = _states_expected_counts(cells)
    for col in (c for c in COUNT_COLUMNS if c in cells.columns):
        x = pd.to_numeric(cells[col], errors="coerce").to_numpy(dtype="float64")
        bad = ~np.isfinite(x) | (x < 0)
        if not expected_counts:
            bad |= x != np.round(x)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "non-negative numbers" if expected_counts else "non-negative integers"
            raise RunError(f"{source}: column {col} holds {cells[col].iloc[i]!r} in cell "
                           f"{cells['h3'].iloc[i]}; counts must be {kind}")
    slack = 1e-9 if expected_counts else 0.0  # float sums of expected shares
    for part, whole in _PARTS:
        if part in cells.columns and whole in cells.columns:
            over = cells[part].to_numpy(dtype="float64") > cells[whole].to_numpy(
                dtype="float64") * (1 + slack) + slack
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise RunError(f"{source}: {part} exceeds {whole} in cell "
                               f"{cells['h3'].iloc[i]}")
    return ids


def _states_expected_counts(cells: pd.DataFrame) -> bool:
    """Tell whether a cell table holds expected (fractional) village-located counts."""
    col = cells.get("households_village_located")
    return bool(col is not None and pd.api.types.is_float_dtype(col.dtype)
                and (col.to_numpy(dtype="float64") > 0).any())


def check_rollup(base_ids: np.ndarray, base: pd.DataFrame, level_ids: np.ndarray,
                 level: pd.DataFrame, *, resolution: int, source: str | Path,
                 columns: tuple[str, ...] = ("households",)) -> None:
    """Check that a rollup level holds exactly the sums of the base cells.

    Parameters
    ----------
    base_ids, base
        ``uint64`` ids and the base cell table.
    level_ids, level
        ``uint64`` ids and the rollup table at ``resolution``.
    resolution
        The rollup resolution.
    source
        File name for messages.
    columns
        Count columns compared (those present in both).

    Raises
    ------
    RunError
        If the rollup has other cells than the parents of the base cells, or other sums.
    """
    parents = parent_cells(base_ids, resolution)
    cols = [c for c in columns if c in base.columns and c in level.columns]
    sums = pd.DataFrame({c: base[c].to_numpy(dtype="float64") for c in cols}).groupby(
        parents).sum()
    got = pd.DataFrame({c: level[c].to_numpy(dtype="float64") for c in cols}, index=level_ids)
    # exact for integer counts; expected (fractional) counts differ by summation order only
    same = len(sums) == len(got) and sums.index.isin(got.index).all() and all(
        np.allclose(sums[c].to_numpy(), got[c].reindex(sums.index).to_numpy(), rtol=1e-9,
                    atol=1e-9) for c in cols)
    if not same:
        raise RunError(f"{source}: the r{resolution} rollup is not the exact sum of the base "
                       "cells; rebuild the run")


__all__ = ["COUNT_COLUMNS", "check_rollup", "validate_cells"]
