"""Tests of kantong.engine.compare.run, kantong.engine.compare.targets, kantong.engine.plots and
`kantong compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from factories import make_households, make_run
from PIL import Image

from kantong.engine.cli.group import cli
from kantong.engine.compare.run import (
    STATUSES,
    cell_changes,
    compare_runs,
    match_pockets,
    pocket_changes,
    write_comparison,
)
from kantong.engine.compare.targets import (
    TARGETS,
    indicator_values,
    regency_target_counts,
    target_by_key,
    target_table,
)
from kantong.engine.config import Config
from kantong.engine.errors import InputError
from kantong.engine.inputs import boundaries
from kantong.engine.pockets.run import write_pockets
from kantong.engine.publish import privacy
from kantong.engine.publish.published import PublishedRun, is_public_cell_column

ORIGIN = h3.latlng_to_cell(0.05, 110.75, 8)


def _hex(cell: str) -> shapely.Polygon:
    return shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])


def _cells(ids: list[str], **cols: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"h3": ids, **cols}, geometry=[_hex(c) for c in ids],
                            crs="EPSG:4326")


# ---- cells ---------------------------------------------------------------------------------

def test_cell_changes_presence_and_deltas() -> None:
    a, b, c, d = sorted(h3.grid_disk(ORIGIN, 1))[:4]
    old = _cells([a, b, c], households=[20, 30, 40], extreme_households=[5, 6, 7],
                 extreme_rate=[0.2, 0.1, 0.05])
    new = _cells([b, c, d], households=[31, 35, 50], extreme_households=[2, 7, 9],
                 extreme_rate=[0.05, 0.1, 0.3])
    out = cell_changes(old, new).set_index("h3")
    assert out.crs.to_epsg() == 4326
    assert out["presence"].to_dict() == {a: "old_only", b: "both", c: "both", d: "new_only"}
    assert out.loc[b, "extreme_households_delta"] == -4
    assert out.loc[c, "households_delta"] == -5
    assert out.loc[b, "extreme_rate_delta"] == pytest.approx(-0.05)
    # one-sided cells keep their side; their change is unknown, never zero
    assert out.loc[a, "households_old"] == 20 and pd.isna(out.loc[a, "households_new"])
    assert pd.isna(out.loc[a, "households_delta"]) and pd.isna(out.loc[d, "extreme_rate_delta"])
    assert out.loc[d, "extreme_households_new"] == 9
    assert str(out["households_delta"].dtype) == "Int64"
    assert out.geometry.notna().all()


def test_cell_changes_rejects_mixed_resolutions() -> None:
    fine = _cells([ORIGIN], households=[10])
    coarse = _cells([h3.cell_to_parent(ORIGIN, 7)], households=[10])
    with pytest.raises(InputError, match="different H3 resolutions"):
        cell_changes(fine, coarse)


# ---- pockets -------------------------------------------------------------------------------

def _pocket_layer(groups: dict[int, list[str]], extreme: dict[int, int]) -> tuple[
        gpd.GeoDataFrame, pd.DataFrame]:
    rows, members = [], []
    for pid, ids in groups.items():
        rows.append({"pocket_id": pid, "households": 10 * extreme[pid],
                     "extreme_households": extreme[pid], "cells": len(ids),
                     "regency_code": "6105", "regency_name": "Sanggau",
                     "geometry": shapely.union_all([_hex(c) for c in ids])})
        members += [{"h3": c, "pocket_id": pid} for c in ids]
    return gpd.GeoDataFrame(rows, crs="EPSG:4326"), pd.DataFrame(members)


def _ring_cells() -> list[str]:
    """20 distinct cells, far enough apart to build disjoint test pockets."""
    return [h3.local_ij_to_cell(ORIGIN, *np.add(h3.cell_to_local_ij(ORIGIN, ORIGIN), (3 * i, 0)))
            for i in range(-10, 10)]


def test_match_pockets_iou_and_threshold() -> None:
    old = pd.DataFrame({"h3": list("abcdefghij"), "pocket_id": [1] * 10})
    new = pd.DataFrame({"h3": ["j", "x", "y"], "pocket_id": [5, 5, 5]})
    pairs = match_pockets(old, new, min_overlap=0.5)
    row = pairs.iloc[0]
    assert (row["overlap_cells"], row["cells_old"], row["cells_new"]) == (1, 10, 3)
    assert row["iou"] == pytest.approx(1 / 12)
    assert row["overlap_share"] == pytest.approx(1 / 3)
    assert not row["matched"]
    assert match_pockets(old, new, min_overlap=0.3)["matched"].all()
    with pytest.raises(InputError):
        match_pockets(old, new, min_overlap=1.5)


def test_pocket_changes_statuses_split_and_merge() -> None:
    c = _ring_cells()
    # old: 1 persisting, 2 shrinks, 3 grows, 4 splits into 14+15, 5+6 merge into 16, 7 resolves
    old_groups = {1: c[0:2], 2: c[2:4], 3: c[4:6], 4: c[6:9], 5: c[9:11], 6: c[11:13],
                  7: c[13:15]}
    old_ext = {1: 100, 2: 100, 3: 100, 4: 60, 5: 30, 6: 30, 7: 40}
    new_groups = {11: c[0:2], 12: c[2:3], 13: c[4:7][:2], 14: c[6:7], 15: c[8:9],
                  16: c[9:13], 17: c[16:18]}
    new_ext = {11: 105, 12: 60, 13: 150, 14: 30, 15: 30, 16: 80, 17: 25}
    old, old_cells = _pocket_layer(old_groups, old_ext)
    new, new_cells = _pocket_layer(new_groups, new_ext)
    pairs = match_pockets(old_cells, new_cells)
    out = pocket_changes(old, new, pairs, threshold=0.10)
    by_old = {r.pocket_ids_old: r for r in out.itertuples()}
    assert by_old["1"].status == "persisting" and by_old["1"].iou == pytest.approx(1.0)
    assert by_old["2"].status == "shrinking" and by_old["2"].extreme_households_change == -40
    assert by_old["3"].status == "growing"
    assert by_old["4"].kind == "1:2" and by_old["4"].pocket_ids_new == "14;15"
    assert by_old["4"].status == "persisting"  # 60 -> 60 across the split
    assert by_old["5;6"].kind == "2:1" and by_old["5;6"].status == "growing"  # 60 -> 80
    assert by_old["7"].status == "resolved" and pd.isna(by_old["7"].extreme_households_new)
    assert by_old[""].status == "new" and by_old[""].pocket_ids_new == "17"
    assert list(out["change_id"]) == list(range(1, len(out) + 1))
    order = [STATUSES.index(s) for s in out["status"]]
    assert order == sorted(order)
    # resolved groups keep the old outline, the others the new one
    assert by_old["7"].geometry.equals(old.loc[old["pocket_id"] == 7].geometry.iloc[0])
    assert by_old["1"].geometry.equals(new.loc[new["pocket_id"] == 11].geometry.iloc[0])
    assert out.is_valid.all() and out.crs.to_epsg() == 4326


# ---- targets -------------------------------------------------------------------------------

def test_target_mapping_values_and_gaps() -> None:
    totals = pd.DataFrame({"households": [100, 0], "persons": [400, 0],
                           "extreme_households": [5, 0], "extreme_persons": [20, 0],
                           "n_no_improved_water": [30, 0], "n_no_improved_sanitation": [10, 0],
                           "n_child_out_of_school": [5, 0]})
    values = indicator_values(totals)
    assert values.loc[0].to_dict() == pytest.approx({"extreme_rate": 0.05, "water_access": 0.7,
                                                     "sanitation_access": 0.9,
                                                     "school_proxy": 0.95})
    assert values.loc[1].isna().all()  # no households: unknown, not 0 or 100 %
    gaps = {t.key: float(t.gap(values.loc[[0], t.key])[0]) for t in TARGETS}
    assert gaps == pytest.approx({"extreme_rate": 0.05, "water_access": 0.1,
                                  "sanitation_access": 0.0, "school_proxy": 0.0})
    assert target_by_key("school_proxy").proxy
    assert not target_by_key("water_access").proxy


def test_target_table_handles_regency_in_one_year() -> None:
    cols = ["regency_name", "households", "persons", "extreme_households", "extreme_persons",
            "n_no_improved_water", "n_no_improved_sanitation", "n_child_out_of_school"]
    old = pd.DataFrame([["A", 100, 400, 10, 40, 50, 50, 20], ["B", 50, 200, 5, 20, 10, 10, 2]],
                       columns=cols, index=pd.Index(["6101", "6102"], name="regency_code"))
    new = pd.DataFrame([["A", 100, 400, 4, 16, 15, 30, 5]], columns=cols,
                       index=pd.Index(["6101"], name="regency_code"))
    table = target_table(old, new).set_index("regency_code")
    assert table.loc["6101", "extreme_rate_change"] == pytest.approx(-0.06)
    assert table.loc["6101", "water_access_new"] == pytest.approx(0.85)
    assert bool(table.loc["6101", "water_access_met_new"])
    assert table.loc["6101", "sanitation_access_gap_new"] == pytest.approx(0.1)
    assert table.loc["6101", "extreme_households_change"] == -6
    assert pd.isna(table.loc["6102", "extreme_rate_new"])
    assert pd.isna(table.loc["6102", "water_access_met_new"])
    assert table.loc["6102", "regency_name"] == "B"


# ---- whole comparison on two factory runs (two seeds = two years) --------------------------

@pytest.fixture(scope="module")
def two_years(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Sparse runs (many cells below K): pocket 1 persists, pocket 2 resolves, one new."""
    root = tmp_path_factory.mktemp("years")
    old, new = root / "y1", root / "y2"
    make_run(old, seed=0, planted=make_households(seed=0, mean_households=12))
    make_run(new, seed=1, planted=make_households(seed=1, mean_households=12,
                                                  pockets=((4, -3, 2), (0, 7, 1))))
    for run in (old, new):
        write_pockets(run, Config())
    return old, new


def test_compare_runs_is_privacy_safe(two_years: tuple[Path, Path]) -> None:
    old, new = two_years
    k = 10
    cmp = compare_runs(old, new, min_households=k)
    po, pn = PublishedRun(old, min_households=k), PublishedRun(new, min_households=k)
    res = po.base_resolution
    pub_o = set(po.plan.published_ids(res))
    pub_n = set(pn.plan.published_ids(res))
    withheld_o = set(po.plan.status[res].index) - pub_o
    withheld_n = set(pn.plan.status[res].index) - pub_n
    assert withheld_o and withheld_n  # the fixture does exercise suppression
    cells = cmp.cells.set_index("h3")
    assert set(cells.index) == pub_o | pub_n  # nothing withheld in both years appears
    both = set(cells.index[cells["presence"] == "both"])
    assert both == pub_o & pub_n
    # a cell withheld in either year has its change withheld
    one_sided = cells.loc[list((withheld_o | withheld_n) & set(cells.index))]
    assert len(one_sided) and one_sided.filter(like="_delta").isna().all().all()
    assert (one_sided.loc[one_sided.index.isin(withheld_n), "households_new"].isna()).all()
    # every published value equals the run's own published value
    pc = po.cells(res).set_index("h3")
    shared = sorted(set(cells.index) & pub_o)
    assert (cells.loc[shared, "households_old"].to_numpy(dtype="int64")
            == pc.loc[shared, "households"].to_numpy()).all()
    # regency totals are the published regency totals of each run
    table = cmp.regencies.set_index("regency_code")
    reg_o = po.regencies().set_index("regency_code")
    assert (table.loc[reg_o.index, "households_old"].to_numpy(dtype="int64")
            == reg_o["households"].to_numpy()).all()
    assert (table.loc[reg_o.index, "extreme_rate_old"].to_numpy()
            == pytest.approx(reg_o["extreme_rate"].to_numpy()))
    # pockets: published totals only
    pk = pn.pockets().set_index("pocket_id")
    for row in cmp.pockets.itertuples():
        ids = [int(x) for x in row.pocket_ids_new.split(";") if x]
        if ids:
            assert row.extreme_households_new == pk.loc[ids, "extreme_households"].sum()


def test_compare_statuses_on_planted_years(two_years: tuple[Path, Path]) -> None:
    cmp = compare_runs(*two_years, min_households=3, allow_lower_k=True)  # below K=10
    counts = cmp.status_counts()
    # planted: pocket (4, -3) in both years, (-5, 4) only in year 1, (0, 7) only in year 2
    assert counts == {"persisting": 1, "shrinking": 0, "growing": 0, "new": 1, "resolved": 1}
    rows = cmp.pockets.set_index("status")
    assert rows.loc["persisting", "cells_old"] == rows.loc["persisting", "cells_new"] == 19
    assert rows.loc["resolved", "cells_old"] == 19  # a k-ring of 2: 19 cells
    assert rows.loc["new", "cells_new"] == 7  # a k-ring of 1: 7 cells
    assert cmp.summary["cells"]["both"] > 0


def test_write_comparison_outputs(two_years: tuple[Path, Path], tmp_path: Path) -> None:
    cmp = compare_runs(*two_years)
    out = tmp_path / "cmp"
    paths = write_comparison(cmp, out)
    assert all(p.is_file() for p in paths.values())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    cells = gpd.read_parquet(out / "compare.parquet")
    assert cells.crs.to_epsg() == 4326 and len(cells) == len(cmp.cells)
    gj = json.loads((out / "cells_change.geojson").read_text())
    props = gj["features"][0]["properties"]
    for name in props:  # only public indicators (and their old/new/delta) are written
        stem = name.rsplit("_", 1)[0] if name.endswith(("_old", "_new", "_delta")) else name
        assert name == "presence" or is_public_cell_column(stem), name
    pockets = json.loads((out / "pockets_change.geojson").read_text())
    assert {f["properties"]["status"] for f in pockets["features"]} <= set(STATUSES)
    table = pd.read_csv(out / "regencies.csv", dtype={"regency_code": str})
    assert {"extreme_rate_old", "water_access_gap_new", "school_proxy_change"} <= set(table)
    with Image.open(out / "regencies.png") as img:
        assert img.size[0] > 600 and img.size[1] > 200
    record = json.loads((out / "compare.json").read_text())
    assert record["cells"] == cmp.summary["cells"]
    assert "no household records" in record["privacy"]
    assert {t.get("key") for t in record["targets"]} >= {t.key for t in TARGETS}
    # an existing comparison is replaced; any other non-empty directory is refused
    write_comparison(cmp, out, plot=False)
    assert not (out / "regencies.png").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="refusing"):
        write_comparison(cmp, other)
    with pytest.raises(InputError, match="run directory"):
        write_comparison(cmp, two_years[0])


def test_regency_totals_use_released_atoms(two_years: tuple[Path, Path]) -> None:
    pub = PublishedRun(two_years[0], min_households=10)
    totals = regency_target_counts(pub)
    ref = pub.regencies().set_index("regency_code")
    assert (totals.loc[ref.index, "households"] == ref["households"]).all()
    base = pd.read_parquet(pub.run_dir / "cells.parquet", columns=["h3", "n_no_improved_water"])
    atoms = pub.plan.atoms.reindex(base["h3"])
    released = base.loc[atoms["released"].to_numpy(dtype=bool), "n_no_improved_water"].sum()
    assert totals["n_no_improved_water"].sum() == released
    assert privacy.PUBLISHED in set(pub.plan.status[pub.base_resolution])


# ---- CLI -----------------------------------------------------------------------------------

def test_cli_compare(two_years: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = two_years
    out = tmp_path / "cmp"
    result = CliRunner().invoke(cli, ["compare", str(old), str(new), "--out", str(out),
                                      "--min-households", "5", "--allow-lower-k",
                                      "--no-plot"])
    assert result.exit_code == 0, result.output
    assert "pockets: persisting" in result.output and "resolved" in result.output
    assert "largest fall in the extreme-poverty rate" in result.output
    assert not (out / "regencies.png").exists() and (out / "regencies.csv").is_file()
    record = json.loads((out / "compare.json").read_text())
    assert record["runs"]["old"]["min_households"] == 5


def test_cli_compare_errors(two_years: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = two_years
    runner = CliRunner()
    same = runner.invoke(cli, ["compare", str(old), str(old), "--out", str(tmp_path / "x")])
    assert same.exit_code == 1 and same.output.count("\n") == 1
    assert "same directory" in same.output
    missing = runner.invoke(cli, ["compare", str(old), str(new), "--out", str(tmp_path / "y"),
                                  "--resolution", "9"])
    assert missing.exit_code == 1 and "resolution 9 not in this run" in missing.output
    bad_k = runner.invoke(cli, ["compare", str(old), str(new), "--out", str(tmp_path / "z"),
                                "--min-households", "1"])
    assert bad_k.exit_code == 2


def test_cli_compare_different_resolutions(tmp_path: Path) -> None:
    fine, coarse = tmp_path / "r8", tmp_path / "r7"
    make_run(fine, seed=0, resolution=8, planted=make_households(seed=0, radius=4))
    make_run(coarse, seed=1, resolution=7, planted=make_households(seed=1, radius=2,
                                                                   resolution=7))
    runner = CliRunner()
    result = runner.invoke(cli, ["compare", str(fine), str(coarse), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: runs have different H3 resolutions")
    assert result.output.count("\n") == 1
    ok = runner.invoke(cli, ["compare", str(fine), str(coarse), "--out", str(tmp_path / "c"),
                             "--resolution", "7", "--no-plot"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "c" / "compare.json").read_text())["resolution"] == 7


# ---- end to end: the demo's second year, built with the real `kantong build` -------------

def _haversine_km(lon: np.ndarray, lat: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
                  ) -> np.ndarray:
    la, lo = np.radians(lat)[:, None], np.radians(lon)[:, None]
    lb, lob = np.radians(lat2)[None, :], np.radians(lon2)[None, :]
    a = np.sin((lb - la) / 2) ** 2 + np.cos(la) * np.cos(lb) * np.sin((lob - lo) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


@pytest.mark.slow
def test_demo_follow_up_shows_planted_improvements(tmp_path: Path) -> None:
    runner = CliRunner()
    demo = tmp_path / "demo"
    r = runner.invoke(cli, ["demo-data", "--out", str(demo), "--households", "20000",
                            "--seed", "7", "--follow-up"])
    assert r.exit_code == 0, r.output
    for year, suffix in (("y1", ""), ("y2", "_year2")):
        r = runner.invoke(cli, [
            "build", "--households", str(demo / f"households_synthetic{suffix}.csv"),
            "--facilities", str(demo / f"facilities_synthetic{suffix}.geojson"),
            "--friction", str(demo / "friction_synthetic.tif"),
            "--population", str(demo / "population_ghspop.tif"), "--out", str(tmp_path / year)])
        assert r.exit_code == 0, r.output
    out = tmp_path / "cmp"
    # r6 cells: a 20,000-household demo is too sparse for r8 cells to pass K = 10
    r = runner.invoke(cli, ["compare", str(tmp_path / "y1"), str(tmp_path / "y2"),
                            "--out", str(out), "--resolution", "6"])
    assert r.exit_code == 0, r.output
    follow = json.loads((demo / "metadata.json").read_text())["follow_up"]
    sites = pd.DataFrame(follow["new_facilities"])
    radius = follow["near_new_facilities"]["radius_km"]
    cells = gpd.read_parquet(out / "compare.parquet")
    cells = cells[cells["presence"] == "both"]
    dist = _haversine_km(cells["lon"].to_numpy(), cells["lat"].to_numpy(),
                         sites["lon"].to_numpy(), sites["lat"].to_numpy()).min(axis=1)
    near, far = cells[dist <= radius], cells[dist > radius]
    assert len(near) >= 3
    e_old = int(near["extreme_households_old"].sum())
    e_new = int(near["extreme_households_new"].sum())
    assert e_new < 0.6 * e_old  # planted: desil-1 share near the new sites falls sharply
    far_change = far["extreme_households_new"].sum() / far["extreme_households_old"].sum()
    assert e_new / e_old < far_change - 0.2  # ... much more than elsewhere
    # the regencies that received the new facilities improved
    table = pd.read_csv(out / "regencies.csv", dtype={"regency_code": str})
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(sites["lon"], sites["lat"]),
                              crs="EPSG:4326")
    planted = set(gpd.sjoin(points, boundaries.regencies()[["regency_code", "geometry"]]
                            )["regency_code"])
    rows = table[table["regency_code"].isin(planted)]
    assert len(rows) == len(planted)
    # the planted effect is local (~8 km): taken together, the regencies that received the
    # new facilities lost a larger share of their extreme-poor households than the others
    # (one regency alone can move by sampling noise at 20,000 households)
    others = table[~table["regency_code"].isin(planted)]

    def share_kept(frame: pd.DataFrame) -> float:
        return frame["extreme_households_new"].sum() / frame["extreme_households_old"].sum()

    assert share_kept(rows) < 1.0
    assert share_kept(rows) < share_kept(others)
    assert (out / "regencies.png").is_file() and (out / "changes.png").is_file()


# ---- web map: `kantong serve --run NEW --compare OLD` --------------------------------------

@pytest.fixture(scope="module")
def compare_app(two_years: tuple[Path, Path]):
    from kantong.webmap import create_app

    old, new = two_years
    return create_app({"TESTING": True, "RUN_DIR": str(new), "COMPARE_RUN_DIR": str(old),
                       "MIN_HOUSEHOLDS": 10})


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    import mercantile

    t = mercantile.tile(lon, lat, z)
    return t.z, t.x, t.y


def test_web_change_tiles_and_legend(compare_app, two_years: tuple[Path, Path]) -> None:
    import io

    client = compare_app.test_client()
    svc = compare_app.extensions["kantong_compare"]
    cells = svc.changes(max(svc.resolutions))
    both = cells[cells["presence"] == "both"]
    z, x, y = _tile_of(float(both["lon"].mean()), float(both["lat"].mean()), 10)
    r = client.get(f"/tiles/change_extreme_households/{z}/{x}/{y}.png")
    assert r.status_code == 200 and r.mimetype == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(r.data)))
    assert (pixels[..., 3] > 0).sum() > 100
    # same tile again: 304 with the ETag
    again = client.get(f"/tiles/change_extreme_households/{z}/{x}/{y}.png",
                       headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    empty = client.get("/tiles/change_extreme_rate/10/0/0.png")
    assert empty.status_code == 200
    assert (np.asarray(Image.open(io.BytesIO(empty.data)))[..., 3] == 0).all()
    assert client.get("/tiles/change_extreme_households/99/0/0.png").status_code == 400
    legend = client.get("/tiles/change_extreme_households/legend.json?z=10").json
    lo, hi = legend["domain"]
    assert lo == -hi and hi >= 2 and legend["colormap"] == "RdBu_r"  # no half households
    assert "withheld" in legend["nodata_label"] and isinstance(legend["open_high"], bool)
    # the served run's own indicator tiles still work beside the change layers
    assert client.get(f"/tiles/priority/{z}/{x}/{y}.png").status_code == 200


def test_web_change_tiles_draw_only_published_cells(compare_app) -> None:
    from kantong.webmap.tiling import colors

    svc = compare_app.extensions["kantong_compare"]
    res = max(svc.resolutions)
    cells = svc.changes(res).set_index("h3")
    published = set(svc.old.plan.published_ids(res)) | set(svc.new.plan.published_ids(res))
    assert set(cells.index) == published
    _, rgba = svc.scale("change_extreme_households", res)
    one_sided = (cells["presence"] != "both").to_numpy()
    assert one_sided.any()
    assert (rgba[one_sided] == np.array(colors.NODATA_RGBA, dtype="uint8")).all()


def test_web_compare_api(compare_app, two_years: tuple[Path, Path]) -> None:
    client = compare_app.test_client()
    summary = client.get("/api/compare").json
    assert summary["layers"] == ["change_extreme_households", "change_extreme_rate"]
    assert "path" not in json.dumps(summary["runs"])  # no server paths in the API
    table = client.get("/api/compare/regencies").json
    expected = compare_runs(*two_years, min_households=10).regencies
    assert [r["regency_code"] for r in table["regencies"]] == list(expected["regency_code"])
    assert {t.get("key") for t in table["targets"]} >= {"extreme_rate", "school_proxy"}
    pockets = client.get("/api/compare/pockets.geojson")
    assert pockets.mimetype == "application/geo+json"
    statuses = {f["properties"]["status"] for f in pockets.json["features"]}
    assert statuses and statuses <= set(STATUSES)


def test_web_page_lists_change_layers(compare_app) -> None:
    page = compare_app.test_client().get("/?lang=en").get_data(as_text=True)
    assert "/tiles/change_extreme_households/{z}/{x}/{y}.png" in page
    assert "/tiles/change_extreme_rate/{z}/{x}/{y}.png" in page
    assert "Pocket changes" in page and "/api/compare/regencies" in page
    # the legend key lists the pocket statuses drawn (colour of each outline)
    from kantong.engine.compare.pockets import STATUS_COLORS

    call = re.search(r"kantongViewer\(\w+, (\{.*?\}), (\{outlines: .*?\})\);\n", page, re.S)
    config = json.loads(call.group(1))
    present = {f["properties"]["status"] for f in
               compare_app.test_client().get("/api/compare/pockets.geojson").json["features"]}
    assert config["pocketStatuses"] == [[f"Pocket {s}", STATUS_COLORS[s]] for s in STATUSES
                                        if s in present]
    # a ring per pocket group (status colour) for low zoom, paired with its overlay
    names = re.findall(r"\[(\w+), (\w+)\]", call.group(2).split("pairs:")[1])
    assert len(names) == 2  # the served run's pockets, then the pocket changes
    rings = json.loads(re.search(rf"{names[1][1]}_add\((\{{.*?\}})\);\n", page, re.S).group(1))
    assert [f["properties"]["status"] for f in rings["features"]] == [
        f["properties"]["status"] for f in
        compare_app.test_client().get("/api/compare/pockets.geojson").json["features"]]
    for feature in rings["features"]:
        assert feature["geometry"]["type"] == "Point"
        assert feature["properties"]["color"] == STATUS_COLORS[feature["properties"]["status"]]
        assert 7.0 <= feature["properties"]["radius"] <= 16.0


@pytest.mark.parametrize("query", ["z=%C2%B2", "z=99", "z=-1", "resolution=%D9%A8",
                                   "resolution=%C2%B2", "resolution=4"])
def test_web_change_legend_rejects_odd_numbers(compare_app, query: str) -> None:
    """Superscript and non-ASCII digits are a 400 (they used to pass str.isdigit: 500)."""
    resp = compare_app.test_client().get(f"/tiles/change_extreme_rate/legend.json?{query}")
    assert resp.status_code == 400 and resp.json["error"]


def test_web_change_tiles_hatch_one_sided_cells(compare_app) -> None:
    """Cells published in one run only are drawn hatched (no change shown), others plain."""
    svc = compare_app.extensions["kantong_compare"]
    res = max(svc.resolutions)
    cells = svc.changes(res)
    nodata = svc.nodata("change_extreme_households", res)
    values = cells["extreme_households_delta"].to_numpy(dtype="float64", na_value=np.nan)
    assert (nodata == ~np.isfinite(values)).all() and nodata.any() and not nodata.all()


def test_web_without_compare_has_no_change_layers(two_years: tuple[Path, Path]) -> None:
    from kantong.webmap import create_app

    app = create_app({"TESTING": True, "RUN_DIR": str(two_years[1])})
    client = app.test_client()
    assert client.get("/api/compare/regencies").status_code == 404
    assert client.get("/tiles/change_extreme_households/10/0/0.png").status_code == 404
    assert "change_extreme_households" not in client.get("/").get_data(as_text=True)


def test_web_compare_rejects_same_run(two_years: tuple[Path, Path]) -> None:
    from kantong.engine.errors import ConfigError
    from kantong.webmap import create_app

    with pytest.raises(ConfigError, match="compare run is the served run"):
        create_app({"TESTING": True, "RUN_DIR": str(two_years[1]),
                    "COMPARE_RUN_DIR": str(two_years[1])})


def test_serve_compare_option_checks_directory(two_years: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--run", str(two_years[1]), "--compare",
                                      str(tmp_path / "missing")])
    assert result.exit_code == 1 and "--compare run directory not found" in result.output
    assert "--compare" in CliRunner().invoke(cli, ["serve", "--help"]).output


def test_a_copied_run_is_refused(tmp_path):
    import shutil

    from factories import make_run

    from kantong.engine.compare.run import compare_runs
    from kantong.engine.errors import InputError

    make_run(tmp_path / "a", seed=1)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with pytest.raises(InputError, match="copies of the same run"):
        compare_runs(tmp_path / "a", tmp_path / "b")
