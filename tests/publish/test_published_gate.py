"""PublishedRun on a hand-built run of 15 base cells: every published number worked out by hand.

The world (``K = 10``, base resolution 8, rollups at 7 and 6; docs/privacy.md applied by
hand)::

    r6 A (published, 171 households)          r6 B (small: 6 households)
      r7 P1 (76): a 30, b 20, c 12, n 14        r7 Q (ancestor): l 2 (6110), m 3 (6201),
                                                                  o 1 (no regency)
      r7 P2 (44): d 25 (6171), e 4 small, f 15 complementary
      r7 P3 (54): g 40, h 11 complementary, i 3 small      (all 6201)
      r7 P4 (11): j 6, k 5 (both small; a residual of 11 over 2 cells)

Cells a, b, c, n, e, f are in regency 6105 and g, h, i, j, k in 6201 (province 62), unless marked.
Published base cells: a, b, c, n, d, g. Pockets: 1 = {a, b}; 2 = {g, j, k} (exact: the
residual {j, k} is safe); 3 = {c, e} (protected: e alone is a 4-household piece); 4 = {i}
and 7 = {h, l} (no published cell: withheld; 7 lies mostly in 6201); 5 = {n} is
published-sized but not in pockets.parquet; 6 = {d}. The world is written in a few
milliseconds, so every test here is fast.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from factories import seal_run

from kantong.engine.errors import PrivacyError, RunError
from kantong.engine.publish.published import (
    PUBLIC_FACILITY_COLUMNS,
    PUBLIC_POCKET_COLUMNS,
    PUBLIC_SITE_COLUMNS,
    REGENCY_COLUMNS,
    PublishedRun,
)

K = 10
_A = h3.latlng_to_cell(0.05, 110.75, 6)
_B = sorted(h3.grid_ring(_A, 1))[0]
_P = sorted(h3.cell_to_children(_A, 7))[:4]  # P1..P4
_Q = h3.cell_to_center_child(_B, 7)


def _kids(parent: str, n: int) -> list[str]:
    return sorted(h3.cell_to_children(parent, 8))[:n]


_ID = dict(zip("abcn", _kids(_P[0], 4), strict=True))
_ID.update(zip("def", _kids(_P[1], 3), strict=True))
_ID.update(zip("ghi", _kids(_P[2], 3), strict=True))
_ID.update(zip("jk", _kids(_P[3], 2), strict=True))
_ID.update(zip("lmo", _kids(_Q, 3), strict=True))
#: name -> (households, regency, pocket, raw rank in the province, raw rank in the regency)
WORLD = {
    "a": (30, "6105", 1, 9, 6), "b": (20, "6105", 1, 2, 2), "c": (12, "6105", 3, 12, 7),
    "n": (14, "6105", 5, 7, 4), "d": (25, "6171", 6, 7, 1), "e": (4, "6105", 3, 1, 1),
    "f": (15, "6105", None, 3, 3), "g": (40, "6201", 2, 5, 2), "h": (11, "6201", 7, 4, 1),
    "i": (3, "6201", 4, 6, 3), "j": (6, "6201", 2, 8, 4), "k": (5, "6201", 2, 10, 5),
    "l": (2, "6110", 7, 11, 1), "m": (3, "6201", None, 13, 6),
    "o": (1, None, None, 14, 1),  # a cell the build could not place in a regency
}
NAMES = {"6105": "Sanggau", "6110": "Melawi", "6171": "Kota Pontianak",
         "6201": "Kotawaringin Barat"}  # 6201 lies in province 62
PROVINCES = {"61": "Kalimantan Barat", "62": "Kalimantan Tengah"}
PUBLISHED = ("a", "b", "c", "n", "d", "g")
ORDER = "gkbmdajhcflnieo"  # row order of cells.parquet (not sorted by id)


def _hh(name: str) -> int:
    return WORLD[name][0]


def _persons(name: str) -> int:
    return 4 * _hh(name) + 1


def _extreme(name: str) -> int:
    return _hh(name) // 3


def _water(name: str) -> int:  # households without improved water
    return _hh(name) // 2


def _travel(name: str) -> float:
    return 10.0 + 3.5 * ORDER.index(name)


def _elevation(name: str) -> float:
    return 100.0 + 7.0 * ORDER.index(name)


def _population(name: str) -> float:
    return 2.5 * _persons(name)


def _polygon(cell: str) -> shapely.Polygon:
    return shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])


def _base_frame() -> gpd.GeoDataFrame:
    rows = []
    for name in ORDER:
        hh, reg, pocket, rank_p, rank_r = WORLD[name]
        lat, lon = h3.cell_to_latlng(_ID[name])
        rows.append({
            "h3": _ID[name], "resolution": 8, "lon": lon, "lat": lat,
            "province_code": (reg or "61")[:2],
            "province_name": PROVINCES[(reg or "61")[:2]],
            # g (the first row) lacks its regency's name, which other cells carry
            # and c spells its regency's name differently: one name per regency is published
            "regency_code": reg,
            "regency_name": {"g": None, "c": "Kab. Sanggau"}.get(name, NAMES.get(reg)),
            "households": hh, "persons": _persons(name), "extreme_households": _extreme(name),
            "extreme_persons": 4 * _extreme(name),
            "extreme_rate": 4 * _extreme(name) / _persons(name),
            "n_no_improved_water": _water(name),
            "share_no_improved_water": _water(name) / hh, "assistance_gap": hh // 5,
            "population": _population(name), "travel_min_puskesmas": _travel(name),
            "elevation_mean": _elevation(name), "hot": pocket is not None,
            "pocket_id": pocket, "priority": 1.0 - rank_p / 20, "rank_province": rank_p,
            "rank_regency": rank_r, "contrib_travel": 0.5 - rank_p / 40,
            # never published: a statistic of unsuppressed neighbours and a personal field
            "gi_z": float(rank_p), "nik": f"61050{rank_p:011d}",
            "geometry": _polygon(_ID[name]),
        })
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    frame["pocket_id"] = frame["pocket_id"].astype("Int64")
    return frame


def _rollup(base: gpd.GeoDataFrame, res: int, regency: dict[str, str]) -> gpd.GeoDataFrame:
    """The build's rollup: counts summed, derived values over *all* children (unsafe)."""
    b = pd.DataFrame(base.drop(columns="geometry"))
    b["h3"] = [h3.cell_to_parent(c, res) for c in b["h3"]]
    for col in ("travel_min_puskesmas", "elevation_mean"):
        b[col] = b[col] * b["households"]
    cols = ["households", "persons", "extreme_households", "extreme_persons",
            "n_no_improved_water", "assistance_gap", "population", "travel_min_puskesmas",
            "elevation_mean"]
    out = b.groupby("h3")[cols].sum().reset_index()
    for col in ("travel_min_puskesmas", "elevation_mean"):
        out[col] = out[col] / out["households"]
    out["resolution"] = res
    out["regency_code"] = out["h3"].map(regency)
    out["regency_name"] = out["regency_code"].map(NAMES)
    return gpd.GeoDataFrame(out, geometry=[_polygon(c) for c in out["h3"]], crs="EPSG:4326")


def _site_layer(kind: str, new: list[int], at: list[str], crs: str) -> gpd.GeoDataFrame:
    pts = gpd.GeoSeries([shapely.Point(h3.cell_to_latlng(_ID[c])[::-1]) for c in at],
                        crs="EPSG:4326")
    return gpd.GeoDataFrame({
        "rank": np.arange(1, len(new) + 1), "new_extreme_households": new,
        "cumulative_extreme_households": np.cumsum(new), "covered_persons": [5 * x for x in new],
        "regency_code": [WORLD[c][1] for c in at], "max_minutes": 60.0,
        "score": [0.5] * len(new),  # not a public site column
    }, geometry=pts.to_crs(crs).to_numpy(), crs=crs)


def write_world(run: Path) -> None:
    """Write the hand-built run directory (sealed) to ``run``."""
    run.mkdir(parents=True)
    base = _base_frame()
    base.to_parquet(run / "cells.parquet")
    (run / "rollups").mkdir()
    r7 = _rollup(base, 7, {_P[0]: "6105", _P[1]: "6105", _P[2]: "6201", _P[3]: "6201",
                           _Q: "6110"})
    r7["slope_mean"] = 3.0  # a derived value the base cells lack: cannot be made safe
    r7.to_parquet(run / "rollups" / "cells_r7.parquet")
    _rollup(base, 6, {_A: "6105", _B: "6110"}).to_parquet(run / "rollups" / "cells_r6.parquet")
    # not rollups: the base resolution itself, a finer one and a name without a resolution
    wrong = base.assign(households=base["households"] + 100)
    wrong.to_parquet(run / "rollups" / "cells_r8.parquet")
    wrong.to_parquet(run / "rollups" / "cells_r9.parquet")
    wrong.to_parquet(run / "rollups" / "cells_rx.parquet")
    pockets = pd.DataFrame({  # the last row has no pocket id: not a pocket
        "pocket_id": pd.array([1, 2, 3, 4, 6, 7, None], dtype="Int64"),
        "strategy": [1, 2, 3, 1, 2, 3, 1],
        "strategy_label": ["reduce expenditure", "raise income", "eliminate pockets",
                           "reduce expenditure", "raise income", "eliminate pockets",
                           "reduce expenditure"],
        "priority": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],
        "rank": [2, 6, 4, 1, 5, 3, 7], "rank_province": [3, 1, 6, 2, 4, 5, 7],
        "rank_regency": [2, 9, 1, 9, 9, 9, 9],
        "pocket_p": [0.01, 0.02, 0.03, 0.04, np.nan, 0.06, 0.07],  # 6: no p-value
        "confidence": ["high", "high", "medium", "low", "medium", "low", "low"],
        "villages": ["Sungai A", "Sungai B", "Sungai C", "Sungai D", "Sungai E", "Sungai F",
                     "Sungai G"],
        "n_villages": [1, 1, 1, 1, 1, 1, 1],
        "strategy_reason": ["30 extreme-poor households"] * 7,  # not public
    })
    geoms = [shapely.union_all([_polygon(_ID[c]) for c, w in WORLD.items() if w[2] == p])
             for p in pockets["pocket_id"].fillna(0)]
    gpd.GeoDataFrame(pockets, geometry=geoms, crs="EPSG:4326").to_parquet(
        run / "pockets.parquet")
    (run / "sites").mkdir()
    _site_layer("puskesmas", [40, 22, 7], ["g", "a", "b"], "EPSG:4326").to_parquet(
        run / "sites" / "sites_puskesmas.parquet")
    # stored in Web Mercator: published in EPSG:4326
    _site_layer("school", [30, 12], ["d", "c"], "EPSG:3857").to_parquet(
        run / "sites" / "sites_school.parquet")
    _site_layer("", [99], ["a"], "EPSG:4326").to_parquet(run / "sites" / "sites_.parquet")
    at = [h3.cell_to_latlng(_ID[c]) for c in ("a", "g")]
    gpd.GeoDataFrame({
        "facility_id": ["F1", "F2", "F3", "F4"], "type": ["puskesmas", "school", "school",
                                                           "puskesmas"],
        "name": ["Puskesmas A", "SD 1", "SD 2", "Puskesmas B"],
        "operator_phone": ["0811", "0812", "0813", "0814"],  # not a public column
    }, geometry=[shapely.Point(at[0][1] + 1.23456789e-3, at[0][0] - 9.87654321e-4), None,
                 shapely.Point(), shapely.Point(at[1][1], at[1][0])],
        crs="EPSG:4326").to_parquet(run / "facilities.parquet")
    seal_run(run, {"run_id": "gate-1", "config": {"privacy": {"min_households": K}}})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("gate") / "run"
    write_world(run)
    return run


@pytest.fixture
def pub(world) -> PublishedRun:
    """A new view per test: a view caches what it read, and each test must read it itself."""
    return PublishedRun(world)


def _cells(pub: PublishedRun, res: int) -> pd.DataFrame:
    return pd.DataFrame(pub.cells(res).drop(columns="geometry")).set_index("h3")


def _names(ids) -> list[str]:
    back = {v: k for k, v in _ID.items()}
    return sorted(back[i] for i in ids)


# ---- the gate: what it opens -------------------------------------------------------------
def test_interface(pub, world):
    assert pub.run_id == "gate-1"
    assert pub.run_min_households == pub.min_households == K
    assert pub.base_resolution == 8
    assert pub.resolutions == [6, 7, 8]  # cells_r8/r9/rx in rollups/ are not rollups
    assert repr(pub) == f"PublishedRun({str(world)!r}, min_households={K})"


def test_published_base_cells_and_their_values(pub):
    got = _cells(pub, 8)
    assert _names(got.index) == sorted(PUBLISHED)
    for name in PUBLISHED:
        row = got.loc[_ID[name]]
        assert row["households"] == _hh(name)
        assert row["persons"] == _persons(name)
        assert row["travel_min_puskesmas"] == _travel(name)
        assert row["population"] == _population(name)
    assert pub.withheld(8) == 9
    assert pub.cells(8).crs.to_epsg() == 4326


def test_published_columns_are_the_allow_list_in_order(pub):
    expected = ["h3", "resolution", "lon", "lat", "province_code", "province_name",
                "regency_code", "regency_name", "households", "persons", "extreme_households",
                "extreme_persons", "extreme_rate", "n_no_improved_water",
                "share_no_improved_water", "assistance_gap", "population", "hot",
                "pocket_id", "priority", "rank_province", "rank_regency",
                # run-dependent names (patterns), in the order of the file
                "travel_min_puskesmas", "elevation_mean", "contrib_travel", "geometry"]
    assert list(pub.cells(8).columns) == expected


def test_rollup_cells(pub):
    r7 = _cells(pub, 7)
    assert sorted(r7.index) == sorted(_P)  # Q is withheld under its small parent
    assert r7.loc[_P[0], "households"] == 76 and r7.loc[_P[3], "households"] == 11
    assert list(_cells(pub, 6).index) == [_A]
    assert pub.withheld(7) == 1 and pub.withheld(6) == 1


def _weighted(names, values) -> float:
    return sum(values(c) * _hh(c) for c in names) / sum(_hh(c) for c in names)


def test_rollup_derived_values_over_published_base_cells_only(pub):
    r7, r6 = _cells(pub, 7), _cells(pub, 6)
    for cells, parent in ((("a", "b", "c", "n"), _P[0]), (("d",), _P[1]), (("g",), _P[2]),
                          (PUBLISHED, _A)):
        row = (r6 if parent == _A else r7).loc[parent]
        assert row["travel_min_puskesmas"] == pytest.approx(_weighted(cells, _travel))
        assert row["elevation_mean"] == pytest.approx(_weighted(cells, _elevation))
        assert row["population"] == pytest.approx(sum(_population(c) for c in cells))
    # P4 has no published base cell: nothing to compute the values over
    assert r7.loc[_P[3], ["travel_min_puskesmas", "elevation_mean", "population"]].isna().all()
    assert "slope_mean" not in r7.columns  # the base cells have none: withheld
    assert pub.cell(_P[3])["population"] is None


def test_withheld_by_regency(pub):
    assert pub.withheld(8, regency="6201") == 5  # h, i, j, k, m
    assert pub.withheld(8, regency="6105") == 2  # e, f
    assert pub.withheld(8, regency=" 6110 ") == 1  # l (the code is normalised)
    assert pub.withheld(6, regency="6110") == 1
    assert pub.withheld(6, regency="6105") == 0


def test_cell_lookup(pub):
    for name in PUBLISHED:
        got = pub.cell(_ID[name])
        assert got["households"] == _hh(name) and got["h3"] == _ID[name]
        assert got["pocket_id"] == (None if name == "n" else WORLD[name][2])
        assert "geometry" not in got and "nik" not in got
    for name in set(WORLD) - set(PUBLISHED):
        assert pub.cell(_ID[name]) is None
    assert pub.cell(_ID["a"].upper())["households"] == 30
    assert pub.cell(_P[0])["households"] == 76
    assert pub.cell(_Q) is None  # withheld rollup cell
    assert pub.cell(h3.cell_to_parent(_A, 5)) is None  # resolution not in the run
    assert pub.cell("zzz") is None


def test_cell_values_are_plain_json(pub):
    got = pub.cell(_ID["b"])
    assert type(got["households"]) is int and got["hot"] is True
    assert type(got["extreme_rate"]) is float and type(got["rank_province"]) is int
    json.dumps(got, allow_nan=False)


# ---- pocket ids and ranks of published cells --------------------------------------------
def test_pocket_ids_only_of_published_pockets(pub):
    got = _cells(pub, 8)["pocket_id"]
    expected = {"a": 1, "b": 1, "c": 3, "n": None, "d": 6, "g": 2}  # 5: not in pockets file
    for name, pid in expected.items():
        value = got.loc[_ID[name]]
        assert (pd.isna(value) if pid is None else value == pid), name
    assert str(got.dtype) == "Int64"


def _competition_rank(names: list[str], column: int) -> dict[str, int]:
    """1 + the number of ``names`` with a strictly better raw rank (ties share a rank)."""
    return {c: 1 + sum(WORLD[o][column] < WORLD[c][column] for o in names) for c in names}


def test_cell_ranks_among_published_cells(pub):
    got = _cells(pub, 8)
    # province 61: a, b, c, n, d (n and d share raw rank 7); province 62: g
    expected = _competition_rank(["a", "b", "c", "n", "d"], 3) | _competition_rank(["g"], 3)
    assert expected == {"b": 1, "n": 2, "d": 2, "a": 4, "c": 5, "g": 1}
    for name, rank in expected.items():
        assert got.loc[_ID[name], "rank_province"] == rank
    by_regency = {}
    for reg in ("6105", "6171", "6201"):
        by_regency |= _competition_rank([c for c in PUBLISHED if WORLD[c][1] == reg], 4)
    assert by_regency == {"b": 1, "n": 2, "a": 3, "c": 4, "g": 1, "d": 1}
    for name, rank in by_regency.items():
        assert got.loc[_ID[name], "rank_regency"] == rank
    assert str(got["rank_province"].dtype) == str(got["rank_regency"].dtype) == "Int64"


# ---- pockets ------------------------------------------------------------------------------
def test_pockets_published_and_their_totals(pub):
    got = pub.pockets().set_index("pocket_id")
    assert list(got.index) == [1, 2, 3, 6]
    hh = {1: 50, 2: 51, 3: 12, 6: 25}  # 2: true total (g + the safe residual j, k)
    cells = {1: ("a", "b"), 2: ("g", "j", "k"), 3: ("c",), 6: ("d",)}
    totals = {1: "exact", 2: "exact", 3: "protected", 6: "exact"}
    for pid in got.index:
        row = got.loc[pid]
        assert row["households"] == hh[pid]
        assert row["persons"] == sum(_persons(c) for c in cells[pid])
        assert row["extreme_persons"] == sum(4 * _extreme(c) for c in cells[pid])
        assert row["extreme_rate"] == pytest.approx(
            sum(4 * _extreme(c) for c in cells[pid]) / sum(_persons(c) for c in cells[pid]))
        assert row["share_no_improved_water"] == pytest.approx(
            sum(_water(c) for c in cells[pid]) / hh[pid])
        assert row["totals"] == totals[pid]
    assert got["cells"].to_dict() == {1: 2, 2: 1, 3: 1, 6: 1}
    assert got["regency_code"].to_dict() == {1: "6105", 2: "6201", 3: "6105", 6: "6171"}
    assert got["regency_name"].to_dict() == {1: "Sanggau", 2: "Kotawaringin Barat", 3: "Sanggau",
                                             6: "Kota Pontianak"}
    assert pub.pockets_withheld() == 2  # 4 and 7 (5 is not a pocket of the run)


def test_pocket_columns_and_attributes(pub):
    got = pub.pockets()
    assert list(got.columns) == [
        "pocket_id", "regency_code", "regency_name", "cells", "households", "persons",
        "extreme_households", "extreme_persons", "n_no_improved_water", "assistance_gap",
        "extreme_rate", "share_no_improved_water", "strategy", "strategy_label", "priority",
        "rank", "rank_province", "rank_regency", "pocket_p", "confidence", "totals",
        "villages", "n_villages", "lon", "lat", "travel_min_puskesmas", "geometry"]
    assert "strategy_reason" not in got.columns
    got = got.set_index("pocket_id")
    assert got["strategy_label"].to_dict() == {1: "reduce expenditure", 2: "raise income",
                                               3: "eliminate pockets", 6: "raise income"}
    assert got["confidence"].to_dict() == {1: "high", 2: "high", 3: "medium", 6: "medium"}
    assert got["pocket_p"].loc[[1, 2, 3]].tolist() == [0.01, 0.02, 0.03]
    assert np.isnan(got.loc[6, "pocket_p"])
    assert got["villages"].to_dict() == {1: "Sungai A", 2: "Sungai B", 3: "Sungai C",
                                         6: "Sungai E"}
    assert got.crs.to_epsg() == 4326


def test_pocket_ranks_among_published_pockets(pub):
    got = pub.pockets().set_index("pocket_id")
    # raw ranks 2, 6, 4, 5 of pockets 1, 2, 3, 6
    assert got["rank"].to_dict() == {1: 1, 2: 4, 3: 2, 6: 3}
    # province (the first two digits of the regency code) 61: raw 3, 6, 4 of 1, 3, 6; 62: 2
    assert got["rank_province"].to_dict() == {1: 1, 2: 1, 3: 3, 6: 2}
    # within each regency, in the order of rank_province: 6105 holds 1 (3) and 3 (6)
    assert got["rank_regency"].to_dict() == {1: 1, 2: 1, 3: 2, 6: 1}
    for col in ("rank", "rank_province", "rank_regency"):
        assert str(got[col].dtype) == "Int64"


def test_pocket_outline_and_travel_over_published_cells(pub):
    got = pub.pockets().set_index("pocket_id")
    for pid, cells in ((1, ("a", "b")), (2, ("g",)), (3, ("c",)), (6, ("d",))):
        row = got.loc[pid]
        union = shapely.union_all([_polygon(_ID[c]) for c in cells])
        assert row.geometry.symmetric_difference(union).area < 1e-14
        assert row.geometry.contains(shapely.Point(row["lon"], row["lat"]))
        assert row["travel_min_puskesmas"] == pytest.approx(_weighted(cells, _travel))


@pytest.mark.parametrize(("regency", "count"), [("6201", 2), ("6105", 0), ("6110", 0),
                                                ("6171", 0)])
def test_pockets_withheld_by_main_regency(pub, regency, count):
    # 4 = {i} in 6201; 7 = {h (11, 6201), l (2, 6110)} counts in 6201, where most live
    assert pub.pockets_withheld(regency=regency) == count


# ---- regencies ----------------------------------------------------------------------------
def test_regencies(pub):
    got = pub.regencies()
    assert list(got.columns) == list(REGENCY_COLUMNS)
    assert got["regency_code"].tolist() == ["6105", "6171", "6201"]  # 6110: nothing released
    assert got["regency_name"].tolist() == ["Sanggau", "Kota Pontianak", "Kotawaringin Barat"]
    released = {"6105": "abcnef", "6171": "d", "6201": "ghijk"}  # m: a remainder of 3
    for col, fn in (("households", _hh), ("persons", _persons),
                    ("extreme_households", _extreme)):
        assert got[col].tolist() == [sum(fn(c) for c in released[r]) for r in released]
    rate = [sum(4 * _extreme(c) for c in released[r]) / sum(_persons(c) for c in released[r])
            for r in released]
    assert got["extreme_rate"].to_numpy() == pytest.approx(rate)
    assert got["pockets"].tolist() == [2, 1, 1]
    assert got["cells"].tolist() == [4, 1, 1]
    assert got["totals"].tolist() == ["exact", "exact", "protected"]
    assert str(got["regency_code"].dtype) == "string" and str(got["pockets"].dtype) == "int64"


def test_regency_totals_of_other_counts(pub):
    got = pub.regency_totals(["households", "n_no_improved_water", "not_in_run"])
    assert list(got.columns) == ["households", "n_no_improved_water", "cells"]
    released = {"6105": "abcnef", "6201": "ghijk", "6171": "d"}
    assert got["n_no_improved_water"].to_dict() == {
        r: sum(_water(c) for c in cs) for r, cs in released.items()}


def test_regency_codes_and_check(pub):
    assert pub.regency_codes() == ["6105", "6110", "6171", "6201"]
    assert pub.check_regency(" 6171") == "6171"
    with pytest.raises(Exception, match=r"regency '6199' not in this run \(known: 6105, 6110, "
                                        r"6171, 6201\)"):
        pub.check_regency("6199")


def test_indicators(pub):
    assert pub.indicators() == [
        "households", "persons", "extreme_households", "extreme_persons", "extreme_rate",
        "n_no_improved_water", "share_no_improved_water", "assistance_gap", "population",
        "priority", "travel_min_puskesmas", "elevation_mean", "contrib_travel"]


# ---- sites and facilities -----------------------------------------------------------------
def test_sites(pub):
    got = pub.sites()
    assert list(got.columns) == [c for c in PUBLIC_SITE_COLUMNS if c not in
                                 ("regency_name", "lon", "lat")]
    assert got["type"].tolist() == ["puskesmas"] * 3 + ["school"] * 2  # sites_.parquet: no type
    assert got["new_extreme_households"].tolist()[:2] == [40, 22]
    assert pd.isna(got["new_extreme_households"].iloc[2])  # 7 < K
    assert got["new_extreme_households"].tolist()[3:] == [30, 12]
    assert got.crs.to_epsg() == 4326
    for row, cell in zip(got.itertuples(), "gabdc", strict=True):
        lat, lon = h3.cell_to_latlng(_ID[cell])
        assert row.geometry.x == pytest.approx(lon, abs=1e-9)
        assert row.geometry.y == pytest.approx(lat, abs=1e-9)


def test_facilities(pub):
    got = pub.facilities()
    assert list(got.columns) == list(PUBLIC_FACILITY_COLUMNS)
    assert got["facility_id"].tolist() == ["F1", "F4"]  # no point, an empty point: left out
    lat, lon = h3.cell_to_latlng(_ID["a"])
    assert got["lon"].iloc[0] == round(lon + 1.23456789e-3, 6)
    assert got["lat"].iloc[0] == round(lat - 9.87654321e-4, 6)
    assert list(got.index) == [0, 1]
    assert got.crs.to_epsg() == 4326


# ---- K ------------------------------------------------------------------------------------
def test_k_below_the_runs_needs_allow_lower_k(world):
    with pytest.raises(PrivacyError, match="below this run's K=10"):
        PublishedRun(world, min_households=K - 1)
    lower = PublishedRun(world, min_households=K - 1, allow_lower_k=True)
    assert lower.min_households == K - 1 and lower.run_min_households == K
    higher = PublishedRun(world, min_households=K + 1)
    assert higher.min_households == K + 1
    assert _names(higher.cells(8)["h3"]) == ["a", "b", "c", "d", "g", "n"]
    # at K = 13: c (12) is small, withheld with its smallest sibling n (14); P4 (11) is
    # small at r7, withheld with its smallest sibling P2 (44), whose cells go with it; h and
    # i (11 + 3) are a safe residual; so only a, b and g remain
    assert _names(PublishedRun(world, min_households=13).cells(8)["h3"]) == ["a", "b", "g"]


# ---- runs the gate refuses or reads differently -------------------------------------------
def _copy(world: Path, dest: Path) -> Path:
    shutil.copytree(world, dest)
    return dest


def test_flat_run_without_rollups_or_provinces(world, tmp_path):
    run = tmp_path / "flat"
    run.mkdir()
    base = _base_frame().drop(columns=["province_code", "province_name", "pocket_id",
                                       "regency_name"])
    base.to_parquet(run / "cells.parquet")
    seal_run(run, {})
    pub = PublishedRun(run)
    assert pub.resolutions == [8] and pub.run_id == "flat"
    got = _cells(pub, 8)
    # one level: every cell of K or more households is published (no parent to protect)
    flat = ["a", "b", "c", "d", "f", "g", "h", "n"]
    assert _names(got.index) == flat
    # no province: ranks among all published cells
    expected = _competition_rank(flat, 3)
    for name, rank in expected.items():
        assert got.loc[_ID[name], "rank_province"] == rank
    assert "pocket_id" not in got.columns
    assert pub.pockets().empty and list(pub.pockets().columns) == list(PUBLIC_POCKET_COLUMNS)
    assert pub.pockets_withheld() == 0
    assert pub.sites().empty and list(pub.sites().columns) == list(PUBLIC_SITE_COLUMNS)
    assert pub.sites().crs.to_epsg() == 4326
    facilities = pub.facilities()
    assert facilities.empty and list(facilities.columns) == list(PUBLIC_FACILITY_COLUMNS)
    regencies = pub.regencies()
    assert regencies["pockets"].tolist() == [0, 0, 0]
    assert regencies["regency_name"].isna().all()  # the run names no regency


def test_run_without_pockets_file_keeps_every_pocket_id(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    (run / "pockets.parquet").unlink()
    seal_run(run)
    pub = PublishedRun(run)
    got = pub.pockets().set_index("pocket_id")
    assert list(got.index) == [1, 2, 3, 5, 6]  # 5 = {n}: published
    assert "strategy" not in got.columns and "rank" not in got.columns
    assert _cells(pub, 8).loc[_ID["n"], "pocket_id"] == 5
    assert pub.pockets_withheld() == 2  # 4 and 7


@pytest.mark.parametrize("what", ["empty", "invalid first id"])
def test_unusable_cells_are_refused_at_once(world, tmp_path, what):
    run = _copy(world, tmp_path / "run")
    base = _base_frame()
    if what == "empty":
        base = base.iloc[:0]
    else:
        base.loc[0, "h3"] = "8f2830828052d25f"
    base.to_parquet(run / "cells.parquet")
    with pytest.raises(RunError, match="holds no cells" if what == "empty" else "invalid cell"):
        PublishedRun(run, trust_run=True)


def test_sites_without_rank_are_refused(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    for path in (run / "sites").glob("*.parquet"):
        gpd.read_parquet(path).drop(columns="rank").to_parquet(path)
    with pytest.raises(RunError, match="no 'rank' column"):
        PublishedRun(run, trust_run=True).sites()


def test_unreadable_files_are_refused(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    (run / "rollups" / "cells_r6.parquet").write_bytes(b"not parquet")
    pub = PublishedRun(run, trust_run=True)
    with pytest.raises(RunError, match="not a readable Parquet file"):
        pub.cells(8)
    (run / "facilities.parquet").write_bytes(b"not parquet")
    with pytest.raises(RunError, match="not a readable GeoParquet file"):
        pub.facilities()


def test_missing_required_column_is_refused(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    path = run / "rollups" / "cells_r7.parquet"
    gpd.read_parquet(path).drop(columns="regency_code").to_parquet(path)
    with pytest.raises(RunError, match=r"missing column\(s\) \['regency_code'\]"):
        PublishedRun(run, trust_run=True).cells(8)


def test_manifest_k_from_config_or_parameters(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    for extra, k in (({"config": {"privacy": {"min_households": 12}}}, 12),
                     ({"config": {"privacy": {}},
                       "parameters": {"privacy": {"min_households": 14}}}, 14),
                     ({"config": "12", "parameters": {"privacy": {"min_households": 5}}}, 5),
                     ({"config": {"privacy": "12"}}, 10),
                     ({"config": {"privacy": {"min_households": 4}},
                       "parameters": {"privacy": {"min_households": 14}}}, 4),
                     ({"config": {}}, 10)):
        (run / "manifest.json").write_text(json.dumps({**manifest, **extra}))
        pub = PublishedRun(run, trust_run=True)
        assert pub.run_min_households == pub.min_households == k, extra


def test_no_pocket_published_at_a_high_k(world):
    # at K = 60 no published base cell is in a pocket of 60 households
    got = PublishedRun(world, min_households=60).pockets()
    assert got.empty and list(got.columns) == list(PUBLIC_POCKET_COLUMNS)


def test_edited_run_is_refused_unless_trusted(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    path = run / "rollups" / "cells_r7.parquet"
    gpd.read_parquet(path).assign(population=0.0).to_parquet(path)  # not sealed
    with pytest.raises(RunError):
        PublishedRun(run)
    assert PublishedRun(run, trust_run=True).resolutions == [6, 7, 8]


@pytest.mark.parametrize("only_in", ["base", "rollup"])
def test_population_of_rollups_only_where_base_and_rollup_have_it(world, tmp_path, only_in):
    run = _copy(world, tmp_path / "run")
    path = run / ("cells.parquet" if only_in == "rollup" else "rollups/cells_r7.parquet")
    gpd.read_parquet(path).drop(columns="population").to_parquet(path)
    seal_run(run)
    pub = PublishedRun(run)
    assert "population" not in pub.cells(7).columns
    assert ("population" in pub.cells(6).columns) is (only_in == "base")


def test_pocket_regency_ranks_without_province_ranks(world, tmp_path):
    run = _copy(world, tmp_path / "run")
    path = run / "pockets.parquet"
    gpd.read_parquet(path).drop(columns="rank_province").to_parquet(path)
    seal_run(run)
    got = PublishedRun(run).pockets().set_index("pocket_id")
    assert "rank_province" not in got.columns
    # raw rank_regency 2, 9, 1, 9 of pockets 1, 2, 3, 6: 6105 holds 1 (2) and 3 (1)
    assert got["rank_regency"].to_dict() == {1: 2, 2: 1, 3: 1, 6: 1}
