"""Explainable priority scores for cells and pockets.

The priority of a cell (or pocket) is a weighted sum of five indicators, each first
brought to ``[0, 1]``:

============================  ============================================================
indicator                     normalised value
============================  ============================================================
``extreme_households``        extreme-poor households divided by the largest value among
                              the cells (or pockets) of the same province: the top one
                              scores 1, one with half as many scores 0.5
``extreme_rate``              the same ratio for the share of extreme-poor households;
                              for cells the share is Empirical-Bayes smoothed so that a
                              cell with 1 household out of 2 does not top the list
``deprivation``               mean share of households lacking improved water, improved
                              sanitation, electricity or adequate housing (already 0-1)
``travel``                    mean over facility types of ``min(minutes, cap) / cap``
                              (cap 180 min by default; unreachable counts as the cap)
``assistance_gap``            share of the extreme-poor households that receive no social
                              assistance (0 where there are none)
============================  ============================================================

Weights are divided by their sum, so ``priority`` lies in ``[0, 1]``, and
``contrib_<indicator> = weight * normalised value`` adds up to ``priority`` exactly (the
priority *is* that sum). An indicator whose inputs are absent from the run (e.g. no
travel-time columns) gets weight 0 and the others are rescaled; the effective weights are
returned in ``DataFrame.attrs["weights"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from kantong.engine.config import DEFAULT_WEIGHTS, ScoreConfig
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.errors import ConfigError, InputError
from kantong.engine.pockets.hotspots import eb_rate

logger = logging.getLogger(__name__)

#: The indicators a weight can name, in output order.
INDICATORS = ("extreme_households", "extreme_rate", "deprivation", "travel", "assistance_gap")

#: Deprivations that basic infrastructure (strategy 3) addresses.
INFRASTRUCTURE_FIELDS = ("water_improved", "sanitation_improved", "electricity",
                         "housing_adequate")
INFRASTRUCTURE_SHARES = tuple(DEPRIVATIONS[f][2] for f in INFRASTRUCTURE_FIELDS)

#: Readable names of the deprivation share columns (for tables and sentences).
DEPRIVATION_NAMES = {
    "share_no_improved_water": "no improved water",
    "share_no_improved_sanitation": "no improved sanitation",
    "share_no_electricity": "no electricity",
    "share_inadequate_housing": "inadequate housing",
    "share_child_out_of_school": "children out of school",
    "share_no_assistance": "no social assistance",
}

#: Default cap of travel times in the score (minutes).
DEFAULT_TRAVEL_CAP_MIN = 180.0


def travel_columns(frame: pd.DataFrame) -> list[str]:
    """Return the ``travel_min_<type>`` columns of ``frame`` (sorted)."""
    return sorted(c for c in frame.columns
                  if c.startswith("travel_min_") and c != "travel_min_mean")


def counted_travel(frame: pd.DataFrame, config: ScoreConfig | None = None) -> pd.DataFrame:
    """Return ``frame`` without the ``travel_min_<type>`` columns score and strategy skip.

    ``[score] travel_types`` chooses the types (default: every type but hospitals, see
    :meth:`kantong.engine.config.ScoreConfig.counts_travel_type`), so a hospital hours away
    does not turn every pocket into strategy 3.
    """
    config = config or ScoreConfig()
    skip = [c for c in travel_columns(frame)
            if not config.counts_travel_type(c.removeprefix("travel_min_"))]
    return frame.drop(columns=skip) if skip else frame


def deprivation_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the deprivation share columns present in ``frame`` (recomputed from counts).

    A share is ``n_<deprivation> / households`` when the count column is there (exact for
    pockets and rollups), else the stored ``share_`` column. Zero households give 0.
    """
    households = frame["households"].to_numpy(dtype="float64")
    out = pd.DataFrame(index=frame.index)
    for _, count_col, share_col in DEPRIVATIONS.values():
        if count_col in frame.columns:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = frame[count_col].to_numpy(dtype="float64") / households
        elif share_col in frame.columns:
            share = frame[share_col].to_numpy(dtype="float64")
        else:
            continue
        if share.size and np.isnan(share).all() and (households > 0).any():
            continue  # not in this register (engine/inputs/absent.py): left out, not 0
        out[share_col] = np.nan_to_num(share, nan=0.0, posinf=0.0)
    return out


def infrastructure_deprivation(frame: pd.DataFrame) -> pd.Series | None:
    """Mean share of households lacking water, sanitation, electricity or housing.

    Returns ``None`` when none of the four share/count columns is present.
    """
    shares = deprivation_shares(frame)
    cols = [c for c in INFRASTRUCTURE_SHARES if c in shares.columns]
    if not cols:
        return None
    return shares[cols].mean(axis=1)


def mean_travel_minutes(frame: pd.DataFrame) -> pd.Series | None:
    """Mean travel time over the facility types, ignoring missing types per row.

    Returns ``None`` when there is no ``travel_min_<type>`` column or all are empty.
    """
    cols = travel_columns(frame)
    if not cols:
        return None
    values = frame[cols].astype("float64").replace([np.inf, -np.inf], np.nan)
    if values.isna().all().all():
        return None
    return values.mean(axis=1)


def assistance_gap_share(frame: pd.DataFrame) -> pd.Series | None:
    """Share of extreme-poor households receiving no social assistance (0 where none)."""
    if "assistance_gap" not in frame.columns:
        return None
    gap = frame["assistance_gap"].to_numpy(dtype="float64")
    if gap.size and np.isnan(gap).all():
        return None  # receives_assistance not in this register
    extreme = frame["extreme_households"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(extreme > 0, gap / extreme, 0.0)
    return pd.Series(np.clip(share, 0.0, 1.0), index=frame.index)


def _share_of_max(values: np.ndarray, groups: pd.Series) -> np.ndarray:
    """Divide each value by the largest value of its group (0 where the largest is 0)."""
    s = pd.Series(values, index=groups.index)
    top = s.groupby(groups, sort=False).transform("max").to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(top > 0, np.clip(values, 0.0, None) / top, 0.0)


def _groups(frame: pd.DataFrame, column: str) -> pd.Series:
    if column in frame.columns:
        return frame[column].astype("string").fillna("")
    return pd.Series("", index=frame.index, dtype="string")


def normalised_indicators(frame: pd.DataFrame, *, travel_cap_min: float = DEFAULT_TRAVEL_CAP_MIN,
                          group: str = "province_code", smooth_rate: bool = True) -> pd.DataFrame:
    """Return every available indicator normalised to ``[0, 1]`` (see the module docs).

    Parameters
    ----------
    frame
        Cells or pockets with ``households``, ``extreme_households`` and, optionally,
        deprivation counts/shares, ``travel_min_<type>`` and ``assistance_gap``.
    travel_cap_min
        Travel times at or above this many minutes score 1.
    group
        Column whose groups the count and rate are scaled within (the province).
    smooth_rate
        Empirical-Bayes smoothing of the extreme-poor share (cells: yes; pockets, which
        are large and few, use the raw share).

    Returns
    -------
    pandas.DataFrame
        One column per available indicator, values in ``[0, 1]``.
    """
    if travel_cap_min <= 0:
        raise ConfigError(f"score.travel_cap_min must be > 0, got {travel_cap_min}")
    missing = {"households", "extreme_households"} - set(frame.columns)
    if missing:
        raise InputError(f"score: missing column(s) {sorted(missing)}")
    groups = _groups(frame, group)
    out = pd.DataFrame(index=frame.index)
    extreme = frame["extreme_households"].to_numpy(dtype="float64")
    out["extreme_households"] = _share_of_max(extreme, groups)
    households = frame["households"].to_numpy(dtype="float64")
    if smooth_rate:
        rate = eb_rate(extreme, households)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(households > 0, extreme / households, 0.0)
    out["extreme_rate"] = _share_of_max(rate, groups)
    dep = infrastructure_deprivation(frame)
    if dep is not None:
        out["deprivation"] = dep.clip(0.0, 1.0)
    cols = travel_columns(frame)
    if mean_travel_minutes(frame) is not None:
        t = frame[cols].astype("float64").to_numpy()
        t = np.where(np.isfinite(t), np.minimum(t, travel_cap_min), travel_cap_min)
        out["travel"] = np.clip(t, 0.0, None).mean(axis=1) / travel_cap_min
    gap = assistance_gap_share(frame)
    if gap is not None:
        out["assistance_gap"] = gap
    return out


def effective_weights(weights: Mapping[str, float] | None,
                      available: list[str]) -> dict[str, float]:
    """Normalise ``weights`` to sum 1 over the ``available`` indicators.

    Raises
    ------
    ConfigError
        On an unknown indicator name, or when no available indicator has a positive weight.
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(INDICATORS)
    if unknown:
        raise ConfigError(f"score.weights: unknown indicator(s) {sorted(unknown)}; "
                          f"expected some of {', '.join(INDICATORS)}")
    dropped = [k for k, v in weights.items() if v > 0 and k not in available]
    if dropped:
        logger.warning("score: no data for indicator(s) %s; their weight is set to 0",
                       ", ".join(dropped))
    kept = {k: float(weights.get(k, 0.0)) if k in available else 0.0 for k in INDICATORS}
    total = sum(kept.values())
    if total <= 0:
        raise ConfigError("score.weights: no indicator with a positive weight has data in this run")
    return {k: v / total for k, v in kept.items()}


def score_cells(cells: pd.DataFrame, *, weights: Mapping[str, float] | None = None,
                travel_cap_min: float = DEFAULT_TRAVEL_CAP_MIN, group: str = "province_code",
                smooth_rate: bool = True) -> pd.DataFrame:
    """Compute ``priority`` and ``contrib_<indicator>`` for cells (or pockets).

    Parameters
    ----------
    cells
        Cells or pockets (see :func:`normalised_indicators` for the columns used).
    weights
        Indicator weights (any non-negative numbers; normalised to sum 1). ``None`` gives
        the defaults of :class:`kantong.engine.config.ScoreConfig`.
    travel_cap_min
        Travel-time cap in minutes.
    group
        Column whose groups the count and rate are scaled within (the province).
    smooth_rate
        Smooth the extreme-poor share with Empirical Bayes (``True`` for cells; use
        ``False`` for pockets).

    Returns
    -------
    pandas.DataFrame
        Same index: ``priority`` in ``[0, 1]`` and one ``contrib_<indicator>`` column per
        indicator (0 when its weight is 0); contributions sum to ``priority``. The
        effective weights are in ``.attrs["weights"]``.

    Examples
    --------
    >>> import pandas as pd
    >>> cells = pd.DataFrame({"households": [10, 10], "extreme_households": [1, 5]})
    >>> s = score_cells(cells, weights={"extreme_households": 1, "extreme_rate": 1},
    ...                 smooth_rate=False)
    >>> s["priority"].round(3).tolist()
    [0.2, 1.0]
    """
    values = normalised_indicators(cells, travel_cap_min=travel_cap_min, group=group,
                                   smooth_rate=smooth_rate)
    w = effective_weights(weights, list(values.columns))
    out = pd.DataFrame(index=cells.index)
    for name in INDICATORS:
        v = (values[name].to_numpy(dtype="float64") if name in values.columns
             else np.zeros(len(cells)))
        out[f"contrib_{name}"] = w[name] * v
    contrib = out[[f"contrib_{name}" for name in INDICATORS]].to_numpy()
    out.insert(0, "priority", contrib.sum(axis=1))
    out.attrs["weights"] = w
    return out


def rank_within(priority: np.ndarray | pd.Series, groups: np.ndarray | pd.Series,
                tiebreak: np.ndarray | pd.Series) -> np.ndarray:
    """Rank by ``priority`` descending within each group (1 = highest).

    Ties are broken by ``tiebreak`` ascending (the H3 id or the pocket id), so ranks are
    a permutation ``1..n_group`` of each group and stable for the same input.
    """
    prio = np.asarray(priority, dtype="float64")
    g_codes, _ = pd.factorize(pd.Series(np.asarray(groups, dtype=object)).fillna(""), sort=True)
    t_codes, _ = pd.factorize(pd.Series(np.asarray(tiebreak)), sort=True)
    order = np.lexsort((t_codes, -np.nan_to_num(prio, nan=-np.inf), g_codes))
    g_sorted = g_codes[order]
    first = np.r_[0, np.flatnonzero(np.diff(g_sorted)) + 1]
    starts = np.repeat(first, np.diff(np.r_[first, len(order)]))
    ranks = np.empty(len(order), dtype="int64")
    ranks[order] = np.arange(len(order)) - starts + 1
    return ranks


def rank_frame(frame: pd.DataFrame, priority: pd.Series, *, tiebreak: str) -> pd.DataFrame:
    """Return ``rank_province`` and ``rank_regency`` of ``priority`` within ``frame``.

    Missing ``province_code`` / ``regency_code`` columns put every row in one group.
    """
    out = pd.DataFrame(index=frame.index)
    tb = frame[tiebreak].to_numpy()
    for col, group in (("rank_province", "province_code"), ("rank_regency", "regency_code")):
        out[col] = rank_within(priority.to_numpy(), _groups(frame, group).to_numpy(), tb)
    return out
