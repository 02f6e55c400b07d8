"""PublishedRun: the one privacy gate between a run directory and anything published."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from factories import PlantedPockets, make_households, make_run, seal_run

from kantong.engine.constants import DEFAULT_MIN_HOUSEHOLDS, PERSONAL_FIELDS, WGS84
from kantong.engine.errors import ConfigError, InputError, RunError
from kantong.engine.publish import privacy
from kantong.engine.publish.published import (
    PUBLIC_CELL_COLUMNS,
    REGENCY_COLUMNS,
    PublishedRun,
    is_public_cell_column,
)

SITE_TYPES = ("puskesmas", "school")


def add_pockets_and_sites(run: Path, truth: PlantedPockets, *, seed: int = 0) -> None:
    """Add pocket columns, pockets.parquet and two sites files following the contracts.

    Pockets 1 and 2 are the planted pockets; pocket 3 is a single small cell (always
    withheld). Sites have decreasing new counts, crossing below K=10 in the tail.
    """
    rng = np.random.default_rng(seed + 7)
    cells = gpd.read_parquet(run / "cells.parquet")
    pid = pd.Series(pd.NA, index=cells.index, dtype="Int64")
    for i, members in enumerate(truth.pocket_cells, start=1):
        pid[cells["h3"].isin(members)] = i
    small = cells.index[(cells["households"] < 5) & pid.isna()]
    if len(small):
        pid[small[0]] = 3
    cells["pocket_id"] = pid
    cells["extreme_rate_eb"] = cells["extreme_rate"] * 0.9
    cells["gi_z"] = rng.normal(size=len(cells)) + pid.notna().to_numpy() * 3.0
    cells["gi_p"] = rng.uniform(size=len(cells))
    cells["gi_q"] = cells["gi_p"]
    cells["hot"] = pid.notna().to_numpy()
    cells["priority"] = cells["extreme_rate"].rank(pct=True)
    cells["contrib_extreme_rate"] = cells["priority"] * 0.6
    cells["contrib_travel"] = cells["priority"] * 0.4
    cells["rank_province"] = cells["priority"].rank(ascending=False, method="first").astype(int)
    cells["rank_regency"] = (cells.groupby("regency_code")["priority"]
                             .rank(ascending=False, method="first").astype(int))
    cells.to_parquet(run / "cells.parquet")
    inside = cells[cells["pocket_id"].notna()].copy()
    inside["pocket_id"] = inside["pocket_id"].astype("int64")
    pockets = inside.dissolve(by="pocket_id", aggfunc={
        "households": "sum", "extreme_households": "sum", "persons": "sum",
        "extreme_persons": "sum", "regency_code": "first", "regency_name": "first"}).reset_index()
    pockets["strategy"] = [1 + i % 3 for i in range(len(pockets))]
    pockets["strategy_label"] = pockets["strategy"].map(
        {1: "reduce expenditure", 2: "raise income", 3: "eliminate pockets"})
    pockets["priority"] = np.linspace(0.9, 0.3, len(pockets))
    pockets["rank_province"] = np.arange(1, len(pockets) + 1)
    pockets["rank_regency"] = np.arange(1, len(pockets) + 1)
    pockets["strategy_reason"] = [f"{h} extreme-poor households" for h in
                                  pockets["extreme_households"]]
    pockets.to_parquet(run / "pockets.parquet")
    (run / "sites").mkdir(exist_ok=True)
    for j, kind in enumerate(SITE_TYPES):
        at = cells.sort_values("extreme_households", ascending=False).iloc[j * 5:j * 5 + 5]
        new = np.array([40, 22, 12, 7, 3]) + j
        sites = gpd.GeoDataFrame({
            "rank": np.arange(1, 6), "new_extreme_households": new,
            "cumulative_extreme_households": np.cumsum(new),
            "covered_persons": new * 5, "regency_code": at["regency_code"].to_numpy(),
            "regency_name": at["regency_name"].to_numpy(),
            "lon": at["lon"].to_numpy(), "lat": at["lat"].to_numpy(),
        }, geometry=gpd.points_from_xy(at["lon"], at["lat"]), crs=WGS84)
        sites.to_parquet(run / "sites" / f"sites_{kind}.parquet")
    seal_run(run)  # the files changed on purpose: record their hashes


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory) -> tuple[Path, PlantedPockets]:
    """A run with many small cells (mean 9 households per r8 cell), pockets and sites."""
    run = tmp_path_factory.mktemp("sparse") / "run"
    truth = make_run(run, seed=5, planted=make_households(seed=5, mean_households=9.0),
                     with_friction=False)
    add_pockets_and_sites(run, truth, seed=5)
    return run, truth


@pytest.fixture(scope="module")
def pub(sparse_run) -> PublishedRun:
    return PublishedRun(sparse_run[0])


def _raw(run: Path, res: int | None = None) -> gpd.GeoDataFrame:
    if res is None or res == 8:
        return gpd.read_parquet(run / "cells.parquet")
    return gpd.read_parquet(run / "rollups" / f"cells_r{res}.parquet")


def test_interface(pub, sparse_run):
    assert pub.run_dir == sparse_run[0]
    assert pub.min_households == DEFAULT_MIN_HOUSEHOLDS
    assert pub.run_id == "test-5"
    assert pub.resolutions == [5, 6, 7, 8]
    assert pub.base_resolution == 8
    assert isinstance(pub.manifest, dict)


def test_every_published_cell_has_k_households(pub):
    for res in pub.resolutions:
        cells = pub.cells(res)
        assert cells.crs.to_epsg() == 4326
        assert (cells["households"] >= pub.min_households).all()
        assert (cells["resolution"] == res).all()


def test_small_cells_are_withheld_not_blanked(pub, sparse_run):
    raw = _raw(sparse_run[0])
    small = set(raw.loc[raw["households"] < 10, "h3"])
    assert len(small) > 50  # the fixture is meant to be sparse
    published = pub.cells()
    assert not small & set(published["h3"])
    assert published[["households", "extreme_households"]].notna().all().all()
    for h in list(small)[:20]:
        assert pub.cell(h) is None
    assert pub.withheld(8) == len(raw) - len(published)


def test_published_values_are_the_true_values(pub, sparse_run):
    for res in pub.resolutions:
        raw = _raw(sparse_run[0], res).set_index("h3")
        got = pub.cells(res).set_index("h3")
        for col in ("households", "extreme_households", "persons", "n_no_improved_water"):
            assert (got[col] == raw.loc[got.index, col]).all()


def test_only_allow_listed_columns(pub):
    for res in pub.resolutions:
        cols = set(pub.cells(res).columns)
        assert all(is_public_cell_column(c) for c in cols)
        assert not cols & {"gi_z", "gi_p", "gi_q", "extreme_rate_eb", "household_id"}
        assert not cols & PERSONAL_FIELDS
    assert {"h3", "households", "geometry"} <= set(PUBLIC_CELL_COLUMNS)
    assert is_public_cell_column("travel_min_school")
    assert is_public_cell_column("elevation_mean")
    assert not is_public_cell_column("nik")
    assert not is_public_cell_column("gi_z")


def test_cell_lookup_any_resolution(pub):
    for res in pub.resolutions:
        row = pub.cells(res).iloc[0]
        got = pub.cell(row["h3"])
        assert got["households"] == row["households"]
        assert "geometry" not in got
        assert isinstance(got["households"], int)
        json.dumps(got, allow_nan=False)
    assert pub.cell("not-a-cell") is None
    assert pub.cell(h3.latlng_to_cell(0.05, 110.75, 10)) is None  # resolution not in run
    assert pub.cell(h3.latlng_to_cell(-3.0, 116.0, 8)) is None  # no households there


def test_regency_filter_and_errors(pub):
    codes = pub.regency_codes()
    assert len(codes) >= 2
    for res in pub.resolutions:
        parts = [pub.cells(res, regency=c) for c in codes]
        assert sum(len(p) for p in parts) == len(pub.cells(res))
        assert all((p["regency_code"] == c).all() for p, c in zip(parts, codes, strict=True))
    with pytest.raises(InputError, match="regency '9999' not in this run"):
        pub.cells(regency="9999")
    with pytest.raises(InputError, match="resolution 9 not in this run"):
        pub.cells(9)


def test_cells_are_cached_and_copies(pub):
    a = pub.cells(7)
    a["households"] = -1
    assert (pub.cells(7)["households"] >= 10).all()


def test_min_households_default_config_and_floor(sparse_run, tmp_path):
    run = sparse_run[0]
    assert PublishedRun(run, min_households=3, allow_lower_k=True).min_households == 3
    with pytest.raises(ConfigError, match=">= 3"):
        PublishedRun(run, min_households=2)
    copy = tmp_path / "run"
    copy.mkdir()
    for p in run.rglob("*"):
        if p.is_file():
            dest = copy / p.relative_to(run)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(p.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"] = {"privacy": {"min_households": 25}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    pub25 = PublishedRun(copy, trust_run=True)  # the edited manifest is trusted on purpose
    assert pub25.min_households == 25
    assert (pub25.cells()["households"] >= 25).all()
    manifest["config"] = {"privacy": {"min_households": 1}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError):
        PublishedRun(copy, trust_run=True)


def test_larger_k_withholds_more(sparse_run):
    run = sparse_run[0]
    n = [len(PublishedRun(run, min_households=k, allow_lower_k=True).cells())
         for k in (3, 10, 30)]
    assert n[0] > n[1] > n[2]


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        PublishedRun(tmp_path)


def test_rollup_inconsistent_with_cells_is_refused(tiny_run):
    run, _ = tiny_run
    path = run / "rollups" / "cells_r7.parquet"
    r7 = gpd.read_parquet(path)
    r7.loc[0, "households"] += 1
    r7.to_parquet(path)
    with pytest.raises(RunError, match="not the exact sum"):
        PublishedRun(run, trust_run=True).cells()  # past the hash check: the rollup check


def test_layer_without_crs_is_refused(tiny_run):
    run, _ = tiny_run
    cells = gpd.read_parquet(run / "cells.parquet")
    cells.set_crs(None, allow_override=True).to_parquet(run / "cells.parquet")
    with pytest.raises(RunError, match="no CRS"):
        PublishedRun(run, trust_run=True).cells()


def test_pockets(pub, sparse_run):
    run = sparse_run[0]
    pockets = pub.pockets()
    raw = gpd.read_parquet(run / "pockets.parquet")
    assert 3 in set(raw["pocket_id"])
    assert 3 not in set(pockets["pocket_id"])  # a single small cell: withheld
    assert (pockets["households"] >= pub.min_households).all()
    assert "strategy_reason" not in pockets.columns
    # pockets 1 and 2 (planted) keep >= K households in published cells; pocket 3 is one small
    # cell: exactly one pocket withheld
    assert set(pockets["pocket_id"]) == {1, 2}
    assert pub.pockets_withheld() == 1
    cells = pub.cells()
    raw_cells = gpd.read_parquet(run / "cells.parquet")
    for _, p in pockets.iterrows():
        inside = cells[cells["pocket_id"] == p["pocket_id"]]
        true = raw_cells[raw_cells["pocket_id"] == p["pocket_id"]]
        if p["totals"] == "exact":  # the run's own totals (engine/publish/totals.py)
            assert p["households"] == true["households"].sum()
            assert p["extreme_households"] == true["extreme_households"].sum()
        else:  # protected: published cells plus safe withheld ones, never more than true
            assert (inside["households"].sum() <= p["households"]
                    <= true["households"].sum())
        assert p["cells"] == len(inside)
        union = shapely.union_all(inside.geometry.to_numpy())
        assert p.geometry.symmetric_difference(union).area < 1e-12
        assert p.geometry.contains(shapely.Point(p["lon"], p["lat"]))
    # cells of a withheld pocket carry no pocket id
    assert 3 not in set(cells["pocket_id"].dropna())
    assert pockets["rank_province"].tolist() == list(range(1, len(pockets) + 1))


def test_sites_withhold_small_counts_without_differencing(pub):
    sites = pub.sites()
    assert set(sites["type"]) == set(SITE_TYPES)
    assert sites.crs.to_epsg() == 4326
    for _kind, g in sites.groupby("type"):
        g = g.sort_values("rank")
        new = g["new_extreme_households"]
        assert new.dropna().ge(10).all()
        assert new.isna().sum() == 2  # ranks 4 and 5: 7 + j and 3 + j households < K
        assert g.loc[new.isna(), "rank"].tolist() == [4, 5]
        first_hidden = int(g.loc[new.isna(), "rank"].min())
        after = g["rank"] >= first_hidden
        assert g.loc[after, "cumulative_extreme_households"].isna().all()
        assert g.loc[after, "covered_persons"].isna().all()
        cum = g.loc[~after, "cumulative_extreme_households"].astype(int).to_numpy()
        assert (np.diff(cum, prepend=0) == new[~after.to_numpy()].astype(int).to_numpy()).all()


def test_sites_empty_when_none(tiny_run):
    sites = PublishedRun(tiny_run[0]).sites()
    assert sites.empty and "new_extreme_households" in sites.columns
    assert PublishedRun(tiny_run[0]).pockets().empty


def test_regencies_consistent_with_published_cells(pub, sparse_run):
    reg = pub.regencies()
    assert list(reg.columns) == list(REGENCY_COLUMNS)
    assert (reg["households"] >= pub.min_households).all()
    cells = pub.cells()
    for _, r in reg.iterrows():
        mine = cells[cells["regency_code"] == r["regency_code"]]
        assert r["cells"] == len(mine)
        assert r["households"] >= mine["households"].sum()
    # the released totals never exceed the true totals and keep most households
    raw = _raw(sparse_run[0])
    assert reg["households"].sum() <= raw["households"].sum()
    assert reg["households"].sum() >= 0.9 * raw["households"].sum()
    assert reg["pockets"].sum() == len(pub.pockets())


def test_indicators(pub):
    ind = pub.indicators()
    assert {"households", "extreme_rate", "travel_min_puskesmas", "priority",
            "contrib_travel"} <= set(ind)
    assert not {"lon", "lat", "resolution", "pocket_id", "hot", "h3"} & set(ind)


def test_plan_statuses_cover_every_cell(pub, sparse_run):
    plan = pub.plan
    for res in pub.resolutions:
        raw = _raw(sparse_run[0], res)
        assert set(plan.status[res].index) == set(raw["h3"])
        assert set(plan.status[res].unique()) <= set(privacy.STATUSES)


@pytest.mark.parametrize("bad", ["8f2830828052d25f", "08928308280fffff", "zzz", "", "8" * 40])
def test_cell_lookup_of_malformed_ids_is_none(pub, bad):
    assert pub.cell(bad) is None
