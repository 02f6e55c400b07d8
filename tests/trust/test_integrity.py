"""Issue 18, "integrity": tampered runs are refused; cells are validated on load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import geopandas as gpd
import pytest
from trustcli import assert_one_line_error, invoke

from kantong.engine.errors import PrivacyError, RunError
from kantong.engine.publish.published import PublishedRun
from kantong.engine.rundir import file_hashes, seal_manifest, verify_run


def _edit_one_count(run: Path) -> None:
    cells = gpd.read_parquet(run / "cells.parquet")
    i = int(cells["households"].idxmax())
    cells.loc[i, "households"] += 1
    cells.to_parquet(run / "cells.parquet")


def test_build_records_a_hash_of_every_file(built_run: Path) -> None:
    manifest = json.loads((built_run / "manifest.json").read_text())
    files = manifest["files"]
    on_disk = {p.relative_to(built_run).as_posix() for p in built_run.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(files) == on_disk
    assert {"cells.parquet", "rejects.csv", "pockets.parquet"} <= set(files)
    assert files == file_hashes(built_run)
    verify_run(built_run)


def test_a_tampered_count_is_refused_by_every_command(run_copy: Path, tmp_path: Path) -> None:
    _edit_one_count(run_copy)
    for args in (["export", "--run", run_copy, "--layer", "cells", "--out", tmp_path / "c.csv"],
                 ["sites", "--run", run_copy, "--type", "puskesmas", "--count", 1,
                  "--max-minutes", 30],
                 ["pockets", "--run", run_copy],
                 ["serve", "--run", run_copy, "--port", 0],
                 ["compare", run_copy, run_copy, "--no-plot", "--out", tmp_path / "cmp"]):
        line = assert_one_line_error(invoke(*args))
        assert "cells.parquet" in line and "tampered" in line, (args, line)
    # --trust-run skips the hash check, but cells are still validated: the rollups no
    # longer add up to the edited count
    line = assert_one_line_error(invoke("export", "--run", run_copy, "--layer", "cells",
                                        "--trust-run", "--out", tmp_path / "c.csv"))
    assert "not the exact sum" in line


def test_trust_run_skips_the_hash_check(run_copy: Path, tmp_path: Path) -> None:
    with open(run_copy / "rejects.csv", "a") as fh:
        fh.write("x.csv,1,,edited by hand\n")
    args = ["export", "--run", run_copy, "--layer", "cells", "--out", tmp_path / "c.csv"]
    assert "rejects.csv" in assert_one_line_error(invoke(*args))
    result = invoke(*args, "--trust-run")
    assert result.exit_code == 0, result.output


def test_an_edited_manifest_is_refused(run_copy: Path) -> None:
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["config"]["privacy"]["min_households"] = 3
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="manifest was edited"):
        PublishedRun(run_copy)


@pytest.mark.parametrize("content", [b"\x00\x01binary", b"[1, 2, 3]", b"{}"])
def test_unreadable_manifests_are_one_line_errors(run_copy: Path, content: bytes) -> None:
    (run_copy / "manifest.json").write_bytes(content)
    for args in (["pockets", "--run", run_copy],
                 ["sites", "--run", run_copy, "--type", "puskesmas", "--count", 1,
                  "--max-minutes", 30]):
        assert_one_line_error(invoke(*args))


def test_an_added_or_removed_file_is_refused(run_copy: Path) -> None:
    (run_copy / "sites").mkdir(exist_ok=True)
    (run_copy / "sites" / "sites_fake.parquet").write_bytes(b"x")
    with pytest.raises(RunError, match="not part of the run"):
        verify_run(run_copy)
    (run_copy / "sites" / "sites_fake.parquet").unlink()
    (run_copy / "rejects.csv").unlink()
    with pytest.raises(RunError, match="missing"):
        verify_run(run_copy)


def _reseal(run: Path) -> None:
    seal_manifest(run, json.loads((run / "manifest.json").read_text()))


@pytest.mark.parametrize("damage", ["duplicate", "invalid", "negative", "mixed", "no_regency"])
def test_cells_are_validated_on_load(run_copy: Path, damage: str) -> None:
    """Even a run whose hashes match (resealed after the edit) must hold sane cells."""
    cells = gpd.read_parquet(run_copy / "cells.parquet")
    if damage == "duplicate":
        cells = gpd.GeoDataFrame(
            gpd.pd.concat([cells, cells.iloc[[3]]], ignore_index=True), crs=cells.crs)
    elif damage == "invalid":
        cells["h3"] = cells["h3"].astype(object)
        cells.loc[len(cells) - 1, "h3"] = "8f2830828052d25"[:-1] + "z"
    elif damage == "negative":
        cells.loc[2, "persons"] = -5
    elif damage == "mixed":
        cells.loc[1, "h3"] = cells.loc[1, "h3"][:1] + "7" + cells.loc[1, "h3"][2:]
    else:
        cells = cells.drop(columns="regency_code")
    cells.to_parquet(run_copy / "cells.parquet")
    _reseal(run_copy)
    with pytest.raises(RunError):
        PublishedRun(run_copy).cells()
    assert_one_line_error(invoke("sites", "--run", run_copy, "--type", "puskesmas",
                                 "--count", 1, "--max-minutes", 30))


def test_lowering_k_needs_allow_lower_k_and_is_logged(run_copy: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PrivacyError, match="--allow-lower-k"):
        PublishedRun(run_copy, min_households=3)
    line = assert_one_line_error(invoke("export", "--run", run_copy, "--layer", "cells",
                                        "--min-households", 3, "--out", tmp_path / "c.csv"))
    assert "--allow-lower-k" in line
    with caplog.at_level(logging.WARNING):
        pub = PublishedRun(run_copy, min_households=3, allow_lower_k=True)
    assert pub.min_households == 3
    assert any("below the run's" in r.getMessage() for r in caplog.records)
    result = invoke("export", "--run", run_copy, "--layer", "cells", "--min-households", 3,
                    "--allow-lower-k", "--out", tmp_path / "c.csv")
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "c.csv.json").read_text())
    assert sidecar["min_households"] == 3 and sidecar["run_min_households"] == 10


def test_a_rollup_count_that_does_not_add_up_is_refused(run_copy: Path) -> None:
    """Any count of a rollup (not only households) must be the exact sum of the base cells."""
    path = run_copy / "rollups" / "cells_r7.parquet"
    r7 = gpd.read_parquet(path)
    r7.loc[0, "extreme_persons"] += 1
    r7.to_parquet(path)
    _reseal(run_copy)
    with pytest.raises(RunError, match="not the exact sum"):
        PublishedRun(run_copy).cells()
