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

from kantong.webmap.tiling.render import (
    EMPTY_PNG,
    HATCH_PERIOD,
    HATCH_RGBA,
    OUTLINE_RGBA,
    CellGeometry,
    _empty_png,
    _hatch_alpha,
    lonlat_to_mercator,
    render_png,
    tile_bounds,
)

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


def _pixel_centres(z: int, x: int, y: int, rows=None, cols=None):
    """Mercator metres of the pixel centres of tile z/x/y (every pixel, or rows/cols given),
    and the pixel size, from mercantile alone."""
    b = mercantile.xy_bounds(x, y, z)
    step = (b.right - b.left) / 256
    if rows is None:
        cols, rows = np.meshgrid(np.arange(256), np.arange(256))
    return b.left + (cols + 0.5) * step, b.top - (rows + 0.5) * step, step


def _lonlat(mx, my):
    """Inverse spherical Mercator, by hand (metres to degrees)."""
    return np.degrees(mx / RADIUS), np.degrees(np.pi / 2 - 2 * np.arctan(np.exp(-my / RADIUS)))


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
        mx, my, _ = _pixel_centres(z, t.x, t.y)
        inside = shapely.contains_xy(poly, *_lonlat(mx, my))
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


# ---- the renderer's pieces, from their definitions --------------------------------------
def _hexagons(n: int = 3) -> tuple[list[str], list[shapely.Polygon]]:
    origin = h3.latlng_to_cell(0.05, 110.75, 8)
    ids = [origin, *sorted(h3.grid_ring(origin, 1))[: n - 1]]
    return ids, [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)])
                 for c in ids]


def _mercator(lon, lat):
    return zip(*[mercantile.xy(a, b) for a, b in zip(lon, lat, strict=True)], strict=True)


def test_mercator_clips_at_the_web_mercator_limit():
    x, y = lonlat_to_mercator(np.array([10.0, 10.0]), np.array([-89.0, 89.0]))
    limit = mercantile.xy(0.0, 85.0511287798066)[1]
    assert y.tolist() == pytest.approx([-limit, limit], abs=1e-3)
    assert x.dtype == np.float64 and y.dtype == np.float64
    xi, yi = lonlat_to_mercator(np.array([110]), np.array([0]))  # integers in, floats out
    assert xi.dtype == np.float64 and xi[0] == pytest.approx(mercantile.xy(110, 0)[0])


def test_cell_geometry_vertices_bounds_and_query():
    ids, polys = _hexagons(3)
    g = CellGeometry(np.array(polys, dtype=object))
    assert len(g) == 3 and g.offsets.tolist() == [0, 6, 12, 18]  # closing vertex dropped
    for i, poly in enumerate(polys):
        lon, lat = np.asarray(poly.exterior.coords)[:-1].T
        mx, my = (np.array(v) for v in _mercator(lon, lat))
        np.testing.assert_allclose(g.xy[g.offsets[i]:g.offsets[i + 1]],
                                   np.column_stack([mx, my]), rtol=0, atol=1e-6)
        np.testing.assert_allclose(g.bounds[i], [mx.min(), my.min(), mx.max(), my.max()],
                                   rtol=0, atol=1e-6)
    np.testing.assert_allclose(g.total_bounds(), [g.bounds[:, 0].min(), g.bounds[:, 1].min(),
                                                  g.bounds[:, 2].max(), g.bounds[:, 3].max()])
    # a box around cell 1's centre only meets cell 1
    lat, lon = h3.cell_to_latlng(ids[1])
    cx, cy = mercantile.xy(lon, lat)
    assert g.query((cx - 1, cy - 1, cx + 1, cy + 1)).tolist() == [1]
    assert g.query((0.0, 0.0, 1.0, 1.0)).tolist() == []
    empty = CellGeometry(np.array([], dtype=object))
    assert len(empty) == 0 and empty.query((0.0, 0.0, 1e7, 1e7)).dtype == np.int64
    assert empty.query((0.0, 0.0, 1e7, 1e7)).size == 0


def test_pixel_rings_are_the_vertices_in_tile_pixels():
    ids, polys = _hexagons(3)
    g = CellGeometry(np.array(polys, dtype=object))
    lat, lon = h3.cell_to_latlng(ids[0])
    t = mercantile.tile(lon, lat, 14)
    b = mercantile.xy_bounds(t.x, t.y, 14)
    pts, off = g.pixel_rings(np.array([2, 0]), tuple(b), scale=256)
    assert off.tolist() == [0, 6, 12]
    f = 256 / (b.right - b.left)
    for k, i in enumerate((2, 0)):
        xy = g.xy[g.offsets[i]:g.offsets[i + 1]]
        np.testing.assert_allclose(pts[off[k]:off[k + 1], 0], (xy[:, 0] - b.left) * f)
        np.testing.assert_allclose(pts[off[k]:off[k + 1], 1], (b.top - xy[:, 1]) * f)


def _render(polys, rgba, z, x, y, **kw) -> np.ndarray:
    png = render_png(CellGeometry(np.array(polys, dtype=object)),
                     np.asarray(rgba, dtype="uint8"), z, x, y, **kw)
    return np.asarray(Image.open(io.BytesIO(png)))


def test_several_cells_each_in_its_colour_outline_and_transparent_cells():
    ids, polys = _hexagons(3)
    colours = [(200, 10, 10, 255), (10, 200, 10, 255), (10, 10, 200, 0)]  # 3rd: not drawn
    lat, lon = h3.cell_to_latlng(ids[0])
    t = mercantile.tile(lon, lat, 15)
    img = _render(polys, colours, 15, t.x, t.y)
    for i in (0, 1):
        clat, clon = h3.cell_to_latlng(ids[i])
        r, c = _pixel(clon, clat, 15, t.x, t.y)
        if 0 <= r < 256 and 0 <= c < 256:
            assert tuple(img[r, c]) == colours[i], i
    clat, clon = h3.cell_to_latlng(ids[2])
    r, c = _pixel(clon, clat, 15, t.x, t.y)
    if 0 <= r < 256 and 0 <= c < 256:
        assert img[r, c, 3] == 0  # alpha 0: skipped
    assert not (img == OUTLINE_RGBA).all(axis=-1).any()
    lined = _render(polys, colours, 15, t.x, t.y, outline=True)
    assert (lined == OUTLINE_RGBA).all(axis=-1).sum() > 50
    geometry = CellGeometry(np.array(polys, dtype=object))
    assert render_png(geometry, np.zeros((3, 4), dtype="uint8"), 15, t.x, t.y) is None


def test_hatch_only_over_the_hatched_cell():
    ids, polys = _hexagons(2)
    rgba = [(120, 120, 120, 255)] * 2
    lat, lon = h3.cell_to_latlng(ids[0])
    t = mercantile.tile(lon, lat, 16)
    plain = _render(polys, rgba, 16, t.x, t.y)
    hatched = _render(polys, rgba, 16, t.x, t.y, hatch=np.array([False, True]))
    changed = (hatched != plain).any(axis=-1)
    i, j = np.nonzero(changed)
    assert len(i) > 20 and ((i + j) % HATCH_PERIOD == 0).all()  # only on the hatch lines
    # every changed pixel lies in cell 1, none in cell 0 (located with mercantile)
    mx, my, _ = _pixel_centres(16, t.x, t.y, rows=i, cols=j)
    assert shapely.contains_xy(polys[1].buffer(2e-5), *_lonlat(mx, my)).all()


def test_each_of_several_cells_fills_its_own_pixels():
    # seven hexagons in seven colours; every pixel whose centre lies inside a cell, more than
    # 1.5 pixels from its edge, has that cell's colour, and every pixel that far outside all
    # cells is transparent (pixel centres located with mercantile and shapely only)
    origin = h3.latlng_to_cell(0.05, 110.75, 9)
    ids = [origin, *sorted(h3.grid_ring(origin, 1))]
    polys = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in ids]
    colours = [(30 * i + 20, 250 - 30 * i, 10 * i, 255) for i in range(7)]
    mercs = [shapely.Polygon(np.column_stack(list(_mercator(*np.asarray(
        p.exterior.coords).T)))) for p in polys]
    lat, lon = h3.cell_to_latlng(origin)
    for z in (15, 16):
        t = mercantile.tile(lon, lat, z)
        img = _render(polys, colours, z, t.x, t.y)
        mx, my, step = _pixel_centres(z, t.x, t.y)
        centres = shapely.points(mx, my)
        checked = 0
        for i, merc in enumerate(mercs):
            deep = shapely.contains(merc.buffer(-1.5 * step), centres)
            assert (img[deep] == colours[i]).all(), (z, i)
            checked += deep.sum()
        far = ~shapely.contains(shapely.union_all(mercs).buffer(1.5 * step), centres)
        assert (img[far, 3] == 0).all() and far.sum() > 1000, z
        assert checked > 5000, z


@pytest.mark.parametrize("side", ["west", "east", "north", "south"])
def test_a_cell_reaching_into_the_tile_by_under_a_pixel_is_drawn_on_that_edge(side):
    # a box overlapping the tile by 0.7 pixel along one edge fills that edge's pixel line
    # (rows or columns 100-149) and nothing else; searching only the tile's inner box
    # would drop it
    z = 15
    t = mercantile.tile(110.75, 0.05, z)
    b = mercantile.xy_bounds(t.x, t.y, z)
    px = (b.right - b.left) / 256
    span = (100 * px, 150 * px)
    boxes = {  # minx, maxx, miny, maxy in Mercator metres
        "west": (b.left - 5 * px, b.left + 0.7 * px, b.top - span[1], b.top - span[0]),
        "east": (b.right - 0.7 * px, b.right + 5 * px, b.top - span[1], b.top - span[0]),
        "north": (b.left + span[0], b.left + span[1], b.top - 0.7 * px, b.top + 5 * px),
        "south": (b.left + span[0], b.left + span[1], b.bottom - 5 * px, b.bottom + 0.7 * px),
    }
    x0, x1, y0, y1 = boxes[side]
    (lon0, lon1), (lat0, lat1) = _lonlat(np.array([x0, x1]), np.array([y0, y1]))
    img = _render([shapely.box(lon0, lat0, lon1, lat1)], [(200, 10, 10, 255)], z, t.x, t.y)
    rows, cols = np.nonzero(img[..., 3] > 0)
    line = {"west": cols == 0, "east": cols == 255, "north": rows == 0, "south": rows == 255}
    along = rows if side in ("west", "east") else cols
    assert line[side].all() and len(rows) >= 50
    assert along.min() >= 99 and along.max() <= 150


def test_mercator_keeps_double_precision_for_single_precision_input():
    # float32 degrees are projected as the doubles they are: a float32 result would be
    # metres off at 2e7 m (sub-pixel error at zoom 18 and beyond)
    lon = np.array([110.123456, 117.98765, -179.5], dtype=np.float32)
    lat = np.array([-1.234567, 3.456789, 60.5], dtype=np.float32)
    x, y = lonlat_to_mercator(lon, lat)
    ref = [mercantile.xy(float(a), float(b)) for a, b in zip(lon, lat, strict=True)]
    assert x.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_allclose(x, [r[0] for r in ref], rtol=0, atol=1e-6)
    np.testing.assert_allclose(y, [r[1] for r in ref], rtol=0, atol=1e-6)


def test_a_triangle_is_a_cell_an_empty_polygon_is_refused_and_faint_cells_are_drawn():
    # the fewest distinct vertices a polygon can have is 3 (4 coordinates with the closing one)
    t = mercantile.tile(110.75, 0.05, 15)
    b = mercantile.xy_bounds(t.x, t.y, 15)
    (lon0, lon1), (lat0, lat1) = _lonlat(np.array([b.left + (b.right - b.left) / 4,
                                                   b.right - (b.right - b.left) / 4]),
                                         np.array([b.bottom + (b.top - b.bottom) / 4,
                                                   b.top - (b.top - b.bottom) / 4]))
    triangle = shapely.Polygon([(lon0, lat0), (lon1, lat0), (lon0, lat1)])
    geometry = CellGeometry(np.array([triangle], dtype=object))
    assert len(geometry) == 1 and geometry.offsets.tolist() == [0, 3]
    faint = _render([triangle], [(200, 10, 10, 1)], 15, t.x, t.y)  # alpha 1 is still drawn
    assert (faint[..., 3] == 1).sum() > 1000
    with pytest.raises(ValueError, match="3 distinct vertices"):
        CellGeometry(np.array([triangle, shapely.Polygon()], dtype=object))


def test_module_constants_follow_their_definitions():
    assert EMPTY_PNG == _empty_png()
    empty = np.asarray(Image.open(io.BytesIO(_empty_png())))
    assert empty.shape == (256, 256, 4) and not empty.any()
    alpha = _hatch_alpha()
    i = np.arange(256)
    expected = np.where((i[:, None] + i[None, :]) % HATCH_PERIOD == 0, HATCH_RGBA[3], 0)
    assert alpha.dtype == np.uint8 and (alpha == expected).all()
