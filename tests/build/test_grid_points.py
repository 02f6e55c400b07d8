"""Points to H3 cells and cell geometry (``kantong.engine.build.grid``), against h3-py.

Expected cells, centres, boundaries and areas come from h3-py scalar calls, never from
h3ronpy. Tiny seeded inputs: every test runs in milliseconds.
"""

from __future__ import annotations

import threading
import time

import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from kantong.engine.build import grid
from kantong.engine.errors import InputError


def _points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-4, 4, n), rng.uniform(108, 119, n)


def _h3py(lat, lon, resolution: int) -> np.ndarray:
    return np.array([h3.str_to_int(h3.latlng_to_cell(a, b, resolution))
                     for a, b in zip(lat, lon, strict=True)], dtype=np.uint64)


@pytest.mark.parametrize("resolution", [0, 5, 8, 10, 15])
def test_points_to_cells_is_h3py_latlng_to_cell(resolution):
    lat, lon = _points(40, seed=resolution)
    got = grid.points_to_cells(lat, lon, resolution, threads=1)
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, _h3py(lat, lon, resolution))


def test_points_to_cells_accepts_lists_float32_and_nullable_columns():
    lat, lon = _points(10, seed=1)
    expected = _h3py(lat, lon, 8)
    np.testing.assert_array_equal(grid.points_to_cells(list(lat), list(lon), 8), expected)
    frame = pd.DataFrame({"lat": pd.array(lat, dtype="Float64"),
                          "lon": pd.array(lon, dtype="Float64")})
    np.testing.assert_array_equal(grid.points_to_cells(frame["lat"], frame["lon"], 8), expected)
    lat32, lon32 = lat.astype(np.float32), lon.astype(np.float32)
    np.testing.assert_array_equal(grid.points_to_cells(lat32, lon32, 8),
                                  _h3py(lat32.astype(float), lon32.astype(float), 8))


def test_points_to_cells_of_no_points_is_an_empty_uint64_array():
    got = grid.points_to_cells(np.array([]), np.array([]), 8)
    assert got.dtype == np.uint64 and got.shape == (0,)


def test_points_to_cells_of_one_point():
    got = grid.points_to_cells(np.array([0.05]), np.array([110.75]), 8)
    assert got.tolist() == [h3.str_to_int(h3.latlng_to_cell(0.05, 110.75, 8))]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["lat", "lon"])
def test_points_to_cells_rejects_missing_or_infinite_coordinates(bad, where):
    lat, lon = np.array([0.0, 0.1]), np.array([110.0, 110.1])
    (lat if where == "lat" else lon)[1] = bad
    with pytest.raises(InputError, match="missing or infinite"):
        grid.points_to_cells(lat, lon, 8)


def test_points_to_cells_rejects_a_missing_value_of_a_nullable_column():
    lat = pd.array([0.0, None], dtype="Float64")
    with pytest.raises(InputError, match="missing or infinite"):
        grid.points_to_cells(lat, np.array([110.0, 110.1]), 8)


@pytest.mark.parametrize("where", ["lat", "lon"])
def test_points_to_cells_rejects_a_missing_value_of_an_object_column(where):
    lat = np.array([0.0, 0.1], dtype=object)  # e.g. columns read from JSON
    lon = np.array([110.0, 110.1], dtype=object)
    (lat if where == "lat" else lon)[1] = None
    with pytest.raises(InputError, match="missing or infinite"):
        grid.points_to_cells(lat, lon, 8)


def test_points_to_cells_rejects_unequal_lengths():
    with pytest.raises(InputError, match="same length"):
        grid.points_to_cells(np.array([0.0, 0.1]), np.array([110.0]), 8)


class _Recorder:
    """Wraps h3ronpy's indexing: the size and thread of every call (each call lasts at
    least 5 ms, so that a pool allowed more workers would start them)."""

    def __init__(self, real):
        self.real, self.sizes, self.threads = real, [], set()
        self.lock = threading.Lock()

    def __call__(self, lat, lon, resolution):
        with self.lock:
            self.sizes.append(len(lat))
            self.threads.add(threading.get_ident())
        time.sleep(0.005)
        return self.real(lat, lon, resolution)


@pytest.fixture
def recorder(monkeypatch):
    rec = _Recorder(grid.h3v.coordinates_to_cells)
    monkeypatch.setattr(grid.h3v, "coordinates_to_cells", rec)
    monkeypatch.setattr(grid, "_PARALLEL_MIN_POINTS", 50)
    return rec


def test_below_the_threshold_or_with_one_thread_indexing_is_one_call(recorder):
    lat, lon = _points(200, seed=3)
    np.testing.assert_array_equal(grid.points_to_cells(lat, lon, 9, threads=1),
                                  _h3py(lat, lon, 9))
    np.testing.assert_array_equal(grid.points_to_cells(lat[:49], lon[:49], 9, threads=4),
                                  _h3py(lat[:49], lon[:49], 9))
    assert recorder.sizes == [200, 49]


def test_from_the_threshold_on_points_are_indexed_in_parallel_chunks(recorder, monkeypatch):
    monkeypatch.setattr(grid.os, "cpu_count", lambda: 1)  # ``threads`` wins over the CPUs
    for n, threads in ((50, 2), (61, 3), (200, 2)):
        recorder.sizes.clear()
        recorder.threads.clear()
        lat, lon = _points(n, seed=n)
        got = grid.points_to_cells(lat, lon, 7, threads=threads)
        assert got.dtype == np.uint64
        np.testing.assert_array_equal(got, _h3py(lat, lon, 7))
        assert len(recorder.sizes) >= threads and sum(recorder.sizes) == n
        assert max(recorder.sizes) < n  # each call indexes a part of the points
        assert len(recorder.threads) <= threads  # never more workers than asked for


@pytest.mark.parametrize(("cpus", "calls"), [(None, 1), (1, 1), (4, None)])
def test_threads_default_to_the_number_of_cpus(recorder, monkeypatch, cpus, calls):
    monkeypatch.setattr(grid.os, "cpu_count", lambda: cpus)
    lat, lon = _points(120, seed=4)
    np.testing.assert_array_equal(grid.points_to_cells(lat, lon, 6), _h3py(lat, lon, 6))
    if calls is None:  # several CPUs: parallel chunks on at most that many threads
        assert len(recorder.sizes) >= cpus and len(recorder.threads) <= cpus
    else:
        assert len(recorder.sizes) == calls


def _cells(n: int = 12, resolution: int = 8) -> list[str]:
    lat, lon = _points(n, seed=5)
    return [h3.latlng_to_cell(a, b, resolution) for a, b in zip(lat, lon, strict=True)]


def test_cell_centres_are_h3py_centres():
    cells = _cells()
    lon, lat = grid.cell_centres(np.array([h3.str_to_int(c) for c in cells], dtype=np.uint64))
    ref = np.array([h3.cell_to_latlng(c) for c in cells])
    assert lon.dtype == np.float64 and lat.dtype == np.float64
    np.testing.assert_allclose(lat, ref[:, 0], atol=1e-11)
    np.testing.assert_allclose(lon, ref[:, 1], atol=1e-11)


def test_cell_polygons_are_h3py_boundaries():
    cells = _cells() + ["8075fffffffffff"]  # and a pentagon (resolution 0)
    polys = grid.cell_polygons(np.array([h3.str_to_int(c) for c in cells], dtype=np.uint64))
    assert len(polys) == len(cells)
    for poly, cell in zip(polys, cells, strict=True):
        ref = shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(cell)])
        assert shapely.get_num_coordinates(poly) - 1 == len(h3.cell_to_boundary(cell))
        assert poly.symmetric_difference(ref).area < 1e-9 * ref.area, cell


def test_cell_areas_are_h3py_areas_in_square_metres():
    cells = _cells(resolution=7) + ["8075fffffffffff"]
    got = grid.cell_areas_m2(np.array([h3.str_to_int(c) for c in cells], dtype=np.uint64))
    ref = [h3.cell_area(c, unit="m^2") for c in cells]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-9)
