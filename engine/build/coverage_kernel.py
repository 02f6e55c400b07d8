"""Compiled kernel of the exact zonal statistics: polygon integrals of a raster by Green's theorem.

For a raster ``f`` that is constant on each pixel, the integral of ``f`` over a polygon
``P`` (in pixel coordinates: ``u`` = column, ``v`` = row, pixel ``(r, c)`` is the unit
square ``[c, c+1) x [r, r+1)``) is

    integral_P f dA = closed integral over the boundary of G(u, v) dv,
    G(u, v) = integral of f(s, v) ds from -infinity to u          (Green's theorem),

``G`` being, on row ``r``, the piecewise-linear running sum of the row: ``G(u) = P[k] +
f[k] (u - k)`` with ``k = floor(u)`` and ``P`` the row's prefix sum (0 left of the raster,
the row total right of it). Every boundary segment is split where it crosses a row line;
on one piece ``u`` is linear in ``v``, so the piece contributes ``dv`` times the mean of
``G`` between its two end columns. That mean is exact from ``P`` and the prefix sum
``Q[k] = sum_{j<k} (P[j] + f[j] / 2)`` of ``G``'s integral over whole pixels, plus the two
partial pixels at the ends. Summed around the ring this is the coverage-weighted sum
``sum_pixels f * (area of the pixel inside P)`` - exactextract's definition - for any
polygon size relative to the pixels, up to floating-point rounding (no approximation).

The kernel sweeps the raster row by row (pieces are bucketed by row first), so memory is
one row of prefix sums; a raster row without pieces is never read.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _row_pieces(u, v, which, height):  # pragma: no cover - compiled
    """Split ring segments at row lines; return the pieces bucketed by row.

    Returns ``start`` (``height + 1``: pieces of row ``r`` are ``start[r]:start[r+1]``),
    ``owner`` (ring), ``xa``, ``xb`` (columns at the piece's ends) and ``dv`` (signed rows).
    """
    n = u.size
    counts = np.zeros(height + 1, np.int64)
    for i in range(n - 1):
        if which[i] != which[i + 1] or v[i] == v[i + 1]:
            continue
        r0 = max(int(math.floor(min(v[i], v[i + 1]))), 0)
        r1 = min(int(math.ceil(max(v[i], v[i + 1]))), height)
        for r in range(r0, r1):
            counts[r + 1] += 1
    start = np.cumsum(counts)
    total = start[height]
    pos = start[:-1].copy()
    owner = np.empty(total, np.int64)
    xa = np.empty(total, np.float64)
    xb = np.empty(total, np.float64)
    dv = np.empty(total, np.float64)
    for i in range(n - 1):
        if which[i] != which[i + 1] or v[i] == v[i + 1]:
            continue
        u0, v0, u1, v1 = u[i], v[i], u[i + 1], v[i + 1]
        lo, hi = min(v0, v1), max(v0, v1)
        r0 = max(int(math.floor(lo)), 0)
        r1 = min(int(math.ceil(hi)), height)
        slope = (u1 - u0) / (v1 - v0)
        for r in range(r0, r1):
            va = max(lo, float(r))
            vb = min(hi, float(r + 1))
            k = pos[r]
            pos[r] += 1
            owner[k] = which[i]
            xa[k] = u0 + (va - v0) * slope
            xb[k] = u0 + (vb - v0) * slope
            dv[k] = vb - va if v1 > v0 else va - vb
    return start, owner, xa, xb, dv


@numba.njit(cache=True, nogil=True, inline="always")
def _mean_g(p, q, f, w, above, below, cl, ch):  # pragma: no cover - compiled
    """Return (integral of G over the piece's column span, span length)."""
    ka = min(int(math.floor(cl)), w - 1)
    kb = min(int(math.floor(ch)), w - 1)
    if ka == kb:
        wa = ch - cl
        g_mid = p[ka] + f[ka] * (0.5 * (cl + ch) - ka)
        span = below + above + wa
        if span == 0.0:  # a vertical piece: G at its column
            return g_mid, 1.0
        return above * p[w] + wa * g_mid, span
    wa = ka + 1 - cl
    wb = ch - kb
    num = (above * p[w] + wa * (p[ka] + f[ka] * (0.5 * (cl + ka + 1) - ka))
           + wb * (p[kb] + f[kb] * 0.5 * (ch - kb)) + (q[kb] - q[ka + 1]))
    return num, below + above + wa + wb + (kb - ka - 1)


@numba.njit(cache=True, nogil=True)
def _sweep(data, start, owner, xa, xb, dv, nodata_as_zero, sums, cover):  # pragma: no cover
    """Accumulate every piece's contribution to its ring's value sum and valid coverage."""
    h, w = data.shape
    p = np.zeros(w + 1)
    q = np.zeros(w + 1)
    pc = np.zeros(w + 1)
    qc = np.zeros(w + 1)
    f = np.zeros(w)
    g = np.zeros(w)
    for r in range(h):
        s0, s1 = start[r], start[r + 1]
        if s0 == s1:
            continue
        for c in range(w):
            x = data[r, c]
            if np.isfinite(x):
                f[c] = x
                g[c] = 1.0
            else:
                f[c] = 0.0
                g[c] = 1.0 if nodata_as_zero else 0.0
            p[c + 1] = p[c] + f[c]
            q[c + 1] = q[c] + p[c] + 0.5 * f[c]
            pc[c + 1] = pc[c] + g[c]
            qc[c + 1] = qc[c] + pc[c] + 0.5 * g[c]
        for k in range(s0, s1):
            xl = min(xa[k], xb[k])
            xh = max(xa[k], xb[k])
            above = max(xh, w) - max(xl, w)
            below = min(xh, 0.0) - min(xl, 0.0)
            cl = min(max(xl, 0.0), w)
            ch = min(max(xh, 0.0), w)
            num_f, den = _mean_g(p, q, f, w, above, below, cl, ch)
            num_g, _ = _mean_g(pc, qc, g, w, above, below, cl, ch)
            sums[owner[k]] += dv[k] * num_f / den
            cover[owner[k]] += dv[k] * num_g / den


def polygon_sums(data: np.ndarray, u: np.ndarray, v: np.ndarray, which: np.ndarray,
                 n_rings: int, *, nodata_as_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return the coverage-weighted sum and the covered area of a raster in each closed ring.

    Parameters
    ----------
    data
        2-D float raster; non-finite values are nodata.
    u, v
        Ring vertices in fractional pixel coordinates (column, row); each ring is closed
        (its first vertex repeated) and its vertices are consecutive.
    which
        Ring number ``0..n_rings-1`` of every vertex.
    n_rings
        Number of rings.
    nodata_as_zero
        ``False``: the covered area counts valid pixels only (for means).
        ``True``: nodata pixels count as value 0 with full coverage (for counts).

    Returns
    -------
    tuple of numpy.ndarray
        ``sum(value * covered area)`` and ``sum(covered area)`` per ring, areas in pixels;
        either orientation of a ring gives the same (positive) result.

    Examples
    --------
    >>> data = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> u = np.array([0.5, 1.5, 1.5, 0.5, 0.5]); v = np.array([0.5, 0.5, 1.5, 1.5, 0.5])
    >>> polygon_sums(data, u, v, np.zeros(5, np.int64), 1, nodata_as_zero=False)
    (array([2.5]), array([1.]))
    """
    u = np.ascontiguousarray(u, dtype=np.float64)
    v = np.ascontiguousarray(v, dtype=np.float64)
    which = np.ascontiguousarray(which, dtype=np.int64)
    same = which[1:] == which[:-1]
    cross = (u[:-1] * v[1:] - u[1:] * v[:-1])[same]
    orient = np.sign(np.bincount(which[:-1][same], weights=cross, minlength=n_rings))
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    start, owner, xa, xb, dv = _row_pieces(u, v, which, data.shape[0])
    sums = np.zeros(n_rings)
    cover = np.zeros(n_rings)
    _sweep(np.ascontiguousarray(data), start, owner, xa, xb, dv, bool(nodata_as_zero), sums,
           cover)
    return sums * orient, cover * orient


__all__ = ["polygon_sums"]
