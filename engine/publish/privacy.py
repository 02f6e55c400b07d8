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

import h3ronpy
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
        One row per base cell (index: H3 id) with ``atom`` (atom key), ``kind``
        (``cell``/``residual``/``remainder``), ``released`` (bool) and ``atom_regency``
        (regency the atom is counted in).
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
    prev_ids: np.ndarray | None = None
    prev_pub: np.ndarray | None = None
    for i, res in enumerate(resolutions):
        frame = levels[res]
        ids = cells_to_uint64(frame["h3"])
        # float64: counts of village-located households are expected (fractional) values,
        # compared with K as they are (9.6 expected households < 10 is withheld)
        hh = frame["households"].to_numpy(dtype="float64")
        status = np.where(hh < k, SMALL, PUBLISHED).astype(object)
        if i > 0:
            parent = parent_cells(ids, resolutions[i - 1])
            _check_nesting(parent, hh, prev_ids, levels[resolutions[i - 1]], res)
            parent_pub = np.isin(parent, prev_ids[prev_pub])
            status[~parent_pub] = ANCESTOR
            comp = _complementary(parent, hh, ids, status == SMALL, parent_pub, k)
            status[comp] = COMPLEMENTARY
        out[res] = pd.Series(status, index=pd.Index(frame["h3"].astype(str), name="h3"),
                             name="status")
        prev_ids, prev_pub = ids, status == PUBLISHED
        logger.debug("r%d: %d published, %d withheld", res, int(prev_pub.sum()),
                     int((~prev_pub).sum()))
    return out


def _check_nesting(parent: np.ndarray, hh: np.ndarray, prev_ids: np.ndarray,
                   prev: pd.DataFrame, res: int) -> None:
    sums = pd.Series(hh).groupby(parent).sum()
    expected = pd.Series(prev["households"].to_numpy(dtype="float64"), index=prev_ids)
    same_cells = len(sums) == len(expected) and sums.index.isin(expected.index).all()
    # exact for integer counts; expected counts may differ by float summation order only
    if not same_cells or not np.allclose(sums.to_numpy(), expected.reindex(sums.index).to_numpy(),
                                         rtol=1e-9, atol=1e-9):
        raise RunError(f"rollup above r{res}: households are not the exact sum of the "
                       f"r{res} cells; rebuild the run")


def _complementary(parent: np.ndarray, hh: np.ndarray, ids: np.ndarray, primary: np.ndarray,
                   parent_pub: np.ndarray, k: int) -> np.ndarray:
    """Mark published siblings to withhold so each parent's residual is >= k over >= 2 cells."""
    df = pd.DataFrame({"parent": parent, "hh": hh, "id": ids, "primary": primary,
                       "row": np.arange(len(hh))})[parent_pub]
    n_primary = df.groupby("parent")["primary"].transform("sum").to_numpy()
    df = df[n_primary > 0].assign(later=lambda d: ~d["primary"])
    comp = np.zeros(len(hh), dtype=bool)
    if df.empty:
        return comp
    df = df.sort_values(["parent", "later", "hh", "id"], kind="stable")
    g = df.groupby("parent", sort=False)
    pos = g.cumcount().to_numpy()
    cum = g["hh"].cumsum().to_numpy()
    npri = g["primary"].transform("sum").to_numpy()
    ok = (pos >= npri - 1) & (pos >= 1) & (cum >= k)
    big = np.iinfo("int64").max
    first_ok = pd.Series(np.where(ok, pos, big)).groupby(df["parent"].to_numpy()).transform("min")
    take = pos <= first_ok.to_numpy()
    rows = df["row"].to_numpy()[take & ~df["primary"].to_numpy()]
    comp[rows] = True
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
    regency = base["regency_code"].astype("string").fillna("").to_numpy(dtype=object)
    own = status[base_res].reindex(h3s).to_numpy() == PUBLISHED
    atom = np.where(own, "c" + h3s.astype(object), None).astype(object)
    kind = np.where(own, ATOM_CELL, None).astype(object)
    for res in reversed(resolutions[:-1]):
        todo = atom == None  # noqa: E711 (element-wise)
        if not todo.any():
            break
        par = parent_cells(ids[todo], res)
        par_str = np.asarray(h3ronpy.cells_to_string(par).to_pylist(), dtype=object)
        pub = status[res].reindex(par_str).to_numpy() == PUBLISHED
        idx = np.flatnonzero(todo)[pub]
        atom[idx] = "p" + par_str[pub]
        kind[idx] = ATOM_RESIDUAL
    rest = atom == None  # noqa: E711
    atom[rest] = "r" + regency[rest]
    kind[rest] = ATOM_REMAINDER
    frame = pd.DataFrame({"atom": atom, "kind": kind, "regency": regency,
                          "households": base["households"].to_numpy(dtype="float64")},
                         index=pd.Index(h3s, name="h3"))
    size = frame.groupby("atom")["households"].transform("sum")
    n = frame.groupby("atom")["households"].transform("size")
    big_enough = (size >= k) & (n >= 2)
    bad = (frame["kind"] == ATOM_RESIDUAL) & ~big_enough
    if bad.any():
        raise PrivacyError(f"complementary suppression left {int(bad.sum())} cells in residuals "
                           f"below {k} households; refusing to publish")
    by_reg = frame.groupby(["atom", "regency"], sort=True)["households"].sum().reset_index()
    by_reg = by_reg.sort_values(["atom", "households", "regency"], ascending=[True, False, True],
                                kind="stable").drop_duplicates("atom")
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
    keep = atoms["released"].to_numpy(dtype=bool)
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
           .sort_values(["pocket_id", "households", "regency_code"],
                        ascending=[True, False, True], kind="stable")
           .drop_duplicates("pocket_id").set_index("pocket_id")["regency_code"])
    sums["regency_code"] = reg.reindex(sums.index).astype("string")
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
    out = sites.sort_values(["type", "rank"], kind="stable").reset_index(drop=True)
    if "new_extreme_households" not in out.columns:
        return out
    new = out["new_extreme_households"].astype("Int64")
    small = (new < k).fillna(True).to_numpy(dtype=bool)
    seen_small = pd.Series(small).groupby(out["type"].to_numpy()).cummax().to_numpy(dtype=bool)
    out["new_extreme_households"] = new.mask(small)
    if "cumulative_extreme_households" in out.columns:
        out["cumulative_extreme_households"] = (
            out["cumulative_extreme_households"].astype("Int64").mask(seen_small))
    if "covered_persons" in out.columns:
        cp = out["covered_persons"].astype("Int64")
        out["covered_persons"] = cp.mask(seen_small | (cp < k).fillna(True).to_numpy(dtype=bool))
    return out


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
    codes, uniq = pd.factorize(parents, sort=True)
    n = len(uniq)
    weight = cells["households"].to_numpy(dtype="float64")
    out = pd.DataFrame(index=pd.Index(uint64_to_cells(np.asarray(uniq, dtype="uint64")),
                                      name="h3"))
    for col in means:
        x = cells[col].to_numpy(dtype="float64")
        ok = np.isfinite(x)
        num = np.bincount(codes[ok], weights=x[ok] * weight[ok], minlength=n)
        den = np.bincount(codes[ok], weights=weight[ok], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[col] = np.where(den > 0, num / den, np.nan)
    for col in sums:
        x = cells[col].to_numpy(dtype="float64")
        ok = np.isfinite(x)
        total = np.bincount(codes[ok], weights=x[ok], minlength=n)
        has = np.bincount(codes[ok], minlength=n) > 0
        out[col] = np.where(has, total, np.nan)
    return out

