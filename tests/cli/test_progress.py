"""Progress on a terminal: stages are announced on stderr, silent with -q or without a tty."""

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_households

from kantong.engine import progress


@pytest.fixture(scope="module")
def households_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "households.csv"
    make_households(seed=3, radius=4).households.to_csv(path, index=False)
    return path


def _build(args: list[str], out: Path, households: Path, *, tty: bool) -> tuple[int, str]:
    cmd = [sys.executable, "-c", "from kantong.engine.cli import main; main()", *args,
           "build", "--households", str(households), "--no-pockets", "--out", str(out)]
    if not tty:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def test_build_shows_its_stages_on_a_terminal(households_csv, tmp_path):
    code, err = _build([], tmp_path / "run", households_csv, tty=True)
    assert code == 0, err
    for label in ("reading and fusing households", "cells", "rollups",
                  "writing the run directory"):
        assert f"{label}: done" in err, err


def test_quiet_and_non_terminal_runs_show_no_progress(households_csv, tmp_path):
    code, err = _build(["-q"], tmp_path / "quiet", households_csv, tty=True)
    assert code == 0, err
    assert "done" not in err
    code, err = _build([], tmp_path / "pipe", households_csv, tty=False)
    assert code == 0, err
    assert "done" not in err


def test_library_stages_are_silent_without_a_reporter(capsys):
    with progress.stage("work", total=2) as bar:
        bar.advance(2)
    assert bar.done == 2
    assert capsys.readouterr() == ("", "")
