"""District, regency and province codes of points and cells (``grid.admin_of_points``).

Reference: the shipped BPS district polygons read directly, ``shapely.contains_xy`` for the
district holding a point (the first in table order where polygons overlap) and the smallest
EPSG:6933 distance (geopandas) for a point in none, restricted to the study provinces when
they are given.
"""

from __future__ import annotations

import functools
import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from kantong.engine.build import grid
from kantong.engine.constants import DEPRIVATIONS, EQUAL_AREA
from kantong.engine.inputs import boundaries

OFFSHORE = [(109.05, -0.02), (108.70, 0.40), (108.95, -1.10)]  # lon, lat in the sea


@functools.cache
def _districts() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    d = boundaries.districts().reset_index(drop=True)
    return d, gpd.GeoDataFrame({"row": np.arange(len(d))}, geometry=d.geometry.to_crs(EQUAL_AREA))


@functools.cache
def _reference_rows(lon: tuple[float, ...], lat: tuple[float, ...],
                    provinces: tuple[str, ...] | None) -> tuple[int, ...]:
    d, projected = _districts()
    allowed = np.ones(len(d), bool) if provinces is None else \
        d["province_code"].astype(str).isin(provinces).to_numpy()
    rows = []
    for x, y in zip(lon, lat, strict=True):
        inside = np.flatnonzero(shapely.contains_xy(d.geometry.to_numpy(), x, y) & allowed)
        if inside.size:
            rows.append(int(inside[0]))
            continue
        pt = gpd.GeoDataFrame(geometry=gpd.points_from_xy([x], [y]), crs="EPSG:4326")
        near = gpd.sjoin_nearest(pt.to_crs(EQUAL_AREA), projected[allowed])
        rows.append(int(near["row"].iloc[0]))
    return tuple(rows)


def _reference(lon, lat, provinces=None) -> pd.DataFrame:
    rows = _reference_rows(tuple(map(float, lon)), tuple(map(float, lat)), provinces)
    d, _ = _districts()
    return d.iloc[list(rows)][list(grid.ADMIN_COLUMNS)].reset_index(drop=True)


def _assert_codes(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(grid.ADMIN_COLUMNS)
    for col in grid.ADMIN_COLUMNS:
        assert pd.api.types.is_string_dtype(got[col].dtype), col
        assert got[col].tolist() == expected[col].astype(str).tolist(), col


def _inland_points() -> tuple[np.ndarray, np.ndarray]:
    """A point inside every 20th district (and the first) of the shipped table."""
    d, _ = _districts()
    pts = d.geometry.iloc[::20].representative_point()
    return pts.x.to_numpy(), pts.y.to_numpy()


def test_points_take_the_codes_of_the_district_holding_them():
    lon, lat = _inland_points()
    got = grid.admin_of_points(lon, lat)
    _assert_codes(got, _reference(lon, lat))
    assert got["province_code"].nunique() == 5  # every province of the shipped boundaries


def test_points_at_sea_take_the_nearest_district():
    lon, lat = (np.array(v) for v in zip(*OFFSHORE, strict=True))
    d, _ = _districts()
    polygons = d.geometry.to_numpy()
    assert not any(shapely.contains_xy(polygons, x, y).any()  # really at sea
                   for x, y in OFFSHORE)
    got = grid.admin_of_points(lon, lat)
    _assert_codes(got, _reference(lon, lat))
    assert got.notna().all().all()


def test_nearest_district_is_searched_only_for_points_outside_every_district(caplog):
    inland_lon, inland_lat = _inland_points()
    lon = np.r_[inland_lon[:6], [x for x, _ in OFFSHORE]]
    lat = np.r_[inland_lat[:6], [y for _, y in OFFSHORE]]
    with caplog.at_level(logging.DEBUG, logger=grid.__name__):
        got = grid.admin_of_points(lon, lat)
    _assert_codes(got, _reference(lon, lat))
    assert "3 of 9 points outside every district" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=grid.__name__):
        grid.admin_of_points(inland_lon, inland_lat)
    assert "outside every district" not in caplog.text


def test_a_study_area_keeps_border_points_in_its_provinces(caplog):
    d, _ = _districts()
    # inside districts of Kalimantan Tengah (62) and Barat (61), and one at sea
    pts = d[d["regency_code"].astype(str).isin(["6206", "6101"])].geometry
    lon = np.r_[pts.representative_point().x.to_numpy(), OFFSHORE[0][0]]
    lat = np.r_[pts.representative_point().y.to_numpy(), OFFSHORE[0][1]]
    with caplog.at_level(logging.DEBUG, logger=grid.__name__):
        kept = grid.admin_of_points(lon, lat, provinces=("61",))
    _assert_codes(kept, _reference(lon, lat, ("61",)))
    assert (kept["province_code"] == "61").all()
    in62 = int((d.loc[pts.index, "province_code"].astype(str) == "62").sum())
    assert in62 > 0
    assert f"{in62 + 1} of {len(lon)} points outside every district" in caplog.text
    free = grid.admin_of_points(lon, lat)
    _assert_codes(free, _reference(lon, lat))
    assert set(free["province_code"]) == {"61", "62"}
    both = grid.admin_of_points(lon, lat, provinces=("61", "62"))
    pd.testing.assert_frame_equal(both, free)


def test_a_study_area_with_no_district_leaves_the_codes_missing():
    lon, lat = _inland_points()
    got = grid.admin_of_points(lon[:3], lat[:3], provinces=("99",))
    assert list(got.columns) == list(grid.ADMIN_COLUMNS)
    assert len(got) == 3 and got.isna().all().all()
    assert (got.dtypes == "string").all()


def test_no_points_give_an_empty_table():
    got = grid.admin_of_points(np.array([]), np.array([]))
    assert list(got.columns) == list(grid.ADMIN_COLUMNS) and len(got) == 0


def test_attach_admin_adds_string_codes_to_a_copy():
    lon, lat = _inland_points()
    frame = pd.DataFrame({"lon": lon[:4], "lat": lat[:4], "x": np.arange(4)},
                         index=[10, 11, 12, 13])
    before = frame.copy()
    out = grid.attach_admin(frame)
    pd.testing.assert_frame_equal(frame, before)  # the argument is left alone
    assert list(out.columns) == ["lon", "lat", "x", *grid.ADMIN_COLUMNS]
    ref = _reference(lon[:4], lat[:4])
    for col in grid.ADMIN_COLUMNS:
        assert out[col].dtype == "string", col
        assert out[col].tolist() == ref[col].tolist(), col
    kept = grid.attach_admin(frame.assign(lon=[111.2] * 4, lat=[-2.56] * 4), provinces=("61",))
    ref = _reference([111.2], [-2.56], ("61",))
    assert (kept["district_code"] == ref["district_code"].iloc[0]).all()
    assert ref["province_code"].iloc[0] == "61"


@pytest.mark.parametrize("provinces", [None, ("61",)])
def test_cells_frame_and_rollups_attach_the_codes_of_their_centres(provinces):
    # households in Sukamara (Kalimantan Tengah, 62), the study area Kalimantan Barat (61)
    frame = pd.DataFrame({"lon": [111.20, 111.21, 111.19], "lat": [-2.56, -2.57, -2.55]})
    frame = frame.assign(desil=np.int8(2), members=np.int16(3), village_code=pd.NA,
                         location_precision="point")
    for field in DEPRIVATIONS:
        frame[field] = False
    sums = grid.households_to_cell_sums(frame, resolution=8)
    kw = {} if provinces is None else {"provinces": provinces}
    cells = grid.cells_frame(sums, resolution=8, **kw)
    ref = _reference(cells["lon"], cells["lat"], provinces)
    for col in grid.ADMIN_COLUMNS:
        assert cells[col].tolist() == ref[col].tolist(), col
    up = grid.rollup_cells(cells, resolution=6, **kw)
    ref = _reference(up["lon"], up["lat"], provinces)
    for col in grid.ADMIN_COLUMNS:
        assert up[col].dtype == "string", col
        assert up[col].tolist() == ref[col].tolist(), col
    assert set(up["province_code"]) == ({"62"} if provinces is None else {"61"})
