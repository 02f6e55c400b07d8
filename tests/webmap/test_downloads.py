"""Downloads of published layers: GeoJSON, CSV, GeoPackage, per regency or pocket, with size."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pyogrio
import pytest

from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app


@pytest.fixture(scope="module")
def app(pipeline_run: Path):
    return create_app({"RUN_DIR": str(pipeline_run), "TESTING": True})


@pytest.fixture(scope="module")
def run(pipeline_run: Path) -> PublishedRun:
    return PublishedRun(pipeline_run)


def test_three_formats_hold_the_same_published_cells(app, run: PublishedRun,
                                                     tmp_path: Path) -> None:
    client = app.test_client()
    cells = run.cells()
    geo = client.get("/download/cells.geojson")
    doc = json.loads(geo.data)
    assert [f["id"] for f in doc["features"]] == cells["h3"].tolist()
    assert doc["kantong"]["min_households"] == run.min_households
    csv = client.get("/download/cells.csv")
    assert csv.mimetype == "text/csv"
    assert 'filename="kantong_' in csv.headers["Content-Disposition"]
    table = pd.read_csv(io.BytesIO(csv.data), dtype={"h3": str})
    assert table["h3"].tolist() == cells["h3"].tolist()
    assert table["households"].tolist() == cells["households"].tolist()
    assert {"lon", "lat"} <= set(table.columns) and "geometry" not in table.columns
    assert json.loads(csv.headers["X-Kantong-Provenance"])["run_id"] == run.run_id
    gpkg = client.get("/download/cells.gpkg")
    assert gpkg.mimetype == "application/geopackage+sqlite3"
    path = tmp_path / "cells.gpkg"
    path.write_bytes(gpkg.data)
    frame = pyogrio.read_dataframe(path, layer="cells")
    assert frame["h3"].tolist() == cells["h3"].tolist()
    assert (frame["households"] >= run.min_households).all()
    assert frame.crs.to_epsg() == 4326


def test_per_regency_and_per_pocket(app, run: PublishedRun) -> None:
    client = app.test_client()
    code = run.regencies()["regency_code"].iloc[0]
    table = pd.read_csv(io.BytesIO(client.get(f"/download/cells.csv?regency={code}").data),
                        dtype={"h3": str, "regency_code": str})
    assert set(table["regency_code"]) == {code}
    assert len(table) == len(run.cells(regency=code))
    pocket = int(run.pockets()["pocket_id"].iloc[0])
    cells = run.cells()
    members = cells[cells["pocket_id"] == pocket]["h3"].tolist()
    doc = json.loads(client.get(f"/download/cells.geojson?pocket={pocket}").data)
    assert [f["id"] for f in doc["features"]] == members and members
    assert doc["kantong"]["pocket"] == pocket
    one = json.loads(client.get(f"/download/pockets.geojson?pocket={pocket}").data)
    assert [f["id"] for f in one["features"]] == [pocket]
    assert client.get("/download/sites.csv?pocket=1").status_code == 400
    assert client.get("/download/cells.csv?pocket=999999").status_code == 400
    assert client.get("/download/cells.csv?pocket=x").status_code == 400
    assert client.get("/download/cells.xlsx").status_code == 404
    assert client.get("/download/households.csv").status_code == 404


def test_head_gives_the_size_and_ranges_work(app) -> None:
    client = app.test_client()
    full = client.get("/download/pockets.gpkg")
    head = client.head("/download/pockets.gpkg")
    assert head.status_code == 200 and not head.data
    assert int(head.headers["Content-Length"]) == len(full.data)
    part = client.get("/download/pockets.gpkg", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == full.data[:100]
    assert part.data.startswith(b"SQLite format 3")
    again = client.get("/download/pockets.gpkg", headers={"If-None-Match": full.headers["ETag"]})
    assert again.status_code == 304
