"""Issue 18, "never destroy": commands write only to paths they own."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trustcli import assert_one_line_error, invoke

from kantong.engine.atomic import (
    JOURNAL_PREFIX,
    OLD_PREFIX,
    TEMP_PREFIX,
    atomic_dir,
    atomic_files,
    cleanup,
)
from kantong.engine.rundir import verify_run


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_build_refuses_a_directory_holding_its_input(trust_inputs: Path, tmp_path: Path
                                                     ) -> None:
    folder = tmp_path / "D"
    folder.mkdir()
    (folder / "hh.csv").write_bytes((trust_inputs / "hh.csv").read_bytes())
    before = _tree(folder)
    line = assert_one_line_error(invoke("build", "--households", folder / "hh.csv",
                                        "--population", "none", "--out", folder))
    assert "hh.csv" in line
    assert _tree(folder) == before


@pytest.mark.parametrize("content", ["notes.txt", "sub/notes.txt"])
def test_build_refuses_a_foreign_non_empty_directory(trust_inputs: Path, tmp_path: Path,
                                                     content: str) -> None:
    folder = tmp_path / "D"
    (folder / content).parent.mkdir(parents=True)
    (folder / content).write_text("mine")
    assert_one_line_error(invoke("build", "--households", trust_inputs / "hh.csv",
                                 "--population", "none", "--out", folder))
    assert (folder / content).read_text() == "mine"


def test_build_refuses_a_file_as_out(trust_inputs: Path, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("mine")
    assert_one_line_error(invoke("build", "--households", trust_inputs / "hh.csv",
                                 "--population", "none", "--out", target))
    assert target.read_text() == "mine"


def test_build_replaces_its_own_previous_run(trust_inputs: Path, run_copy: Path) -> None:
    old_id = json.loads((run_copy / "manifest.json").read_text())["run_id"]
    result = invoke("build", "--households", trust_inputs / "hh.csv", "--population", "none",
                    "--no-pockets", "--out", run_copy)
    assert result.exit_code == 0, result.output
    manifest = verify_run(run_copy)
    assert manifest["run_id"] != old_id
    assert not [p for p in run_copy.parent.iterdir() if p.name.startswith(".kantong-")]


def test_build_refuses_a_previous_run_holding_a_foreign_file(trust_inputs: Path,
                                                             run_copy: Path) -> None:
    (run_copy / "my_analysis.xlsx").write_text("mine")
    assert_one_line_error(invoke("build", "--households", trust_inputs / "hh.csv",
                                 "--population", "none", "--out", run_copy))
    assert (run_copy / "my_analysis.xlsx").read_text() == "mine"


@pytest.mark.parametrize("name", ["cells.parquet", "manifest.json", "rollups/x.parquet"])
def test_sites_and_export_never_write_a_run_file(run_copy: Path, name: str) -> None:
    before = _tree(run_copy)
    assert_one_line_error(invoke("sites", "--run", run_copy, "--type", "puskesmas",
                                 "--count", 1, "--max-minutes", 30,
                                 "--out", (run_copy / name).with_suffix(".geojson")))
    assert_one_line_error(invoke("export", "--run", run_copy, "--layer", "cells",
                                 "--format", "parquet", "--out", run_copy / name))
    assert _tree(run_copy) == before
    verify_run(run_copy)


def test_export_overwrites_only_its_own_output(run_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "cells.geojson"
    out.write_text('{"type": "FeatureCollection", "features": []}')
    assert_one_line_error(invoke("export", "--run", run_copy, "--layer", "cells", "--out", out))
    assert out.read_text().startswith('{"type": "FeatureCollection", "features"')
    out.unlink()
    for _ in range(2):  # the second run replaces the first one's output
        result = invoke("export", "--run", run_copy, "--layer", "cells", "--out", out)
        assert result.exit_code == 0, result.output


def test_compare_refuses_to_write_into_a_run(run_copy: Path) -> None:
    before = _tree(run_copy)
    assert_one_line_error(invoke("compare", run_copy, run_copy, "--no-plot",
                                 "--out", run_copy / "cmp"))
    assert_one_line_error(invoke("compare", run_copy, run_copy, "--no-plot", "--out", run_copy))
    assert _tree(run_copy) == before


def test_interrupted_two_rename_swap_is_undone(tmp_path: Path) -> None:
    """A process killed between 'old aside' and 'new in place' leaves the old run back."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "cells.parquet").write_text("old")
    parked = tmp_path / f"{OLD_PREFIX}{_dead_pid()}-abcd-run"
    os.replace(run, parked)
    (tmp_path / f"{TEMP_PREFIX}{_dead_pid()}-abcd-run").mkdir()  # the unfinished new one
    cleanup(tmp_path)
    assert (run / "cells.parquet").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_journal_of_a_killed_writer_is_rolled_forward(tmp_path: Path) -> None:
    pid = _dead_pid()
    finals = [tmp_path / "a.geojson", tmp_path / "a.parquet", tmp_path / "a.json"]
    for f in finals:
        f.write_text("old")
    tmps = [tmp_path / f"{TEMP_PREFIX}{pid}-0000-{f.name}" for f in finals]
    for t in tmps:
        t.write_text("new")
    # killed after the first rename: one file new, two pending in the journal
    os.replace(tmps[0], finals[0])
    (tmp_path / f"{JOURNAL_PREFIX}{pid}-0000-journal.json").write_text(json.dumps(
        {"pid": pid, "moves": [[str(t), str(f)] for t, f in zip(tmps, finals, strict=True)]}))
    cleanup(tmp_path)
    assert [f.read_text() for f in finals] == ["new"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in finals)


def test_atomic_files_is_all_or_nothing(tmp_path: Path) -> None:
    finals = [tmp_path / "s.geojson", tmp_path / "s.json"]
    for f in finals:
        f.write_text("old")
    with pytest.raises(RuntimeError), atomic_files(finals) as tmps:
        tmps[0].write_text("new")
        raise RuntimeError("killed")
    assert [f.read_text() for f in finals] == ["old", "old"]
    with atomic_files(finals) as tmps:
        for t in tmps:
            t.write_text("new")
    assert [f.read_text() for f in finals] == ["new", "new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in finals)


def test_atomic_dir_keeps_the_old_directory_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "x").write_text("new")
        raise RuntimeError("failed")
    assert (out / "x").read_text() == "old"
    with atomic_dir(out) as tmp:
        (tmp / "x").write_text("new")
    assert (out / "x").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("delay", [2.0])
def test_kill_9_during_build_leaves_the_old_run(trust_inputs: Path, run_copy: Path,
                                                delay: float) -> None:
    """kill -9 at some instant of a rebuild: the run verifies (old or new), temps go later."""
    code = ("import sys; from kantong.engine.cli import main; sys.argv = ['kantong', 'build', "
            f"'--households', {str(trust_inputs / 'hh.csv')!r}, '--population', 'none', "
            f"'--out', {str(run_copy)!r}]; main()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    verify_run(run_copy)  # old or new, complete either way
    cleanup(run_copy.parent)
    assert not [p for p in run_copy.parent.iterdir() if p.name.startswith(".kantong-")]


def test_a_failed_run_update_leaves_the_old_run(run_copy: Path) -> None:
    """pockets/sites update a run through update_run: a failure midway changes nothing."""
    from kantong.engine.rundir import update_run

    before = _tree(run_copy)
    with pytest.raises(RuntimeError), update_run(run_copy) as work:
        (work / "cells.parquet").unlink()  # replaced, as writers do (never edited in place)
        (work / "cells.parquet").write_bytes(b"half written")
        (work / "sites").mkdir()
        (work / "sites" / "sites_x.parquet").write_bytes(b"new")
        raise RuntimeError("killed")
    assert _tree(run_copy) == before
    verify_run(run_copy)
    with update_run(run_copy) as work:  # a successful update is resealed
        (work / "sites").mkdir()
        (work / "sites" / "sites_x.parquet").write_bytes(b"new")
    assert verify_run(run_copy)["files"]["sites/sites_x.parquet"]["size"] == 3
    assert _tree(run_copy)["cells.parquet"] == before["cells.parquet"]


def test_demo_data_never_writes_into_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("mine")
    assert_one_line_error(invoke("demo-data", "--out", tmp_path, "--households", "300"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    out = tmp_path / "demo"
    for _ in range(2):  # a previous demo (its metadata.json) may be replaced
        result = invoke("demo-data", "--out", out, "--households", "300", "--seed", "3")
        assert result.exit_code == 0, result.output


def test_kill_9_during_sites_leaves_whole_sets(run_copy: Path, tmp_path: Path) -> None:
    """kill -9 during `kantong sites --out`: the run verifies, the output set is all or none."""
    out = tmp_path / "out" / "s.geojson"
    code = ("import sys; from kantong.engine.cli import main; sys.argv = ['kantong', 'sites', "
            f"'--run', {str(run_copy)!r}, '--type', 'puskesmas', '--count', '2', "
            f"'--max-minutes', '30', '--out', {str(out)!r}]; main()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    verify_run(run_copy)
    cleanup(out.parent)  # what the next writer there does first
    names = {p.name for p in out.parent.iterdir()} if out.parent.exists() else set()
    assert not {n for n in names if n.startswith(".kantong-")}
    sets = {"s.geojson", "s.parquet", "s.json"}
    assert not (names & sets) or sets <= names, names
