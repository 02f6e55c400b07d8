"""Least-cost coverage searched in windows much smaller than the raster.

Each block of sources searches only the window around it (the block plus the search reach).
Here the reach is a few pixels on grids of tens of pixels, so windows are clipped on every
side and blocks are many; the times must still be the least-cost times of
``skimage.graph.MCP_Geometric`` over the whole raster (the independent reference), for any
block size, pixel shape, per-point limit or memory cap.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from rasterio.transform import from_origin
from skimage.graph import MCP_Geometric

from kantong.engine.errors import InputError
from kantong.engine.sites import coverage
from kantong.engine.sites.coverage import FrictionSurface, travel_coverage

UTM = "EPSG:32649"
X0, Y0 = 400_000.0, 50_000.0
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)


def _grid(seed: int = 3, shape=(22, 27)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.01, 0.03, size=shape)
    f[rng.uniform(size=shape) < 0.12] = np.nan
    return f


def _lonlat(rows, cols, dx: float, dy: float):
    x = X0 + (np.asarray(cols, dtype=float) + 0.5) * dx
    y = Y0 - (np.asarray(rows, dtype=float) + 0.5) * dy
    lon, lat = TO_LONLAT.transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _mcp_minutes(f: np.ndarray, sources, dy: float, dx: float) -> np.ndarray:
    """Least-cost minutes from each source pixel to every pixel (rows: sources)."""
    costs = np.where(np.isfinite(f), f, -1.0)
    out = []
    for r, c in sources:
        ref, _ = MCP_Geometric(costs, sampling=(dy, dx)).find_costs([(r, c)])
        out.append(ref.ravel())
    return np.array(out)


def _dense(cov) -> np.ndarray:
    out = np.full(cov.shape, np.inf)
    m = cov.minutes.tocoo()
    out[m.row, m.col] = m.data
    return out


def _case(f, dy, dx, n_src=24, seed=5):
    rng = np.random.default_rng(seed)
    passable = np.argwhere(np.isfinite(f))
    pick = passable[rng.choice(len(passable), n_src, replace=False)]
    pick = np.vstack([pick, pick[:2]])  # two sources share a pixel with others
    t_rows, t_cols = np.nonzero(np.isfinite(f))
    src = _lonlat(pick[:, 0], pick[:, 1], dx, dy)
    dst = _lonlat(t_rows, t_cols, dx, dy)
    ref = _mcp_minutes(f, pick, dy, dx)[:, t_rows * f.shape[1] + t_cols]
    return src, dst, ref, pick


@pytest.mark.parametrize(("dx", "dy"), [(100.0, 100.0), (100.0, 50.0), (50.0, 100.0)])
@pytest.mark.parametrize("block_px", [None, 1, 2, 5])
def test_windowed_search_matches_mcp_geometric(dx, dy, block_px):
    f = _grid()
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, dx, dy), crs=UTM)
    limit = 2.2
    assert s.reach_pixels(limit) * 3 < min(f.shape)  # windows far smaller than the raster
    src, dst, ref, _ = _case(f, dy, dx)
    assert not np.isclose(ref, limit, rtol=1e-6).any()
    cov = travel_coverage(s, *src, *dst, max_minutes=limit, block_px=block_px)
    assert (cov.matrix.toarray() == (ref <= limit)).all()
    got = _dense(cov)
    np.testing.assert_allclose(got[ref <= limit], ref[ref <= limit], rtol=1e-5)
    assert 0 < cov.matrix.nnz < ref.size / 4


def test_blocks_far_from_every_point_do_not_stop_the_search():
    # points only in the bottom-right corner: the first blocks have none in their window
    f = _grid(seed=8)
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    src, _, _, pick = _case(f, 100.0, 100.0)
    rows, cols = np.nonzero(np.isfinite(f[15:, 19:]))
    rows, cols = rows + 15, cols + 19
    dst = _lonlat(rows, cols, 100.0, 100.0)
    ref = _mcp_minutes(f, pick, 100.0, 100.0)[:, rows * f.shape[1] + cols]
    for block_px in (2, 4):
        cov = travel_coverage(s, *src, *dst, max_minutes=2.2, block_px=block_px)
        assert (cov.matrix.toarray() == (ref <= 2.2)).all()
        assert cov.matrix.nnz > 0


def test_point_limits_over_many_blocks():
    f = _grid(seed=9)
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    src, dst, ref, _ = _case(f, 100.0, 100.0, n_src=30, seed=2)
    t_rows = np.nonzero(np.isfinite(f))[0]
    # no point in the top rows wants a new site (limits 0 and below); the others want
    # one nearer than 1.4 minutes, or any (NaN/inf: no limit but max_minutes)
    rng = np.random.default_rng(1)
    limits = np.where(t_rows < 9, rng.choice([0.0, -1.0], len(t_rows)), 1.4)
    limits[(t_rows >= 15) & (rng.uniform(size=len(t_rows)) < 0.2)] = np.inf
    limit = 2.2
    for block_px in (2, 3, None):
        cov = travel_coverage(s, *src, *dst, max_minutes=limit, block_px=block_px,
                              point_limits=limits)
        got = _dense(cov)
        wanted = ref < np.minimum(limits, limit)
        assert wanted.sum() > 20
        # every wanted pair is there with its least-cost time ...
        np.testing.assert_allclose(got[wanted], ref[wanted], rtol=1e-5)
        # ... and every returned pair is a true time within max_minutes
        found = np.isfinite(got)
        np.testing.assert_allclose(got[found], ref[found], rtol=1e-5)
        assert (ref[found] <= limit).all()


def test_memory_cap_splits_sources_without_changing_the_times(monkeypatch):
    f = _grid(seed=4)
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    src, dst, ref, _ = _case(f, 100.0, 100.0, n_src=30)
    n_distinct = len(np.unique(s.pixels_of(*src)))
    real = coverage.dijkstra
    calls: list[tuple[int, int]] = []

    def spy(graph, *, indices, **kw):
        calls.append((len(indices), graph.shape[0]))
        return real(graph, indices=indices, **kw)

    monkeypatch.setattr(coverage, "dijkstra", spy)
    for cap in (1, 300):  # entries: below one window (one source at a time), ~3 windows
        calls.clear()
        monkeypatch.setattr(coverage, "_MAX_DIST_ENTRIES", cap)
        cov = travel_coverage(s, *src, *dst, max_minutes=2.2)
        assert (cov.matrix.toarray() == (ref <= 2.2)).all()
        # each distance matrix held at once stays under the cap (one source at least) ...
        assert all(n * size <= max(cap, size) for n, size in calls)
        # ... and each source pixel is searched once
        assert sum(n for n, _ in calls) == n_distinct
        assert max(n for n, _ in calls) > (1 if cap > 1 else 0)  # several when they fit


@pytest.mark.parametrize("block_px", [0, -3, 0.5])
def test_block_size_below_one_pixel_is_rejected(block_px):
    f = _grid()
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    with pytest.raises(InputError):
        travel_coverage(s, *_lonlat([1], [1], 100, 100), *_lonlat([2], [2], 100, 100),
                        max_minutes=2.0, block_px=block_px)


def test_coverage_types_and_limit_are_kept():
    f = _grid()
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    src, dst, ref, _ = _case(f, 100.0, 100.0, n_src=5)
    cov = travel_coverage(s, *src, *dst, max_minutes=2.2)
    assert cov.max_minutes == 2.2 and cov.method == "least-cost"
    assert cov.matrix.dtype == bool and cov.minutes.dtype == np.float32
    uncovered = ~cov.covered()
    assert uncovered.tolist() == (~(ref <= 2.2).any(axis=0)).tolist()
    assert 0 < uncovered.sum() < len(uncovered)


def test_each_block_searches_only_its_window(monkeypatch):
    # a block of b x b pixels searches at most (b + 2 reach)^2 pixels, whatever the raster
    f = _grid(seed=6)
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    src, dst, ref, _ = _case(f, 100.0, 100.0)
    reach = s.reach_pixels(2.2)
    real = coverage.dijkstra
    sizes: list[int] = []

    def spy(graph, **kw):
        sizes.append(graph.shape[0])
        return real(graph, **kw)

    monkeypatch.setattr(coverage, "dijkstra", spy)
    for block_px, side in ((1, 1), (3, 3), (None, reach)):
        sizes.clear()
        cov = travel_coverage(s, *src, *dst, max_minutes=2.2, block_px=block_px)
        assert (cov.matrix.toarray() == (ref <= 2.2)).all()
        assert max(sizes) == (side + 2 * reach) ** 2  # some windows are not clipped


@pytest.mark.parametrize("max_minutes", [0.0, -1.0, float("nan")])
def test_a_limit_that_is_not_positive_is_rejected(max_minutes):
    f = _grid()
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    with pytest.raises(InputError):
        travel_coverage(s, *_lonlat([1], [1], 100, 100), *_lonlat([2], [2], 100, 100),
                        max_minutes=max_minutes)
