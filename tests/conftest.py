"""Shared fixtures: tiny seeded data and run directories (see tests/factories.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factories import PlantedPockets, make_households, make_run  # noqa: E402


@pytest.fixture
def planted() -> PlantedPockets:
    """Households with two planted pockets (seed 0)."""
    return make_households(seed=0)


@pytest.fixture
def tiny_run(tmp_path: Path) -> tuple[Path, PlantedPockets]:
    """A contract-compliant run directory built the naive way, without pocket columns."""
    run = tmp_path / "run"
    truth = make_run(run, seed=0)
    return run, truth
