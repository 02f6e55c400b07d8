"""Fixtures of the trust tests: a small real run built once, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from factories import make_households
from trustcli import invoke


@pytest.fixture(scope="session")
def trust_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small household register (CSV) in a folder of its own."""
    folder = tmp_path_factory.mktemp("trust-inputs")
    make_households(seed=5, radius=5, mean_households=12.0).households.to_csv(
        folder / "hh.csv", index=False)
    return folder


@pytest.fixture(scope="session")
def built_run(trust_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run written by ``kantong build`` (with pockets), built once per session."""
    run = tmp_path_factory.mktemp("trust-run") / "run"
    result = invoke("build", "--households", trust_inputs / "hh.csv", "--population", "none",
                    "--out", run)
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def run_copy(built_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``built_run`` that a test may damage."""
    target = tmp_path / "run"
    shutil.copytree(built_run, target)
    return target


class _NoListen:
    """Stands in for waitress's server: ``kantong serve`` returns as on Ctrl+C."""

    effective_port = 8123

    def run(self) -> None:
        raise KeyboardInterrupt

    def close(self) -> None:
        pass


@pytest.fixture
def no_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``kantong serve`` validate and set up everything, then stop without listening."""
    import waitress

    monkeypatch.setattr(waitress, "create_server", lambda *a, **kw: _NoListen())
