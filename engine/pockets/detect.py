"""Hot cells, pockets and the significance of each pocket: the ``[pockets] method`` switch.

``method = "scan"`` (default): the cells of significant, non-overlapping scan windows
(:mod:`.scan`) are hot. ``method = "gistar"``: cells whose Gi* q-value is at most ``fdr``
are hot (:mod:`.hotspots`). Either way scikit-learn's DBSCAN over the H3 adjacency
(:mod:`.contiguity`) groups the hot cells into pockets, and every pocket gets the p-value of
the pocket as a whole from the scan's permutation null (see :func:`pocket_significance`)
and a readable ``confidence`` label. The Gi* columns are computed for both methods: they
describe each cell's neighbourhood even when the scan decides.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from kantong.engine.config import PocketConfig
from kantong.engine.errors import InputError
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.pockets.contiguity import assign_pockets
from kantong.engine.pockets.hotspots import hot_cells
from kantong.engine.pockets.scan import ScanResult, poisson_llr, scan_windows

__all__ = ["CONFIDENCE_LEVELS", "METHODS", "Detection", "confidence_label", "detect_pockets",
           "pocket_significance"]

logger = logging.getLogger(__name__)

#: Values of ``[pockets] method``.
METHODS = ("scan", "gistar")
#: ``confidence`` labels by the pocket's p-value: (upper bound of p, label), checked in order.
CONFIDENCE_LEVELS = ((0.001, "high"), (0.01, "medium"), (1.0, "low"))


@dataclasses.dataclass(frozen=True)
class Detection:
    """What :func:`detect_pockets` found on the analysis cells.

    Attributes
    ----------
    cells
        Per analysis cell (same index): ``extreme_rate_eb``, ``gi_z``, ``gi_p``, ``gi_q``,
        ``scan_p`` (p-value of the chosen scan window holding the cell, else NaN) and
        ``hot`` (by the configured method).
    pocket_id
        Nullable ``Int64`` pocket per analysis cell.
    significance
        Index ``pocket_id``: ``pocket_llr``, ``pocket_p`` and ``confidence``.
    scan
        The scan result (windows and the permutation null).
    """

    cells: pd.DataFrame
    pocket_id: pd.Series
    significance: pd.DataFrame
    scan: ScanResult


def confidence_label(p: np.ndarray | pd.Series) -> np.ndarray:
    """Turn pocket p-values into ``high`` / ``medium`` / ``low`` (see :data:`CONFIDENCE_LEVELS`).

    Examples
    --------
    >>> confidence_label(np.array([1e-5, 0.004, 0.03])).tolist()
    ['high', 'medium', 'low']
    """
    p = np.asarray(p, dtype="float64")
    out = np.full(p.shape, CONFIDENCE_LEVELS[-1][1], dtype=object)
    for bound, label in reversed(CONFIDENCE_LEVELS[:-1]):
        out[p <= bound] = label
    return out


def pocket_significance(cells: pd.DataFrame, pocket_id: pd.Series, scan: ScanResult
                        ) -> pd.DataFrame:
    """Return the p-value of each pocket as a whole against the scan's permutation null.

    The pocket's log-likelihood ratio (Poisson model, the same capped counts as the scan) is
    compared with the distribution of the *largest* window LLR over random permutations of
    the cells, so the p-value accounts for every place a pocket could have been found. For a
    pocket that is one scan window this is the window's own p-value; for a union of windows
    or a Gi* pocket it is the same yardstick applied to its shape.

    Parameters
    ----------
    cells
        Analysis cells with ``households`` (aligned with ``pocket_id``).
    pocket_id
        Nullable pocket id per cell.
    scan
        Result of :func:`~kantong.engine.pockets.scan.scan_windows` on the same cells.

    Returns
    -------
    pandas.DataFrame
        Index ``pocket_id`` (int64): ``pocket_llr``, ``pocket_p``, ``confidence``.
    """
    inside = pocket_id.notna().to_numpy()
    ids = pocket_id.to_numpy()[inside].astype("int64")
    hh = cells["households"].to_numpy(dtype="float64")
    total_h, total_e = hh.sum(), scan.capped.sum()
    frame = pd.DataFrame({"pocket_id": ids, "households": hh[inside],
                          "extreme": scan.capped[inside]})
    sums = frame.groupby("pocket_id", sort=True)[["households", "extreme"]].sum()
    rate = total_e / total_h if total_h > 0 else 0.0
    llr = poisson_llr(sums["extreme"].to_numpy(), sums["households"].to_numpy() * rate, total_e)
    p = scan.p_value(llr) if len(scan.null_max) > 1 else np.ones(len(llr))
    out = pd.DataFrame({"pocket_llr": llr, "pocket_p": p}, index=sums.index)
    out["confidence"] = pd.array(confidence_label(p), dtype="string")
    return out


def detect_pockets(cells: pd.DataFrame, *, config: PocketConfig | None = None) -> Detection:
    """Find hot cells and pockets on analysis cells with the configured method.

    Parameters
    ----------
    cells
        Analysis cells: ``h3`` (one resolution, unique), ``households``,
        ``extreme_households``.
    config
        ``method`` and its parameters (defaults of :class:`PocketConfig`).

    Returns
    -------
    Detection

    Examples
    --------
    >>> found = detect_pockets(cells, config=PocketConfig(method="scan"))  # doctest: +SKIP
    >>> found.significance  # doctest: +SKIP
    """
    config = config or PocketConfig()
    if config.method not in METHODS:
        raise InputError(f"pockets.method must be one of {', '.join(METHODS)}, "
                         f"got {config.method!r}")
    out = hot_cells(cells, config=config)
    ids = cells_to_uint64(cells["h3"].to_numpy())
    scan = scan_windows(cells, ids, max_k=config.scan_max_k,
                        permutations=config.scan_permutations, alpha=config.scan_alpha,
                        cap_quantile=config.scan_cap_quantile, seed=config.scan_seed)
    window_p = scan.windows["p"].to_numpy(dtype="float64")
    has = scan.window_of_cell >= 0
    scan_p = np.full(len(cells), np.nan)
    scan_p[has] = window_p[scan.window_of_cell[has]]
    out["scan_p"] = scan_p
    if config.method == "scan":
        out["hot"] = scan.hot
    pocket_id = assign_pockets(cells, out["hot"].to_numpy(),
                               min_extreme_households=config.min_extreme_households,
                               max_cells=config.max_pocket_cells)
    significance = pocket_significance(cells, pocket_id, scan)
    logger.info("method %s: %d hot cells, %d pockets", config.method, int(out["hot"].sum()),
                len(significance))
    return Detection(out, pocket_id, significance, scan)
