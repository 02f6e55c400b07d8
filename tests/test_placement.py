"""Placement from village codes, and the study-area point test."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from engine import boundaries, datapaths
from engine.errors import CRSError
from engine.placement import StudyArea, _candidates, household_uniforms, place_by_village


@pytest.fixture(scope="module")
def polygons() -> pd.Series:
    return boundaries.villages().set_index("village_code").geometry


@pytest.fixture(scope="module")
def populated_village() -> str:
    """A Kalbar village holding many populated pixel centres."""
    cands = _candidates(str(datapaths.data_file(datapaths.POPULATION_TIF)))
    counts = pd.Series(np.ceil(cands.key).astype(int) - 1).value_counts()  # key in (pos, pos+1]
    codes = cands.codes.to_numpy()[counts.index.to_numpy()]
    rich = [c for c, k in zip(codes, counts.to_numpy(), strict=True)
            if k >= 20 and c.startswith("61")]
    return sorted(rich)[0]


@pytest.fixture(scope="module")
def empty_village() -> str:
    """A village with no populated pixel centre inside (placed at its representative point)."""
    cands = _candidates(str(datapaths.data_file(datapaths.POPULATION_TIF)))
    pts = boundaries.village_points()
    without = sorted(set(pts["village_code"]) - set(cands.codes))
    return without[0]


def households(code: str, n: int, prefix: str = "h") -> pd.DataFrame:
    return pd.DataFrame({"household_id": [f"{prefix}{i}" for i in range(n)],
                         "village_code": [code] * n})


def test_placed_points_spread_inside_the_village(polygons, populated_village):
    frame = households(populated_village, 300)
    lon, lat = place_by_village(frame)
    poly = polygons[populated_village]
    assert shapely.contains_xy(poly, lon, lat).all()
    distinct = len(set(zip(lon.round(7), lat.round(7), strict=True)))
    assert distinct == 300
    # spread over several 1 km pixels, not a single one
    pixels = set(zip(np.floor(lon * 120), np.floor(lat * 120), strict=True))
    assert len(pixels) >= 5


def test_fallback_to_representative_point_still_spreads(polygons, empty_village):
    frame = households(empty_village, 40)
    lon, lat = place_by_village(frame)
    assert shapely.contains_xy(polygons[empty_village], lon, lat).all()
    assert len(set(zip(lon, lat, strict=True))) > 1


def test_deterministic_and_batch_independent(populated_village, empty_village):
    frame = pd.concat([households(populated_village, 50), households(empty_village, 20, "e")],
                      ignore_index=True)
    lon1, lat1 = place_by_village(frame)
    lon2, lat2 = place_by_village(frame)
    np.testing.assert_array_equal(lon1, lon2)
    np.testing.assert_array_equal(lat1, lat2)
    part = frame.iloc[::-3]  # other order, a subset: same id -> same point
    lon3, lat3 = place_by_village(part)
    np.testing.assert_array_equal(lon3, lon1[part.index])
    np.testing.assert_array_equal(lat3, lat1[part.index])
    lon4, _ = place_by_village(frame, seed=1)
    assert (lon4 != lon1).mean() > 0.9


def test_unknown_code_is_left_unplaced(populated_village):
    frame = pd.DataFrame({"household_id": ["a", "b"], "village_code": [populated_village, "x"]})
    lon, lat = place_by_village(frame)
    assert np.isfinite(lon[0]) and np.isnan(lon[1]) and np.isnan(lat[1])


def test_placement_respects_the_study_area(polygons, populated_village):
    poly = polygons[populated_village]
    west, south, east, north = poly.bounds
    half = shapely.box(west, south, (west + east) / 2, north).intersection(poly)
    area = gpd.GeoDataFrame(geometry=[half], crs="EPSG:4326")
    lon, lat = place_by_village(households(populated_village, 200), study_area=area)
    assert shapely.contains_xy(poly, lon, lat).all()
    inside = StudyArea.from_layer(area).contains(lon, lat)
    assert inside.sum() > 20
    # a point outside the area is its candidate pixel centre (the jitter never leaves the
    # area); the ingest rejects such households as "outside study area"
    def off_centre(v, offset):
        return np.abs(((v * 120 - offset + 0.5) % 1.0) - 0.5)
    assert (off_centre(lon[~inside], 0.55) < 1e-6).all()
    assert (off_centre(lat[~inside], 0.45) < 1e-6).all()


def test_population_raster_in_utm(tmp_path, polygons, populated_village):
    """A population raster in another CRS: candidates and jitter are transformed to 4326."""
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
    lon, lat = place_by_village(households(populated_village, 100), population_raster=path)
    assert shapely.contains_xy(poly, lon, lat).all()
    assert len(set(zip(lon, lat, strict=True))) == 100


def test_household_uniforms():
    ids = pd.Series([f"id{i}" for i in range(20_000)])
    u = household_uniforms(ids, streams=2)
    assert u.shape == (2, 20_000) and (u >= 0).all() and (u < 1).all()
    assert abs(u.mean() - 0.5) < 0.01 and abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.03
    np.testing.assert_array_equal(u, household_uniforms(ids, streams=2))
    assert not np.array_equal(u, household_uniforms(ids, seed=7, streams=2))


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
