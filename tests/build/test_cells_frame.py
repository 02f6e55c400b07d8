"""Per-cell sums to the cell table of docs/architecture.md (``grid.cells_frame``), and the
column helpers ``grid.order_columns`` / ``grid.mean_columns``.

Expected values: h3-py centres and boundaries, rates and shares divided out by hand (pandas),
the column order of docs/architecture.md written out. Hand-made sums of a few cells.
"""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from kantong.engine.build import grid
from kantong.engine.constants import DEPRIVATIONS

COUNTS = list(grid.COUNT_COLUMNS)
SHARES = [s for _, _, s in DEPRIVATIONS.values()]
HEAD = ["h3", "resolution", "geometry", "lon", "lat", "households", "persons",
        "households_desil_1", "households_desil_2", "households_desil_3", "households_desil_4",
        "extreme_households", "extreme_persons", "extreme_rate", "households_village_located",
        *[c for _, c, _ in DEPRIVATIONS.values()], *SHARES, "assistance_gap"]


def _cells(resolution: int = 8) -> list[str]:
    return sorted(h3.grid_disk(h3.latlng_to_cell(0.05, 110.75, resolution), 1))[:4]


def _sums(cells: list[str], *, fractional: bool = False) -> pd.DataFrame:
    """Sums of four cells, given in reverse cell order; the last cell has 0 persons."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.integers(0, 5, len(cells)) for c in COUNTS},
                         index=pd.Index([h3.str_to_int(c) for c in cells], dtype=np.uint64))
    frame["households"] = [6, 4, 3, 2]
    frame["persons"] = [20, 9, 5, 0]
    frame["extreme_persons"] = [7, 9, 1, 0]
    frame.loc[frame.index[2], [c for _, c, _ in DEPRIVATIONS.values()]] = 3
    if fractional:
        frame = frame.astype(np.float64) * 0.5
    return frame.iloc[::-1]


@pytest.mark.filterwarnings("error")
def test_cell_table_columns_types_and_geometry():
    cells = _cells()
    out = grid.cells_frame(_sums(cells), resolution=8, admin=False)
    assert list(out.columns) == HEAD
    assert out["h3"].tolist() == cells  # sorted by cell id
    assert out["h3"].dtype == pd.StringDtype()  # "string" (<NA>), as the admin columns
    assert out["resolution"].dtype == np.int8 and (out["resolution"] == 8).all()
    for col in COUNTS:
        assert out[col].dtype == np.int64, col
    assert out.crs.to_epsg() == 4326
    ref = np.array([h3.cell_to_latlng(c) for c in cells])
    np.testing.assert_allclose(out["lat"], ref[:, 0], atol=1e-11)
    np.testing.assert_allclose(out["lon"], ref[:, 1], atol=1e-11)
    for poly, cell in zip(out.geometry, cells, strict=True):
        hexagon = shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(cell)])
        assert poly.symmetric_difference(hexagon).area < 1e-9 * hexagon.area


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("fractional", [False, True])
def test_rates_and_shares_are_divided_from_the_counts(fractional):
    cells = _cells()
    sums = _sums(cells, fractional=fractional)
    out = grid.cells_frame(sums, resolution=8, admin=False).set_index("h3")
    by_h3 = sums.set_axis([h3.int_to_str(int(c)) for c in sums.index]).loc[cells]
    for col in COUNTS:
        assert out[col].dtype == (np.float64 if fractional else np.int64), col
        assert out[col].tolist() == by_h3[col].tolist(), col
    expected = by_h3["extreme_persons"] / by_h3["persons"]  # 0 persons: NaN, not 0
    assert np.isnan(out["extreme_rate"].iloc[-1])
    np.testing.assert_allclose(out["extreme_rate"], expected, rtol=1e-15)
    for _, count, share in DEPRIVATIONS.values():
        np.testing.assert_allclose(out[share], by_h3[count] / by_h3["households"], rtol=1e-15)
    assert (out[SHARES].iloc[2] == 3 / 3).all()


def test_all_counts_are_float_when_households_are_village_located():
    # docs/architecture.md: a float households_village_located makes every count float64,
    # an integer one every count int64, whatever the dtype each column arrived with
    cells = _cells()
    sums = _sums(cells)
    mixed = sums.astype({"households_village_located": np.float64})
    out = grid.cells_frame(mixed, resolution=8, admin=False)
    for col in COUNTS:
        assert out[col].dtype == np.float64, col
    whole = sums.astype({"persons": np.float64, "assistance_gap": np.float64})
    out = grid.cells_frame(whole, resolution=8, admin=False)
    for col in COUNTS:
        assert out[col].dtype == np.int64, col
    assert out["persons"].tolist() == sums.sort_index()["persons"].tolist()


@pytest.mark.filterwarnings("error")
def test_value_accumulators_become_household_means():
    cells = _cells()
    sums = _sums(cells).sort_index()
    sums["travel_min_school__sum"] = [30.0, 0.0, 12.0, 0.0]
    sums["travel_min_school__n"] = np.array([3, 0, 4, 1], dtype=np.int64)
    sums["elev_mean__sum"] = [5.0, 6.0, 0.0, 8.0]
    sums["elev_mean__n"] = np.array([1, 2, 0, 4], dtype=np.int64)
    out = grid.cells_frame(sums, resolution=8, admin=False)
    assert list(out.columns) == [*HEAD, "travel_min_school", "elev_mean"]
    np.testing.assert_array_equal(out["travel_min_school"], [10.0, np.nan, 3.0, 0.0])
    np.testing.assert_array_equal(out["elev_mean"], [5.0, 3.0, np.nan, 2.0])


def test_mean_columns_are_travel_times_and_raster_means():
    frame = pd.DataFrame(columns=["households", "travel_min_school", "mean_elev", "elev_mean",
                                  "travel_time", "x_travel_min_", "travel_min_water"])
    assert grid.mean_columns(frame) == ["travel_min_school", "elev_mean", "travel_min_water"]


def test_order_columns_follows_the_architecture_table():
    admin = list(grid.ADMIN_COLUMNS)
    wanted = [*HEAD, "population", "travel_min_a", "travel_min_b", "a_mean", "z_mean",
              *admin]
    extra = ["zz_other", "aa_other"]
    shuffled = list(np.random.default_rng(1).permutation(wanted + extra))
    frame = pd.DataFrame([range(len(shuffled))], columns=shuffled)
    out = grid.order_columns(frame)
    # unknown columns keep their own order, after the known ones
    rest = [c for c in shuffled if c in extra]
    assert list(out.columns) == wanted + rest
    assert out.iloc[0].to_dict() == frame.iloc[0].to_dict()  # values follow their column
    # columns a table lacks are left out, not added
    some = frame[["lat", "zz_other", "h3", "travel_min_b"]]
    assert list(grid.order_columns(some).columns) == ["h3", "lat", "travel_min_b", "zz_other"]
