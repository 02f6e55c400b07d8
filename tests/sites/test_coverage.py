import math

import affine
import numpy as np
import pytest
import rasterio
from pyproj import Geod, Transformer
from rasterio.transform import from_origin
from skimage.graph import MCP_Geometric

from kantong.engine.build.travel import TravelSurface, pixel_size_m
from kantong.engine.errors import CRSError, InputError
from kantong.engine.sites.coverage import (
    SNAP_PIXELS,
    Coverage,
    FrictionSurface,
    straight_line_coverage,
    travel_coverage,
)

UTM = "EPSG:32649"  # UTM 49N, western Kalimantan
X0, Y0 = 400_000.0, 50_000.0  # top-left corner of the test grids (metres)


def _surface(friction: np.ndarray, size: float = 100.0) -> FrictionSurface:
    return FrictionSurface(friction=np.asarray(friction, dtype=np.float64),
                           transform=from_origin(X0, Y0, size, size), crs=UTM)


def _lonlat(rows, cols, size: float = 100.0):
    """Lon/lat of pixel centres of the UTM test grid."""
    x = X0 + (np.asarray(cols) + 0.5) * size
    y = Y0 - (np.asarray(rows) + 0.5) * size
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _dense_minutes(cov: Coverage) -> np.ndarray:
    out = np.full(cov.shape, np.inf)
    m = cov.minutes.tocoo()
    out[m.row, m.col] = m.data
    return out


def test_hand_computed_times_on_a_row():
    # friction (min/m) of 5 pixels of 100 m; a step costs the mean friction x 100 m
    s = _surface([[0.01, 0.01, 0.02, 0.01, 0.01]])
    src = _lonlat([0], [0])
    dst = _lonlat([0] * 5, range(5))
    cov = travel_coverage(s, *src, *dst, max_minutes=4.5)
    # 0 -> 1: 1.0 ; -> 2: +1.5 ; -> 3: +1.5 ; -> 4: +1.0 (= 5.0 > 4.5)
    np.testing.assert_allclose(_dense_minutes(cov)[0], [0.0, 1.0, 2.5, 4.0, np.inf], rtol=1e-6)
    assert cov.matrix.toarray().tolist() == [[True, True, True, True, False]]
    assert cov.minutes.nnz == 4  # the 0-minute entry (same pixel) is stored explicitly
    assert cov.method == "least-cost"


def test_diagonal_steps_use_pixel_geometry():
    s = _surface(np.full((3, 3), 0.01), size=100.0)
    cov = travel_coverage(s, *_lonlat([0], [0]), *_lonlat([2, 0, 2], [2, 2, 0]),
                          max_minutes=10)
    # two diagonal steps of 100*sqrt(2) m at 0.01 min/m; two straight steps of 100 m
    np.testing.assert_allclose(_dense_minutes(cov)[0], [2 * math.sqrt(2), 2.0, 2.0], rtol=1e-6)


def test_matches_skimage_mcp_geometric_with_impassable_pixels():
    rng = np.random.default_rng(4)
    f = rng.uniform(0.002, 0.02, size=(25, 30))
    f[rng.uniform(size=f.shape) < 0.1] = np.nan
    f[0, 0] = f[12, 15] = 0.01
    s = _surface(f, size=250.0)
    rows, cols = np.divmod(np.arange(f.size), f.shape[1])
    cov = travel_coverage(s, *_lonlat([0, 12], [0, 15], 250.0), *_lonlat(rows, cols, 250.0),
                          max_minutes=1e6)
    got = _dense_minutes(cov)
    costs = np.where(np.isfinite(f), f, -1.0)
    for i, start in enumerate([(0, 0), (12, 15)]):
        ref, _ = MCP_Geometric(costs, sampling=(250.0, 250.0)).find_costs([start])
        ref = ref.ravel()
        passable = np.isfinite(f).ravel()
        np.testing.assert_allclose(got[i][passable & np.isfinite(ref)],
                                   ref[passable & np.isfinite(ref)], rtol=1e-5)
        # impassable pixels snap to a passable neighbour, so they are reached too
        assert np.isfinite(got[i][~passable]).all()


def test_time_limit_bounds_the_search_and_blocks_do_not_change_the_result():
    rng = np.random.default_rng(7)
    f = rng.uniform(0.004, 0.02, size=(40, 50))
    f[:, 20] = 0.001  # a fast road
    s = _surface(f)
    n = 60
    rows, cols = rng.integers(0, 40, n), rng.integers(0, 50, n)
    trows, tcols = np.divmod(np.arange(f.size), f.shape[1])
    src, dst = _lonlat(rows, cols), _lonlat(trows, tcols)
    full = travel_coverage(s, *src, *dst, max_minutes=1e6)
    limited = travel_coverage(s, *src, *dst, max_minutes=5.0)
    small_blocks = travel_coverage(s, *src, *dst, max_minutes=5.0, block_px=3)
    ref = _dense_minutes(full)
    assert (limited.matrix.toarray() == (ref <= 5.0)).all()
    assert (small_blocks.matrix != limited.matrix).nnz == 0
    np.testing.assert_allclose(_dense_minutes(small_blocks), _dense_minutes(limited))
    assert 0 < limited.matrix.nnz < full.matrix.nnz


def test_geographic_raster_agrees_with_the_build_travel_times():
    """Coverage of facilities equals the build's multi-source MCP (kantong.engine.build.travel)."""
    res = 1 / 120
    rng = np.random.default_rng(5)
    f = rng.uniform(0.002, 0.02, size=(60, 70))
    f[:, 35] = 0.0012
    f[rng.uniform(size=f.shape) < 0.05] = np.nan
    transform = from_origin(110.0, 0.3, res, res)
    s = FrictionSurface(friction=f, transform=transform, crs="EPSG:4326")
    dy, dx = s.step_lengths()
    pixel = pixel_size_m(transform, "EPSG:4326", f.shape)
    assert (dy, dx) == (pixel.dy, pixel.dx)
    assert dx == pytest.approx(Geod(ellps="WGS84").inv(110, 0, 110 + res, 0)[2], rel=2e-3)
    fac_lon = np.array([110.05, 110.3, 110.51])
    fac_lat = np.array([0.1, 0.2, -0.05])
    rows, cols = np.divmod(np.arange(f.size), f.shape[1])
    lon = transform.c + (cols + 0.5) * res
    lat = transform.f - (rows + 0.5) * res
    build, _ = TravelSurface.from_friction(f, transform=transform,
                                           crs="EPSG:4326").travel_minutes(fac_lon, fac_lat)
    cov = travel_coverage(s, fac_lon, fac_lat, lon, lat, max_minutes=45.0)
    nearest = _dense_minutes(cov).min(axis=0)
    ref = build.ravel().astype(np.float64)
    passable = np.isfinite(f).ravel()
    assert (np.isfinite(nearest) == (ref <= 45.0))[passable].all()
    both = passable & np.isfinite(nearest)
    np.testing.assert_allclose(nearest[both], ref[both], rtol=1e-5)


def test_straight_line_fallback_matches_haversine():
    lon0, lat0 = 110.0, 0.5
    # 5 km due north at 10 km/h -> 30 minutes
    dlat = math.degrees(5000.0 / 6_371_008.8)
    src = (np.array([lon0]), np.array([lat0]))
    dst = (np.array([lon0, lon0]), np.array([lat0 + dlat, lat0 + 2 * dlat]))
    cov = straight_line_coverage(*src, *dst, max_minutes=31, speed_kmh=10)
    assert cov.matrix.toarray().tolist() == [[True, False]]
    assert cov.minutes.toarray()[0, 0] == pytest.approx(30.0, rel=1e-6)
    assert cov.method == "straight-line"
    assert straight_line_coverage(*src, *dst, max_minutes=29, speed_kmh=10).matrix.nnz == 0
    with pytest.raises(InputError):
        straight_line_coverage(*src, *dst, max_minutes=0)


def test_points_outside_or_far_from_land_reach_nothing():
    f = np.full((10, 10), 0.01)
    f[:, 6:] = np.nan  # sea on the east
    s = _surface(f)
    src = _lonlat([5, 5, 5], [6, 9, 3])  # 1 px into the sea, 4 px into the sea, on land
    outside = (np.array([100.0]), np.array([5.0]))
    lon = np.concatenate([src[0], outside[0]])
    lat = np.concatenate([src[1], outside[1]])
    pix = s.pixels_of(lon, lat)
    assert pix[0] == 5 * 10 + 5  # snapped to the coast
    assert SNAP_PIXELS < 4 and pix[1] == -1 and pix[3] == -1
    cov = travel_coverage(s, lon, lat, *_lonlat([5], [4]), max_minutes=3)
    assert cov.matrix.toarray()[:, 0].tolist() == [True, False, True, False]


def test_coverage_triplets_keep_the_minimum_and_covered_mask():
    cov = Coverage.from_triplets(np.array([1, 1, 0]), np.array([2, 2, 0]),
                                 np.array([5.0, 3.0, 0.0]), (3, 4), max_minutes=10,
                                 method="least-cost")
    assert cov.minutes.toarray()[1, 2] == 3.0
    assert cov.minutes.nnz == 2 and cov.matrix.nnz == 2
    assert cov.covered().tolist() == [True, False, True, False]


def test_coarsen_averages_passable_pixels():
    f = np.array([[1.0, 3.0, 2.0], [np.nan, 2.0, 2.0], [np.nan, np.nan, 5.0]]) / 100
    c = _surface(f).coarsen(2)
    np.testing.assert_allclose(c.friction, [[0.02, 0.02], [np.nan, 0.05]])
    assert c.transform.a == 200.0 and c.transform.c == X0


def test_friction_file_validation(tmp_path):
    path = tmp_path / "f.tif"
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(110, 1, 0.01, 0.01),
                       nodata=-9999) as dst:
        dst.write(np.array([[0.01, -9999, 0.0], [0.02, np.inf, 0.01]], dtype="float32"), 1)
    s = FrictionSurface.from_file(path)
    assert np.isnan(s.friction).tolist() == [[False, True, True], [False, True, False]]
    with pytest.raises(CRSError):
        FrictionSurface(friction=np.ones((2, 2)), transform=affine.Affine(1, 0.2, 0, 0, -1, 0),
                        crs=UTM)
    with pytest.raises(InputError):
        travel_coverage(s, [110.0], [0.99], [110.0], [0.99], max_minutes=-1)
