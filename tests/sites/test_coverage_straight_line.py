"""Straight-line coverage (no friction surface) against the haversine formula written out.

Travel minutes are the great-circle distance at a constant speed; a point is covered when
they are at most ``max_minutes``. Expected values come from the haversine formula below,
never from the engine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kantong.engine.build.travel import EARTH_RADIUS_M, STRAIGHT_LINE_SPEED_KMH
from kantong.engine.errors import InputError
from kantong.engine.sites.coverage import _search_chord, straight_line_coverage


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _minutes(lon1, lat1, lon2, lat2, speed_kmh):
    return _haversine_m(lon1, lat1, lon2, lat2) / (speed_kmh * 1000.0) * 60.0


def test_random_pairs_match_the_haversine_formula():
    rng = np.random.default_rng(11)
    s_lon, s_lat = rng.uniform(109.0, 110.0, 6), rng.uniform(-0.5, 0.5, 6)
    d_lon, d_lat = rng.uniform(108.8, 110.2, 50), rng.uniform(-0.7, 0.7, 50)
    speed, limit = 30.0, 60.0  # 30 km within the hour
    ref = np.array([[_minutes(a, b, c, d, speed) for c, d in zip(d_lon, d_lat, strict=True)]
                    for a, b in zip(s_lon, s_lat, strict=True)])
    assert not np.isclose(ref, limit, rtol=1e-9).any()  # no pair on the fence
    assert 0 < (ref <= limit).sum() < ref.size           # some in, some out
    cov = straight_line_coverage(s_lon, s_lat, d_lon, d_lat, max_minutes=limit,
                                 speed_kmh=speed)
    assert cov.shape == (6, 50)
    assert cov.matrix.dtype == bool
    assert (cov.matrix.toarray() == (ref <= limit)).all()
    assert (cov.minutes.toarray() != 0).sum() == (ref <= limit).sum()
    np.testing.assert_allclose(cov.minutes.toarray()[ref <= limit], ref[ref <= limit],
                               rtol=1e-6)
    assert cov.covered().tolist() == (ref <= limit).any(axis=0).tolist()
    assert cov.max_minutes == limit
    assert cov.method == "straight-line"


def test_default_speed_is_the_build_fallback_speed():
    src = (np.array([110.0]), np.array([0.0]))
    dst = (np.array([110.0]), np.array([0.05]))
    cov = straight_line_coverage(*src, *dst, max_minutes=600.0)
    expected = _minutes(110.0, 0.0, 110.0, 0.05, STRAIGHT_LINE_SPEED_KMH)
    assert cov.minutes.toarray()[0, 0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("n_src", "n_dst"), [(0, 3), (2, 0), (0, 0)])
def test_no_sources_or_no_points_give_an_empty_coverage_of_the_right_shape(n_src, n_dst):
    lon = np.linspace(110.0, 110.01, 3)
    cov = straight_line_coverage(lon[:n_src], np.zeros(n_src), lon[:n_dst], np.zeros(n_dst),
                                 max_minutes=30.0)
    assert cov.shape == (n_src, n_dst)
    assert cov.matrix.nnz == 0 and cov.minutes.nnz == 0
    assert cov.max_minutes == 30.0 and cov.method == "straight-line"


def test_one_point_and_limits_and_speeds_below_one():
    # 100 m north at 0.5 km/h: 12 minutes; a limit of half a minute reaches 4.17 m
    dlat = math.degrees(100.0 / EARTH_RADIUS_M)
    src = (np.array([110.0]), np.array([0.0]))
    far = straight_line_coverage(*src, np.array([110.0]), np.array([dlat]), max_minutes=12.5,
                                 speed_kmh=0.5)
    assert far.minutes.toarray()[0, 0] == pytest.approx(12.0, rel=1e-6)
    near = straight_line_coverage(*src, np.array([110.0, 110.0]), np.array([0.0, dlat]),
                                  max_minutes=0.5, speed_kmh=0.5)
    assert near.matrix.toarray().tolist() == [[True, False]]


@pytest.mark.parametrize(("max_minutes", "speed_kmh"), [(0.0, 4.0), (-1.0, 4.0),
                                                         (math.nan, 4.0), (10.0, 0.0),
                                                         (10.0, -4.0), (10.0, math.nan)])
def test_non_positive_limit_or_speed_is_rejected(max_minutes, speed_kmh):
    with pytest.raises(InputError):
        straight_line_coverage([110.0], [0.0], [110.0], [0.0], max_minutes=max_minutes,
                               speed_kmh=speed_kmh)


# antipodal pairs whose chord rounds to just above 2 (the unit sphere's diameter)
ANTIPODES = [(-158.0, -23.0), (-147.0, -8.0), (-135.0, -9.0), (-144.0, 20.0)]


def test_a_limit_beyond_half_the_earth_covers_the_antipodes():
    lon = np.array([p[0] for p in ANTIPODES])
    lat = np.array([p[1] for p in ANTIPODES])
    half_earth = math.pi * EARTH_RADIUS_M / (40.0 * 1000.0) * 60.0  # minutes at 40 km/h
    cov = straight_line_coverage(lon, lat, lon + 180.0, -lat, max_minutes=1.5 * half_earth,
                                 speed_kmh=40.0)
    assert cov.matrix.toarray().all()
    np.testing.assert_allclose(cov.minutes.toarray().diagonal(), half_earth, rtol=1e-6)


@pytest.mark.parametrize("metres", [4.0, 1112.0, 30_000.0, 5.0e6, 1.9e7])
def test_search_chord_is_the_chord_of_the_great_circle_distance(metres):
    # the kd-tree search radius: never short of the limit, and not longer than needed
    speed = 30.0
    minutes = metres / (speed * 1000.0) * 60.0
    exact = 2.0 * math.sin(metres / EARTH_RADIUS_M / 2.0)
    chord = _search_chord(minutes, speed)
    assert exact <= chord <= exact * (1 + 1e-9)


def test_search_chord_stops_at_the_diameter():
    assert 2.0 <= _search_chord(1e9, 4.0) <= 2.0 * (1 + 1e-9)
