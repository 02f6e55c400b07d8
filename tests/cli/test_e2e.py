"""End to end through the CLI: demo-data -> build -> pockets -> sites -> export -> web app.

One small seeded demo (Kalimantan Barat, 20,000 households) walks through every command a
user runs, and the outputs are checked against each other: counts add up from the register
to the run directory, nothing personal reaches anything published.
"""

import io
import json

import geopandas as gpd
import mercantile
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from kantong.engine.cli.group import cli
from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    demo, run = base / "demo", base / "run"
    _run(["demo-data", "--out", str(demo), "--households", "20000", "--seed", "7"])
    _run(["build", "--households", str(demo / "households_synthetic.csv"),
          "--facilities", str(demo / "facilities_synthetic.geojson"),
          "--friction", str(demo / "friction_synthetic.tif"),
          "--resolution", "7", "--out", str(run)])
    return demo, run


def test_counts_add_up_from_register_to_cells(demo_run):
    demo, run = demo_run
    manifest = json.loads((run / "manifest.json").read_text())
    hh = manifest["counts"]["households"]
    raw = pd.read_csv(demo / "households_synthetic.csv", dtype=str, keep_default_na=False)
    assert hh["read"] == len(raw)
    assert hh["accepted"] + hh["rejected"] == hh["read"]
    rejects = pd.read_csv(run / "rejects.csv")
    assert (rejects["source"].str.contains("households")).sum() == hh["rejected"]
    assert rejects["reason"].notna().all()
    cells = gpd.read_parquet(run / "cells.parquet")
    assert cells["households"].sum() == hh["accepted"]
    assert cells["households_village_located"].sum() == hh["village_located"] > 0
    for r in (5, 6):
        ru = pd.read_parquet(run / "rollups" / f"cells_r{r}.parquet")
        assert ru["households"].sum() == hh["accepted"]
        assert ru["extreme_households"].sum() == cells["extreme_households"].sum()
    assert cells.crs.to_epsg() == 4326
    assert {"pocket_id", "priority", "rank_province", "travel_min_puskesmas"} <= set(cells)


def test_demo_pockets_are_in_the_remote_interior(demo_run):
    _, run = demo_run
    pockets = gpd.read_parquet(run / "pockets.parquet")
    assert len(pockets) >= 1
    # the demo plants pockets in the interior (Ketapang, Sintang, Kapuas Hulu, Melawi,
    # Kayong Utara); the city of Pontianak (6171) and Singkawang (6172) hold none
    planted = {"6106", "6107", "6108", "6110", "6111"}
    assert set(pockets["regency_code"]) & planted
    assert not set(pockets["regency_code"]) & {"6171", "6172"}
    assert pockets["strategy"].isin([1, 2, 3]).all()
    assert (pockets["extreme_households"] >= 20).all()


def test_pockets_rerun_and_sites_and_export(demo_run, tmp_path):
    demo, run = demo_run
    out = _run(["pockets", "--run", str(run)])
    assert "pocket" in out.lower()
    sites = tmp_path / "sites.geojson"
    out = _run(["sites", "--run", str(run), "--type", "puskesmas", "--count", "5",
                "--max-minutes", "60", "--out", str(sites)])
    chosen = gpd.read_file(sites)
    assert 1 <= len(chosen) <= 5
    assert chosen["cumulative_extreme_households"].dropna().is_monotonic_increasing
    for fmt in ("geojson", "gpkg", "csv"):
        target = tmp_path / f"cells.{fmt}"
        _run(["export", "--run", str(run), "--layer", "cells", "--format", fmt,
              "--out", str(target), "--resolution", "6"])
        assert target.stat().st_size > 0
    exported = gpd.read_file(tmp_path / "cells.geojson")
    assert (exported["households"] >= 10).all()
    text = (tmp_path / "cells.geojson").read_text() + (tmp_path / "cells.csv").read_text()
    ids = pd.read_csv(demo / "households_synthetic.csv", usecols=["household_id"])
    assert not any(i in text for i in ids["household_id"].head(500))
    assert "household_id" not in text


def test_web_app_serves_the_run(demo_run):
    _, run = demo_run
    app = create_app({"TESTING": True, "KANTONG_RUN_DIR": str(run)})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and b"leaflet" in page.data.lower()
    regencies = client.get("/api/regencies").get_json()
    published = PublishedRun(run)
    assert len(regencies) == len(published.regencies())
    pockets = client.get("/api/pockets").get_json()
    assert pockets["type"] == "FeatureCollection"
    # the z6 tile of the top-priority published cell is drawn, and coloured where that cell is
    top = published.cells().sort_values("priority").iloc[-1]
    t = mercantile.tile(top["lon"], top["lat"], 6)
    tile = client.get(f"/tiles/priority/6/{t.x}/{t.y}.png")
    assert tile.status_code == 200 and tile.mimetype == "image/png"
    img = np.asarray(Image.open(io.BytesIO(tile.data)))
    b = mercantile.xy_bounds(t.x, t.y, 6)
    mx, my = mercantile.xy(top["lon"], top["lat"])
    f = 256 / (b.right - b.left)
    assert img[int((b.top - my) * f), int((mx - b.left) * f), 3] > 0  # drawn there
    # a tile far from the data (the South Pole) holds nothing: transparent
    empty = np.asarray(Image.open(io.BytesIO(client.get("/tiles/priority/6/50/63.png").data)))
    assert empty[..., 3].max() == 0
