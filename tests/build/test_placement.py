"""The study-area point test, and village weights from a population raster in any CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from kantong.engine.build.placement import StudyArea, village_cell_weights
from kantong.engine.errors import CRSError
from kantong.engine.inputs import boundaries


@pytest.fixture(scope="module")
def polygons() -> pd.Series:
    return boundaries.villages().set_index("village_code").geometry


@pytest.fixture(scope="module")
def populated_village() -> str:
    """A Kalbar village of 10-80 km2 (first by code)."""
    vil = boundaries.villages()
    sel = vil[vil["village_code"].str.startswith("61") & vil["area_km2"].between(10, 80)]
    return sorted(sel["village_code"].astype(str))[0]


def test_population_raster_in_utm(tmp_path, polygons, populated_village):
    """A population raster in another CRS: sub-pixels are tested and indexed in EPSG:4326."""
    poly = polygons[populated_village]
    west, south, east, north = poly.bounds
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32749", always_xy=True)
    xs, ys = to_utm.transform([west, east], [south, north])
    x0, y0 = np.floor(min(xs) / 500) * 500 - 500, np.ceil(max(ys) / 500) * 500 + 500
    width = int((max(xs) - x0) // 500) + 2
    height = int((y0 - min(ys)) // 500) + 2
    data = np.ones((height, width), dtype="float32")
    path = tmp_path / "pop_utm.tif"
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="float32", crs="EPSG:32749",
                       transform=from_origin(x0, y0, 500, 500)) as dst:
        dst.write(data, 1)
    w = village_cell_weights([populated_village], resolution=8, population_raster=path)
    assert np.isclose(w["weight"].sum(), 1.0) and len(w) > 5
    # uniform population: weights are area shares, none above a whole cell's share
    cell_km2 = 0.737
    assert w["weight"].max() <= cell_km2 / boundaries.villages().set_index(
        "village_code").loc[populated_village, "area_km2"] * 1.3
    pieces = shapely.points(w["lon"].to_numpy(), w["lat"].to_numpy())
    assert shapely.contains(shapely.buffer(poly, 0.005), pieces).all()


def test_study_area_contains_matches_shapely():
    area = StudyArea.from_layer(boundaries.province_polygon("61"))
    rng = np.random.default_rng(0)
    west, south, east, north = area.bounds
    lon = rng.uniform(west - 0.5, east + 0.5, 50_000)
    lat = rng.uniform(south - 0.5, north + 0.5, 50_000)
    lon[:5] = [np.nan, np.inf, -np.inf, 400.0, 0.0]
    expected = shapely.contains_xy(area.geometry, lon, lat)
    np.testing.assert_array_equal(area.contains(lon, lat), expected)
    assert 0.2 < expected.mean() < 0.8


def test_study_area_needs_a_crs():
    layer = gpd.GeoDataFrame(geometry=[shapely.box(109, 0, 110, 1)])
    with pytest.raises(CRSError, match="no CRS"):
        StudyArea.from_layer(layer)
    utm = gpd.GeoDataFrame(geometry=[shapely.box(109, 0, 110, 1)], crs="EPSG:4326").to_crs(
        "EPSG:32749")
    area = StudyArea.from_layer(utm)
    assert area.contains(np.array([109.5]), np.array([0.5]))[0]
