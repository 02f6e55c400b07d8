"""Recommended Inpres 4/2022 strategy for each poverty pocket, with a readable reason.

Decision table (first matching row wins; thresholds from ``[pockets]`` in the config):

====  ==========================================================  ========================
row   condition                                                   strategy
====  ==========================================================  ========================
1     mean travel time to services >= ``strategy_travel_min``     3 eliminate the pocket
      **or** infrastructure deprivation >=                        (basic infrastructure)
      ``strategy_infrastructure_share``
2     share of extreme-poor households without assistance >=      1 reduce the expenditure
      ``strategy_assistance_gap_share``                           burden
3     otherwise (services reachable, assistance reaches the       2 raise income
      extreme poor, yet they stay poor)
====  ==========================================================  ========================

*Mean travel time* is the household-weighted travel time averaged over the facility types
of the run; *infrastructure deprivation* is the mean share of households lacking improved
water, improved sanitation, electricity or adequate housing.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from kantong.engine.config import PocketConfig
from kantong.engine.pockets.score import (
    DEPRIVATION_NAMES,
    INFRASTRUCTURE_SHARES,
    assistance_gap_share,
    deprivation_shares,
    infrastructure_deprivation,
    mean_travel_minutes,
    travel_columns,
)

logger = logging.getLogger(__name__)

#: Strategy number -> (English label, Indonesian label).
STRATEGY_LABELS = {
    1: ("Reduce expenditure burden", "Mengurangi beban pengeluaran"),
    2: ("Raise income", "Meningkatkan pendapatan"),
    3: ("Eliminate the pocket: basic infrastructure", "Menghapus kantong kemiskinan"),
}


def strategy_label(strategy: int) -> str:
    """Return ``"English / Indonesian"`` for a strategy number (1, 2 or 3)."""
    english, indonesian = STRATEGY_LABELS[int(strategy)]
    return f"{english} / {indonesian}"


def _measures(pockets: pd.DataFrame) -> pd.DataFrame:
    n = len(pockets)
    travel = mean_travel_minutes(pockets)
    dep = infrastructure_deprivation(pockets)
    gap = assistance_gap_share(pockets)
    return pd.DataFrame({
        "travel": travel if travel is not None else np.full(n, np.nan),
        "infrastructure": dep if dep is not None else np.full(n, np.nan),
        "gap": gap if gap is not None else np.full(n, np.nan),
    }, index=pockets.index)


def recommend_strategy(pockets: pd.DataFrame, *, config: PocketConfig | None = None) -> pd.Series:
    """Apply the decision table to each pocket (or cell).

    Parameters
    ----------
    pockets
        Rows with ``households``, ``extreme_households`` and, when available,
        ``travel_min_<type>`` (minutes), deprivation counts/shares and ``assistance_gap``.
        A missing indicator never triggers its row.
    config
        Thresholds (``strategy_travel_min``, ``strategy_infrastructure_share``,
        ``strategy_assistance_gap_share``); defaults of :class:`PocketConfig`.

    Returns
    -------
    pandas.Series
        ``int8`` strategy 1, 2 or 3 per row, same index.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"households": [100, 100, 100], "extreme_households": [40, 40, 40],
    ...                   "travel_min_puskesmas": [150.0, 20.0, 20.0],
    ...                   "assistance_gap": [5, 30, 2]})
    >>> recommend_strategy(p).tolist()
    [3, 1, 2]
    """
    config = config or PocketConfig()
    m = _measures(pockets)
    infra = (m["travel"] >= config.strategy_travel_min) | (
        m["infrastructure"] >= config.strategy_infrastructure_share)
    burden = m["gap"] >= config.strategy_assistance_gap_share
    strategy = np.where(infra, 3, np.where(burden, 1, 2)).astype("int8")
    return pd.Series(strategy, index=pockets.index, name="strategy")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _worst_travel(row: pd.Series, cols: list[str]) -> str:
    vals = row[cols].astype("float64").dropna()
    if vals.empty:
        return ""
    col = vals.idxmax()
    return f" (longest: {col.removeprefix('travel_min_')} {vals[col]:.0f} min)"


def _worst_infrastructure(shares: pd.Series) -> str:
    top = shares.sort_values(ascending=False, kind="stable").head(2)
    return ", ".join(f"{DEPRIVATION_NAMES[c]} {_pct(v)}" for c, v in top.items())


def explain_strategy(pockets: pd.DataFrame, *, config: PocketConfig | None = None) -> pd.DataFrame:
    """Return ``strategy``, ``strategy_label`` and a one-sentence ``strategy_reason``.

    The reason quotes the indicators that decided the row of the decision table, with
    the pocket's own numbers, e.g. *"Strategy 3: households need 118 min on average to
    reach services (longest: water_point 140 min) and 68% lack basic infrastructure (no
    electricity 72%, no improved water 70%)."*

    Parameters
    ----------
    pockets
        As for :func:`recommend_strategy`.
    config
        Thresholds; defaults of :class:`PocketConfig`.

    Returns
    -------
    pandas.DataFrame
        Same index: ``strategy`` (int8), ``strategy_label``, ``strategy_reason`` (strings).
    """
    config = config or PocketConfig()
    strategy = recommend_strategy(pockets, config=config)
    m = _measures(pockets)
    shares = deprivation_shares(pockets)
    infra_cols = [c for c in INFRASTRUCTURE_SHARES if c in shares.columns]
    tcols = travel_columns(pockets)
    reasons = []
    for idx in pockets.index:  # one sentence per pocket (few rows)
        s, travel, infra, gap = strategy[idx], m.at[idx, "travel"], m.at[idx, "infrastructure"], \
            m.at[idx, "gap"]
        extreme = int(pockets.at[idx, "extreme_households"])
        travel_txt = (f"services are {travel:.0f} min away on average" if np.isfinite(travel)
                      else "travel times are unknown")
        infra_txt = (f"{_pct(infra)} of households lack basic infrastructure" if np.isfinite(infra)
                     else "infrastructure deprivation is unknown")
        gap_txt = (f"{_pct(gap)} of the {extreme} extreme-poor households receive no social "
                   "assistance" if np.isfinite(gap) else "assistance coverage is unknown")
        if s == 3:
            parts = []
            if np.isfinite(travel) and travel >= config.strategy_travel_min:
                worst = _worst_travel(pockets.loc[idx], tcols) if tcols else ""
                parts.append(f"households need {travel:.0f} min on average to reach services"
                             f"{worst}")
            if np.isfinite(infra) and infra >= config.strategy_infrastructure_share:
                parts.append(f"{_pct(infra)} lack basic infrastructure "
                             f"({_worst_infrastructure(shares.loc[idx, infra_cols])})")
            reason = f"Strategy 3: {' and '.join(parts)}."
        elif s == 1:
            reason = (f"Strategy 1: {gap_txt}, while {travel_txt} and {infra_txt} "
                      f"(below the {config.strategy_travel_min:.0f} min and "
                      f"{_pct(config.strategy_infrastructure_share)} thresholds).")
        else:
            only = "only " if np.isfinite(gap) else ""
            reason = (f"Strategy 2: {travel_txt}, {infra_txt} and {only}{gap_txt}, "
                      "so raising income is the remaining lever.")
        reasons.append(reason)
    out = pd.DataFrame(index=pockets.index)
    out["strategy"] = strategy
    out["strategy_label"] = pd.Series([strategy_label(s) for s in strategy], index=pockets.index,
                                      dtype="string")
    out["strategy_reason"] = pd.Series(reasons, index=pockets.index, dtype="string")
    counts = strategy.value_counts().to_dict()
    logger.info("strategies: %s", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return out
