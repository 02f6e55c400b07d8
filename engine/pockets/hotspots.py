"""Hot spots of extreme poverty: Getis-Ord Gi* on the H3 neighbour graph with FDR control.

The tested variable is the Empirical-Bayes-smoothed share of extreme-poor (desil 1)
households of each cell (Marshall 1991, global prior). Raw rates of small cells are
noisy (1 extreme-poor household out of 3 is a rate of 33 %); EB shrinks each rate
towards the run's mean rate in proportion to how little evidence the cell holds, so
sparse interior cells neither dominate nor vanish. Counts were rejected as the variable
because they follow household density: a town with an average rate would come out as
a "hot spot" only because it is dense.

Gi* (Ord & Getis 1995) uses binary weights: the cells within ``k_ring`` H3 steps,
*including the cell itself* (the star). z-scores are analytical, p-values one-sided
(hot spots only) from the normal distribution, and the Benjamini-Hochberg procedure
turns them into q-values so that at most a share ``fdr`` of the cells called hot are
expected to be false discoveries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from scipy import stats

from kantong.engine.config import PocketConfig
from kantong.engine.constants import MIN_RESOLUTION
from kantong.engine.errors import InputError
from kantong.engine.h3ids import cells_to_uint64

logger = logging.getLogger(__name__)

#: Columns added to cells by :func:`hot_cells`.
HOTSPOT_COLUMNS = ("extreme_rate_eb", "gi_z", "gi_p", "gi_q", "hot")


def neighbour_weights(cells: Sequence[str] | np.ndarray | pd.Series, *, k_ring: int = 1,
                      include_self: bool = True) -> sp.csr_matrix:
    """Build binary spatial weights between H3 cells from their ``k_ring`` disks.

    Every cell's disk comes from one vectorised ``h3ronpy.grid_disk`` call; neighbours
    that are not among ``cells`` (empty cells) are dropped.

    Parameters
    ----------
    cells
        H3 cell ids (hex strings) of one resolution, unique.
    k_ring
        Grid distance that counts as "neighbour" (1 = the six touching cells).
    include_self
        Keep the diagonal (Gi*; ``False`` gives plain adjacency).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``n x n`` float64 matrix with 1 where cell ``j`` is within ``k_ring`` of cell ``i``.

    Examples
    --------
    >>> import h3
    >>> disk = sorted(h3.grid_disk("8868b00105fffff", 1))
    >>> neighbour_weights(disk, k_ring=1).sum(axis=1).A1.tolist()[:1]
    [4.0]
    """
    if k_ring < 1:
        raise InputError(f"k_ring must be >= 1, got {k_ring}")
    index = cells_to_uint64(cells)
    n = len(index)
    lookup = pd.Index(index)
    if not lookup.is_unique:
        raise InputError("neighbour_weights: H3 cell ids must be unique")
    disks = pa.array(h3ronpy.grid_disk(index, k_ring))
    offsets = disks.offsets.to_numpy()
    values = disks.values.to_numpy()  # uint64 H3 ids, as the lookup
    rows = np.repeat(np.arange(n), np.diff(offsets))
    cols = lookup.get_indexer(values)
    keep = cols >= 0
    if not include_self:
        keep &= cols != rows
    data = np.ones(int(keep.sum()))
    matrix = sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(n, n))
    matrix.sum_duplicates()
    return matrix


def eb_rate(events: np.ndarray | pd.Series, base: np.ndarray | pd.Series) -> np.ndarray:
    """Smooth rates ``events / base`` with the global Empirical-Bayes estimator.

    Marshall (1991): the prior mean is ``m = sum(events) / sum(base)``, the prior
    variance ``s2 = sum(base * (r - m)**2) / sum(base) - m / mean(base)`` (floored at 0);
    each rate becomes ``m + (r - m) * s2 / (s2 + m / base)``.

    Parameters
    ----------
    events
        Event counts per unit (extreme-poor households).
    base
        Population at risk per unit (households); units with ``base == 0`` get ``m``.

    Returns
    -------
    numpy.ndarray
        Smoothed rates in ``[0, 1]`` for count data.
    """
    e = np.asarray(events, dtype="float64")
    b = np.asarray(base, dtype="float64")
    if e.shape != b.shape:
        raise InputError("eb_rate: events and base must have the same length")
    total = b.sum()
    if total <= 0:  # no units, or no households at all
        return np.zeros_like(b)
    m = e.sum() / total
    has = b > 0
    r = np.full_like(b, m)
    r[has] = e[has] / b[has]
    s2 = float((b * (r - m) ** 2).sum() / total - m / b.mean())
    if s2 <= 0.0:  # no variation beyond chance: every unit gets the prior mean
        return np.full_like(b, m)
    out = r.copy()  # units without households keep m
    out[has] = m + (r[has] - m) * (s2 / (s2 + m / b[has]))
    return out


def gi_star(values: np.ndarray | pd.Series, weights: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Compute Getis-Ord Gi* z-scores and one-sided (hot-spot) p-values.

    Analytical moments of Ord & Getis (1995) for weights that include the focal cell:
    ``z_i = (sum_j w_ij x_j - xbar W_i) / (s * sqrt((n S1_i - W_i**2) / (n - 1)))`` with
    ``W_i = sum_j w_ij``, ``S1_i = sum_j w_ij**2``, ``xbar`` and ``s`` (population
    standard deviation) over all ``n`` values. For binary weights with a unit diagonal
    this equals ``esda.G_Local(y, w, transform="B", star=True).Zs``.

    Parameters
    ----------
    values
        The variable, one value per row of ``weights``.
    weights
        ``n x n`` sparse weights including the diagonal (see :func:`neighbour_weights`).

    Returns
    -------
    tuple of numpy.ndarray
        ``(z, p)`` where ``p = P(Z >= z)`` under the normal approximation. When the
        variable is constant (``s <= 1e-12 * max(|xbar|, 1)``: rounding noise, no
        variance) every ``z`` is 0 and every ``p`` is 0.5; so is ``z`` of a cell whose
        neighbourhood is every cell (no variance of the local sum).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> w = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1.]]))
    >>> z, p = gi_star(np.array([5.0, 1.0, 0.0]), w)
    >>> bool(z[0] > 0 > z[2])
    True
    """
    x = np.asarray(values, dtype="float64")
    w = sp.csr_matrix(weights, dtype="float64")
    n = len(x)
    if w.shape != (n, n):
        raise InputError(f"gi_star: weights are {w.shape}, expected ({n}, {n})")
    if not np.isfinite(x).all():
        raise InputError("gi_star: values must be finite")
    if n < 2:
        return np.zeros(n), np.full(n, 0.5)
    xbar = x.mean()
    s = x.std()  # two-pass: E[x^2] - xbar^2 loses every digit when |xbar| >> s
    w_sum = np.asarray(w.sum(axis=1)).ravel()
    s1 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    spread = (n * s1 - w_sum**2) / (n - 1)
    if s <= 1e-12 * max(abs(xbar), 1.0):
        logger.info("Gi*: the variable is constant; no hot spots")
        return np.zeros(n), np.full(n, 0.5)
    num = w @ x - xbar * w_sum
    z = np.zeros(n)
    ok = spread > 0
    z[ok] = num[ok] / (s * np.sqrt(spread[ok]))
    return z, stats.norm.sf(z)


def bh_adjust(p: np.ndarray | pd.Series) -> np.ndarray:
    """Return Benjamini-Hochberg adjusted p-values (q-values).

    ``q_(i) = min_{j >= i} p_(j) * m / j`` over the ``m`` p-values sorted ascending
    (never above 1: ``q_(m) = p_(m)``); tied p-values get the same q-value. A cell is
    a discovery at false discovery rate ``alpha`` when ``q <= alpha``. NaN p-values are
    ignored (and stay NaN).

    Parameters
    ----------
    p
        p-values in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        q-values, same shape as ``p``.

    Examples
    --------
    >>> bh_adjust(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p, dtype="float64")
    q = p.copy()  # NaN stays NaN
    ok = ~np.isnan(p)
    pv = p[ok]
    m = len(pv)
    order = np.argsort(pv)  # ties get the same q whatever their order
    ranked = pv[order] * m / np.arange(1, m + 1)
    out = np.empty(m)
    out[order] = np.minimum.accumulate(ranked[::-1])[::-1]
    q[ok] = out
    return q


def cells_resolution(cells: Sequence[str] | np.ndarray | pd.Series) -> int:
    """Return the single H3 resolution of ``cells`` (raise on a mix or an empty input)."""
    res = np.unique(np.asarray(pa.array(h3ronpy.cells_resolution(cells_to_uint64(cells)))))
    if len(res) != 1:
        raise InputError(f"cells must share one H3 resolution, got {res.tolist()}")
    return int(res[0])


def coarsen(cells: pd.DataFrame, resolution: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Sum ``households`` and ``extreme_households`` of cells into parents at ``resolution``.

    Parameters
    ----------
    cells
        Cells with ``h3``, ``households``, ``extreme_households`` (one resolution).
    resolution
        Target resolution, not finer than the cells'.

    Returns
    -------
    tuple
        ``(parents, parent_of)``: a frame ``h3, households, extreme_households`` with one
        row per parent (sorted by id), and the parent id of every input cell.
    """
    index = cells_to_uint64(cells["h3"].to_numpy())
    parent = pa.array(h3ronpy.change_resolution(index, resolution))
    parent_of = np.asarray(pa.array(h3ronpy.cells_to_string(parent)))  # object (str)
    counts = cells[["households", "extreme_households"]]
    # expected (fractional) counts of village-located households stay float (issue 19)
    exact = all(pd.api.types.is_integer_dtype(t) for t in counts.dtypes)
    sums = counts.astype("int64" if exact else "float64").groupby(parent_of).sum()  # sorted
    sums.index.name = "h3"
    return sums.reset_index(), parent_of


def choose_resolution(cells: pd.DataFrame, *, config: PocketConfig | None = None) -> int:
    """Pick the H3 resolution at which hot spots are searched.

    ``config.analysis_resolution`` when set (it must not be finer than the cells);
    otherwise the finest resolution, from the cells' own down to 5, at which the median
    occupied cell holds at least ``config.auto_median_households`` households (5 when
    none does). A rate needs households to mean anything: with 2 households per cell,
    Gi* sees noise. Raises :class:`InputError` when ``cells`` is empty.

    Returns
    -------
    int
        The analysis resolution.
    """
    config = config or PocketConfig()
    own = cells_resolution(cells["h3"].to_numpy())
    if config.analysis_resolution:
        if config.analysis_resolution > own:
            raise InputError(f"pockets.analysis_resolution {config.analysis_resolution} is finer "
                             f"than the run's H3 resolution {own}")
        return config.analysis_resolution
    res, households = own, cells["households"]
    while households.median() < config.auto_median_households and res > MIN_RESOLUTION:
        res -= 1  # a few resolutions at most
        households = coarsen(cells, res)[0]["households"]
    logger.info("analysis resolution %d (median %.0f households per cell; run resolution %d)",
                res, households.median(), own)
    return res


def hot_cells(cells: pd.DataFrame, *, config: PocketConfig | None = None) -> pd.DataFrame:
    """Test every cell for being an extreme-poverty hot spot.

    Cells with fewer than ``config.min_households`` households, and cells without
    households whatever the setting, are not tested (they get NaN statistics and
    ``hot = False``) and are left out of the neighbour graph. Fewer than two tested
    cells: nothing is tested.

    Parameters
    ----------
    cells
        Cell table with ``h3``, ``households`` and ``extreme_households``.
    config
        ``k_ring``, ``fdr`` and ``min_households`` (defaults of :class:`PocketConfig`).

    Returns
    -------
    pandas.DataFrame
        Same index as ``cells``: ``extreme_rate_eb`` (EB-smoothed extreme-poor household
        rate, every cell), ``gi_z``, ``gi_p`` (one-sided), ``gi_q`` (BH-adjusted) and
        ``hot`` (``gi_q <= fdr`` and ``gi_z > 0``).
    """
    config = config or PocketConfig()
    missing = {"h3", "households", "extreme_households"} - set(cells.columns)
    if missing:
        raise InputError(f"hot_cells: missing column(s) {sorted(missing)}")
    rate = eb_rate(cells["extreme_households"], cells["households"])
    tested = cells["households"].to_numpy() >= max(config.min_households, 1)
    out = pd.DataFrame(index=cells.index)
    out["extreme_rate_eb"] = rate
    z = np.full(len(cells), np.nan)
    p = np.full(len(cells), np.nan)
    if tested.sum() >= 2:
        w = neighbour_weights(cells["h3"].to_numpy()[tested], k_ring=config.k_ring)
        z[tested], p[tested] = gi_star(rate[tested], w)
    q = bh_adjust(p)
    out["gi_z"], out["gi_p"], out["gi_q"] = z, p, q
    out["hot"] = (q <= config.fdr) & (z > 0)  # NaN (not tested) compares False
    logger.info("Gi*: %d of %d cells tested, %d hot at FDR %.3g (k_ring %d)",
                int(tested.sum()), len(cells), int(out["hot"].sum()), config.fdr, config.k_ring)
    return out
