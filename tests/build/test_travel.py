"""kantong.engine.build.travel: least-cost travel time on hand-computable grids, and the
fallback."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from pyproj import Geod, Transformer

from kantong.engine.build import travel
from kantong.engine.errors import InputError

UTM = "EPSG:32649"
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
D = math.sqrt(2)


def utm_grid(rows: int, cols: int, size: float = 10.0) -> Affine:
    return Affine(size, 0, 500_000, 0, -size, 20_000)


def lonlat_of_pixel(transform: Affine, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = transform * (col + 0.5, row + 0.5)
    lon, lat = TO_LONLAT.transform([x], [y])
    return np.asarray(lon), np.asarray(lat)


def test_uniform_friction_3x3_known_times_including_diagonals():
    transform = utm_grid(3, 3)
    surface = travel.TravelSurface.from_friction(np.ones((3, 3)), transform=transform, crs=UTM)
    minutes, ignored = surface.travel_minutes(*lonlat_of_pixel(transform, 1, 1))
    expected = np.array([[10 * D, 10, 10 * D], [10, 0, 10], [10 * D, 10, 10 * D]])
    np.testing.assert_allclose(minutes, expected, rtol=1e-6)
    assert ignored == 0
    assert minutes.dtype == np.float32


def test_move_cost_is_mean_friction_times_length():
    transform = utm_grid(1, 3)
    friction = np.array([[1.0, 3.0, 0.5]])
    surface = travel.TravelSurface.from_friction(friction, transform=transform, crs=UTM)
    minutes, _ = surface.travel_minutes(*lonlat_of_pixel(transform, 0, 0))
    np.testing.assert_allclose(minutes[0], [0, 10 * (1 + 3) / 2, 20 + 10 * (3 + 0.5) / 2],
                               rtol=1e-6)


def test_nodata_is_impassable_and_paths_go_around():
    transform = utm_grid(3, 3)
    friction = np.ones((3, 3))
    friction[0:2, 1] = np.nan  # a wall with a gap at the bottom
    surface = travel.TravelSurface.from_friction(friction, transform=transform, crs=UTM)
    minutes, _ = surface.travel_minutes(*lonlat_of_pixel(transform, 0, 0))
    # (0,0) -> (1,0) -> (2,1) -> (1,2) -> (0,2): 10 + 10*sqrt2 + 10*sqrt2 + 10
    np.testing.assert_allclose(minutes[0, 2], 20 + 20 * D, rtol=1e-6)
    assert np.isnan(minutes[0, 1]) and np.isnan(minutes[1, 1])


def test_several_facilities_of_one_type_start_at_once():
    transform = utm_grid(1, 5)
    surface = travel.TravelSurface.from_friction(np.ones((1, 5)), transform=transform, crs=UTM)
    lon0, lat0 = lonlat_of_pixel(transform, 0, 0)
    lon4, lat4 = lonlat_of_pixel(transform, 0, 4)
    minutes, _ = surface.travel_minutes(np.r_[lon0, lon4], np.r_[lat0, lat4])
    np.testing.assert_allclose(minutes[0], [0, 10, 20, 10, 0], rtol=1e-6)


def test_facilities_outside_are_ignored_and_nodata_ones_snap():
    transform = utm_grid(3, 3)
    friction = np.ones((3, 3))
    friction[1, 1] = np.nan
    surface = travel.TravelSurface.from_friction(friction, transform=transform, crs=UTM)
    lon_in, lat_in = lonlat_of_pixel(transform, 1, 1)  # on nodata: snaps to a neighbour
    lon_out, lat_out = lonlat_of_pixel(transform, 1, 40)  # far outside the raster
    minutes, ignored = surface.travel_minutes(np.r_[lon_in, lon_out], np.r_[lat_in, lat_out])
    assert ignored == 1
    assert np.nanmin(minutes) == 0.0
    nothing, ignored = surface.travel_minutes(lon_out, lat_out)
    assert ignored == 1 and np.isnan(nothing).all()


def test_geographic_pixels_use_geodesic_sizes():
    transform = Affine(0.01, 0, 110.0, 0, -0.01, 3.0)
    shape = (600, 10)  # 3N to 3S
    size = travel.pixel_size_m(transform, "EPSG:4326", shape)
    geod = Geod(ellps="WGS84")
    _, _, dx_eq = geod.inv(110.0, 0.0, 110.01, 0.0)
    _, _, dx_3 = geod.inv(110.0, 2.995, 110.01, 2.995)
    assert dx_3 < size.dx < dx_eq
    assert size.max_scale_error == pytest.approx((dx_eq - dx_3) / (dx_eq + dx_3), rel=0.02)
    assert size.max_scale_error < 0.001  # +-3 deg: under 0.1 %
    _, _, dy = geod.inv(110.0, -0.005, 110.0, 0.005)
    assert size.dy == pytest.approx(dy, rel=1e-3)
    # an east-west trip along the equator matches the geodesic length within that error
    friction = np.full(shape, 1.0)
    surface = travel.TravelSurface.from_friction(friction, transform=transform, crs="EPSG:4326")
    minutes, _ = surface.travel_minutes(np.array([110.005]), np.array([0.005]))
    _, _, metres = geod.inv(110.005, 0.005, 110.095, 0.005)
    assert minutes[299, 9] == pytest.approx(metres, rel=size.max_scale_error + 1e-6)


def test_projected_scale_error_is_reported():
    size = travel.pixel_size_m(utm_grid(100, 100, 1000), UTM, (100, 100))
    assert size.dx == size.dy == 1000
    assert 0 < size.max_scale_error < 0.002


def test_bad_friction_is_refused():
    transform = utm_grid(2, 2)
    with pytest.raises(InputError, match="negative"):
        travel.TravelSurface.from_friction(-np.ones((2, 2)), transform=transform, crs=UTM)
    with pytest.raises(InputError, match="no valid pixel"):
        travel.TravelSurface.from_friction(np.full((2, 2), np.nan), transform=transform, crs=UTM)
    with pytest.raises(InputError, match="rotated"):
        travel.pixel_size_m(Affine(10, 1, 0, 1, -10, 0), UTM, (2, 2))


def test_straight_line_minutes_follow_the_great_circle():
    line = travel.StraightLine(np.array([110.0, 112.0]), np.array([0.0, 1.0]))
    lon = np.array([110.0, 110.5, 111.9])
    lat = np.array([1.0, 0.0, 1.0])
    got = line.minutes(lon, lat)
    r = travel.EARTH_RADIUS_M
    expected_m = np.array([r * math.radians(1.0), r * math.radians(0.5),
                           r * math.radians(0.1) * math.cos(math.radians(1.0))])
    np.testing.assert_allclose(got, expected_m / 1000 / travel.STRAIGHT_LINE_SPEED_KMH * 60,
                               rtol=1e-4)
    assert line.minutes(np.empty(0), np.empty(0)).size == 0


def test_sample_raster_and_type_slug():
    transform = Affine(0.1, 0, 110.0, 0, -0.1, 1.0)
    values = np.arange(4.0).reshape(2, 2)
    got = travel.sample_raster(values, np.array([110.05, 110.15, 109.0]),
                               np.array([0.95, 0.85, 0.9]), transform=transform,
                               crs="EPSG:4326")
    np.testing.assert_array_equal(got[:2], [0.0, 3.0])
    assert np.isnan(got[2])
    assert travel.type_slug(" Water Point ") == "water_point"
    assert travel.type_slug("puskesmas") == "puskesmas"
    with pytest.raises(InputError):
        travel.type_slug("--")


def test_agrees_with_skimage_mcp_geometric_on_a_rough_surface_with_holes():
    """Independent reference: skimage's MCP_Geometric on the same 8-connected graph."""
    from skimage.graph import MCP_Geometric

    rng = np.random.default_rng(4)
    friction = rng.uniform(0.001, 0.02, (120, 150)).astype(np.float32)
    friction[rng.random(friction.shape) < 0.15] = np.nan
    friction[40:80, 60] = np.nan  # a wall
    transform = utm_grid(120, 150, 100.0)
    surface = travel.TravelSurface.from_friction(friction, transform=transform, crs=UTM)
    ok = np.argwhere(np.isfinite(friction))[rng.choice(int(np.isfinite(friction).sum()), 7)]
    lon, lat = zip(*(lonlat_of_pixel(transform, r, c) for r, c in ok), strict=True)
    minutes, _ = surface.travel_minutes(np.concatenate(lon), np.concatenate(lat))
    costs = np.where(np.isfinite(friction), friction, np.inf).astype(np.float64)
    ref, _ = MCP_Geometric(costs, fully_connected=True, sampling=(100.0, 100.0)).find_costs(
        [tuple(p) for p in ok.tolist()])
    reach = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(minutes), reach)
    np.testing.assert_allclose(minutes[reach], ref[reach], rtol=1e-6)


def test_types_in_parallel_equal_one_at_a_time():
    rng = np.random.default_rng(5)
    friction = rng.uniform(0.002, 0.01, (60, 70))
    transform = utm_grid(60, 70)
    surface = travel.TravelSurface.from_friction(friction, transform=transform, crs=UTM)
    points = {t: tuple(np.concatenate(a) for a in zip(
        *(lonlat_of_pixel(transform, *rng.integers(0, 60, 2)) for _ in range(k)), strict=True))
        for t, k in (("a", 1), ("b", 3), ("c", 5))}
    together = surface.travel_minutes_by_type(points, workers=2)
    for t, (lon, lat) in points.items():
        alone, ignored = surface.travel_minutes(lon, lat)
        np.testing.assert_array_equal(together[t][0], alone)
        assert together[t][1] == ignored == 0
