"""kantong friction: speeds along roads and rivers, water barriers, slope, bad input.

Expected travel times come from the definition: length / speed, with the length measured
between pixel centres on a UTM grid (exact metres) and speeds from the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from pyproj import Transformer

from kantong.engine.build.friction import build_friction, target_grid
from kantong.engine.build.speeds import DEFAULT_TABLE, SpeedTable, read_speed_table
from kantong.engine.build.travel import TravelSurface
from kantong.engine.cli.group import cli
from kantong.engine.errors import CRSError, InputError

UTM = "EPSG:32749"
TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
BOUNDS = (109.0, -0.2, 109.2, 0.0)  # about 22 x 22 km


@pytest.fixture(scope="module")
def grid():
    return target_grid(BOUNDS, resolution=100, crs=UTM)


def centre(grid, row: int, col: int) -> tuple[float, float]:
    return grid.transform * (col + 0.5, row + 0.5)


def line(grid, *cells: tuple[int, int]) -> shapely.LineString:
    return shapely.LineString([centre(grid, r, c) for r, c in cells])


def minutes_from(grid, friction: np.ndarray, row: int, col: int) -> np.ndarray:
    surface = TravelSurface.from_friction(friction, transform=grid.transform, crs=UTM)
    lon, lat = TO_LONLAT.transform(*centre(grid, row, col))
    out, ignored = surface.travel_minutes(np.array([lon]), np.array([lat]))
    assert ignored == 0
    return out


def frame(geoms: list, **columns) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=geoms, crs=UTM)


@pytest.mark.parametrize("road_class", ["primary", "jalan_desa"])
def test_a_straight_road_takes_length_over_speed(grid, road_class):
    roads = frame([line(grid, (50, 10), (50, 190)), line(grid, (20, 20), (170, 170))],
                  **{"class": [road_class, road_class]})
    friction, info = build_friction(grid, table=DEFAULT_TABLE, mode="mixed", roads=roads)
    kmh = DEFAULT_TABLE.roads[road_class]["motorised"]
    along = minutes_from(grid, friction, 50, 10)[50, 190]
    assert along == pytest.approx(180 * 100 / 1000 / kmh * 60, rel=0.01)
    diagonal = minutes_from(grid, friction, 20, 20)[170, 170]
    assert diagonal == pytest.approx(150 * 100 * math.sqrt(2) / 1000 / kmh * 60, rel=0.01)
    walked = build_friction(grid, table=DEFAULT_TABLE, mode="walking", roads=roads)[0]
    assert minutes_from(grid, walked, 50, 10)[50, 190] == pytest.approx(
        180 * 100 / 1000 / DEFAULT_TABLE.roads[road_class]["walking"] * 60, rel=0.01)
    assert info["road_classes"] == [road_class]


def test_boats_run_on_navigable_rivers_and_walkers_cannot_cross_them(grid):
    # a river from the north edge to the south edge: the grid's east cannot be walked to
    river = frame([line(grid, (-5, 100), (300, 100))])
    mixed = build_friction(grid, table=DEFAULT_TABLE, mode="mixed", rivers=river)[0]
    by_boat = minutes_from(grid, mixed, 10, 100)[180, 100]
    assert by_boat == pytest.approx(170 * 100 / 1000 / DEFAULT_TABLE.boat_kmh * 60, rel=0.01)
    for mode in ("walking", "motorised"):
        dry = build_friction(grid, table=DEFAULT_TABLE, mode=mode, rivers=river)[0]
        reach = minutes_from(grid, dry, 100, 20)
        assert np.isnan(reach[100, 180]) and np.isfinite(reach[100, 20:95]).all()
    # a road crossing (bridge) lets walkers over: the detour goes through it
    bridge = frame([line(grid, (150, 90), (150, 110))], **{"class": ["path"]})
    crossed = build_friction(grid, table=DEFAULT_TABLE, mode="walking", rivers=river,
                             roads=bridge)[0]
    reach = minutes_from(grid, crossed, 150, 60)
    assert np.isfinite(reach[150, 180])
    off_road = 0.06 / DEFAULT_TABLE.landcover["default"]
    on_path = 0.06 / DEFAULT_TABLE.roads["path"]["walking"]
    # 30 px walked to the path, 20 px on it (the pixels at its ends half and half), 70 walked
    expected = 100 * (29.5 * off_road + 0.5 * (off_road + on_path) + 20 * on_path
                      + 0.5 * (off_road + on_path) + 69.5 * off_road)
    assert reach[150, 180] == pytest.approx(expected, rel=0.01)


def test_water_polygons_are_barriers_unless_navigable(grid):
    lake = shapely.box(*centre(grid, 80, 80), *centre(grid, 60, 120))
    rivers = frame([lake, lake], navigable=["no", "yes"])
    walled = build_friction(grid, table=DEFAULT_TABLE, rivers=rivers.iloc[:1])[0]
    sailed = build_friction(grid, table=DEFAULT_TABLE, rivers=rivers.iloc[1:])[0]
    assert np.isnan(walled[70, 100])
    assert sailed[70, 100] == pytest.approx(0.06 / DEFAULT_TABLE.boat_kmh)


def test_landcover_raster_in_another_crs_and_tobler_slope(grid, tmp_path):
    lc = tmp_path / "lc.tif"
    dem = tmp_path / "dem.tif"
    transform = rasterio.transform.from_bounds(108.9, -0.3, 109.3, 0.1, 400, 400)
    codes = np.full((400, 400), 10, np.uint8)
    codes[:, 200:] = 40  # cropland east of 109.1
    profile = {"driver": "GTiff", "width": 400, "height": 400, "count": 1,
               "crs": "EPSG:4326", "transform": transform}
    with rasterio.open(lc, "w", dtype="uint8", **profile) as dst:
        dst.write(codes, 1)
    x = np.arange(400) * 0.001 * 110_574  # metres east, about: a 5 % ramp
    with rasterio.open(dem, "w", dtype="float32", **profile) as dst:
        dst.write(np.tile(0.05 * x, (400, 1)).astype("float32"), 1)
    flat = build_friction(grid, table=DEFAULT_TABLE, landcover=str(lc))[0]
    sloped = build_friction(grid, table=DEFAULT_TABLE, landcover=str(lc), dem=str(dem))[0]
    west, east = flat[100, 10], flat[100, 210]
    assert west == pytest.approx(0.06 / DEFAULT_TABLE.landcover["10"], rel=1e-6)
    assert east == pytest.approx(0.06 / DEFAULT_TABLE.landcover["40"], rel=1e-6)
    slope = 0.05 * 110_574 / 111_320 / math.cos(0.0)  # rise over run in UTM metres
    assert sloped[100, 10] / west == pytest.approx(math.exp(3.5 * slope), rel=0.02)


def test_speed_table_mismatches_and_bad_speeds_are_one_line_errors(grid, tmp_path):
    roads = frame([line(grid, (5, 5), (5, 50))], **{"class": ["gravel"]})
    with pytest.raises(InputError, match="road classes missing from the speed table: gravel"):
        build_friction(grid, table=DEFAULT_TABLE, roads=roads)
    table = tmp_path / "speeds.toml"
    table.write_text("[roads.gravel]\nwalking = 5\nmotorised = 25\n"
                     "[roads.ferry]\nwalking = 3\nmotorised = 10\n")
    with pytest.raises(InputError, match="road classes the roads do not use: ferry"):
        build_friction(grid, table=read_speed_table(table), roads=roads)
    table.write_text("[roads.gravel]\nwalking = 5\nmotorised = 0\n")
    with pytest.raises(InputError, match="must be positive.*roads gravel motorised"):
        read_speed_table(table)
    csv = tmp_path / "speeds.csv"
    csv.write_text("layer,class,walking_kmh,motorised_kmh\nroad,gravel,5,-3\n")
    with pytest.raises(InputError, match="roads gravel motorised"):
        read_speed_table(csv)
    csv.write_text("layer,class,walking_kmh,motorised_kmh\nroad,gravel,5,25\n"
                   "river,boat,,20\nlandcover,default,2,\n")
    parsed = read_speed_table(csv)
    assert parsed.roads == {"gravel": {"walking": 5.0, "motorised": 25.0}}
    assert parsed.boat_kmh == 20.0 and parsed.landcover == {"default": 2.0}
    with pytest.raises(CRSError, match="no CRS"):
        build_friction(grid, table=DEFAULT_TABLE, roads=roads.set_crs(None, allow_override=True))
    with pytest.raises(InputError):
        SpeedTable(roads={}, boat_kmh=-1.0, landcover={})


def test_cli_writes_a_tagged_raster_that_build_accepts(grid, tmp_path):
    roads = frame([line(grid, (50, 10), (50, 190))], **{"class": ["primary"]})
    roads.to_file(tmp_path / "roads.gpkg")
    out = tmp_path / "friction.tif"
    result = CliRunner().invoke(cli, ["friction", "--roads", str(tmp_path / "roads.gpkg"),
                                      "--bounds", ",".join(map(str, BOUNDS)), "--crs", UTM,
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as src:
        tags = src.tags()
        assert src.crs.to_epsg() == 32749 and src.res == (100.0, 100.0)
        assert tags["mode"] == "mixed" and "primary" in tags["speed_table"]
        assert "roads.gpkg" in tags["inputs"]
    from kantong.engine.inputs.rasters import open_raster

    layer = open_raster(out, name="friction")
    TravelSurface.from_friction(layer.data, transform=layer.transform, crs=layer.crs)
    # its own previous output may be replaced; an input or a foreign file never
    args = ["friction", "--roads", str(tmp_path / "roads.gpkg"), "--bounds",
            ",".join(map(str, BOUNDS)), "--crs", UTM, "--out"]
    assert CliRunner().invoke(cli, [*args, str(out)]).exit_code == 0
    roads_bytes = (tmp_path / "roads.gpkg").read_bytes()
    foreign = tmp_path / "notes.tif"
    foreign.write_bytes(b"not a raster")
    for target in (tmp_path / "roads.gpkg", foreign):
        result = CliRunner().invoke(cli, [*args, str(target)])
        assert result.exit_code == 1 and result.output.startswith("Error:"), result.output
        assert result.output.count("\n") == 1
    assert (tmp_path / "roads.gpkg").read_bytes() == roads_bytes
    assert foreign.read_bytes() == b"not a raster"


def test_cli_bad_input_is_one_line_and_leaves_no_raster(tmp_path):
    lines = gpd.GeoDataFrame({"class": ["primary"]},
                             geometry=[shapely.LineString([(0, 0), (1, 1)])])
    with pytest.warns(UserWarning, match="crs"):  # a shapefile without .prj: no CRS at all
        lines.to_file(tmp_path / "nocrs.shp")
    lc = tmp_path / "small.tif"
    with rasterio.open(lc, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       crs="EPSG:4326",
                       transform=rasterio.transform.from_bounds(109, -0.1, 109.1, 0, 10, 10)) as d:
        d.write(np.full((10, 10), 10, np.uint8), 1)
    out = tmp_path / "f.tif"
    runs = {
        "no CRS": ["--roads", str(tmp_path / "nocrs.shp"), "--bounds", "109,-0.1,109.1,0"],
        "does not cover": ["--landcover", str(lc), "--bounds", "108.9,-0.1,109.1,0"],
        "at least one": ["--bounds", "109,-0.1,109.1,0"],
    }
    for message, args in runs.items():
        result = CliRunner().invoke(cli, ["friction", "--out", str(out), *args])
        assert result.exit_code == 1, result.output
        assert message in result.output and result.output.count("\n") == 1, result.output
        assert result.output.startswith("Error:")
        assert not out.exists() and not list(Path(tmp_path).glob(".*f.tif*"))
