"""Shared fixtures: tiny seeded data and run directories (see tests/factories.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factories import (  # noqa: E402
    WEB_K,
    PlantedPockets,
    check_withheld_everywhere,
    make_households,
    make_run,
    make_web_households,
    seal_run,
)


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


# ---- web map (webmap/): a served run with pockets and sites, and the Flask fixtures ------

def _add_web_layers(run: Path, truth: PlantedPockets) -> None:
    """Add pocket columns, pockets.parquet and sites/ to a ``make_run`` directory.

    Pocket ``i + 1`` is the i-th planted pocket; ``priority`` is the rank-normalised
    extreme-poverty rate; three puskesmas sites, the last with a small (withheld) count.
    """
    import geopandas as gpd
    import pandas as pd

    cells = gpd.read_parquet(run / "cells.parquet")
    pid = pd.Series(pd.NA, index=cells.index, dtype="Int64")
    for i, members in enumerate(truth.pocket_cells):
        pid[cells["h3"].isin(members)] = i + 1
    cells["hot"] = pid.notna().to_numpy()
    cells["pocket_id"] = pid
    priority = cells["extreme_rate"].rank(pct=True).to_numpy()
    cells["priority"] = priority
    cells["contrib_extreme_rate"] = 0.6 * priority
    cells["contrib_travel"] = 0.4 * priority
    cells["rank_province"] = cells["priority"].rank(ascending=False, method="first").astype(int)
    cells["rank_regency"] = (cells.groupby("regency_code")["priority"]
                             .rank(ascending=False, method="first").astype(int))
    cells.to_parquet(run / "cells.parquet")
    inside = cells[cells["pocket_id"].notna()]
    pockets = inside.dissolve(by="pocket_id", aggfunc={"priority": "mean"}).reset_index()
    pockets["pocket_id"] = pockets["pocket_id"].astype("int64")
    pockets["strategy"] = [3, 1][: len(pockets)]
    pockets["strategy_label"] = ["eliminate pockets", "reduce burden"][: len(pockets)]
    pockets["rank"] = pockets["priority"].rank(ascending=False, method="first").astype(int)
    pockets.to_parquet(run / "pockets.parquet")
    top = cells.sort_values("extreme_households", ascending=False).head(3)
    sites = gpd.GeoDataFrame({
        "rank": [1, 2, 3], "new_extreme_households": [40, 12, 2],
        "cumulative_extreme_households": [40, 52, 54], "covered_persons": [300, 90, 8],
        "regency_code": top["regency_code"].to_numpy(),
        "regency_name": top["regency_name"].to_numpy(),
        "lon": top["lon"].to_numpy(), "lat": top["lat"].to_numpy(),
    }, geometry=gpd.points_from_xy(top["lon"], top["lat"]), crs="EPSG:4326")
    (run / "sites").mkdir(exist_ok=True)
    sites.to_parquet(run / "sites" / "sites_puskesmas.parquet")
    seal_run(run)  # the files changed on purpose: record their hashes


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``make_run`` directory finished by the real stages: pockets and 3 puskesmas sites.

    Households of ``make_web_households``: at K = 10 cells are withheld at every resolution
    (asserted here). Built once per session; tests only read it.
    """
    from kantong.engine.config import Config
    from kantong.engine.pockets.run import write_pockets
    from kantong.engine.sites.run import plan_sites

    run = tmp_path_factory.mktemp("pipeline") / "run"
    make_run(run, seed=0, planted=make_web_households(seed=0))
    write_pockets(run, Config())
    plan_sites(run, facility_type="puskesmas", max_minutes=60, count=3)
    seal_run(run)  # library calls (no CLI transaction): record the hashes of the new files
    check_withheld_everywhere(run, k=WEB_K)
    return run


@pytest.fixture(scope="session")
def web_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with pocket columns, pockets and sites (built once per session).

    Households of ``make_web_households``: at K = 10 cells are withheld at every resolution,
    complementary suppression acts and pocket 1 is published with a withheld cell (asserted
    here, so the web, API, tile and viewer tests really meet suppression).
    """
    run = tmp_path_factory.mktemp("web") / "run"
    truth = make_run(run, seed=0, planted=make_web_households(seed=0))
    _add_web_layers(run, truth)
    check_withheld_everywhere(run, k=WEB_K)
    return run


@pytest.fixture
def app(web_run: Path):
    """The web map app of ``web_run`` (TESTING, K = 10)."""
    from kantong.webmap import create_app

    return create_app({"TESTING": True, "RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": 10})


@pytest.fixture
def client(app):
    """A Flask test client of ``app``."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A Flask CLI test runner of ``app``."""
    return app.test_cli_runner()

