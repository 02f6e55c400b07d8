"""The JSON/GeoJSON API, downloads, privacy of every response and security headers."""

from __future__ import annotations

import io
import json
import re

import h3
import mapbox_vector_tile
import mercantile
import numpy as np
import pandas as pd
import pytest
import shapely
from PIL import Image

from kantong.engine.constants import HOUSEHOLD_ID, PERSONAL_FIELDS
from kantong.engine.errors import ConfigError, EngineError, InputError, PrivacyError, RunError
from kantong.webmap import create_app
from kantong.webmap.errors import status_for


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok", "run_id": "test-0"}


def test_run_info(client, app):
    run = app.extensions["kantong"]
    info = client.get("/api/run").json
    assert info["run_id"] == "test-0" and info["synthetic"] is True
    assert info["resolutions"] == [5, 6, 7, 8] and info["base_resolution"] == 8
    assert info["min_households"] == 10
    w, s, e, n = info["bounds"]
    assert w < info["center"][0] < e and s < info["center"][1] < n
    cells = run.cells()
    assert info["counts"]["published_cells"] == len(cells)
    assert info["counts"]["households_in_published_cells"] == int(cells["households"].sum())
    assert info["counts"]["pockets"] == 2 and info["counts"]["sites"] == 3
    assert {"zoom": 6, "resolution": 5} in info["zoom_resolutions"]


def test_indicators_list(client):
    items = client.get("/api/indicators").json
    by_id = {i["id"]: i for i in items}
    assert by_id["priority"]["label"] == "Priority score"
    assert by_id["travel_min_school"]["unit"] == "minutes"
    for item in items:
        assert item["tiles"].endswith(f"/tiles/{item['id']}/{{z}}/{{x}}/{{y}}.png")
        assert client.get(item["legend"]).status_code == 200


def test_pockets_geojson(client, app):
    resp = client.get("/api/pockets")
    assert resp.mimetype == "application/geo+json"
    doc = resp.json
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert sorted(f["properties"]["pocket_id"] for f in doc["features"]) == [1, 2]
    run = app.extensions["kantong"]
    cells = run.cells()
    for f in doc["features"]:
        pid = f["properties"]["pocket_id"]
        mine = cells[cells["pocket_id"] == pid]
        assert f["properties"]["households"] == int(mine["households"].sum())
        geom = shapely.geometry.shape(f["geometry"])
        assert geom.is_valid
        assert geom.buffer(1e-6).contains(shapely.Point(mine.iloc[0]["lon"], mine.iloc[0]["lat"]))


def test_sites_geojson_withholds_small_counts(client):
    feats = client.get("/api/sites").json["features"]
    by_rank = {f["properties"]["rank"]: f["properties"] for f in feats}
    assert sorted(by_rank) == [1, 2, 3]
    assert by_rank[1]["new_extreme_households"] == 40
    assert by_rank[3]["new_extreme_households"] is None  # 2 < K
    assert all(f["geometry"]["type"] == "Point" for f in feats)


def test_sites_empty_collection(tmp_path):
    from factories import make_run

    run = tmp_path / "nosites"
    make_run(run, seed=0)  # a sealed run where `kantong sites` was never run
    client = create_app({"TESTING": True, "RUN_DIR": str(run)}).test_client()
    assert client.get("/api/sites").json == {"type": "FeatureCollection", "features": []}
    resp = client.get("/download/sites.geojson")
    assert resp.status_code == 404 and "kantong sites" in resp.json["error"]
    assert client.get("/download/cells.geojson").status_code == 200


def test_cell_endpoint(client, app):
    run = app.extensions["kantong"]
    row = run.cells().iloc[0]
    resp = client.get(f"/api/cells/{row['h3']}")
    assert resp.status_code == 200
    assert resp.json == json.loads(json.dumps(run.cell(row["h3"])))
    assert resp.json["households"] == row["households"]
    r6 = run.cells(6).iloc[0]["h3"]
    assert client.get(f"/api/cells/{r6}").json["resolution"] == 6
    far = h3.latlng_to_cell(-2.0, 114.0, 8)  # valid id, no data there
    assert client.get(f"/api/cells/{far}").status_code == 404
    for bad in ("zzz", "8868b64019fffffff", "'; drop table", "0"):
        resp = client.get(f"/api/cells/{bad}")
        assert resp.status_code == 400 and resp.json["error"]


def test_cell_ids_are_canonicalised_and_long_hex_rejected(client, app):
    """Upper case and a leading zero name the same cell; longer hex never reaches h3.

    ``PublishedRun.cell`` (engine/publish/published.py) raises OverflowError on a 17-digit hex id:
    the API must answer 400, not 500.
    """
    cell = app.extensions["kantong"].cells().iloc[0]["h3"]
    expected = client.get(f"/api/cells/{cell}").json
    for alias in (cell.upper(), "0" + cell):
        resp = client.get(f"/api/cells/{alias}")
        assert resp.status_code == 200 and resp.json == expected
    for bad in (cell + "f", "f" * 17, "0" * 17 + cell, "1" + cell):
        resp = client.get(f"/api/cells/{bad}")
        assert resp.status_code == 400, bad
        assert "not a valid H3 cell id" in resp.json["error"]


@pytest.mark.parametrize("query", ["resolution=%C2%B2", "resolution=%D9%A5", "resolution=-1",
                                   "resolution=123"])
def test_download_resolution_must_be_ascii_digits(client, query):
    """``"²".isdigit()`` is True but ``int("²")`` fails: no 500 for odd digits."""
    resp = client.get(f"/download/cells.geojson?{query}")
    assert resp.status_code == 400 and "resolution must be an integer" in resp.json["error"]


def test_client_errors_do_not_name_server_paths(client, web_run):
    for url in ("/download/cells.geojson?regency=9999", "/download/cells.geojson?resolution=9",
                "/download/pockets.geojson?regency=..%2F..%2Fetc"):
        resp = client.get(url)
        assert resp.status_code == 400, url
        assert str(web_run) not in resp.json["error"] and "/tmp" not in resp.json["error"]
        assert resp.json["error"].startswith("run")


@pytest.mark.parametrize("url", [
    "/tiles/..%2F..%2Fetc/passwd/1/1/1.png", "/download/../../manifest.json",
    "/download/..%2F..%2Fmanifest.json", "/static/../engine/build.py",
    "/static/..%2Fengine%2Fbuild.py", "/static/%2e%2e/engine/build.py",
    "/static/vendor/../../../engine/build.py", "/manifest.json", "/cells.parquet",
    "/rollups/r5.parquet", "/api/legend/..%2Fmanifest"])
def test_path_traversal_is_refused(client, url):
    resp = client.get(url)
    assert resp.status_code == 404 and resp.is_json
    assert b"engine_version" not in resp.data and b"import" not in resp.data


def test_tile_coordinates_are_validated(client):
    for url, text in (("/tiles/priority/99/1/1.png", "above the maximum"),
                      ("/tiles/priority/999999999/1/1.png", "at most 8 digits"),
                      ("/tiles/priority/6/-1/3.png", "non-negative integer"),
                      ("/tiles/priority/6/64/3.png", "does not exist"),
                      ("/tiles/priority/%C2%B2/1/1.png", "non-negative integer"),
                      ("/tiles/cells/40/1/1.pbf", "above the maximum")):
        resp = client.get(url)
        assert resp.status_code == 400 and text in resp.json["error"], url
    assert client.get("/tiles/nope/6/51/31.png").status_code == 404
    # HEAD answers like GET without a body; If-None-Match gives 304
    head = client.head("/tiles/priority/6/51/31.png")
    get = client.get("/tiles/priority/6/51/31.png")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == str(len(get.data))
    assert "Content-Security-Policy" in head.headers
    cached = client.get("/tiles/priority/6/51/31.png",
                        headers={"If-None-Match": get.headers["ETag"]})
    assert cached.status_code == 304 and cached.data == b""


def test_regencies(client, app):
    rows = client.get("/api/regencies").json
    expected = app.extensions["kantong"].regencies()
    assert [r["regency_code"] for r in rows] == expected["regency_code"].tolist()
    assert set(rows[0]) == set(expected.columns)
    assert sum(r["households"] for r in rows) == int(expected["households"].sum())


def test_regency_outlines(client):
    from kantong.engine.inputs import boundaries

    doc = client.get("/api/boundaries/regencies.geojson").json
    feats = doc["features"]
    kalbar = boundaries.regencies()
    kalbar = kalbar[kalbar["province_code"] == "61"]
    assert {f["properties"]["regency_code"] for f in feats} == set(kalbar["regency_code"])
    assert all(f["properties"]["province_code"] == "61" for f in feats)
    geoms = [shapely.geometry.shape(f["geometry"]) for f in feats]
    assert all(g.is_valid for g in geoms)
    raw = sum(shapely.get_num_coordinates(g) for g in kalbar.geometry)
    assert sum(shapely.get_num_coordinates(g) for g in geoms) < raw  # simplified


def test_downloads(client, app):
    run = app.extensions["kantong"]
    resp = client.get("/download/cells.geojson")
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json"
    assert resp.headers["Content-Disposition"].startswith("attachment; filename=")
    doc = resp.json
    assert len(doc["features"]) == len(run.cells())
    assert doc["kantong"]["min_households"] == 10
    assert doc["kantong"]["contains_household_records"] is False
    r7 = client.get("/download/cells.geojson?resolution=7").json
    assert {h3.get_resolution(f["properties"]["h3"]) for f in r7["features"]} == {7}
    code = run.cells()["regency_code"].iloc[0]
    one = client.get(f"/download/cells.geojson?regency={code}").json
    assert {f["properties"]["regency_code"] for f in one["features"]} == {code}
    assert len(client.get("/download/pockets.geojson").json["features"]) == 2
    assert len(client.get("/download/sites.geojson").json["features"]) == 3
    etag = resp.headers["ETag"]
    assert client.get("/download/cells.geojson",
                      headers={"If-None-Match": etag}).status_code == 304
    part = client.get("/download/cells.geojson", headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.data == resp.data[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(resp.data)}"
    for bad, status in (("/download/households.geojson", 404),
                        ("/download/..%2Fcells.geojson", 404),
                        ("/download/cells.geojson?resolution=x", 400),
                        ("/download/cells.geojson?resolution=3", 400),
                        ("/download/cells.geojson?regency=9999", 400)):
        r = client.get(bad)
        assert r.status_code == status and r.json["error"], bad


# ---- privacy: nothing below K, nothing about households, in any response -------------------

def _all_responses(client, run) -> dict[str, object]:
    """Fetch every endpoint plus tiles around the data; return path -> response."""
    cells = run.cells()
    paths = ["/healthz", "/api/run", "/api/indicators", "/api/pockets", "/api/sites",
             "/api/regencies", "/api/boundaries/regencies.geojson", "/tiles/cells.json",
             "/tiles/priority.json", "/tiles/priority/legend.json", "/api/legend/pocket",
             "/download/cells.geojson", "/download/pockets.geojson", "/download/sites.geojson",
             "/download/cells.geojson?resolution=6", f"/api/cells/{cells['h3'].iloc[0]}"]
    lon, lat = cells["lon"].mean(), cells["lat"].mean()
    for z in (6, 8, 10, 12):
        t = mercantile.tile(lon, lat, z)
        paths += [f"/tiles/cells/{z}/{t.x}/{t.y}.pbf", f"/tiles/priority/{z}/{t.x}/{t.y}.png"]
    return {p: client.get(p) for p in paths}


@pytest.fixture
def strict(web_run):
    """An app with K = 30 (about half of the tiny run's cells are withheld)."""
    return create_app({"TESTING": True, "RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": 30})


def test_no_household_data_and_no_withheld_cell_anywhere(strict, web_run):
    run = strict.extensions["kantong"]
    client = strict.test_client()
    raw = pd.read_parquet(web_run / "cells.parquet")  # the sensitive truth, for the oracle
    small = set(raw.loc[raw["households"] < 30, "h3"])
    assert 20 < len(small) < len(raw) - 20
    withheld = {h for res in run.resolutions
                for h in run.plan.status[res].index[run.plan.status[res] != "published"]}
    assert small <= withheld
    # ("name" is also TileJSON's tileset name: checked on its own below)
    forbidden_keys = {HOUSEHOLD_ID, *PERSONAL_FIELDS, "members", "desil",
                      "location_precision"} - {"name"}
    for path, resp in _all_responses(client, run).items():
        assert resp.status_code == 200, path  # every path holds published data
        body = resp.get_data()
        if resp.mimetype.endswith("json"):
            text = body.decode()
            assert "T-0-" not in text, path  # household ids of the factory
            keys = set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', text))
            assert not keys & forbidden_keys, (path, keys & forbidden_keys)
            assert not any(h in text for h in withheld), path
            if "name" in keys:
                assert path.startswith("/tiles/") and path.endswith(".json"), path
        elif resp.mimetype == "application/vnd.mapbox-vector-tile" and body:
            for f in mapbox_vector_tile.decode(body)["cells"]["features"]:
                p = f["properties"]
                assert p["households"] >= 30 and p["h3"] not in withheld
                assert not set(p) & forbidden_keys
    # withheld base cells are not drawn: the pixel at their centre is transparent
    hidden = raw[raw["h3"].isin(withheld)]
    for _, row in hidden.head(5).iterrows():
        t = mercantile.tile(row["lon"], row["lat"], 13)
        img = np.asarray(Image.open(io.BytesIO(
            client.get(f"/tiles/extreme_rate/13/{t.x}/{t.y}.png").data)))
        b = mercantile.xy_bounds(t.x, t.y, 13)  # pixel position independent of webmap
        mx, my = mercantile.xy(row["lon"], row["lat"])
        f = 256 / (b.right - b.left)
        assert img[int((b.top - my) * f), int((mx - b.left) * f), 3] == 0
    assert client.get(f"/api/cells/{sorted(small)[0]}").status_code == 404


# ---- security headers and error mapping ------------------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/api/run", "/tiles/priority/0/0/0.png",
                                  "/tiles/cells/10/100/100.pbf", "/api/pockets",
                                  "/tiles/priority/99/0/0.png", "/no/such/page",
                                  "/api/cells/zzz"])
def test_security_headers_on_every_response(client, path):
    h = client.get(path).headers
    csp = h["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert directives["script-src"] == "'self' 'unsafe-inline'"
    assert directives["frame-ancestors"] == "'self'"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "SAMEORIGIN"
    assert h["Referrer-Policy"] == "no-referrer"


def test_error_table():
    assert status_for(InputError("x")) == 400
    assert status_for(ConfigError("x")) == 500
    assert status_for(RunError("x")) == 503
    assert status_for(PrivacyError("x")) == 403
    assert status_for(EngineError("x")) == 500


def test_unknown_route_and_method_are_json(client):
    resp = client.get("/api/nothing")
    assert resp.status_code == 404 and resp.json["error"]
    resp = client.post("/api/run")
    assert resp.status_code == 405 and resp.json["error"]


def test_server_errors_hide_details(app, client, monkeypatch):
    svc = app.extensions["kantong_tiles"]

    def broken(*args, **kwargs):
        raise RunError("/secret/path/cells.parquet: unreadable")

    monkeypatch.setattr(svc, "png", broken)
    resp = client.get("/tiles/priority/3/6/3.png")
    assert resp.status_code == 503
    assert "/secret" not in resp.json["error"]
