"""Pocket and regency totals that tell the truth where that cannot expose a withheld cell.

The rule (docs/privacy.md, "Pocket and regency totals"):

- A *safe unit* is a published base cell, or a withheld base cell whose suppression atom
  (:mod:`.privacy`) is released and whose every *piece* - the atom's cells split by pocket
  (the cells in no pocket are one piece) - holds at least ``K`` households over at least two
  cells.
- A pocket whose cells are all safe units is published with its **true** totals
  (``totals = "exact"``): the part withheld inside it is a sum of whole pieces, each a group
  of ``K`` or more households over two or more cells, and so is every difference an
  attacker can form with the other published numbers (cells, atoms, other pockets,
  regencies), because all of them are sums of published cells and whole pieces (regency
  totals add up whole atoms, which are unions of pieces).
- Otherwise the pocket's totals are the sum of its safe units only and say so
  (``totals = "protected"``).
- Regency totals are sums of released atoms (:func:`.privacy.released_regency_totals`); a
  regency is ``"exact"`` when that equals its true total, else ``"protected"``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from kantong.engine.publish.privacy import (
    ATOM_CELL,
    SUMMED_COUNTS,
    SuppressionPlan,
)

__all__ = ["TOTALS_EXACT", "TOTALS_PROTECTED", "pocket_group_totals", "regency_exactness",
           "safe_units"]

logger = logging.getLogger(__name__)

#: ``totals`` value: the published figures are the run's true totals.
TOTALS_EXACT = "exact"
#: ``totals`` value: withheld households that could be exposed are left out of the figures.
TOTALS_PROTECTED = "protected"


def safe_units(base: pd.DataFrame, plan: SuppressionPlan) -> np.ndarray:
    """Return, per base cell, whether it may enter an exact published total.

    Parameters
    ----------
    base
        Base cells with ``h3``, ``households`` and optionally ``pocket_id``.
    plan
        The suppression plan of the run.

    Returns
    -------
    numpy.ndarray
        Boolean, aligned with ``base``: published cells, and withheld cells of released atoms
        whose every pocket piece holds ``>= K`` households over ``>= 2`` cells.
    """
    atoms = plan.atoms.reindex(base["h3"].astype(str).to_numpy())
    withheld = atoms["kind"].to_numpy() != ATOM_CELL
    out = np.ones(len(base), dtype=bool)
    if not withheld.any():
        return out
    pocket = (base["pocket_id"].astype("Int64").astype("string").fillna("-")
              if "pocket_id" in base.columns else pd.Series("-", index=base.index))
    atom = atoms["atom"].astype(str).to_numpy(dtype=object)
    frame = pd.DataFrame({
        "atom": atom,
        "released": atoms["released"].to_numpy(dtype=bool),
        "piece": atom + "|" + pocket.to_numpy(dtype=object),
        "households": base["households"].to_numpy(dtype="int64")})[withheld]
    pieces = frame.groupby("piece")["households"]
    frame["ok"] = ((pieces.transform("sum") >= plan.min_households)
                   & (pieces.transform("size") >= 2) & frame["released"])
    out[np.flatnonzero(withheld)] = frame.groupby("atom")["ok"].transform("all").to_numpy(
        dtype=bool)
    return out


def pocket_group_totals(base: pd.DataFrame, plan: SuppressionPlan, *,
                        columns: tuple[str, ...] = SUMMED_COUNTS) -> pd.DataFrame:
    """Sum count ``columns`` per pocket over its safe units (see :func:`safe_units`).

    Parameters
    ----------
    base
        Base cells with ``h3``, ``households``, ``regency_code``, ``pocket_id`` and
        ``columns``.
    plan
        The suppression plan.
    columns
        Count columns to sum.

    Returns
    -------
    pandas.DataFrame
        Index ``pocket_id`` (int64) of every pocket: the sums (``int64``) and ``totals``
        (``"exact"`` when every cell of the pocket is a safe unit, so the sums are the
        true totals, else ``"protected"``).

    Examples
    --------
    >>> totals = pocket_group_totals(base, plan)  # doctest: +SKIP
    >>> totals["totals"].value_counts()  # doctest: +SKIP
    """
    if "pocket_id" not in base.columns:
        empty = pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
        empty["totals"] = pd.Series(dtype="string")
        return empty.rename_axis("pocket_id")
    has = base["pocket_id"].notna().to_numpy()
    safe = safe_units(base, plan)[has]
    frame = base.loc[has, list(columns)].astype("float64")
    key = base.loc[has, "pocket_id"].astype("int64").to_numpy()
    exact = pd.Series(safe).groupby(key).all()
    sums = (frame[safe].groupby(key[safe])[list(columns)].sum()
            .reindex(exact.index, fill_value=0.0).round().astype("int64"))
    sums["totals"] = pd.array(np.where(exact.to_numpy(), TOTALS_EXACT, TOTALS_PROTECTED),
                              dtype="string")
    sums.index.name = "pocket_id"
    logger.info("pocket totals: %d exact, %d protected", int(exact.sum()),
                int((~exact).sum()))
    return sums


def regency_exactness(base: pd.DataFrame, released: pd.DataFrame) -> pd.Series:
    """Label released regency totals ``exact`` where they equal the true totals.

    Parameters
    ----------
    base
        Base cells with ``regency_code`` and ``households`` (all cells, withheld included).
    released
        Released totals indexed by ``regency_code`` with ``households``.

    Returns
    -------
    pandas.Series
        ``"exact"`` / ``"protected"`` per regency of ``released`` (string dtype).
    """
    true = base.groupby(base["regency_code"].astype("string"))["households"].sum()
    same = (released["households"].to_numpy(dtype="int64")
            == true.reindex(released.index.astype("string")).fillna(-1).to_numpy(dtype="int64"))
    return pd.Series(pd.array(np.where(same, TOTALS_EXACT, TOTALS_PROTECTED), dtype="string"),
                     index=released.index, name="totals")
