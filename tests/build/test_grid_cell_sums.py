"""Households to per-cell sums, in one pass or in batches (``grid.households_to_cell_sums``,
``grid.households_to_partial_sums``, ``grid.CellAccumulator``).

Expected values: a plain pandas groupby over the households' h3-py cells
(``factories.aggregate_naive``) for households located by coordinates, and the village totals
times the dasymetric weights of ``placement.village_cell_weights`` for households located by
village code only. Tiny seeded frames (tens of households).
"""

from __future__ import annotations

import functools

import h3
import numpy as np
import pandas as pd
import pytest
import rasterio
from factories import aggregate_naive
from rasterio.transform import from_origin
from test_grid import random_households

from kantong.engine.build import grid, placement
from kantong.engine.inputs import boundaries

RES = 8


def _cell_ids(frame: pd.DataFrame, resolution: int = RES) -> np.ndarray:
    return np.array([h3.str_to_int(h3.latlng_to_cell(a, b, resolution))
                     for a, b in zip(frame["lat"], frame["lon"], strict=True)], dtype=np.uint64)


def _assert_counts_equal_naive(sums: pd.DataFrame, frame: pd.DataFrame) -> None:
    naive = aggregate_naive(frame, RES)
    naive.index = pd.Index([h3.str_to_int(c) for c in naive["h3"]], dtype=np.uint64)
    naive = naive.sort_index()
    assert sums.index.dtype == np.uint64
    assert sums.index.tolist() == naive.index.tolist()  # sorted by cell id
    for col in grid.COUNT_COLUMNS:
        assert sums[col].dtype == np.int64, col
        assert sums[col].tolist() == naive[col].tolist(), col


def test_cell_sums_are_a_groupby_of_the_households_cells():
    frame = random_households(11, 60, spread=0.01)
    sums = grid.households_to_cell_sums(frame, resolution=RES)
    assert list(sums.columns) == list(grid.COUNT_COLUMNS)
    _assert_counts_equal_naive(sums, frame)
    assert sums.index.nunique() > 3  # several cells, several households in some


def test_cells_given_by_the_caller_are_used_instead_of_the_points():
    frame = random_households(12, 30, spread=0.01)
    chosen = np.array([h3.str_to_int(c) for c in
                       sorted(h3.grid_disk(h3.latlng_to_cell(-1.0, 112.0, 7), 1))[:3]],
                      dtype=np.uint64)
    cells = chosen[np.arange(30) % 3]
    sums = grid.households_to_cell_sums(frame, resolution=7, cells=cells)
    assert sums.index.tolist() == sorted(chosen.tolist())
    expected = frame.groupby(cells)["members"].agg(["size", "sum"])
    assert sums["households"].tolist() == expected["size"].tolist()
    assert sums["persons"].tolist() == expected["sum"].tolist()


def test_values_are_summed_with_the_number_of_households_having_one():
    frame = random_households(13, 40, spread=0.01)
    minutes = np.linspace(0.0, 39.0, 40)
    minutes[::5] = np.nan
    minutes[1] = np.inf  # not finite: left out like a missing value
    sums = grid.households_to_cell_sums(frame, resolution=RES, values={"travel_min_x": minutes})
    by_cell = pd.Series(minutes).where(np.isfinite(minutes)).groupby(_cell_ids(frame))
    np.testing.assert_allclose(sums["travel_min_x__sum"], by_cell.sum().sort_index())
    assert sums["travel_min_x__n"].tolist() == by_cell.count().sort_index().tolist()


def test_partial_sums_of_points_hold_no_village():
    frame = random_households(14, 25, spread=0.01)
    part = grid.households_to_partial_sums(frame, resolution=RES)
    assert part.resolution == RES and len(part.villages) == 0
    _assert_counts_equal_naive(part.cells.sort_index(), frame)


# ---- batches -----------------------------------------------------------------------------


def test_batches_of_any_size_sum_to_the_single_pass():
    frame = random_households(15, 50, spread=0.01)
    single = grid.households_to_cell_sums(frame, resolution=RES)
    acc = grid.CellAccumulator(resolution=RES)
    cuts = [0, 0, 1, 2, 5, 9, 14, 20, 27, 35, 44, 50]  # an empty, one-row, ... ten more batches
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        acc.add(frame.iloc[a:b])
    assert acc.households == 50
    pd.testing.assert_frame_equal(acc.result(), single)
    pd.testing.assert_frame_equal(acc.result(), single)  # asking twice changes nothing
    more = random_households(16, 7, spread=0.01)
    acc.add(more)
    assert acc.households == 57
    both = grid.households_to_cell_sums(pd.concat([frame, more], ignore_index=True),
                                        resolution=RES)
    pd.testing.assert_frame_equal(acc.result(), both)


def test_a_single_household_batch_counts():
    frame = random_households(17, 1)
    acc = grid.CellAccumulator(resolution=RES)
    acc.add(frame)
    assert acc.households == 1
    _assert_counts_equal_naive(acc.result(), frame)


def test_batches_carry_their_values():
    frame = random_households(18, 20, spread=0.01)
    minutes = np.arange(20.0)
    acc = grid.CellAccumulator(resolution=RES)
    acc.add(frame.iloc[:8], values={"travel_min_x": minutes[:8]})
    acc.add(frame.iloc[8:], values={"travel_min_x": minutes[8:]})
    single = grid.households_to_cell_sums(frame, resolution=RES,
                                          values={"travel_min_x": minutes})
    pd.testing.assert_frame_equal(acc.result(), single)


def test_partial_sums_computed_elsewhere_are_added():
    frame = random_households(19, 30, spread=0.01)
    acc = grid.CellAccumulator(resolution=RES)
    acc.add_partial(grid.households_to_partial_sums(frame.iloc[:12], resolution=RES), 12)
    acc.add(frame.iloc[12:])
    assert acc.households == 30
    pd.testing.assert_frame_equal(acc.result(), grid.households_to_cell_sums(frame,
                                                                             resolution=RES))


def test_an_empty_accumulator_gives_empty_sums():
    acc = grid.CellAccumulator(resolution=7)
    acc.add(random_households(20, 0))
    assert acc.households == 0
    part = acc.partial()
    assert part.resolution == 7
    assert len(part.cells) == 0 and part.cells.index.name == "cell"
    assert part.cells.index.dtype == np.uint64
    assert len(part.villages) == 0 and part.villages.index.name == "village_code"
    assert list(part.villages.columns) == list(grid.COUNT_COLUMNS)
    out = acc.result()
    assert len(out) == 0 and list(out.columns) == list(grid.COUNT_COLUMNS)


# ---- households located by village code only ------------------------------------------------


@functools.cache
def _villages() -> tuple[str, ...]:
    vil = boundaries.villages()
    sel = vil[(vil["regency_code"] == "6105") & vil["area_km2"].between(10, 80)]
    return tuple(sorted(sel["village_code"].astype(str))[:2])


def _village_households(n: int = 12) -> pd.DataFrame:
    codes = _villages()
    frame = random_households(21, n)
    frame["village_code"] = pd.array([codes[i % 2] for i in range(n)], dtype="string")
    frame["location_precision"] = pd.array(["village"] * (n - 2) + ["point"] * 2,
                                           dtype="string")
    return frame


def _west_half_raster(path) -> str:
    """Population only in the west half of the villages' box (4 persons per pixel)."""
    polys = boundaries.villages().set_index("village_code").loc[list(_villages())].geometry
    west, south, east, north = polys.total_bounds
    pixel = 1 / 240
    width, height = int((east - west) / pixel) + 3, int((north - south) / pixel) + 3
    lon = west - pixel + (np.arange(width) + 0.5) * pixel
    data = np.where(lon[None, :] < (west + east) / 2, 4.0, 0.0).repeat(height, axis=0)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(west - pixel, north + pixel, pixel, pixel)) as dst:
        dst.write(data.astype("float32"), 1)
    return str(path)


def _expected_village_counts(frame: pd.DataFrame, raster: str | None) -> pd.Series:
    """Households per cell: points by their h3-py cell, villages by their weights."""
    by_village = frame["location_precision"] == "village"
    w = placement.village_cell_weights(list(_villages()), resolution=RES,
                                       population_raster=raster)
    totals = frame[by_village].groupby("village_code").size()
    spread = (w["weight"] * totals.reindex(w["village_code"]).to_numpy()).groupby(w["cell"]).sum()
    points = pd.Series(1.0, index=_cell_ids(frame[~by_village])).groupby(level=0).sum()
    return pd.concat([spread, points]).groupby(level=0).sum()


def _sampler(households: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"travel_min_x": np.full(len(households), 7.5)}


@pytest.mark.parametrize("raster", [False, True])
def test_village_households_are_spread_by_the_population_raster(tmp_path, raster):
    frame = _village_households()
    path = _west_half_raster(tmp_path / "west.tif") if raster else None
    expected = _expected_village_counts(frame, path)
    if raster:  # the raster really moves households (west half only)
        default = _expected_village_counts(frame, None)
        assert not expected.index.equals(default.index)
    one = grid.households_to_cell_sums(frame, resolution=RES, population_raster=path,
                                       sampler=_sampler)
    acc = grid.CellAccumulator(resolution=RES, population_raster=path, sampler=_sampler)
    acc.add(frame.iloc[:5])
    acc.add(frame.iloc[5:])
    for sums in (one, acc.result()):
        assert sums.index.tolist() == expected.index.tolist()
        np.testing.assert_allclose(sums["households"], expected, rtol=1e-12)
        assert sums["households"].dtype == np.float64  # expected (fractional) counts
        # every village household carries its sampled value; the two points carry none
        np.testing.assert_allclose(sums["travel_min_x__n"].sum(), len(frame) - 2)
        np.testing.assert_allclose(sums["travel_min_x__sum"].sum(), 7.5 * (len(frame) - 2))
