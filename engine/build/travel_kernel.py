"""Compiled least-cost kernel: multi-source Dijkstra over an 8-connected friction grid.

The graph is the one ``skimage.graph.MCP_Geometric(fully_connected=True)`` searches: a
move between two neighbouring pixels costs the mean of their frictions times the move
length (``dx``, ``dy`` or the diagonal ``sqrt(dx^2 + dy^2)``); impassable pixels (non-finite
or negative friction) are never entered. All sources of one facility type start at cost 0
in one search, so a pass gives every pixel the cost to its nearest source.

Implementation: the friction is stored once, halved, as a flat float32 array with a border
of impassable pixels (so no bounds checks); the search keeps float64 costs and a binary
heap with lazy deletion. The compiled function releases the GIL, so several facility types
run in parallel threads over the same friction array (:func:`least_costs`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _grow(keys, nodes, size):  # pragma: no cover - compiled
    new_keys = np.empty(keys.size * 2, np.float64)
    new_nodes = np.empty(nodes.size * 2, np.int64)
    new_keys[:size] = keys[:size]
    new_nodes[:size] = nodes[:size]
    return new_keys, new_nodes


@numba.njit(cache=True, nogil=True)
def _dijkstra(half, offsets, lengths, sources, max_cost, dist):  # pragma: no cover - compiled
    """Fill ``dist`` (flat, +inf) with least costs from ``sources`` (flat indices)."""
    keys = np.empty(1 << 16, np.float64)
    nodes = np.empty(1 << 16, np.int64)
    size = 0
    for s in sources:
        if dist[s] == 0.0:
            continue
        dist[s] = 0.0
        if size == keys.size:
            keys, nodes = _grow(keys, nodes, size)
        keys[size] = 0.0  # every key is 0 so far: appending keeps the heap order
        nodes[size] = s
        size += 1
    while size > 0:
        d = keys[0]
        node = nodes[0]
        size -= 1
        last_key = keys[size]
        last_node = nodes[size]
        i = 0
        while True:  # sift the last entry down from the root
            child = 2 * i + 1
            if child >= size:
                break
            if child + 1 < size and keys[child + 1] < keys[child]:
                child += 1
            if keys[child] >= last_key:
                break
            keys[i] = keys[child]
            nodes[i] = nodes[child]
            i = child
        if size > 0:
            keys[i] = last_key
            nodes[i] = last_node
        if d > dist[node]:
            continue  # a stale entry: the pixel was reached more cheaply since
        here = half[node]
        for k in range(8):
            nb = node + offsets[k]
            there = half[nb]
            if there < 0.0:
                continue
            nd = d + (here + there) * lengths[k]
            if nd < dist[nb] and nd <= max_cost:
                dist[nb] = nd
                if size == keys.size:
                    keys, nodes = _grow(keys, nodes, size)
                i = size
                while i > 0:
                    parent = (i - 1) >> 1
                    if keys[parent] <= nd:
                        break
                    keys[i] = keys[parent]
                    nodes[i] = nodes[parent]
                    i = parent
                keys[i] = nd
                nodes[i] = nb
                size += 1
    return dist


class FrictionGrid:
    """A friction raster prepared for repeated multi-source searches.

    Parameters
    ----------
    friction
        2-D costs per metre; non-finite or negative values are impassable.
    dy, dx
        Pixel height and width in metres (the move lengths).

    Examples
    --------
    >>> grid = FrictionGrid(np.ones((1, 4)), dy=10.0, dx=10.0)
    >>> grid.costs([np.array([0]), np.array([0])]).tolist()
    [[0.0, 10.0, 20.0, 30.0]]
    """

    def __init__(self, friction: np.ndarray, *, dy: float, dx: float) -> None:
        h, w = friction.shape
        self.shape = (h, w)
        self._stride = w + 2
        padded = np.full((h + 2, w + 2), -1.0, dtype=np.float32)
        inner = padded[1:-1, 1:-1]
        np.multiply(friction, 0.5, out=inner, casting="same_kind")  # halving is exact
        inner[~(np.isfinite(inner) & (inner >= 0))] = -1.0
        self._half = padded.ravel()
        s = self._stride
        diag = math.hypot(dx, dy)
        self._offsets = np.array([-s - 1, -s, -s + 1, -1, 1, s - 1, s, s + 1], np.int64)
        self._lengths = np.array([diag, dy, diag, dx, dx, diag, dy, diag], np.float64)

    def costs(self, start: tuple[np.ndarray, np.ndarray] | list[np.ndarray], *,
              max_cost: float = math.inf) -> np.ndarray:
        """Return the least cost from the nearest start pixel to every pixel (float32).

        Parameters
        ----------
        start
            ``(rows, cols)`` of the start pixels (all passable and inside the grid).
        max_cost
            Stop expanding beyond this cost (pixels farther away stay unreachable).

        Returns
        -------
        numpy.ndarray
            float32 ``shape`` array; NaN where unreachable or impassable.
        """
        rows, cols = (np.asarray(a, dtype=np.int64) for a in start)
        h, w = self.shape
        dist = np.full(self._half.size, np.inf)
        flat = (rows + 1) * self._stride + cols + 1
        _dijkstra(self._half, self._offsets, self._lengths, flat, float(max_cost), dist)
        out = dist.reshape(h + 2, w + 2)[1:-1, 1:-1].astype(np.float32)
        out[~np.isfinite(out)] = np.nan
        return out


def least_costs(grid: FrictionGrid, starts: dict[str, tuple[np.ndarray, np.ndarray]], *,
                workers: int = 2) -> dict[str, np.ndarray]:
    """Return ``{name: FrictionGrid.costs(start)}`` for several start sets, in parallel threads.

    Examples
    --------
    >>> grid = FrictionGrid(np.ones((1, 3)), dy=1.0, dx=1.0)
    >>> out = least_costs(grid, {"a": ([0], [0]), "b": ([0], [2])})
    >>> out["a"].tolist(), out["b"].tolist()
    ([[0.0, 1.0, 2.0]], [[2.0, 1.0, 0.0]])
    """
    names = list(starts)
    if workers <= 1 or len(names) <= 1:
        return {n: grid.costs(starts[n]) for n in names}
    with ThreadPoolExecutor(max_workers=min(workers, len(names))) as pool:
        results = pool.map(lambda n: grid.costs(starts[n]), names)
        return dict(zip(names, results, strict=True))


__all__ = ["FrictionGrid", "least_costs"]
