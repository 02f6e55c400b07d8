"""Maximal-covering instances and the brute-force optimum, shared by the siting tests.

The optimum is the definition itself: every subset of candidates within the site count or
the budget, checked with ``itertools.combinations`` (a few candidates only).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse


def overlap() -> tuple[sparse.csr_matrix, np.ndarray]:
    """Three candidates over six points where the greedy is not optimal.

    A = {p0, p1, p2, p3}, B = {p0, p1, p4}, C = {p2, p3, p5}; weights 1 except p4 = 1.5.
    Gains at the start: A 4, B 3.5, C 3. Best pair: B + C = 6.5 (every point).
    """
    a = np.zeros((3, 6), dtype=bool)
    a[0, [0, 1, 2, 3]] = True
    a[1, [0, 1, 4]] = True
    a[2, [2, 3, 5]] = True
    return sparse.csr_matrix(a), np.array([1.0, 1.0, 1.0, 1.0, 1.5, 1.0])


def covered(a, w: np.ndarray, sites) -> float:
    """Weight of the points that at least one of ``sites`` covers (``a`` dense or sparse)."""
    dense = a.toarray() if sparse.issparse(a) else np.asarray(a)
    return float(w[dense[list(sites)].any(axis=0)].sum()) if len(sites) else 0.0


def brute_force(a, w: np.ndarray, k: int | None = None, costs: np.ndarray | None = None,
                budget: float | None = None) -> float:
    """The best coverage over every subset of at most ``k`` sites, or within ``budget``."""
    best = 0.0
    n = a.shape[0]
    for r in range(1, n + 1):
        if k is not None and r > k:
            break
        for sub in itertools.combinations(range(n), r):
            if costs is not None and costs[list(sub)].sum() > budget + 1e-9:
                continue
            best = max(best, covered(a, w, sub))
    return best
