"""kantong.engine.build.zonal: per-cell raster statistics (pixel-centre rule), checked against
oracles."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from pyproj import Transformer

from kantong.engine.build import grid, zonal
from kantong.engine.errors import InputError


def pixel_cells(transform: Affine, shape: tuple[int, int], resolution: int,
                crs: str = "EPSG:4326") -> np.ndarray:
    """Oracle: index every pixel centre with h3-py, one at a time."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    x, y = transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    if crs != "EPSG:4326":
        x, y = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return np.array([h3.str_to_int(h3.latlng_to_cell(b, a, resolution))
                     for a, b in zip(x, y, strict=True)], dtype=np.uint64)


def brute_means(data: np.ndarray, owner: np.ndarray, cells: np.ndarray) -> np.ndarray:
    return pd.Series(data.ravel()).groupby(owner).mean().reindex(cells).to_numpy()


@pytest.fixture
def geo_raster() -> tuple[np.ndarray, Affine]:
    rng = np.random.default_rng(11)
    data = rng.normal(50, 10, (90, 110))
    data[10:25, 30:60] = np.nan  # nodata block: never averaged in
    return data, Affine(0.002, 0, 110.70, 0, -0.002, 0.10)


@pytest.mark.parametrize("resolution", [6, 7, 8])
def test_means_equal_per_pixel_indexing(geo_raster, resolution):
    data, transform = geo_raster
    owner = pixel_cells(transform, data.shape, resolution)
    cells = np.unique(owner)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells)
    expected = brute_means(data, owner, cells)
    both = np.isfinite(expected)
    np.testing.assert_allclose(got[both], expected[both], rtol=1e-9)
    # cells whose pixels are all nodata stay NaN (the centre pixel is nodata too)
    assert np.isnan(got[~both]).all()


def test_means_on_a_utm_raster_equal_per_pixel_indexing():
    rng = np.random.default_rng(12)
    data = rng.uniform(0, 100, (70, 90))
    transform = Affine(250, 0, 465_000, 0, -250, 12_000)  # EPSG:32649 near 110.7E, 0.1N
    owner = pixel_cells(transform, data.shape, 7, crs="EPSG:32649")
    cells = np.unique(owner)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:32649", cells=cells)
    np.testing.assert_allclose(got, brute_means(data, owner, cells), rtol=1e-9)


def test_means_within_one_percent_of_exact_area_weighting():
    """Oracle: exact coverage fractions of every pixel by the hexagon (shapely)."""
    transform = Affine(0.002, 0, 110.70, 0, -0.002, 0.10)
    rows, cols = np.mgrid[0:100, 0:120]
    lon, lat = transform * (cols + 0.5, rows + 0.5)
    data = 100 + 30 * np.sin(2 * np.pi * lon / 0.15) + 20 * np.cos(2 * np.pi * lat / 0.2)
    inner = grid.points_to_cells(lat[10:-10, 10:-10].ravel(), lon[10:-10, 10:-10].ravel(), 7)
    cells = np.unique(inner)
    polys = grid.cell_polygons(cells)
    inside = shapely.contains(shapely.box(110.70, -0.10, 110.94, 0.10), polys)
    cells, polys = cells[inside], polys[inside]
    assert cells.size >= 8
    exact = []
    boxes = shapely.box(lon - 0.001, lat - 0.001, lon + 0.001, lat + 0.001).ravel()
    for poly in polys:  # test oracle only: a handful of cells
        cover = shapely.area(shapely.intersection(poly, boxes))
        exact.append((cover * data.ravel()).sum() / cover.sum())
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells)
    rel = np.abs(got - np.array(exact)) / np.abs(np.array(exact))
    assert rel.max() < 0.01  # measured: 0.35 % at worst, 0.08 % median


def test_cells_smaller_than_pixels_take_the_pixel_under_their_centre(geo_raster):
    data, transform = geo_raster
    rng = np.random.default_rng(3)
    cells = np.unique(grid.points_to_cells(rng.uniform(-0.07, 0.09, 400),
                                           rng.uniform(110.71, 110.91, 400), 10))
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells)
    owner = pixel_cells(transform, data.shape, 10)
    lon, lat = grid.cell_centres(cells)
    c, r = ~transform * (lon, lat)
    under = data[np.floor(r).astype(int), np.floor(c).astype(int)]
    has_centre = np.isin(cells, owner)
    assert (~has_centre).sum() > 100  # most res-10 cells (0.015 km2) hold no pixel centre
    np.testing.assert_array_equal(got[~has_centre], under[~has_centre])
    expected = brute_means(data, owner, cells)
    np.testing.assert_allclose(got[has_centre], expected[has_centre], rtol=1e-9)


def test_cells_outside_the_raster_are_nan(geo_raster):
    data, transform = geo_raster
    far = grid.points_to_cells(np.array([1.5]), np.array([112.0]), 7)
    assert np.isnan(zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=far))[0]


@pytest.mark.parametrize("resolution", [6, 8, 9])
def test_uniform_density_gives_area_proportional_population(resolution):
    transform = Affine(0.01, 0, 110.0, 0, -0.01, 0.5)
    data = np.full((100, 100), 100.0)  # persons per pixel
    cells = np.unique(grid.points_to_cells(np.linspace(-0.3, 0.3, 50),
                                           np.linspace(110.2, 110.8, 50), resolution))
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells,
                            kind="count")
    lon, lat = grid.cell_centres(cells)
    pixel_area = zonal.pixel_areas_m2(transform, "EPSG:4326", (0.5 - lat) / 0.01 - 0.5,
                                      np.zeros(cells.size))
    expected = 100.0 * grid.cell_areas_m2(cells) / pixel_area
    np.testing.assert_allclose(got, expected, rtol=2e-4)


@pytest.mark.parametrize("resolution", [7, 9])
def test_population_totals_are_preserved(resolution):
    """Sum over a complete tiling equals the people in the tiled area (exact coverage)."""
    rng = np.random.default_rng(5)
    transform = Affine(1 / 120, 0, 110.0, 0, -1 / 120, 0.5)
    data = rng.gamma(0.5, 200.0, (120, 120))
    region = shapely.box(110.2, 0.0, 110.8, 0.3)
    cells = np.unique(grid.points_to_cells(rng.uniform(0.0, 0.3, 200_000),
                                           rng.uniform(110.2, 110.8, 200_000), resolution))
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells,
                            kind="count")
    union = shapely.union_all(grid.cell_polygons(cells))
    assert union.area > 0.9 * region.area
    rows, cols = np.mgrid[0:120, 0:120]
    lon, lat = transform * (cols + 0.5, rows + 0.5)
    boxes = shapely.box(lon - 1 / 240, lat - 1 / 240, lon + 1 / 240, lat + 1 / 240)
    frac = shapely.area(shapely.intersection(union, boxes)) / shapely.area(boxes)
    exact = (frac * data).sum()
    assert abs(got.sum() - exact) / exact < 0.01


def test_count_rasters_treat_nodata_inside_as_zero():
    transform = Affine(0.01, 0, 110.0, 0, -0.01, 0.5)
    data = np.full((60, 60), 10.0)
    data[:30] = np.nan
    cells = grid.points_to_cells(np.array([0.35, 0.05]), np.array([110.3, 110.3]), 7)
    got = zonal.zonal_stats(data, transform=transform, crs="EPSG:4326", cells=cells,
                            kind="count")
    assert got[0] == 0.0
    assert got[1] > 0


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
    assert zonal.zonal_stats(data, transform=transform, crs="EPSG:4326",
                             cells=np.empty(0, np.uint64)).size == 0
