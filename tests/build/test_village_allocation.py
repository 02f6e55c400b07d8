"""Village-located households: dasymetric weights, expected cell counts, determinism."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from kantong.engine.build import grid, placement, sums
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.errors import InputError
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.inputs import boundaries


@pytest.fixture(scope="module")
def polygons() -> pd.Series:
    return boundaries.villages().set_index("village_code").geometry


@pytest.fixture(scope="module")
def kalbar_villages(polygons) -> list[str]:
    """Twelve mid-sized Sanggau villages (code order), for the register tests."""
    vil = boundaries.villages()
    sel = vil[(vil["regency_code"] == "6105") & vil["area_km2"].between(10, 80)]
    return sorted(sel["village_code"].astype(str))[:12]


def _half_raster(path, poly: shapely.Polygon, *, split_lon: float, pixel: float = 1 / 480):
    """Population 4 per pixel west of ``split_lon``, 0 east of it, over the polygon's box."""
    west, south, east, north = poly.bounds
    west, north = west - 2 * pixel, north + 2 * pixel
    width = int((east - west) / pixel) + 4
    height = int((north - south) / pixel) + 4
    transform = from_origin(west, north, pixel, pixel)
    centres_lon = west + (np.arange(width) + 0.5) * pixel
    data = np.where(centres_lon[None, :] < split_lon, 4.0, 0.0).repeat(height, axis=0)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1,
                       dtype="float32", crs="EPSG:4326", transform=transform) as dst:
        dst.write(data.astype("float32"), 1)
    return path


def test_weights_are_population_shares_of_village_and_cell(tmp_path, polygons,
                                                           kalbar_villages):
    """Weights match exact polygon-intersection areas of village x cell x populated half."""
    code = kalbar_villages[0]
    poly = polygons[code]
    split = (poly.bounds[0] + poly.bounds[2]) / 2
    raster = _half_raster(tmp_path / "half.tif", poly, split_lon=split)
    w = placement.village_cell_weights([code], resolution=7, population_raster=raster)
    assert np.isclose(w["weight"].sum(), 1.0)
    assert w["cell"].is_monotonic_increasing and w["cell"].is_unique
    # independent reference: area of village ∩ hexagon ∩ (lon < split), shares of the total
    populated = shapely.intersection(poly, shapely.box(-180, -90, split, 90))
    cells = {h3.latlng_to_cell(y, x, 7) for x, y in shapely.get_coordinates(
        shapely.segmentize(populated.boundary, 0.002))}
    cells |= {h3.int_to_str(int(c)) for c in w["cell"]}
    frontier = set(cells)
    for _ in range(3):  # cells wholly inside the populated part as well
        frontier = {n for c in frontier for n in h3.grid_disk(c, 1)} - cells
        cells |= frontier
    hexes = {c: shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(c)])
             for c in cells}
    ref = pd.Series({h3.str_to_int(c): shapely.intersection(populated, g).area
                     for c, g in hexes.items()})
    ref = ref[ref > 0] / ref.sum()
    got = w.set_index("cell")["weight"]
    both = pd.concat([ref.rename("ref"), got.rename("got")], axis=1).fillna(0.0)
    assert np.abs(both["ref"] - both["got"]).sum() < 0.06  # sub-pixel sampling error
    assert np.abs(both["ref"] - both["got"]).max() < 0.03
    # nothing east of the split: the unpopulated half gets no weight
    assert (w["lon"] < split + 1 / 480).all()


def test_unpopulated_village_spreads_by_area_and_tiny_village_uses_its_point(tmp_path,
                                                                            polygons):
    vil = boundaries.villages()
    tiny = vil.loc[vil["area_km2"].idxmin(), "village_code"]
    code = "6105010001" if "6105010001" in polygons.index else polygons.index[0]
    poly = polygons[code]
    raster = _half_raster(tmp_path / "zero.tif", poly, split_lon=poly.bounds[0] - 1.0)
    w = placement.village_cell_weights([code], resolution=7, population_raster=raster)
    # uniform over the area: weights proportional to the hexagon ∩ village area
    areas = np.array([shapely.intersection(poly, shapely.Polygon(
        [(lon, lat) for lat, lon in h3.cell_to_boundary(h3.int_to_str(int(c)))])).area
        for c in w["cell"]])
    np.testing.assert_allclose(w["weight"], areas / areas.sum(), atol=0.03)
    t = placement.village_cell_weights([tiny], resolution=8)
    point = boundaries.village_points().set_index("village_code").loc[tiny]
    if len(t) == 1:  # too small for any sub-pixel centre: its representative point
        assert t["cell"].iloc[0] == h3.str_to_int(h3.latlng_to_cell(point["lat"],
                                                                     point["lon"], 8))
    assert np.isclose(t["weight"].sum(), 1.0)


def test_weights_do_not_depend_on_the_other_villages_requested(kalbar_villages):
    placement._store.cache_clear()
    alone = placement.village_cell_weights(kalbar_villages[:1], resolution=8)
    placement._store.cache_clear()
    together = placement.village_cell_weights(kalbar_villages[::-1], resolution=8)
    part = together[together["village_code"] == kalbar_villages[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, part, check_exact=True)


def test_unknown_village_code_is_an_input_error():
    with pytest.raises(InputError, match="names no village"):
        placement.village_cell_weights(["0000000000"], resolution=8)


def register(codes: list[str], n: int, *, seed: int = 0, village_share: float = 1.0
             ) -> pd.DataFrame:
    """Accepted-style households of ``codes``; a share of them located by village only."""
    rng = np.random.default_rng(seed)
    pts = boundaries.village_points().set_index("village_code")
    vc = rng.choice(np.asarray(codes, dtype=object), n)
    by_village = rng.uniform(size=n) < village_share
    frame = pd.DataFrame({
        "household_id": pd.array([f"H{seed}-{i}" for i in range(n)], dtype="string"),
        "lon": pts.loc[vc, "lon"].to_numpy() + rng.normal(0, 0.005, n),
        "lat": pts.loc[vc, "lat"].to_numpy() + rng.normal(0, 0.005, n),
        "desil": rng.integers(1, 5, n).astype("int8"),
        "members": rng.integers(1, 9, n).astype("int16"),
        "village_code": pd.array(vc, dtype="string"),
        "location_precision": pd.array(np.where(by_village, "village", "point"),
                                       dtype="string"),
    })
    for field in DEPRIVATIONS:
        frame[field] = rng.uniform(size=n) < 0.4
    return frame


def test_expected_counts_are_village_totals_times_weights(kalbar_villages):
    frame = register(kalbar_villages, 3000, seed=1)
    out = grid.households_to_cell_sums(frame, resolution=8)
    assert (out.dtypes == np.float64).all()
    w = placement.village_cell_weights(kalbar_villages, resolution=8)
    totals = frame.assign(extreme=frame["desil"] == 1).groupby("village_code").agg(
        households=("household_id", "size"), persons=("members", "sum"),
        extreme_households=("extreme", "sum"))
    merged = w.merge(totals, left_on="village_code", right_index=True)
    for col in ("households", "persons", "extreme_households"):
        expected = (merged[col] * merged["weight"]).groupby(merged["cell"]).sum()
        np.testing.assert_allclose(out[col].reindex(expected.index), expected, rtol=1e-12,
                                   err_msg=col)
        assert np.isclose(out[col].sum(), totals[col].sum())
    np.testing.assert_allclose(out["households_village_located"], out["households"])
    assert 0 < (out["households"] % 1 > 1e-9).mean()  # fractional, stated as float


def test_shuffled_rows_and_batches_give_identical_sums(kalbar_villages):
    frame = register(kalbar_villages, 4000, seed=2, village_share=0.7)
    single = grid.households_to_cell_sums(frame, resolution=8)
    shuffled = frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
    acc = grid.CellAccumulator(resolution=8)
    for start in range(0, len(shuffled), 900):
        acc.add(shuffled.iloc[start:start + 900])
    pd.testing.assert_frame_equal(single, acc.result(), check_exact=True)


def test_point_part_of_a_mixed_register_is_unchanged(kalbar_villages):
    frame = register(kalbar_villages, 2000, seed=3, village_share=0.5)
    point = frame[frame["location_precision"] == "point"]
    parts = grid.households_to_partial_sums(frame, resolution=8)
    own = grid.points_to_cells(point["lat"].to_numpy(), point["lon"].to_numpy(), 8)
    counts = pd.Series(own).value_counts().sort_index()
    np.testing.assert_array_equal(parts.cells["households"].sort_index().to_numpy(),
                                  counts.to_numpy())
    assert parts.cells["households"].dtype == np.int64
    assert int(parts.villages["households"].sum()) == len(frame) - len(point)
    total = parts.combine()
    assert np.isclose(total["households"].sum(), len(frame))
    assert np.isclose(total["households_village_located"].sum(), len(frame) - len(point))


def test_village_values_are_sampled_per_piece(kalbar_villages):
    frame = register(kalbar_villages[:3], 300, seed=4)

    def by_longitude(households: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"travel_min_x": households["lon"].to_numpy() * 10.0}

    out = grid.households_to_cell_sums(frame, resolution=8, sampler=by_longitude)
    cells = grid.cells_frame(out, resolution=8, admin=False)
    w = placement.village_cell_weights(kalbar_villages[:3], resolution=8)
    hh = frame.groupby("village_code").size()
    exp_w = w["weight"] * hh.reindex(w["village_code"]).to_numpy()
    mean = (exp_w * w["lon"] * 10).groupby(w["cell"]).sum() / exp_w.groupby(w["cell"]).sum()
    got = cells.set_index(cells_to_uint64(cells["h3"]))["travel_min_x"]
    np.testing.assert_allclose(got.reindex(mean.index), mean, rtol=1e-12)


def test_cell_table_and_rollups_keep_fractional_counts(kalbar_villages):
    frame = register(kalbar_villages, 1500, seed=6)
    cells = grid.cells_frame(grid.households_to_cell_sums(frame, resolution=8),
                             resolution=8, admin=False)
    assert cells["households"].dtype == np.float64
    up = grid.rollup_cells(cells, resolution=6, admin=False)
    assert up["households"].dtype == np.float64
    assert np.isclose(up["households"].sum(), len(frame))
    parents = [h3.cell_to_parent(c, 6) for c in cells["h3"]]
    ref = cells["households"].groupby(parents).sum()
    np.testing.assert_allclose(up.set_index("h3")["households"].reindex(ref.index), ref,
                               rtol=1e-12)


def test_village_totals_join_points_by_cell_centre(kalbar_villages, polygons):
    frame = register(kalbar_villages, 1200, seed=7, village_share=0.6)
    parts = grid.households_to_partial_sums(frame, resolution=8)
    table = sums.village_totals(parts)
    assert table["village_code"].is_monotonic_increasing
    assert table["households"].sum() <= len(frame)
    # reference: village rows by code; point rows by the village covering their cell centre
    vil = frame[frame["location_precision"] == "village"].groupby("village_code").size()
    point = frame[frame["location_precision"] == "point"]
    centres = [h3.cell_to_latlng(h3.latlng_to_cell(la, lo, 8))
               for lo, la in zip(point["lon"], point["lat"], strict=True)]
    geoms = boundaries.villages()
    box = shapely.box(point["lon"].min() - 0.1, point["lat"].min() - 0.1,
                      point["lon"].max() + 0.1, point["lat"].max() + 0.1)
    geoms = geoms[shapely.intersects(geoms.geometry.to_numpy(), box)]  # nearby villages only
    holder = []
    for la, lo in centres:
        hit = geoms[shapely.covers(geoms.geometry.to_numpy(), shapely.Point(lo, la))]
        holder.append(min(hit["village_code"].astype(str)) if len(hit) else None)
    ref = pd.concat([vil, pd.Series(holder).dropna().value_counts()]).groupby(level=0).sum()
    got = table.set_index("village_code")["households"]
    pd.testing.assert_series_equal(got.sort_index(), ref.sort_index().astype("int64"),
                                   check_names=False, check_index_type=False)
    assert (table["households_village_located"].sum() == vil.sum())
    names = boundaries.village_points().set_index("village_code")["village_name"]
    assert (table["village_name"].to_numpy() == names.reindex(table["village_code"]).to_numpy()
            ).all()


def test_nominal_point_is_the_villages_representative_point(polygons, kalbar_villages):
    frame = pd.DataFrame({"village_code": [kalbar_villages[0], "nope", None]})
    lon, lat = placement.place_by_village(frame)
    assert shapely.contains_xy(polygons[kalbar_villages[0]], lon[0], lat[0])
    assert np.isnan(lon[1:]).all() and np.isnan(lat[1:]).all()
