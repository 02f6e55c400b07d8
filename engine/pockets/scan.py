"""Poverty pockets by a spatial scan statistic over multi-radius H3 k-ring windows.

Kulldorff's (1997) scan statistic, Poisson model, adapted to the H3 grid and made robust
to isolated outlier cells:

1. **Windows.** Every analysis cell is the centre of ``max_k`` windows: its H3 disks of
   radius 1..``max_k`` (7, 19, 37, ... cells; empty cells simply hold no households).
2. **Robust counts.** Each cell's extreme-poor count is capped at the ``cap_quantile``
   quantile of a binomial with the cell's households and the run's overall rate, so a single
   cell cannot make a pocket on its own; a pocket has to be an *area* of elevated rates.
   Reported totals always use the true counts; the cap only enters the statistic.
3. **Statistic.** For a window with ``c`` (capped) extreme-poor households and expected
   ``e = C * n / N`` (``n`` households, ``C``/``N`` run totals), the log-likelihood ratio is
   ``c ln(c/e) + (C-c) ln((C-c)/(C-e))`` when ``c > e``, else 0.
4. **Significance.** The cells' (households, capped count) pairs are permuted over the grid
   ``permutations`` times; each permutation's largest window LLR gives the null
   distribution of the maximum, to which a Gumbel distribution is fitted (Abrams, Kleinman
   & Kulldorff 2010). A window's p-value is the Gumbel tail at its LLR, never below the
   share of permutations that reached it: it is adjusted for every window tested
   (family-wise), and permutation keeps it valid when the rates are
   over-dispersed (isolated spikes are permuted too).
5. **Clusters.** Significant windows are taken in order of LLR, skipping any that overlaps
   an already chosen one (SaTScan's secondary clusters without geographical overlap). The
   cells of the chosen windows are the hot cells; scikit-learn's DBSCAN over the H3
   adjacency (:mod:`.contiguity`) groups them into pockets.

Window sums come from one sparse matrix per ring distance (``h3ronpy.grid_disk_distances``
once for all cells) multiplied by dense blocks of permuted columns: no Python loop over
windows or cells.
"""

from __future__ import annotations

import dataclasses
import logging

import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from scipy import stats

__all__ = ["ScanResult", "cap_counts", "disk_distances", "gumbel_sf", "poisson_llr",
           "scan_p_value", "scan_windows"]

logger = logging.getLogger(__name__)

_EULER = 0.5772156649015329
#: Permuted columns multiplied at once (memory: cells x block x 4 bytes per ring).
_BLOCK = 16


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """Outcome of :func:`scan_windows`.

    Attributes
    ----------
    hot
        Boolean per cell: inside a chosen significant window.
    window_of_cell
        Index into ``windows`` of the chosen window holding each cell (-1 outside).
    windows
        One row per chosen window: ``centre`` (row of the centre cell), ``k`` (radius),
        ``households``, ``extreme`` (capped), ``llr`` and ``p``; ordered by LLR.
    null_max
        Largest window LLR of every permutation (the null distribution of the maximum).
    capped
        The capped extreme-poor counts the statistic used.
    """

    hot: np.ndarray
    window_of_cell: np.ndarray
    windows: pd.DataFrame
    null_max: np.ndarray
    capped: np.ndarray

    def p_value(self, llr: np.ndarray | float) -> np.ndarray:
        """Return the family-wise p-value of LLR values (see :func:`scan_p_value`)."""
        return scan_p_value(llr, self.null_max)


def disk_distances(cells: np.ndarray, max_k: int) -> sp.csr_matrix:
    """Return grid distances between cells up to ``max_k`` as a sparse matrix.

    Parameters
    ----------
    cells
        ``uint64`` H3 indexes of one resolution, unique.
    max_k
        Largest grid distance kept.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``n x n`` ``int16`` matrix holding ``distance + 1`` (so the diagonal is stored as 1)
        for pairs of ``cells`` within ``max_k`` steps; other pairs are absent.
    """
    n = len(cells)
    rb = pa.record_batch(h3ronpy.grid_disk_distances(cells, max_k, flatten=False))
    lists = rb.column("cell")
    offsets = lists.offsets.to_numpy()
    values = lists.values.to_numpy().astype(np.uint64)
    dist = rb.column("k").values.to_numpy().astype(np.int16)
    order = np.argsort(cells, kind="stable")
    sorted_cells = cells[order]
    pos = np.searchsorted(sorted_cells, values)
    pos = np.minimum(pos, n - 1)
    found = sorted_cells[pos] == values
    rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(offsets))
    matrix = sp.csr_matrix((dist[found] + 1, (rows[found], order[pos[found]])), shape=(n, n))
    return matrix


def poisson_llr(c: np.ndarray, e: np.ndarray, total: float) -> np.ndarray:
    """Kulldorff's Poisson log-likelihood ratio of windows with ``c`` events, ``e`` expected.

    ``c ln(c/e) + (C-c) ln((C-c)/(C-e))`` for ``c > e`` (elevated windows), 0 otherwise;
    ``C`` is ``total``.

    Examples
    --------
    >>> float(poisson_llr(np.array([10.0]), np.array([5.0]), 100.0)[0].round(4))
    2.0654
    """
    c = np.asarray(c, dtype="float64")
    e = np.asarray(e, dtype="float64")
    out = np.zeros(np.broadcast(c, e).shape)
    up = c > e
    cu, eu = np.broadcast_to(c, out.shape)[up], np.broadcast_to(e, out.shape)[up]
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = cu * np.log(cu / eu)
        outer = np.where(total > cu, (total - cu) * np.log1p((eu - cu) / (total - eu)), 0.0)
    out[up] = inner + outer
    return out


def gumbel_sf(x: np.ndarray | float, maxima: np.ndarray) -> np.ndarray:
    """Upper tail of the Gumbel distribution fitted to ``maxima`` by moments, at ``x``."""
    maxima = np.asarray(maxima, dtype="float64")
    beta = max(float(maxima.std(ddof=1)) * np.sqrt(6.0) / np.pi, 1e-12)
    mu = float(maxima.mean()) - _EULER * beta
    return -np.expm1(-np.exp(-(np.asarray(x, dtype="float64") - mu) / beta))


def cap_counts(households: np.ndarray, extreme: np.ndarray, quantile: float) -> np.ndarray:
    """Cap each cell's count at the ``quantile`` of Binomial(households, overall rate)."""
    hh = np.asarray(households, dtype="float64")
    ex = np.asarray(extreme, dtype="float64")
    if not 0.0 < quantile < 1.0 or hh.sum() <= 0:
        return ex
    rate = ex.sum() / hh.sum()
    trials = np.ceil(hh).astype("int64")  # expected (fractional) counts: never cap below them
    return np.minimum(ex, stats.binom.ppf(quantile, trials, rate))


def scan_p_value(llr: np.ndarray | float, null_max: np.ndarray) -> np.ndarray:
    """Family-wise p-value of window LLRs against the permutation maxima ``null_max``.

    The Gumbel tail fitted to the maxima (smooth, and finer than ``1 / (R + 1)``), but never
    below the share of permutations whose maximum reached the LLR: the fit cannot claim more
    than the permutations showed.

    Examples
    --------
    >>> null = np.array([1.0, 2.0, 3.0, 4.0])
    >>> scan_p_value(np.array([2.5]), null).item() >= 2 / 5
    True
    """
    x = np.asarray(llr, dtype="float64")
    ordered = np.sort(np.asarray(null_max, dtype="float64"))
    reached = len(ordered) - np.searchsorted(ordered, x, side="left")
    return np.maximum(gumbel_sf(x, ordered), reached / (len(ordered) + 1))


def _rings(dist: sp.csr_matrix, max_k: int) -> list[sp.csr_matrix]:
    """Split ``dist`` into one float32 0/1 matrix per grid distance 0..max_k."""
    n = dist.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(dist.indptr))
    order = np.argsort(dist.data, kind="stable")
    bounds = np.searchsorted(dist.data[order], np.arange(1, max_k + 3))
    rings = []
    for k in range(max_k + 1):  # a handful of rings, each one vectorised
        sel = order[bounds[k]:bounds[k + 1]]
        rings.append(sp.csr_matrix((np.ones(len(sel), dtype="float32"),
                                    (rows[sel], dist.indices[sel])), shape=(n, n)))
    return rings


def _max_llr(rings: list[sp.csr_matrix], hh: np.ndarray, ex: np.ndarray, rate: float,
             total: float) -> np.ndarray:
    """Largest window LLR of each column of ``hh``/``ex`` (cells x columns), radius >= 1."""
    acc_h = rings[0] @ hh
    acc_e = rings[0] @ ex
    best = np.zeros(hh.shape[1])
    for ring in rings[1:]:
        acc_h += ring @ hh
        acc_e += ring @ ex
        best = np.maximum(best, _column_max_llr(acc_e, acc_h * np.float32(rate), total))
    return best


def _column_max_llr(c: np.ndarray, e: np.ndarray, total: float) -> np.ndarray:
    """Column maxima of :func:`poisson_llr` for float32 blocks, in place (the null's hot loop)."""
    up = c > e
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = c / e
        np.log(inner, out=inner)
        inner *= c
        outer = e - c
        outer /= np.float32(total) - e
        np.log1p(outer, out=outer)
        outer *= np.float32(total) - c
        inner += outer
    inner[~up] = 0.0
    return inner.max(axis=0).astype("float64")


def scan_windows(cells: pd.DataFrame, ids: np.ndarray, *, max_k: int = 5,
                 permutations: int = 99, alpha: float = 0.01, cap_quantile: float = 0.99,
                 seed: int = 0) -> ScanResult:
    """Find significant, non-overlapping scan windows of elevated extreme-poverty rates.

    Parameters
    ----------
    cells
        Analysis cells with ``households`` and ``extreme_households``.
    ids
        Their ``uint64`` H3 indexes (one resolution, unique), aligned with ``cells``.
    max_k
        Largest window radius in H3 rings (windows are the disks of radius 1..``max_k``).
    permutations
        Monte Carlo permutations of the cells for the null distribution of the maximum.
    alpha
        Family-wise significance level of a window.
    cap_quantile
        Binomial quantile at which each cell's count is capped (0 disables the cap).
    seed
        Seed of the permutations (results are reproducible).

    Returns
    -------
    ScanResult
    """
    hh = cells["households"].to_numpy(dtype="float64")
    ex = cap_counts(hh, cells["extreme_households"].to_numpy(dtype="float64"), cap_quantile)
    n = len(hh)
    total_h, total_e = float(hh.sum()), float(ex.sum())
    empty = ScanResult(np.zeros(n, bool), np.full(n, -1), pd.DataFrame(
        columns=["centre", "k", "households", "extreme", "llr", "p"]), np.zeros(0), ex)
    if n < 2 or total_e <= 0 or total_h <= 0:
        return empty
    rate = total_e / total_h
    dist = disk_distances(ids, max_k)
    rings = _rings(dist, max_k)
    # observed windows: sums per radius (k = 1..max_k)
    both = np.column_stack([hh, ex])
    per_ring = np.stack([ring @ both for ring in rings])  # (max_k + 1, n, 2)
    sums = np.cumsum(per_ring, axis=0)[1:]
    win_h, win_e = sums[..., 0], sums[..., 1]  # (max_k, n): radius 1..max_k
    llr = poisson_llr(win_e, win_h * rate, total_e)
    rng = np.random.default_rng(seed)
    null_max = np.empty(permutations)
    hh32, ex32 = hh.astype("float32"), ex.astype("float32")
    for start in range(0, permutations, _BLOCK):
        b = min(_BLOCK, permutations - start)
        perm = rng.permuted(np.tile(np.arange(n), (b, 1)), axis=1).T  # (n, b)
        null_max[start:start + b] = _max_llr(rings, hh32[perm], ex32[perm], rate, total_e)
    p = scan_p_value(llr, null_max)
    hot, window_of_cell, windows = _choose(dist, llr, p, win_h, win_e, alpha)
    logger.info("scan: %d windows of radius 1-%d on %d cells, %d permutations; null max LLR "
                "mean %.1f; %d significant non-overlapping windows at alpha %.3g",
                llr.size, max_k, n, permutations, float(null_max.mean()), len(windows), alpha)
    return ScanResult(hot, window_of_cell, windows, null_max, ex)


def _choose(dist: sp.csr_matrix, llr: np.ndarray, p: np.ndarray, win_h: np.ndarray,
            win_e: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Greedy non-overlapping selection of significant windows, best LLR first."""
    n = dist.shape[0]
    kk, centre = np.nonzero((p <= alpha) & (llr > 0))
    order = np.lexsort((centre, kk, -llr[kk, centre]))
    kk, centre = kk[order], centre[order]
    radius = kk + 1
    # membership of each candidate window: the centre's row of ``dist`` with distance <= k
    lens = np.diff(dist.indptr)[centre]
    owner = np.repeat(np.arange(len(centre)), lens)
    first = np.repeat(dist.indptr[centre] - np.cumsum(lens) + lens, lens)
    pos = first + np.arange(int(lens.sum()))
    inside = dist.data[pos] - 1 <= np.repeat(radius, lens)
    member = sp.csr_matrix((np.ones(int(inside.sum()), dtype=bool),
                            (owner[inside], dist.indices[pos[inside]])), shape=(len(centre), n))
    by_cell = member.tocsc()
    alive = np.ones(len(centre), dtype=bool)
    window_of_cell = np.full(n, -1, dtype="int64")
    chosen: list[int] = []
    while alive.any():  # one pass per *chosen* window: each pick retires its rivals
        w = int(np.argmax(alive))
        cells = member.indices[member.indptr[w]:member.indptr[w + 1]]
        window_of_cell[cells] = len(chosen)
        chosen.append(w)
        rivals = by_cell[:, cells].indices
        alive[rivals] = False
    idx = np.asarray(chosen, dtype="int64")
    windows = pd.DataFrame({"centre": centre[idx], "k": radius[idx],
                            "households": win_h[kk[idx], centre[idx]],
                            "extreme": win_e[kk[idx], centre[idx]],
                            "llr": llr[kk[idx], centre[idx]], "p": p[kk[idx], centre[idx]]})
    return window_of_cell >= 0, window_of_cell, windows
