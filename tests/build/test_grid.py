"""kantong.engine.build.grid: households to H3 cells, cell geometry, admin codes and exact
rollups."""

from __future__ import annotations

import h3
import h3ronpy
import numpy as np
import pandas as pd
import pytest
import shapely
from factories import aggregate_naive, make_households, rollup_naive
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kantong.engine.build import grid
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.errors import InputError
from kantong.engine.h3ids import uint64_to_cells

ARCH_COLUMNS = [
    "h3", "resolution", "geometry", "lon", "lat", "households", "persons",
    "households_desil_1", "households_desil_2", "households_desil_3", "households_desil_4",
    "extreme_households", "extreme_persons", "extreme_rate", "households_village_located",
    *[c for _, c, _ in DEPRIVATIONS.values()], *[s for _, _, s in DEPRIVATIONS.values()],
    "assistance_gap",
]
ADMIN = ["province_code", "province_name", "regency_code", "regency_name",
         "regency_kemendagri_code", "district_code", "district_name"]


def random_households(seed: int, n: int, *, spread: float = 0.05) -> pd.DataFrame:
    """Accepted-style households scattered around inland Kalimantan Barat."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "household_id": pd.array([f"H{seed}-{i}" for i in range(n)], dtype="string"),
        "lon": 110.75 + rng.uniform(-spread, spread, n),
        "lat": 0.05 + rng.uniform(-spread, spread, n),
        "desil": rng.integers(1, 5, n).astype("int8"),
        "members": rng.integers(1, 9, n).astype("int16"),
        "village_code": pd.array([pd.NA] * n, dtype="string"),
        "location_precision": pd.array(np.where(rng.uniform(size=n) < 0.1, "village", "point"),
                                       dtype="string"),
    })
    for field in DEPRIVATIONS:
        frame[field] = rng.uniform(size=n) < 0.4
    return frame


def test_points_to_cells_matches_h3py_serial_and_parallel(monkeypatch):
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-4, 4, 3000), rng.uniform(108, 119, 3000)
    expected = np.array([h3.str_to_int(h3.latlng_to_cell(a, b, 8))
                         for a, b in zip(lat, lon, strict=True)], dtype=np.uint64)
    assert (grid.points_to_cells(lat, lon, 8, threads=1) == expected).all()
    monkeypatch.setattr(grid, "_PARALLEL_MIN_POINTS", 10)
    assert (grid.points_to_cells(lat, lon, 8, threads=2) == expected).all()


def test_points_to_cells_rejects_missing_coordinates():
    with pytest.raises(InputError, match="missing or infinite"):
        grid.points_to_cells(np.array([0.0, np.nan]), np.array([110.0, 110.0]), 8)


def test_cell_sums_match_naive_groupby():
    planted = make_households(seed=2, radius=3)
    sums = grid.households_to_cell_sums(planted.households, resolution=8)
    cells = grid.cells_frame(sums, resolution=8, admin=False).set_index("h3")
    naive = aggregate_naive(planted.households, 8).set_index("h3").sort_index()
    assert list(cells.index) == list(naive.index)
    for col in grid.COUNT_COLUMNS:
        assert (cells[col].to_numpy() == naive[col].to_numpy()).all(), col
    for col in ("extreme_rate", *[s for _, _, s in DEPRIVATIONS.values()]):
        np.testing.assert_allclose(cells[col], naive[col], rtol=1e-12, err_msg=col)
    for col in ("lon", "lat"):  # h3ronpy and h3-py centres agree to 1e-13 degrees
        np.testing.assert_allclose(cells[col], naive[col], atol=1e-11, err_msg=col)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400),
       cuts=st.lists(st.integers(0, 400), max_size=4), resolution=st.integers(5, 10))
def test_batches_sum_to_single_pass_and_every_household_lands_once(seed, n, cuts, resolution):
    frame = random_households(seed, n)
    single = grid.households_to_cell_sums(frame, resolution=resolution).sort_index()
    acc = grid.CellAccumulator(resolution=resolution)
    bounds = sorted({0, n, *[min(c, n) for c in cuts]})
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        acc.add(frame.iloc[a:b])
    batched = acc.result().sort_index()
    pd.testing.assert_frame_equal(single, batched, check_dtype=False)
    # every household in exactly one cell, totals equal
    assert single["households"].sum() == n
    assert single["persons"].sum() == frame["members"].sum()
    assert (single[list(grid.DESIL_COLUMNS)].sum(axis=1) == single["households"]).all()
    own = grid.points_to_cells(frame["lat"].to_numpy(), frame["lon"].to_numpy(), resolution)
    assert set(own) == set(single.index)
    counts = pd.Series(own).value_counts()
    assert (counts.reindex(single.index).to_numpy() == single["households"].to_numpy()).all()
    assert single["assistance_gap"].sum() == int(
        ((frame["desil"] == 1) & ~frame["receives_assistance"]).sum())


def test_household_values_become_household_means():
    frame = random_households(4, 300, spread=0.004)
    minutes = np.arange(300, dtype=float)
    minutes[::7] = np.nan  # households without a value are left out of the mean
    sums = grid.households_to_cell_sums(frame, resolution=8, values={"travel_min_x": minutes})
    cells = grid.cells_frame(sums, resolution=8, admin=False)
    own = uint64_to_cells(grid.points_to_cells(frame["lat"].to_numpy(),
                                                     frame["lon"].to_numpy(), 8))
    expected = pd.Series(minutes).groupby(own).mean()
    got = cells.set_index("h3")["travel_min_x"]
    np.testing.assert_allclose(got.reindex(expected.index), expected, rtol=1e-12)


def test_cells_frame_schema_geometry_and_admin():
    planted = make_households(seed=5, radius=2)
    cells = grid.cells_frame(grid.households_to_cell_sums(planted.households, resolution=8),
                             resolution=8)
    assert list(cells.columns) == ARCH_COLUMNS + ADMIN
    assert cells.crs.to_epsg() == 4326
    assert cells["resolution"].dtype == np.int8 and (cells["resolution"] == 8).all()
    assert cells["h3"].dtype == "string"
    for col in grid.COUNT_COLUMNS:
        assert cells[col].dtype == np.int64
    assert shapely.is_valid(cells.geometry.to_numpy()).all()
    # each hexagon holds its own centre and the centre indexes back to the cell
    assert shapely.contains_xy(cells.geometry.to_numpy(), cells["lon"], cells["lat"]).all()
    back = [h3.latlng_to_cell(a, b, 8)
            for a, b in zip(cells["lat"], cells["lon"], strict=True)]
    assert back == cells["h3"].tolist()
    area = cells.to_crs("EPSG:6933").area.mean() / 1e6
    assert 0.6 < area < 0.9  # res 8 hexagons ~0.74 km2
    # inland Sanggau/Sekadau: every centre inside a BPS district of province 61
    assert (cells["province_code"] == "61").all()
    assert all(d.startswith(r)
               for d, r in zip(cells["district_code"], cells["regency_code"], strict=True))
    assert cells["regency_kemendagri_code"].notna().all()


def test_admin_of_points_inside_and_offshore():
    # Sekadau Hilir (inland) and a point 3 km off the coast of Pontianak (in no polygon)
    codes = grid.admin_of_points(np.array([110.75, 109.05]), np.array([0.05, -0.02]))
    assert codes.loc[0, "district_code"] == "6109040"
    assert codes.loc[0, "regency_name"] == "Sekadau"
    assert codes.notna().all().all()
    assert codes.loc[1, "province_code"] == "61"


def test_rollups_are_exact():
    planted = make_households(seed=6, radius=8)
    cells = grid.cells_frame(grid.households_to_cell_sums(planted.households, resolution=8),
                             resolution=8, admin=False)
    rng = np.random.default_rng(0)
    cells["population"] = rng.uniform(0, 500, len(cells))
    cells["travel_min_school"] = rng.uniform(0, 90, len(cells))
    cells["elev_mean"] = rng.uniform(0, 300, len(cells))
    for r in (7, 6, 5):
        up = grid.rollup_cells(cells, resolution=r, admin=False).set_index("h3")
        parents = [h3.cell_to_parent(c, r) for c in cells["h3"]]
        child = cells.assign(parent=parents)
        for col in grid.COUNT_COLUMNS:
            sums = child.groupby("parent")[col].sum()
            assert (up[col].reindex(sums.index) == sums).all(), (r, col)
        np.testing.assert_allclose(up["population"].reindex(sums.index),
                                   child.groupby("parent")["population"].sum(), rtol=1e-12)
        w = child["households"]
        for col in ("travel_min_school", "elev_mean"):
            expected = (child[col] * w).groupby(child["parent"]).sum() / w.groupby(
                child["parent"]).sum()
            np.testing.assert_allclose(up[col].reindex(expected.index), expected, rtol=1e-12)
        np.testing.assert_allclose(up["extreme_rate"], up["extreme_persons"] / up["persons"])
        for _, count, share in DEPRIVATIONS.values():
            np.testing.assert_allclose(up[share], up[count] / up["households"])
        assert (up["resolution"] == r).all()
        # the lead's naive oracle agrees
        naive = rollup_naive(cells.drop(columns=["elev_mean"]), r).set_index("h3")
        assert (naive["households"].reindex(up.index) == up["households"]).all()


def test_rollup_means_skip_children_without_value():
    cells = grid.cells_frame(grid.households_to_cell_sums(random_households(8, 200, spread=0.02),
                                                          resolution=8), resolution=8,
                             admin=False)
    cells["travel_min_x"] = np.nan
    up = grid.rollup_cells(cells, resolution=6, admin=False)
    assert up["travel_min_x"].isna().all()
    cells.loc[cells.index[0], "travel_min_x"] = 12.5
    up = grid.rollup_cells(cells, resolution=5, admin=False)
    assert up["travel_min_x"].dropna().tolist() == [12.5]


def test_rollup_to_finer_resolution_is_refused():
    cells = grid.cells_frame(grid.households_to_cell_sums(random_households(9, 20),
                                                          resolution=6), resolution=6,
                             admin=False)
    with pytest.raises(InputError, match="finer"):
        grid.rollup_cells(cells, resolution=7)


def test_invalid_desil_is_refused():
    frame = random_households(10, 5)
    frame.loc[0, "desil"] = 7
    with pytest.raises(InputError, match="desil"):
        grid.households_to_cell_sums(frame, resolution=8)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), fine=st.integers(6, 10),
       step=st.integers(1, 5))
def test_rollup_invariants_hold_for_any_resolution_pair(seed, n, fine, step):
    coarse = max(5, fine - step)
    frame = random_households(seed, n, spread=0.3)
    cells = grid.cells_frame(grid.households_to_cell_sums(frame, resolution=fine),
                             resolution=fine, admin=False)
    cells["population"] = np.linspace(1.0, 2.0, len(cells))
    up = grid.rollup_cells(cells, resolution=coarse, admin=False)
    fine_cells = grid.points_to_cells(frame["lat"].to_numpy(), frame["lon"].to_numpy(), fine)
    parents = np.asarray(h3ronpy.change_resolution(fine_cells, coarse), dtype=np.uint64)
    direct = grid.cells_frame(grid.households_to_cell_sums(frame, resolution=coarse,
                                                           cells=parents),
                              resolution=coarse, admin=False)
    # rolling cells up equals aggregating the households by the H3 parent of their cell
    # (not by their own coarse cell: H3 children do not tile their parent exactly)
    assert up["h3"].tolist() == direct["h3"].tolist()
    for col in grid.COUNT_COLUMNS:
        assert (up[col].to_numpy() == direct[col].to_numpy()).all(), col
    assert up["population"].sum() == pytest.approx(cells["population"].sum())
    assert up["h3"].is_unique


def test_province_build_attributes_border_cells_to_its_own_province():
    from kantong.engine.build.grid import admin_of_points
    from kantong.engine.inputs import boundaries

    sukamara = boundaries.districts().query("regency_code == '6206'").geometry.union_all()
    pt = sukamara.representative_point()
    free = admin_of_points(np.array([pt.x]), np.array([pt.y]))
    assert free["province_code"].iloc[0] == "62"
    kept = admin_of_points(np.array([pt.x]), np.array([pt.y]), provinces=("61",))
    assert kept["province_code"].iloc[0] == "61"
    assert kept["regency_code"].iloc[0].startswith("61")
