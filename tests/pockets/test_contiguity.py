import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse.csgraph import connected_components

from kantong.engine.constants import EQUAL_AREA, WGS84
from kantong.engine.errors import InputError
from kantong.engine.pockets.contiguity import assign_pockets, dissolve_pockets, pocket_labels
from kantong.engine.pockets.hotspots import neighbour_weights

ORIGIN = h3.latlng_to_cell(0.05, 110.75, 8)


def _at(di: int, dj: int) -> str:
    i, j = h3.cell_to_local_ij(ORIGIN, ORIGIN)
    return h3.local_ij_to_cell(ORIGIN, i + di, j + dj)


def _components(cells: list[str]) -> int:
    return connected_components(neighbour_weights(cells, k_ring=1, include_self=False),
                                directed=False)[0]


def test_labels_are_connected_components_and_order_free():
    a = set(h3.grid_disk(_at(6, 0), 2))
    b = set(h3.grid_disk(_at(-6, 0), 1))
    ring = set(h3.grid_ring(_at(0, 8), 3))  # a ring: connected, with a hole
    single = {_at(0, -9)}
    cells = sorted(a | b | ring | single)
    labels = pocket_labels(cells)
    assert len(set(labels)) == 4
    for label in set(labels):
        members = [c for c, lab in zip(cells, labels, strict=True) if lab == label]
        assert _components(members) == 1
    # groups never touch each other: merging any two is still two components
    assert _components(cells) == 4
    shuffled = np.random.default_rng(0).permutation(cells)
    again = dict(zip(shuffled, pocket_labels(shuffled), strict=True))
    assert [again[c] for c in cells] == labels.tolist()


def test_split_large_pockets_stay_connected():
    cells = sorted(h3.grid_disk(ORIGIN, 7))  # 169 cells
    labels = pocket_labels(cells, max_cells=40)
    sizes = np.bincount(labels)
    assert len(sizes) == 5  # ceil(169 / 40)
    assert sizes.sum() == len(cells)
    for label in range(len(sizes)):
        members = [c for c, lab in zip(cells, labels, strict=True) if lab == label]
        assert _components(members) == 1
    assert sizes.max() < 2.5 * 40
    assert len(set(pocket_labels(cells, max_cells=500))) == 1


def _cells_frame(cells: list[str], extreme: list[int], households: list[int]) -> gpd.GeoDataFrame:
    geoms = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    frame = pd.DataFrame({"h3": cells, "households": households, "extreme_households": extreme})
    frame["persons"] = frame["households"] * 4
    frame["extreme_persons"] = frame["extreme_households"] * 5
    frame["assistance_gap"] = frame["extreme_households"] // 2
    frame["n_no_electricity"] = frame["households"] // 2
    frame["n_no_improved_water"] = frame["households"] // 4
    frame["n_inadequate_housing"] = 0
    frame["travel_min_puskesmas"] = np.arange(len(cells), dtype=float) * 10
    frame["province_code"], frame["province_name"] = "61", "Kalimantan Barat"
    frame["regency_code"] = np.where(np.arange(len(cells)) % 3 == 0, "6106", "6107")
    frame["regency_name"] = np.where(frame["regency_code"] == "6106", "Kapuas Hulu", "Sintang")
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=WGS84)


def test_assign_pockets_orders_and_filters():
    big = sorted(h3.grid_disk(_at(6, 0), 1))
    small = sorted(h3.grid_disk(_at(-6, 0), 1))
    tiny = [_at(0, 9)]
    cells = big + small + tiny + [_at(0, -9)]
    extreme = [3] * 7 + [10] * 7 + [2] + [50]
    frame = _cells_frame(cells, extreme, [20] * len(cells))
    hot = np.array([True] * 15 + [False])
    pid = assign_pockets(frame, hot, min_extreme_households=5)
    assert str(pid.dtype) == "Int64"
    assert pid.iloc[7:14].eq(1).all()  # 70 extreme-poor households: id 1
    assert pid.iloc[:7].eq(2).all()    # 21: id 2
    assert pid.iloc[14:].isna().all()  # 2 is below the minimum; the last cell is not hot
    with pytest.raises(InputError):
        assign_pockets(frame, hot[:3])
    none = assign_pockets(frame, np.zeros(len(frame), bool))
    assert none.isna().all()


def test_dissolve_pockets_aggregates():
    a = sorted(h3.grid_disk(_at(6, 0), 2))
    b = sorted(h3.grid_disk(_at(-6, 0), 1))
    cells = a + b + [_at(0, 9)]
    n = len(cells)
    frame = _cells_frame(cells, list(range(n)), list(range(10, 10 + n)))
    frame["pocket_id"] = pd.array([1] * len(a) + [2] * len(b) + [None], dtype="Int64")
    pockets = dissolve_pockets(frame)
    assert pockets["pocket_id"].tolist() == [1, 2]
    assert pockets.crs.to_epsg() == 4326
    assert pockets.geometry.is_valid.all()
    assert (pockets.geom_type == "Polygon").all()
    one = frame.iloc[: len(a)]
    p1 = pockets.iloc[0]
    assert p1["cells"] == len(a)
    assert p1["households"] == one["households"].sum()
    assert p1["extreme_rate"] == pytest.approx(one["extreme_persons"].sum() / one["persons"].sum())
    expected = (one["travel_min_puskesmas"] * one["households"]).sum() / one["households"].sum()
    assert p1["travel_min_puskesmas"] == pytest.approx(expected)
    assert p1["share_no_electricity"] == pytest.approx(
        one["n_no_electricity"].sum() / one["households"].sum())
    assert p1["dominant_deprivations"] == "no electricity, no improved water"
    hex_area = one.to_crs(EQUAL_AREA).area.sum() / 1e6
    assert p1["area_km2"] == pytest.approx(hex_area, rel=1e-6)
    hh = one.groupby("regency_code")["households"].sum().sort_values(ascending=False)
    assert p1["regency_code"] == hh.index[0]
    assert p1["regencies"].split("; ")[0].startswith(hh.index[0])
    assert set(p1["regencies"].split("; ")) == {"6106 Kapuas Hulu", "6107 Sintang"}
    assert shapely.contains_xy(p1.geometry, p1["lon"], p1["lat"])


def test_dissolve_requires_wgs84():
    frame = _cells_frame([ORIGIN], [1], [10]).to_crs(EQUAL_AREA)
    frame["pocket_id"] = pd.array([1], dtype="Int64")
    with pytest.raises(InputError, match="EPSG:4326"):
        dissolve_pockets(frame)
