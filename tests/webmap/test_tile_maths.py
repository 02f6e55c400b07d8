"""Tile maths against an independent reference (mercantile), never against itself.

``tile_bounds`` and ``lonlat_to_mercator`` are compared with ``mercantile.xy_bounds`` and
``mercantile.xy``; rendered pixels are located with mercantile only, so a shifted tile
grid shows up as a hexagon drawn in the wrong place.
"""

from __future__ import annotations

import io

import h3
import mercantile
import numpy as np
import pytest
import shapely
from PIL import Image

from kantong.webmap.tiling.render import CellGeometry, lonlat_to_mercator, render_png, tile_bounds

#: Tiles over Kalimantan and the corners of the world, zoom 0 to 22.
TILES = [(0, 0, 0), (1, 1, 0), (1, 0, 1), (3, 6, 3), (6, 51, 31), (8, 206, 127),
         (12, 3308, 2046), (14, 13233, 8190), (18, 211737, 131040),
         (22, 3387794, 2096640), (22, 0, 0), (22, 4194303, 4194303)]
#: Radius of the Web Mercator sphere (EPSG:3857), metres.
RADIUS = 6378137.0


@pytest.mark.parametrize(("z", "x", "y"), TILES)
def test_tile_bounds_match_mercantile(z, x, y):
    ref = mercantile.xy_bounds(x, y, z)
    got = tile_bounds(z, x, y)
    size = ref.right - ref.left
    np.testing.assert_allclose(got, (ref.left, ref.bottom, ref.right, ref.top),
                               rtol=0, atol=size * 1e-9)


def test_tile_bounds_of_random_tiles_match_mercantile():
    rng = np.random.default_rng(0)
    for z in range(0, 23):
        for _ in range(20):
            x, y = (int(v) for v in rng.integers(0, 2**z, 2))
            ref = mercantile.xy_bounds(x, y, z)
            size = ref.right - ref.left
            assert tile_bounds(z, x, y) == pytest.approx(
                (ref.left, ref.bottom, ref.right, ref.top), abs=size * 1e-9), (z, x, y)


def test_lonlat_to_mercator_matches_mercantile():
    lon = np.array([-180.0, -45.5, 0.0, 109.3, 110.75, 117.9, 179.99])
    lat = np.array([-85.0, -4.2, 0.0, 0.05, -2.5, 4.1, 85.0])
    x, y = lonlat_to_mercator(lon, lat)
    for i in range(len(lon)):
        rx, ry = mercantile.xy(lon[i], lat[i])
        assert x[i] == pytest.approx(rx, abs=1e-6) and y[i] == pytest.approx(ry, abs=1e-6)


def _pixel(lon: float, lat: float, z: int, x: int, y: int) -> tuple[int, int]:
    """Row and column of lon/lat in tile z/x/y, from mercantile alone."""
    b = mercantile.xy_bounds(x, y, z)
    mx, my = mercantile.xy(lon, lat)
    f = 256 / (b.right - b.left)
    return int((b.top - my) * f), int((mx - b.left) * f)


def test_hexagon_is_drawn_where_mercantile_puts_it():
    cell = h3.latlng_to_cell(0.05, 110.75, 8)
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    poly = shapely.Polygon(ring)
    geometry = CellGeometry(np.array([poly], dtype=object))
    lat, lon = h3.cell_to_latlng(cell)
    for z in (12, 14, 16):
        t = mercantile.tile(lon, lat, z)
        img = np.asarray(Image.open(io.BytesIO(
            render_png(geometry, np.array([[200, 10, 10, 255]], dtype="uint8"), z, t.x, t.y))))
        r, c = _pixel(lon, lat, z, t.x, t.y)
        assert tuple(img[r, c]) == (200, 10, 10, 255), z
        # the drawn pixels are the hexagon, pixel for pixel (edges may differ by one pixel)
        b = mercantile.xy_bounds(t.x, t.y, z)
        step = (b.right - b.left) / 256
        cols, rows = np.meshgrid(np.arange(256), np.arange(256))
        mx = b.left + (cols + 0.5) * step
        my = b.top - (rows + 0.5) * step
        plon = np.degrees(mx / RADIUS)  # inverse spherical Mercator, by hand
        plat = np.degrees(np.pi / 2 - 2 * np.arctan(np.exp(-my / RADIUS)))
        inside = shapely.contains_xy(poly, plon, plat)
        drawn = img[..., 3] > 0
        assert inside.sum() > 50
        assert (drawn != inside).sum() <= 0.1 * inside.sum() + 4 * np.sqrt(inside.sum()), z


def test_tile_far_from_the_cell_is_empty():
    cell = h3.latlng_to_cell(0.05, 110.75, 8)
    poly = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
    geometry = CellGeometry(np.array([poly], dtype=object))
    t = mercantile.tile(110.75, 0.05, 14)
    rgba = np.array([[200, 10, 10, 255]], dtype="uint8")
    assert render_png(geometry, rgba, 14, t.x + 2, t.y) is None
    assert render_png(geometry, rgba, 14, t.x, t.y - 2) is None
