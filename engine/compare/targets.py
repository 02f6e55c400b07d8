"""Programme targets, mapped onto the indicators a P3KE-style register can measure.

The national and provincial programmes set targets for the end of the programme,
evaluated every year (see /work/shared/DOMAIN.md and docs/compare.md):

============================  ========  ==================================================
programme target              value     register indicator (this module)
============================  ========  ==================================================
extreme poverty               0 %       ``extreme_rate`` = extreme-poor persons / persons
clean water access            80 %      ``water_access`` = 1 - ``share_no_improved_water``
sanitation access             80 %      ``sanitation_access`` = 1 -
                                        ``share_no_improved_sanitation``
primary-school completion     90 %      ``school_proxy`` = 1 - ``share_child_out_of_school``
                                        (a **proxy**, see :data:`TARGETS`)
income +30 %                  --        not measurable: the register ranks households into
                                        welfare deciles, it records no income
============================  ========  ==================================================

Every indicator is a ratio of two summed counts, so it is computed the same way for a cell,
a pocket or a regency, from privacy-safe totals (sums of released atoms, see
:mod:`kantong.engine.publish.privacy`). :func:`regency_target_counts` reads those totals from a
:class:`~kantong.engine.publish.published.PublishedRun`; :func:`target_table` builds the two-year
regency
table of ``kantong compare``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Final, Literal

import numpy as np
import pandas as pd

from kantong.engine.build.sums import nullable_counts
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.errors import RunError
from kantong.engine.publish.published import PublishedRun

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Target:
    """One programme target and the register indicator that measures it.

    Attributes
    ----------
    key
        Column stem of the indicator (``<key>_old``, ``<key>_new`` ... in the tables).
    label
        Short human label (charts, console).
    goal
        The programme target as stated by the programme.
    target
        Target value as a fraction (0.8 = 80 %).
    direction
        ``"at_most"``: the indicator must fall to the target (extreme poverty);
        ``"at_least"``: it must rise to the target (access, completion).
    numerator, denominator
        Count columns whose ratio is the indicator (summed first, then divided).
    complement
        The indicator is ``1 - numerator / denominator`` (deprivation counts measure the
        opposite of access).
    proxy
        ``True`` when the indicator only approximates the programme's measure.
    note
        How the mapping is made and what it misses.
    """

    key: str
    label: str
    goal: str
    target: float
    direction: Literal["at_most", "at_least"]
    numerator: str
    denominator: str
    complement: bool = False
    proxy: bool = False
    note: str = ""

    def value(self, numerator: np.ndarray | pd.Series, denominator: np.ndarray | pd.Series
              ) -> np.ndarray:
        """Return the indicator from summed counts (NaN where the denominator is 0).

        Examples
        --------
        >>> TARGETS[1].value(np.array([25]), np.array([100]))
        array([0.75])
        """
        num = np.asarray(numerator, dtype="float64")
        den = np.asarray(denominator, dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        return 1.0 - ratio if self.complement else ratio

    def gap(self, value: np.ndarray | pd.Series) -> np.ndarray:
        """Return the distance still to go to the target (>= 0; 0 = met; NaN stays NaN).

        Examples
        --------
        >>> TARGETS[1].gap(np.array([0.75, 0.9]))
        array([0.05, 0.  ])
        """
        v = np.asarray(value, dtype="float64")
        raw = v - self.target if self.direction == "at_most" else self.target - v
        return np.round(np.where(np.isnan(v), np.nan, np.maximum(raw, 0.0)), 12)

    def improvement(self, old: np.ndarray | pd.Series, new: np.ndarray | pd.Series
                    ) -> np.ndarray:
        """Return the change towards the target (> 0 = better), in indicator units."""
        delta = np.asarray(new, dtype="float64") - np.asarray(old, dtype="float64")
        return -delta if self.direction == "at_most" else delta


_WATER = DEPRIVATIONS["water_improved"][1]
_SANITATION = DEPRIVATIONS["sanitation_improved"][1]
_SCHOOL = DEPRIVATIONS["child_out_of_school"][1]

#: The programme targets the register can measure, in display order.
TARGETS: Final[tuple[Target, ...]] = (
    Target("extreme_rate", "Extreme poverty", "extreme poverty 0 % (Inpres 4/2022)", 0.0,
           "at_most", "extreme_persons", "persons",
           note="persons in desil-1 households / persons in register households. The "
                "register covers the poorest 40 %, so this is the share among register "
                "persons, not the BPS headcount rate of the whole population."),
    Target("water_access", "Clean water access", "clean water and sanitation access 80 %",
           0.80, "at_least", _WATER, "households", complement=True,
           note="1 - share_no_improved_water: register households with an improved "
                "drinking-water source."),
    Target("sanitation_access", "Sanitation access", "clean water and sanitation access 80 %",
           0.80, "at_least", _SANITATION, "households", complement=True,
           note="1 - share_no_improved_sanitation: register households with improved "
                "sanitation. Water and sanitation are one programme target measured as two "
                "indicators (the cells hold separate counts, not households lacking both)."),
    Target("school_proxy", "School completion (proxy)", "primary-school completion 90 %",
           0.90, "at_least", _SCHOOL, "households", complement=True, proxy=True,
           note="PROXY: 1 - share_child_out_of_school, the share of register households "
                "with no school-age child out of school. Households without children count "
                "as meeting it, and attendance is not completion, so it overstates the "
                "primary-school completion rate."),
)

#: Programme targets that the register cannot measure, with the reason.
UNMAPPED: Final[dict[str, str]] = {
    "income +30 %": "the register ranks households into welfare deciles (desil); it records "
                    "no income, so income growth cannot be measured from it",
}

#: Count columns the targets (and the regency table) need.
TARGET_COUNTS: Final[tuple[str, ...]] = (
    "households", "persons", "extreme_households", "extreme_persons", _WATER, _SANITATION,
    _SCHOOL,
)


def target_by_key(key: str) -> Target:
    """Return the :class:`Target` whose ``key`` is ``key`` (``KeyError`` if unknown)."""
    for t in TARGETS:
        if t.key == key:
            return t
    raise KeyError(key)


def indicator_values(totals: pd.DataFrame, *, targets: tuple[Target, ...] = TARGETS
                     ) -> pd.DataFrame:
    """Compute every target indicator from summed count columns.

    Parameters
    ----------
    totals
        Any table of summed counts (cells, pockets, regencies) holding the ``numerator``
        and ``denominator`` columns of the targets. A target whose columns are missing is
        all NaN.
    targets
        The targets to compute.

    Returns
    -------
    pandas.DataFrame
        Same index as ``totals``, one float column per target ``key`` (fractions 0-1).

    Examples
    --------
    >>> t = pd.DataFrame({"persons": [100], "extreme_persons": [2], "households": [20],
    ...                   "n_no_improved_water": [5], "n_no_improved_sanitation": [10],
    ...                   "n_child_out_of_school": [1]})
    >>> indicator_values(t).round(3).iloc[0].tolist()
    [0.02, 0.75, 0.5, 0.95]
    """
    out = pd.DataFrame(index=totals.index)
    for t in targets:
        if t.numerator in totals.columns and t.denominator in totals.columns:
            out[t.key] = t.value(totals[t.numerator], totals[t.denominator])
        else:
            logger.info("target %s: column %s or %s missing; values are NaN", t.key,
                        t.numerator, t.denominator)
            out[t.key] = np.nan
    return out


def regency_target_counts(published: PublishedRun) -> pd.DataFrame:
    """Return privacy-safe count totals per regency, including the target counts.

    Totals come from :meth:`PublishedRun.regency_totals` (sums of released atoms): the
    same rule as :meth:`PublishedRun.regencies`, applied to the deprivation counts the
    targets need as well.

    Parameters
    ----------
    published
        The privacy-safe view of a run.

    Returns
    -------
    pandas.DataFrame
        Index ``regency_code`` (string): ``regency_name``, the available
        :data:`TARGET_COUNTS` and ``cells`` (published base cells).

    Raises
    ------
    RunError
        If the run's cells have no ``households`` column.
    """
    sums = published.regency_totals(TARGET_COUNTS)
    if "households" not in sums.columns:
        raise RunError(f"{published.run_dir}: cells have no 'households' column")
    sums = sums[sums["households"] > 0]
    sums.index = sums.index.astype("string")
    sums.index.name = "regency_code"
    names_map = published.regencies().set_index("regency_code")["regency_name"]
    sums.insert(0, "regency_name", names_map.reindex(sums.index).astype("string").array)
    return sums


def target_table(old: pd.DataFrame, new: pd.DataFrame, *,
                 targets: tuple[Target, ...] = TARGETS) -> pd.DataFrame:
    """Build the two-year regency table: indicators, changes and distance to the targets.

    Parameters
    ----------
    old, new
        Outputs of :func:`regency_target_counts` for the earlier and the later run.
    targets
        The targets to report.

    Returns
    -------
    pandas.DataFrame
        One row per regency present in either year, sorted by code: ``regency_code``,
        ``regency_name``, ``households_old``/``_new``, ``extreme_households_old``/``_new``/
        ``_change``, then per target ``<key>_old``, ``<key>_new``, ``<key>_change`` (new -
        old), ``<key>_gap_old``, ``<key>_gap_new`` (distance still to go, >= 0) and
        ``<key>_met_new`` (bool). Indicators are fractions (0.8 = 80 %); a regency absent
        in one year has NaN there.
    """
    codes = old.index.union(new.index).sort_values()
    o, n = old.reindex(codes), new.reindex(codes)
    out = pd.DataFrame({"regency_code": pd.array(codes, dtype="string")})
    out["regency_name"] = n["regency_name"].fillna(o["regency_name"]).astype("string").array
    for col in ("households", "extreme_households"):
        out[f"{col}_old"] = nullable_counts(o[col]).array  # Float64 for expected counts
        out[f"{col}_new"] = nullable_counts(n[col]).array
    out["extreme_households_change"] = out["extreme_households_new"] - out["extreme_households_old"]
    vo, vn = indicator_values(o, targets=targets), indicator_values(n, targets=targets)
    for t in targets:
        out[f"{t.key}_old"] = vo[t.key].to_numpy()
        out[f"{t.key}_new"] = vn[t.key].to_numpy()
        out[f"{t.key}_change"] = out[f"{t.key}_new"] - out[f"{t.key}_old"]
        out[f"{t.key}_gap_old"] = t.gap(out[f"{t.key}_old"])
        out[f"{t.key}_gap_new"] = t.gap(out[f"{t.key}_new"])
        met = pd.array(out[f"{t.key}_gap_new"].to_numpy() == 0.0, dtype="boolean")
        met[np.isnan(out[f"{t.key}_gap_new"].to_numpy())] = pd.NA
        out[f"{t.key}_met_new"] = met
    return out


def targets_record(targets: tuple[Target, ...] = TARGETS) -> list[dict[str, object]]:
    """Return the target definitions as JSON-ready dicts (for ``compare.json``)."""
    out: list[dict[str, object]] = [dataclasses.asdict(t) for t in targets]
    out += [{"goal": goal, "mapped": False, "note": why} for goal, why in UNMAPPED.items()]
    return out


__all__ = ["TARGETS", "TARGET_COUNTS", "UNMAPPED", "Target", "indicator_values",
           "regency_target_counts", "target_by_key", "target_table", "targets_record"]
