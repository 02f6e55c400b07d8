"""Statistical disclosure control of everything Kantong publishes.

The rules (documented with the attack model in ``docs/privacy.md``):

1. **Minimum household count** ``K``: a cell (at any H3 resolution) with fewer than ``K``
   households is *withheld*: its row is not published at all, so neither its counts nor the
   presence of a few poor households at that place are revealed.
2. **Complementary suppression down the H3 hierarchy**: every published cell ``P`` at a
   coarser resolution is an exact sum of its children. If its withheld children sum to fewer
   than ``K`` households, or are a single cell, the smallest published siblings are withheld
   too, until the *residual* ``P - sum(published children)`` is at least ``K`` households spread
   over at least two cells. A withheld cell withholds all of its descendants.
3. **Atoms**: every base cell then belongs to exactly one *atom*: a published base cell, the
   residual of its lowest published ancestor (>= ``K`` households, >= 2 cells), or the
   *remainder* of its regency (base cells under no published cell). Every other published
   total (regency summaries, pockets) is a sum of whole released atoms, so subtracting
   published numbers from each other can never split an atom: the finest thing an attacker
   can learn is an atom total, which is itself a group of ``K`` or more households.

All functions here are pure (frames in, frames out) and vectorised per resolution level.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from kantong.engine.config import check_min_households
from kantong.engine.errors import PrivacyError, RunError
from kantong.engine.h3ids import cells_to_uint64, parent_cells, uint64_to_cells

logger = logging.getLogger(__name__)

#: Status of a cell at one resolution.
PUBLISHED = "published"
#: Withheld: fewer than ``K`` households (primary suppression).
SMALL = "small"
#: Withheld to protect a small sibling against subtraction from the published parent.
COMPLEMENTARY = "complementary"
#: Withheld because an ancestor cell is withheld.
ANCESTOR = "ancestor"
STATUSES = (PUBLISHED, SMALL, COMPLEMENTARY, ANCESTOR)

#: Kinds of atom a base cell belongs to.
ATOM_CELL = "cell"
ATOM_RESIDUAL = "residual"
ATOM_REMAINDER = "remainder"

#: Count columns summed into regency and pocket totals.
SUMMED_COUNTS = ("households", "persons", "extreme_households", "extreme_persons")


@dataclasses.dataclass(frozen=True)
class SuppressionPlan:
    """What may be published from one run at one minimum household count.

    Attributes
    ----------
    min_households
        The threshold ``K``.
    status
        Resolution -> Series indexed by H3 id (string) with one of :data:`STATUSES`.
    atoms
        One row per base cell (index: H3 id) with ``atom`` (atom key: the H3 id of the
        published cell, of the published ancestor whose residual it is, or the regency
        code of a remainder), ``kind`` (``cell``/``residual``/``remainder``), ``released``
        (bool) and ``atom_regency`` (regency the atom is counted in).
    """

    min_households: int
    status: Mapping[int, pd.Series]
    atoms: pd.DataFrame

    @property
    def base_resolution(self) -> int:
        """Finest resolution of the plan."""
        return max(self.status)

    def published_ids(self, resolution: int) -> pd.Index:
        """Return the H3 ids published at ``resolution``."""
        s = self.status[resolution]
        return s.index[s.to_numpy() == PUBLISHED]

    def withheld_count(self, resolution: int) -> int:
        """Return how many cells holding households are withheld at ``resolution``."""
        return int((self.status[resolution] != PUBLISHED).sum())


def suppress_hierarchy(levels: Mapping[int, pd.DataFrame], *, min_households: int
                       ) -> dict[int, pd.Series]:
    """Apply primary and complementary suppression to nested H3 levels, top-down.

    Parameters
    ----------
    levels
        Resolution -> frame with columns ``h3`` (string) and ``households``; every level
        must be the exact rollup of the next finer one (checked).
    min_households
        The threshold ``K`` (>= ``LOWEST_MIN_HOUSEHOLDS``).

    Returns
    -------
    dict
        Resolution -> Series of statuses indexed by H3 id.

    Raises
    ------
    RunError
        If a coarser level is not the exact sum of the finer one.

    Examples
    --------
    >>> status = suppress_hierarchy({7: r7, 8: r8}, min_households=10)  # doctest: +SKIP
    >>> status[8].value_counts()  # doctest: +SKIP
    """
    k = check_min_households(min_households)
    resolutions = sorted(levels)
    out: dict[int, pd.Series] = {}
    coarser = None  # resolution, ids, households and published flags of the level above
    for res in resolutions:
        frame = levels[res]
        ids = cells_to_uint64(frame["h3"])
        # counts of village-located households are expected (fractional) values, compared
        # with K as they are (9.6 expected households < 10 is withheld)
        hh = frame["households"].to_numpy()
        status = np.where(hh < k, SMALL, PUBLISHED).astype(object)
        if coarser is not None:
            prev_res, prev_ids, prev_hh, prev_pub = coarser
            parent = parent_cells(ids, prev_res)
            _check_nesting(parent, hh, prev_ids, prev_hh, res)
            parent_pub = np.isin(parent, prev_ids[prev_pub])
            status[~parent_pub] = ANCESTOR
            comp = _complementary(parent, hh, ids, status == SMALL, parent_pub, k)
            status[comp] = COMPLEMENTARY
        # the index is named after the column: "h3"
        out[res] = pd.Series(status, index=pd.Index(frame["h3"].astype(str)), name="status")
        pub = status == PUBLISHED
        coarser = res, ids, hh, pub
        logger.debug("r%d: %d published, %d withheld", res, pub.sum(), (~pub).sum())
    return out


def _check_nesting(parent: np.ndarray, hh: np.ndarray, prev_ids: np.ndarray,
                   prev_hh: np.ndarray, res: int) -> None:
    sums = pd.Series(hh).groupby(parent).sum()
    expected = pd.Series(prev_hh, index=prev_ids).reindex(sums.index)  # NaN: not a coarser cell
    # exact for integer counts; expected counts may differ by float summation order only
    if len(sums) != len(prev_ids) or not np.allclose(sums.to_numpy(), expected.to_numpy(),
                                                      rtol=1e-9, atol=1e-9):
        raise RunError(f"rollup above r{res}: households are not the exact sum of the "
                       f"r{res} cells; rebuild the run")


def _complementary(parent: np.ndarray, hh: np.ndarray, ids: np.ndarray, primary: np.ndarray,
                   parent_pub: np.ndarray, k: int) -> np.ndarray:
    """Mark published siblings to withhold so each parent's residual is >= k over >= 2 cells.

    Within each published parent with a small child, the children are taken from the smallest
    up (ties by H3 id), which puts the small ones (below ``k``) before their published siblings
    (``k`` or more), and cut at the shortest prefix holding ``k`` households; the published
    siblings in it are withheld. That prefix holds two cells or more, its first being small.
    """
    df = pd.DataFrame({"parent": parent, "hh": hh, "id": ids, "primary": primary,
                       "row": np.arange(len(hh))})[parent_pub]
    df = df[df.groupby("parent")["primary"].transform("any").to_numpy()]
    df = df.sort_values(["hh", "id"])  # groupby keeps this order within each parent
    reached = (df.groupby("parent")["hh"].cumsum() >= k).to_numpy()
    # the prefix ends at the first child where the households reach k (they never decrease)
    reached_before = pd.Series(reached).groupby(df["parent"].to_numpy()).cumsum() - reached
    take = reached_before.to_numpy() == 0
    comp = np.zeros(len(hh), dtype=bool)
    comp[df["row"].to_numpy()[take & ~df["primary"].to_numpy()]] = True
    return comp


def assign_atoms(base: pd.DataFrame, status: Mapping[int, pd.Series], *, min_households: int
                 ) -> pd.DataFrame:
    """Partition base cells into atoms and decide which atoms enter published totals.

    Parameters
    ----------
    base
        Base-resolution cells with ``h3``, ``households`` and ``regency_code``.
    status
        Output of :func:`suppress_hierarchy` (the base resolution is its finest level).
    min_households
        The threshold ``K``.

    Returns
    -------
    pandas.DataFrame
        Indexed by H3 id: ``atom``, ``kind``, ``released``, ``atom_regency``.

    Raises
    ------
    PrivacyError
        If a residual atom is smaller than ``K`` or a single cell (a broken invariant of
        :func:`suppress_hierarchy`; never expected).
    """
    k = check_min_households(min_households)
    resolutions = sorted(status)
    base_res = resolutions[-1]
    h3s = base["h3"].astype(str).to_numpy()
    ids = cells_to_uint64(h3s)
    regency = base["regency_code"].astype("string").fillna("").to_numpy()  # "": no regency
    own = status[base_res].reindex(h3s).to_numpy() == PUBLISHED
    # atom keys: the H3 id of a published cell, of a published ancestor (its residual; at a
    # coarser resolution, so never a base cell's id) or a regency code (never an H3 id)
    atom = np.where(own, h3s, None).astype(object)
    kind = np.where(own, ATOM_CELL, None).astype(object)
    for res in reversed(resolutions[:-1]):
        todo = atom == None  # noqa: E711 (element-wise)
        if not todo.any():
            break
        par = uint64_to_cells(parent_cells(ids[todo], res))
        pub = status[res].reindex(par).to_numpy() == PUBLISHED
        idx = np.flatnonzero(todo)[pub]
        atom[idx] = par[pub]
        kind[idx] = ATOM_RESIDUAL
    rest = atom == None  # noqa: E711
    atom[rest] = regency[rest]
    kind[rest] = ATOM_REMAINDER
    frame = pd.DataFrame({"atom": atom, "kind": kind, "regency": regency,
                          "households": base["households"].to_numpy()},
                         index=pd.Index(h3s, name="h3"))
    size = frame.groupby("atom")["households"].transform("sum")
    n = frame.groupby("atom")["households"].transform("size")
    big_enough = (size >= k) & (n >= 2)
    bad = (frame["kind"] == ATOM_RESIDUAL) & ~big_enough
    if bad.any():
        raise PrivacyError(f"complementary suppression left {int(bad.sum())} cells in residuals "
                           f"below {k} households; refusing to publish")
    # the regency holding most of the atom's households (ties: the smaller code)
    by_reg = frame.groupby(["atom", "regency"])["households"].sum().reset_index()
    by_reg = by_reg.sort_values(["households", "regency"], ascending=[False, True]
                                ).drop_duplicates("atom")
    frame["atom_regency"] = frame["atom"].map(by_reg.set_index("atom")["regency"])
    released = ((frame["kind"] == ATOM_CELL) | big_enough) & (frame["atom_regency"] != "")
    frame["released"] = released.to_numpy()
    return frame[["atom", "kind", "released", "atom_regency"]]


def plan_suppression(levels: Mapping[int, pd.DataFrame], *, min_households: int
                     ) -> SuppressionPlan:
    """Compute the whole suppression plan of a run (hierarchy plus atoms).

    Parameters
    ----------
    levels
        Resolution -> frame with ``h3`` and ``households``; the finest level (the base
        cells) must also carry ``regency_code``.
    min_households
        The threshold ``K``.

    Returns
    -------
    SuppressionPlan
    """
    status = suppress_hierarchy(levels, min_households=min_households)
    base = levels[max(levels)]
    atoms = assign_atoms(base, status, min_households=min_households)
    return SuppressionPlan(min_households=min_households, status=status, atoms=atoms)


def released_regency_totals(base: pd.DataFrame, plan: SuppressionPlan, *,
                            columns: tuple[str, ...] = SUMMED_COUNTS) -> pd.DataFrame:
    """Sum count ``columns`` of the released atoms per regency they are counted in.

    Parameters
    ----------
    base
        Base cells with ``h3``, ``regency_code`` and the ``columns``.
    plan
        The suppression plan.
    columns
        Count columns to sum.

    Returns
    -------
    pandas.DataFrame
        One row per regency (index ``regency_code``) with the sums and ``cells`` (published
        base cells whose own regency it is).
    """
    atoms = plan.atoms.reindex(base["h3"].astype(str).to_numpy())
    keep = atoms["released"].to_numpy()
    frame = base.loc[keep, list(columns)].copy()
    frame["regency_code"] = atoms["atom_regency"].to_numpy()[keep]
    sums = frame.groupby("regency_code")[list(columns)].sum()
    own = atoms["kind"].to_numpy() == ATOM_CELL
    cells = pd.Series(base["regency_code"].astype(str).to_numpy()[own]).value_counts()
    sums["cells"] = cells.reindex(sums.index).fillna(0).astype("int64")
    return sums


def pocket_totals(base: pd.DataFrame, plan: SuppressionPlan, *,
                  columns: tuple[str, ...] = SUMMED_COUNTS) -> pd.DataFrame:
    """Sum count ``columns`` of each pocket over its *published* base cells only.

    Published pocket totals are therefore exactly the sum of the published cells inside
    (subtracting them leaves zero); pockets below ``K`` households are dropped.

    Parameters
    ----------
    base
        Base cells with ``h3``, ``pocket_id``, ``regency_code`` and the ``columns``.
    plan
        The suppression plan.
    columns
        Count columns to sum.

    Returns
    -------
    pandas.DataFrame
        Index ``pocket_id`` (int64): the sums, ``cells`` (published cells) and ``regency_code``
        (regency holding most of the pocket's published households).
    """
    empty = pd.DataFrame(columns=[*columns, "cells", "regency_code"],
                         index=pd.Index([], dtype="int64", name="pocket_id"))
    if "pocket_id" not in base.columns:
        return empty
    status = plan.status[plan.base_resolution].reindex(base["h3"].astype(str).to_numpy())
    keep = (status.to_numpy() == PUBLISHED) & base["pocket_id"].notna().to_numpy()
    cells = base.loc[keep, ["pocket_id", "regency_code", *columns]].copy()
    if cells.empty:
        return empty
    cells["pocket_id"] = cells["pocket_id"].astype("int64")
    sums = cells.groupby("pocket_id")[list(columns)].sum()
    sums["cells"] = cells.groupby("pocket_id").size()
    reg = (cells.groupby(["pocket_id", "regency_code"])["households"].sum().reset_index()
           .sort_values(["households", "regency_code"], ascending=[False, True])
           .drop_duplicates("pocket_id").set_index("pocket_id")["regency_code"])
    sums["regency_code"] = reg.astype("string")  # aligned on pocket_id
    return sums[sums["households"] >= plan.min_households]


def withhold_site_counts(sites: pd.DataFrame, *, min_households: int) -> pd.DataFrame:
    """Withhold small counts of ranked sites (one ``type`` at a time) without differencing leaks.

    ``new_extreme_households`` below ``K`` becomes null. Cumulative columns
    (``cumulative_extreme_households``) and ``covered_persons`` are published only for the
    ranks *before* the first withheld site of the same type (and ``covered_persons`` only
    when >= ``K``), so consecutive cumulative values can never be subtracted to recover a
    withheld count.

    Parameters
    ----------
    sites
        Sites with ``type``, ``rank`` and the count columns (any may be absent).
    min_households
        The threshold ``K``.

    Returns
    -------
    pandas.DataFrame
        A copy with nullable ``Int64`` count columns and small counts set to ``<NA>``.
    """
    k = check_min_households(min_households)
    out = sites.sort_values(["type", "rank"]).reset_index(drop=True)
    if "new_extreme_households" not in out.columns:
        return out
    new = out["new_extreme_households"].astype("Int64")
    small = _below(new, k)
    seen_small = small.groupby(out["type"]).cummax()
    out["new_extreme_households"] = new.mask(small)
    if "cumulative_extreme_households" in out.columns:
        out["cumulative_extreme_households"] = (
            out["cumulative_extreme_households"].astype("Int64").mask(seen_small))
    if "covered_persons" in out.columns:
        cp = out["covered_persons"].astype("Int64")
        out["covered_persons"] = cp.mask(seen_small | _below(cp, k))
    return out


def _below(counts: pd.Series, k: int) -> pd.Series:
    """Flag counts below ``k``; a missing count counts as below (it is never published)."""
    return (counts < k).fillna(True).astype(bool)


def published_rollup_values(base: pd.DataFrame, plan: SuppressionPlan, resolution: int, *,
                            means: tuple[str, ...] = (), sums: tuple[str, ...] = ()
                            ) -> pd.DataFrame:
    """Recompute derived columns of rollup cells from the *published* base cells only.

    A rollup's ``<raster>_mean`` or ``travel_min_*`` weighted over all its children, withheld
    ones included, lets an attacker who can compute each child's value (from the public
    raster) solve for withheld household counts (docs/privacy.md, "derived values"). Here
    every such value is computed over the published base cells inside the rollup cell:
    ``means`` as household-weighted means, ``sums`` (``population``) as sums, both over the
    cells that have a value (NaN when none has). They are then functions of published
    numbers only.

    Parameters
    ----------
    base
        Base cells with ``h3``, ``households`` and the ``means`` and ``sums`` columns.
    plan
        The suppression plan.
    resolution
        The rollup resolution (coarser than the base).
    means, sums
        Columns to recompute.

    Returns
    -------
    pandas.DataFrame
        Indexed by the rollup H3 id (string) of every rollup cell holding a published base
        cell; one column per recomputed column.
    """
    status = plan.status[plan.base_resolution].reindex(base["h3"].astype(str).to_numpy())
    keep = status.to_numpy() == PUBLISHED
    cells = base.loc[keep]
    parents = parent_cells(cells_to_uint64(cells["h3"].astype(str)), resolution)
    codes, uniq = pd.factorize(parents)
    weight = cells["households"].to_numpy()
    out = pd.DataFrame(index=pd.Index(uint64_to_cells(uniq), name="h3"))
    for col in means:
        x = cells[col].to_numpy(dtype="float64")
        # a published cell holds K >= 3 households: the weights of a cell with values are > 0
        out[col] = (_sum_valued(codes, x * weight, len(uniq))
                    / _sum_valued(codes, np.where(np.isfinite(x), weight, np.nan), len(uniq)))
    for col in sums:
        out[col] = _sum_valued(codes, cells[col].to_numpy(dtype="float64"), len(uniq))
    return out


def _sum_valued(codes: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """Sum ``x`` per code ``0..n-1`` over its finite values; NaN for a code with none."""
    ok = np.isfinite(x)
    total = np.bincount(codes[ok], weights=x[ok], minlength=n)
    return np.where(np.bincount(codes[ok], minlength=n) > 0, total, np.nan)

