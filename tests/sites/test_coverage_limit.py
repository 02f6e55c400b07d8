"""Coverage at exactly the time limit, for both travel methods (docs/sites.md).

A demand point is covered when its travel time is *at most* ``max_minutes``: a household
exactly at the limit is covered, one a hair beyond is not. The times are hand-computed
on grids where every step costs a whole number of minutes, so the comparison is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Transformer
from rasterio.transform import from_origin

from kantong.engine.build.travel import EARTH_RADIUS_M, STRAIGHT_LINE_SPEED_KMH
from kantong.engine.sites.coverage import FrictionSurface, straight_line_coverage, travel_coverage

UTM = "EPSG:32649"
X0, Y0 = 400_000.0, 50_000.0
SIZE = 64.0  # metres: a friction of 1/64 min/m costs exactly 1 minute per straight step


def _lonlat(rows, cols):
    x = X0 + (np.asarray(cols, dtype=float) + 0.5) * SIZE
    y = Y0 - (np.asarray(rows, dtype=float) + 0.5) * SIZE
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _row_surface() -> FrictionSurface:
    # steps 0->1: 1 min; 1->2: (1+3)/2 = 2 min; 2->3: 2 min; 3->4: 1 min
    f = np.array([[1.0, 1.0, 3.0, 1.0, 1.0]]) / 64.0
    return FrictionSurface(friction=f, transform=from_origin(X0, Y0, SIZE, SIZE), crs=UTM)


@pytest.mark.parametrize(("limit", "covered"), [
    (5.0, [True, True, True, True, False]),        # pixel 3 is exactly 5 minutes away
    (math.nextafter(5.0, 0.0), [True, True, True, False, False]),
    (3.0, [True, True, True, False, False]),       # pixel 2 exactly 3 minutes away
    (6.0, [True, True, True, True, True]),         # pixel 4 exactly 6 minutes away
    (1.0, [True, True, False, False, False]),
])
def test_least_cost_coverage_includes_points_exactly_at_the_limit(limit, covered):
    src = _lonlat([0], [0])
    dst = _lonlat([0] * 5, range(5))
    cov = travel_coverage(_row_surface(), *src, *dst, max_minutes=limit)
    assert cov.matrix.toarray()[0].tolist() == covered
    times = cov.minutes.toarray()[0]
    expected = np.array([0.0, 1.0, 3.0, 5.0, 6.0])
    assert times[covered].tolist() == expected[covered].tolist()  # exact: whole minutes


def test_least_cost_limit_is_inclusive_with_small_blocks_too():
    src = _lonlat([0, 0], [0, 4])
    dst = _lonlat([0] * 5, range(5))
    cov = travel_coverage(_row_surface(), *src, *dst, max_minutes=5.0, block_px=1)
    assert cov.matrix.toarray().tolist() == [[True, True, True, True, False],
                                             [False, True, True, True, True]]


def _north_of(lon: float, lat: float, dlat: float) -> float:
    """Minutes along the meridian at the straight-line speed (hand computation)."""
    metres = EARTH_RADIUS_M * math.radians(dlat)
    return metres / (STRAIGHT_LINE_SPEED_KMH * 1000.0) * 60.0


def test_straight_line_coverage_includes_points_exactly_at_the_limit():
    # 0.01 degrees due north on the equator: the haversine distance is R * dlat exactly
    # (this pair is chosen so that the engine's float arithmetic gives the same value)
    src = (np.array([110.0]), np.array([0.0]))
    dst = (np.array([110.0, 110.0]), np.array([0.01, 0.02]))
    limit = _north_of(110.0, 0.0, 0.01)
    assert limit == pytest.approx(16.679262035, rel=1e-9)  # 1.112 km at 4 km/h
    at = straight_line_coverage(*src, *dst, max_minutes=limit)
    assert at.matrix.toarray().tolist() == [[True, False]]
    assert at.minutes.toarray()[0, 0] == pytest.approx(limit, rel=1e-6)
    below = straight_line_coverage(*src, *dst, max_minutes=math.nextafter(limit, 0.0))
    assert below.matrix.nnz == 0
    both = straight_line_coverage(*src, *dst, max_minutes=2 * limit)
    assert both.matrix.toarray().tolist() == [[True, True]]


def test_reach_bound_from_its_definition():
    # a path of at most T minutes spans at most T / (min friction * step) pixels, plus one
    s = _row_surface()
    assert s.reach_pixels(5.0) == math.ceil(5.0 / (1 / 64 * 64)) + 1 == 6
    assert s.reach_pixels(0.5) == 2


def test_paths_go_around_impassable_pixels():
    # a wall in the middle column with a gap at the bottom: (0,0) -> (1,0) -> (2,1) -> (1,2)
    # -> (0,2) costs 1 + sqrt(2) + sqrt(2) + 1 minutes (1/64 min/m, 64 m pixels)
    f = np.full((3, 3), 1 / 64)
    f[0:2, 1] = np.nan
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, SIZE, SIZE), crs=UTM)
    cov = travel_coverage(s, *_lonlat([0], [0]), *_lonlat([0, 2], [2, 1]), max_minutes=10.0)
    np.testing.assert_allclose(cov.minutes.toarray()[0], [2 + 2 * math.sqrt(2),
                                                          1 + math.sqrt(2)], rtol=1e-6)
    just = 2 + 2 * math.sqrt(2)
    assert travel_coverage(s, *_lonlat([0], [0]), *_lonlat([0], [2]),
                           max_minutes=just * (1 - 1e-6)).matrix.nnz == 0


def test_point_limits_shorten_the_search_to_the_largest_limit_inclusive():
    src = _lonlat([0], [0])
    dst = _lonlat([0] * 5, range(5))
    # the largest point limit (3 minutes, pixel 2 exactly) bounds the search of the block
    cov = travel_coverage(_row_surface(), *src, *dst, max_minutes=10.0,
                          point_limits=np.array([0.5, 0.5, 3.0, 0.5, 0.5]))
    assert cov.matrix.toarray()[0].tolist() == [True, True, True, False, False]
    assert cov.minutes.toarray()[0, :3].tolist() == [0.0, 1.0, 3.0]
    # max_minutes still caps it; no positive limit: nothing is searched
    capped = travel_coverage(_row_surface(), *src, *dst, max_minutes=1.0,
                             point_limits=np.full(5, 6.0))
    assert capped.matrix.toarray()[0].tolist() == [True, True, False, False, False]
    none = travel_coverage(_row_surface(), *src, *dst, max_minutes=10.0,
                           point_limits=np.zeros(5))
    assert none.matrix.nnz == 0 and none.shape == (1, 5)
