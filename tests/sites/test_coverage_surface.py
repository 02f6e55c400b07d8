"""The friction surface of least-cost coverage: geometry, pixel graph, snapping, coarsening.

Expected values are written out from the definitions: a step between 8-connected pixels
costs the mean friction of the two pixels times the step length (pixel height, width or
their hypotenuse); a path within ``T`` minutes spans at most ``T / (min friction x shortest
step)`` pixels; a point on an impassable pixel moves to a passable pixel at most
``SNAP_PIXELS`` away.
"""

from __future__ import annotations

import logging
import math
import warnings

import affine
import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from kantong.engine.errors import CRSError
from kantong.engine.sites.coverage import (
    SNAP_PIXELS,
    FrictionSurface,
    _pixel_graph,
    _window,
    travel_coverage,
)

UTM = "EPSG:32649"
X0, Y0 = 400_000.0, 50_000.0


def _lonlat(rows, cols, dx=100.0, dy=100.0):
    x = X0 + (np.asarray(cols, dtype=float) + 0.5) * dx
    y = Y0 - (np.asarray(rows, dtype=float) + 0.5) * dy
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _graph_by_hand(f: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Dense cost matrix: every ordered pair of 8-neighbours, both passable."""
    h, w = f.shape
    out = np.zeros((h * w, h * w))
    for r in range(h):
        for c in range(w):
            for rr in range(r - 1, r + 2):
                for cc in range(c - 1, c + 2):
                    if (rr, cc) == (r, c) or not (0 <= rr < h and 0 <= cc < w):
                        continue
                    if np.isnan(f[r, c]) or np.isnan(f[rr, cc]):
                        continue
                    length = math.sqrt(((rr - r) * dy) ** 2 + ((cc - c) * dx) ** 2)
                    out[r * w + c, rr * w + cc] = (f[r, c] + f[rr, cc]) / 2 * length
    return out


def test_pixel_graph_of_a_two_by_two_window_by_hand():
    # pixels 0 1 / 2 3 (3 impassable); dy = 3 m, dx = 4 m, diagonal 5 m
    g = _pixel_graph(np.array([[1.0, 2.0], [3.0, np.nan]]), 3.0, 4.0)
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 0] = (1 + 2) / 2 * 4
    expected[0, 2] = expected[2, 0] = (1 + 3) / 2 * 3
    expected[1, 2] = expected[2, 1] = (2 + 3) / 2 * 5
    assert g.shape == (4, 4) and g.nnz == 6  # no edge to or from the impassable pixel
    np.testing.assert_allclose(g.toarray(), expected)


@pytest.mark.parametrize(("dy", "dx"), [(50.0, 100.0), (100.0, 30.0)])
def test_pixel_graph_has_every_step_of_every_pixel(dy, dx):
    rng = np.random.default_rng(2)
    f = rng.uniform(0.5, 2.0, size=(4, 5))
    f[1, 3] = f[3, 0] = np.nan
    g = _pixel_graph(f, dy, dx)
    expected = _graph_by_hand(f, dy, dx)
    assert g.nnz == (expected > 0).sum()
    np.testing.assert_allclose(g.toarray(), expected, rtol=1e-12)


def test_window_is_the_block_plus_the_reach_clipped_to_the_raster():
    # block (2, 3) of side 4 spans rows 8-11 and cols 12-15
    assert _window(2, 3, 4, 5, (30, 40)) == (3, 17, 7, 21)
    assert _window(0, 0, 4, 5, (30, 40)) == (0, 9, 0, 9)
    assert _window(7, 9, 4, 5, (30, 40)) == (23, 30, 31, 40)


@pytest.mark.parametrize("transform", [
    affine.Affine(100.0, 0.0, X0, 0.0, 100.0, Y0),      # south-up
    affine.Affine(100.0, 0.0, X0, 0.0, 0.0, Y0),        # no height
    affine.Affine(0.0, 0.0, X0, 0.0, -100.0, Y0),       # no width
    affine.Affine(-100.0, 0.0, X0, 0.0, -100.0, Y0),    # east-to-west
    affine.Affine(100.0, 5.0, X0, 0.0, -100.0, Y0),     # rotated
    affine.Affine(100.0, 0.0, X0, 5.0, -100.0, Y0),     # rotated
])
def test_only_north_up_rasters_without_rotation_are_accepted(transform):
    with pytest.raises(CRSError):
        FrictionSurface(friction=np.ones((2, 2)), transform=transform, crs=UTM)


def test_a_raster_without_crs_is_refused():
    with pytest.raises(CRSError):
        FrictionSurface(friction=np.ones((2, 2)), transform=from_origin(X0, Y0, 1, 1),
                        crs=None)


def test_step_lengths_and_reach_with_rectangular_pixels():
    f = np.full((6, 4), 0.01)
    tall = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 50.0), crs=UTM)
    wide = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 50.0, 100.0), crs=UTM)
    assert tall.step_lengths() == (50.0, 100.0)
    assert wide.step_lengths() == (100.0, 50.0)
    # the shortest step (50 m) at the least friction costs 0.5 minutes: 5 min -> 10 px + 1
    assert tall.reach_pixels(5.0) == wide.reach_pixels(5.0) == 11
    one_row = FrictionSurface(friction=f[:1], transform=from_origin(X0, Y0, 100.0, 50.0),
                              crs=UTM)
    assert one_row.reach_pixels(5.0) >= 6  # at least the bound of its 100 m steps


def test_points_exactly_snap_pixels_from_land_are_snapped_and_logged(caplog):
    f = np.full((3, 10), 0.01)
    f[:, 5:] = np.nan  # land in columns 0-4
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    cols = [4, 4 + SNAP_PIXELS, 5 + SNAP_PIXELS, 2]
    lon, lat = _lonlat([1] * 4, cols)
    lon = np.append(lon, 100.0)  # far outside the raster
    lat = np.append(lat, 5.0)
    with caplog.at_level(logging.INFO, logger="kantong.engine.sites.coverage"):
        pix = s.pixels_of(lon, lat)
    assert pix.tolist() == [14, 14, -1, 12, -1]
    messages = [r.getMessage() for r in caplog.records]
    assert "1 points on impassable pixels moved to the nearest passable pixel" in messages
    assert ("2 of 5 points are outside the friction raster or off land; they reach nothing"
            in messages)


def test_points_on_land_are_not_logged(caplog):
    s = FrictionSurface(friction=np.full((3, 3), 0.01),
                        transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM)
    with caplog.at_level(logging.INFO, logger="kantong.engine.sites.coverage"):
        assert s.pixels_of(*_lonlat([0, 2], [1, 2])).tolist() == [1, 8]
    assert caplog.records == []


def test_coarsen_geometry_path_and_no_warning():
    f = np.full((5, 4), 0.01)
    f[4, :2] = np.nan  # a block with no passable pixel when coarsened by 2
    f[0:2, 2:4] = 0.03
    s = FrictionSurface(friction=f, transform=from_origin(X0, Y0, 100.0, 100.0), crs=UTM,
                        path="friction.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero for empty blocks
        c = s.coarsen(2)
    assert c.shape == (3, 2)
    np.testing.assert_allclose(c.friction, [[0.01, 0.03], [0.01, 0.01], [np.nan, 0.01]])
    assert tuple(c.transform)[:6] == (200.0, 0.0, X0, 0.0, -200.0, Y0)
    assert "friction.tif" in c.path and "2" in c.path
    assert s.coarsen(1) is s  # factor 1: the surface itself, its snapping table kept


def test_friction_file_is_float64_and_keeps_its_path(tmp_path):
    path = tmp_path / "friction.tif"
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=1,
                       dtype="float32", crs=UTM, transform=from_origin(X0, Y0, 100, 100),
                       nodata=-9999) as dst:
        dst.write(np.array([[0.1, -9999, -0.5], [0.3, np.nan, 0.2]], dtype="float32"), 1)
    s = FrictionSurface.from_file(path)
    assert s.friction.dtype == np.float64
    assert s.path == str(path)
    np.testing.assert_array_equal(
        s.friction, np.array([[0.1, np.nan, np.nan], [0.3, np.nan, 0.2]], dtype="float32"))
    # a usable surface: 0.1 -> 0.3 min/m over 100 m costs 20 minutes
    cov = travel_coverage(s, *_lonlat([0], [0]), *_lonlat([1], [0]), max_minutes=21.0)
    assert cov.minutes.toarray()[0, 0] == pytest.approx(20.0, rel=1e-6)
