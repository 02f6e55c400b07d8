"""kantong.engine.build.zonal: coverage-fraction statistics, checked against shapely by hand.

The oracle is the definition itself: every pixel's box is intersected with the cell polygon
(shapely, one cell at a time) and the value is weighted by the area of the intersection.
"""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import Transformer

from kantong.engine.build import grid, zonal
from kantong.engine.build.coverage_kernel import polygon_sums
from kantong.engine.errors import InputError


def pixel_boxes(transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    x0, y0 = transform * (cols, rows)
    x1, y1 = transform * (cols + 1, rows + 1)
    return shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1),
                       np.maximum(y0, y1)).ravel()


def oracle(data: np.ndarray, transform: Affine, polys: np.ndarray,
           nodata_as_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Coverage-weighted sum and valid coverage (in pixels) of each polygon."""
    boxes = pixel_boxes(transform, data.shape)
    tree = shapely.STRtree(boxes)
    values = data.ravel()
    ok = np.isfinite(values)
    sums, cover = np.zeros(len(polys)), np.zeros(len(polys))
    for i, poly in enumerate(polys):  # test oracle only: a few hundred cells
        idx = tree.query(poly)
        area = shapely.area(shapely.intersection(poly, boxes[idx])) / shapely.area(boxes[idx])
        sums[i] = (area * np.where(ok[idx], values[idx], 0.0)).sum()
        cover[i] = area.sum() if nodata_as_zero else (area * ok[idx]).sum()
    return sums, cover


def cells_in(west: float, south: float, east: float, north: float, res: int) -> np.ndarray:
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(shapely.box(west, south, east, north)))
    return np.array(sorted(h3.str_to_int(c) for c in h3.geo_to_cells(shape, res)), np.uint64)


@pytest.fixture
def geo_raster() -> tuple[np.ndarray, Affine]:
    rng = np.random.default_rng(11)
    data = rng.normal(50, 10, (90, 110))
    data[10:25, 30:60] = np.nan  # nodata block: never averaged in
    return data, Affine(0.002, 0, 110.70, 0, -0.002, 0.10)


@pytest.mark.parametrize("resolution", [6, 7, 8, 9, 10])
def test_means_equal_exact_coverage_weighting(geo_raster, resolution):
    """From cells far larger than pixels (r6) to far smaller (r10: 0.015 km2, pixels 0.05)."""
    data, transform = geo_raster
    cells = cells_in(110.69, -0.09, 110.93, 0.11, resolution)  # some cells stick out
    if cells.size > 400:
        cells = cells[:: cells.size // 400]
    polys = shapely.segmentize(grid.cell_polygons(cells), 0.0005)
    sums, cover = oracle(data, transform, polys)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells)
    some = cover > 1e-12
    np.testing.assert_allclose(got[some], sums[some] / cover[some], rtol=1e-6)
    assert np.isnan(got[~some]).all()  # all-nodata or outside: no mean


def test_means_on_a_utm_raster_equal_exact_coverage_weighting():
    rng = np.random.default_rng(12)
    data = rng.uniform(0, 100, (70, 90))
    transform = Affine(250, 0, 465_000, 0, -250, 12_000)  # EPSG:32649 near 110.7E, 0.1N
    cells = cells_in(110.69, 0.05, 110.87, 0.11, 7)
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
    polys = shapely.transform(shapely.segmentize(grid.cell_polygons(cells), 0.0005),
                              lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))
    sums, cover = oracle(data, transform, polys)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:32649", cells=cells)
    some = cover > 1.0
    assert some.sum() > 10
    np.testing.assert_allclose(got[some], sums[some] / cover[some], rtol=1e-6)


@pytest.mark.parametrize("resolution", [7, 9])
def test_population_is_the_coverage_weighted_sum_and_tiles_add_up(resolution):
    rng = np.random.default_rng(5)
    transform = Affine(1 / 120, 0, 110.0, 0, -1 / 120, 0.5)
    data = rng.gamma(0.5, 200.0, (120, 120))
    data[5:9, 5:9] = np.nan  # nodata counts as nobody
    cells = cells_in(110.2, 0.0, 110.8, 0.3, resolution)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells,
                            kind="count")
    few = cells[:: max(1, cells.size // 150)]
    polys = shapely.segmentize(grid.cell_polygons(few), 0.0005)
    sums, _ = oracle(data, transform, polys, nodata_as_zero=True)
    np.testing.assert_allclose(got[np.isin(cells, few)], sums, rtol=1e-6)
    # the cells tile a region: their total is the raster's own total inside their union
    union = shapely.union_all(grid.cell_polygons(cells))
    total, _ = oracle(data, transform, np.array([union]), nodata_as_zero=True)
    assert got.sum() == pytest.approx(total[0], rel=1e-6)


def test_cells_smaller_than_pixels_take_the_area_weighted_pixels():
    data = np.array([[10.0, 20.0], [30.0, 40.0]])
    transform = Affine(0.01, 0, 110.0, 0, -0.01, 0.01)
    lat, lon = 0.0, 110.01  # the corner shared by the four pixels
    cell = np.array([h3.str_to_int(h3.latlng_to_cell(lat, lon, 11))], np.uint64)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cell)
    sums, cover = oracle(data, transform, shapely.segmentize(grid.cell_polygons(cell), 1e-5))
    assert got[0] == pytest.approx(sums[0] / cover[0], rel=1e-9)
    assert 10.0 < got[0] < 40.0  # a mix, not the one pixel under the centre


def test_cells_outside_the_raster_are_nan_and_nodata_counts_as_zero(geo_raster):
    data, transform = geo_raster
    far = grid.points_to_cells(np.array([1.5]), np.array([112.0]), 7)
    assert np.isnan(zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=far))[0]
    assert np.isnan(zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=far,
                                      kind="count"))[0]
    empty = np.full((60, 60), np.nan)
    inside = grid.points_to_cells(np.array([0.05]), np.array([110.75]), 8)
    assert zonal.zonal_stats(empty, transform=transform, crs="EPSG:4326", cells=inside,
                             kind="count")[0] == 0.0
    assert np.isnan(zonal.zonal_stats(empty, transform=transform, crs="EPSG:4326",
                                      cells=inside))[0]


def test_polygon_sums_are_exact_for_any_polygon_size_and_position():
    """Random simple star polygons, from a twentieth of a pixel to larger than the raster."""
    rng = np.random.default_rng(1)
    data = rng.uniform(0, 10, (13, 17))
    data[2, 3] = np.nan
    rings = []
    for _ in range(150):
        n = int(rng.integers(3, 9))
        centre, size = rng.uniform(-3, 20, 2), rng.uniform(0.05, 12)
        angle = ((np.arange(n) + rng.uniform(0, 0.6, n)) * 2 * np.pi / n)[:: rng.choice([-1, 1])]
        radius = size * rng.uniform(0.5, 1, n)
        ring = np.c_[centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)]
        rings.append(np.vstack([ring, ring[:1]]))
    rings.append(np.array([[2.0, 1.0], [5.0, 1.0], [5.0, 4.0], [2.0, 4.0], [2.0, 1.0]]))  # axis
    u = np.concatenate([r[:, 0] for r in rings])
    v = np.concatenate([r[:, 1] for r in rings])
    which = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
    got_sum, got_cover = polygon_sums(data, u, v, which, len(rings), nodata_as_zero=False)
    sums, cover = oracle(data, Affine.identity(), np.array([shapely.Polygon(r) for r in rings]))
    np.testing.assert_allclose(got_sum, sums, atol=1e-10)
    np.testing.assert_allclose(got_cover, cover, atol=1e-10)


def test_cell_boundaries_match_h3_including_pentagons():
    pentagon = h3.str_to_int(sorted(h3.get_pentagons(7))[0])
    hexagon = h3.str_to_int(h3.latlng_to_cell(0.05, 110.75, 7))
    for cells in (np.array([hexagon], np.uint64), np.array([hexagon, pentagon], np.uint64)):
        lon, lat, which = zonal.cell_boundaries(cells)
        for i, c in enumerate(cells):
            ring = h3.cell_to_boundary(h3.int_to_str(int(c)))
            got = np.column_stack([lat[which == i], lon[which == i]])
            np.testing.assert_allclose(got[:-1], np.array(ring), atol=1e-9)
            np.testing.assert_array_equal(got[0], got[-1])


def test_bad_arguments_are_refused(geo_raster):
    data, transform = geo_raster
    cells = grid.points_to_cells(np.array([0.0]), np.array([110.8]), 7)
    with pytest.raises(InputError, match="no CRS"):
        zonal.zonal_stats(data, transform=transform, crs=None, cells=cells)
    with pytest.raises(InputError, match="unknown zonal statistic"):
        zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells, kind="max")
    mixed = np.r_[cells, grid.points_to_cells(np.array([0.0]), np.array([110.8]), 8)]
    with pytest.raises(InputError, match="one H3 resolution"):
        zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=mixed)
    with pytest.raises(InputError, match="rotated"):
        zonal.zonal_stats(data, transform=Affine(0.002, 0.001, 110.7, 0, -0.002, 0.1),
                          crs="EPSG:4326", cells=cells)
    assert zonal.zonal_stats(data, transform=transform, crs="EPSG:4326",
                             cells=np.empty(0, np.uint64)).size == 0
