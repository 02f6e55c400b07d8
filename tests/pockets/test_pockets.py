import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from factories import make_run
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score

from kantong.engine.cli.group import cli
from kantong.engine.config import Config
from kantong.engine.errors import RunError
from kantong.engine.pockets.hotspots import neighbour_weights
from kantong.engine.pockets.run import CELL_COLUMNS, find_pockets, write_pockets

CONTRIBS = ["contrib_extreme_households", "contrib_extreme_rate", "contrib_deprivation",
            "contrib_travel", "contrib_assistance_gap"]


@pytest.fixture
def written(tiny_run):
    run, truth = tiny_run
    summary = write_pockets(run, Config())
    return run, truth, summary


def test_planted_pockets_are_found(written):
    run, truth, summary = written
    cells = gpd.read_parquet(run / "cells.parquet")
    assert summary.n_pockets == 2
    for planted in truth.pocket_cells:
        found = cells.loc[cells["h3"].isin(planted), "pocket_id"].mode()[0]
        members = set(cells.loc[cells["pocket_id"] == found, "h3"])
        iou = len(members & planted) / len(members | planted)
        assert iou >= 0.8
    label_truth = np.zeros(len(cells), int)
    for k, planted in enumerate(truth.pocket_cells, start=1):
        label_truth[cells["h3"].isin(planted).to_numpy()] = k
    ari = adjusted_rand_score(label_truth, cells["pocket_id"].fillna(0).astype(int))
    assert ari >= 0.8


def test_cells_contract_and_contiguity(written):
    run, _, summary = written
    cells = gpd.read_parquet(run / "cells.parquet")
    for col in CELL_COLUMNS:
        assert col in cells.columns
    assert str(cells["pocket_id"].dtype) == "Int64"
    assert cells["hot"].dtype == bool
    assert cells["gi_q"].ge(cells["gi_p"]).all()
    inside = cells["pocket_id"].notna()
    assert cells.loc[inside, "hot"].all()
    for pid, grp in cells[inside].groupby("pocket_id"):
        adj = neighbour_weights(grp["h3"].to_numpy(), k_ring=1, include_self=False)
        assert connected_components(adj, directed=False)[0] == 1, pid
    np.testing.assert_allclose(cells[CONTRIBS].sum(axis=1), cells["priority"], atol=1e-12)
    assert cells["priority"].between(0, 1 + 1e-12).all()
    assert sorted(cells["rank_province"]) == list(range(1, len(cells) + 1))
    for _, grp in cells.groupby("regency_code"):
        assert sorted(grp["rank_regency"]) == list(range(1, len(grp) + 1))
    assert summary.households_in_pockets == cells.loc[inside, "households"].sum()


def test_pocket_outputs(written):
    run, _, summary = written
    pockets = gpd.read_parquet(run / "pockets.parquet")
    geo = gpd.read_file(run / "pockets.geojson")
    cells = gpd.read_parquet(run / "cells.parquet")
    assert pockets.crs.to_epsg() == 4326 and geo.crs.to_epsg() == 4326
    assert len(geo) == len(pockets) == summary.n_pockets
    assert pockets["pocket_id"].tolist() == list(range(1, len(pockets) + 1))
    assert pockets.geometry.is_valid.all() and (pockets.geom_type == "Polygon").all()
    assert pockets["extreme_households"].is_monotonic_decreasing
    assert pockets["cells"].sum() == cells["pocket_id"].notna().sum()  # no cell in two pockets
    assert pockets["extreme_households"].min() >= Config().pockets.min_extreme_households
    for col in ("households", "extreme_households", "persons", "extreme_persons",
                "extreme_rate", "travel_min_puskesmas", "share_no_electricity",
                "dominant_deprivations", "regencies", "regency_code", "assistance_gap",
                "strategy", "strategy_label", "strategy_reason", "priority", *CONTRIBS,
                "rank_province", "rank_regency"):
        assert col in pockets.columns, col
    np.testing.assert_allclose(pockets[CONTRIBS].sum(axis=1), pockets["priority"], atol=1e-12)
    # the factory plants far, deprived pockets: strategy 3
    assert set(pockets["strategy"]) == {3}
    assert pockets["regencies"].str.match(r"^61\d\d ").all()
    assert sorted(pockets["rank_province"]) == list(range(1, len(pockets) + 1))
    by_id = pockets.set_index("pocket_id")
    sums = cells[cells["pocket_id"].notna()].groupby("pocket_id")["extreme_households"].sum()
    np.testing.assert_array_equal(
        by_id.loc[sums.index.astype(int), "extreme_households"].to_numpy(), sums.to_numpy())


def test_manifest_record_keeps_other_keys(written):
    run, _, summary = written
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["run_id"] == "test-0"
    rec = manifest["pockets"]
    assert rec["parameters"]["k_ring"] == 1 and rec["parameters"]["fdr"] == 0.05
    assert rec["counts"]["pockets"] == summary.n_pockets
    assert sum(rec["score"]["weights"].values()) == pytest.approx(1.0)
    assert {"read", "hotspots", "pockets", "score_strategy", "write", "total"} <= set(
        rec["timings_s"])


def test_rerun_is_idempotent_and_deterministic(written):
    run, _, _ = written
    first_cells = gpd.read_parquet(run / "cells.parquet")
    first_pockets = gpd.read_parquet(run / "pockets.parquet")
    write_pockets(run, Config())
    again_cells = gpd.read_parquet(run / "cells.parquet")
    assert list(again_cells.columns) == list(first_cells.columns)
    pd.testing.assert_frame_equal(pd.DataFrame(again_cells.drop(columns="geometry")),
                                  pd.DataFrame(first_cells.drop(columns="geometry")))
    again_pockets = gpd.read_parquet(run / "pockets.parquet")
    pd.testing.assert_frame_equal(pd.DataFrame(again_pockets.drop(columns="geometry")),
                                  pd.DataFrame(first_pockets.drop(columns="geometry")))
    assert again_pockets.geometry.equals(first_pockets.geometry)
    # other parameters replace (not add) the columns
    write_pockets(run, Config().replace("pockets", fdr=0.01))
    strict = gpd.read_parquet(run / "cells.parquet")
    assert list(strict.columns) == list(first_cells.columns)
    assert strict["hot"].sum() <= first_cells["hot"].sum()


def test_find_pockets_is_order_free(tiny_run):
    run, _ = tiny_run
    cells = gpd.read_parquet(run / "cells.parquet")
    a_cells, a_pockets = find_pockets(cells)
    shuffled = cells.sample(frac=1.0, random_state=3)
    b_cells, b_pockets = find_pockets(shuffled)
    a = a_cells.set_index("h3")["pocket_id"]
    b = b_cells.set_index("h3")["pocket_id"].loc[a.index]
    assert a.equals(b)
    pd.testing.assert_series_equal(a_pockets["priority"], b_pockets["priority"])


def test_pure_noise_run_has_no_pocket(tmp_path):
    from factories import make_households

    for seed in (11, 12):
        truth = make_households(seed=seed, pocket_rate=0.08, background_rate=0.08, radius=8)
        make_run(tmp_path / f"r{seed}", seed=seed, planted=truth, with_friction=False)
        summary = write_pockets(tmp_path / f"r{seed}", Config())
        assert summary.n_pockets == 0
        pockets = gpd.read_parquet(tmp_path / f"r{seed}" / "pockets.parquet")
        assert len(pockets) == 0 and "strategy" in pockets.columns
        assert gpd.read_file(tmp_path / f"r{seed}" / "pockets.geojson").empty


def test_missing_run_and_missing_cells(tmp_path):
    with pytest.raises(RunError, match="run directory not found"):
        write_pockets(tmp_path / "nope", Config())
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="cells.parquet"):
        write_pockets(tmp_path / "empty", Config())


def test_missing_column_is_a_run_error(tiny_run):
    run, _ = tiny_run
    cells = gpd.read_parquet(run / "cells.parquet").drop(columns=["extreme_households"])
    cells.to_parquet(run / "cells.parquet")
    with pytest.raises(RunError, match="extreme_households"):
        write_pockets(run, Config())


def test_cli_pockets(tiny_run, tmp_path):
    run, _ = tiny_run
    png = tmp_path / "map.png"
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--method", "gistar",
                                   "--k-ring", "2", "--min-extreme-households", "30",
                                   "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "2 pockets" in res.output and "k-ring 2" in res.output
    assert "Eliminate the pocket" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pockets"]["parameters"]["k_ring"] == 2
    assert manifest["pockets"]["parameters"]["min_extreme_households"] == 30


def test_cli_config_file(tiny_run, tmp_path):
    run, _ = tiny_run
    toml = tmp_path / "kantong.toml"
    toml.write_text("[pockets]\nfdr = 0.01\nstrategy_travel_min = 500.0\n"
                    "strategy_infrastructure_share = 1.0\n"
                    "[score.weights]\nextreme_households = 1.0\n")
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--config", str(toml)])
    assert res.exit_code == 0, res.output
    pockets = gpd.read_parquet(run / "pockets.parquet")
    assert set(pockets["strategy"]) == {1}  # far/deprived rows disabled; gaps are large
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pockets"]["score"]["weights"]["extreme_households"] == 1.0


@pytest.mark.parametrize("fdr", ["1.5", "0", "abc"])
def test_cli_bad_fdr_is_one_line(tiny_run, fdr):
    run, _ = tiny_run
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--fdr", fdr])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--fdr" in errors[0]
    assert "Traceback" not in res.output


def test_cli_missing_run_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["pockets", "--run", str(tmp_path / "missing")])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0
    assert res.output.startswith("Error: ") and "run directory not found" in res.output


def test_cli_bad_weights_file(tiny_run, tmp_path):
    run, _ = tiny_run
    toml = tmp_path / "k.toml"
    toml.write_text("[score.weights]\npoverty = 1.0\n")
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--config", str(toml)])
    assert res.exit_code == 1 and "unknown indicator" in res.output
    shutil.rmtree(run)


@pytest.fixture
def sparse_run(tmp_path):
    """Few households per r8 cell (like a remote interior): pockets are searched coarser."""
    from factories import make_households

    # ~half the r8 cells are empty: settlements are scattered, pockets are not contiguous at r8
    truth = make_households(seed=21, radius=40, mean_households=0.7, background_rate=0.03,
                            pocket_rate=0.5, pockets=((12, -8, 9), (-14, 10, 8)))
    run = tmp_path / "sparse"
    make_run(run, seed=21, planted=truth, with_friction=False)
    return run, truth


def test_sparse_run_searches_coarser_and_finds_pockets(sparse_run):
    import h3

    run, truth = sparse_run
    summary = write_pockets(run, Config())
    assert summary.run_resolution == 8 and summary.analysis_resolution < 8
    res = summary.analysis_resolution
    cells = gpd.read_parquet(run / "cells.parquet")
    pockets = gpd.read_parquet(run / "pockets.parquet")
    assert (pockets["analysis_resolution"] == res).all()
    assert pockets.geometry.is_valid.all()
    cells["parent"] = [h3.cell_to_parent(c, res) for c in cells["h3"]]
    # every cell shares its parent's statistics and pocket
    per_parent = cells.groupby("parent").agg(p=("pocket_id", "nunique"), z=("gi_z", "nunique"),
                                             na=("pocket_id", lambda s: s.isna().nunique()))
    assert (per_parent["p"] <= 1).all() and (per_parent["z"] == 1).all()
    assert (per_parent["na"] == 1).all()
    for pid, grp in cells[cells["pocket_id"].notna()].groupby("pocket_id"):
        parents = grp["parent"].unique()
        adj = neighbour_weights(parents, k_ring=1, include_self=False)
        assert connected_components(adj, directed=False)[0] == 1, pid
        assert pockets.set_index("pocket_id").loc[int(pid), "cells"] == len(grp)
    planted = cells["h3"].isin(set().union(*truth.pocket_cells))
    inside = cells["pocket_id"].notna()
    ext = cells["extreme_households"]
    assert ext[planted & inside].sum() >= 0.8 * ext[planted].sum()
    assert ext[~planted & inside].sum() <= 0.25 * ext[inside].sum()
    # the same run forced to the build resolution finds far less
    fine = write_pockets(run, Config().replace("pockets", analysis_resolution=8))
    assert fine.extreme_households_in_pockets < 0.7 * summary.extreme_households_in_pockets


def test_cli_analysis_resolution(tiny_run):
    run, _ = tiny_run
    res = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--analysis-resolution", "7"])
    assert res.exit_code == 0, res.output
    assert "resolution 7" in res.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["pockets"]["analysis_resolution"] == 7
    bad = CliRunner().invoke(cli, ["pockets", "--run", str(run), "--analysis-resolution", "9"])
    assert bad.exit_code == 1 and bad.output.startswith("Error: ")
    assert "finer than the run" in bad.output
