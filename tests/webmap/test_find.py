"""Search, cell lookup, existing facilities and context layers of the web map (Flask client)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import pytest
import shapely

from kantong.engine.inputs import boundaries
from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app
from kantong.webmap.config import resolution_for_zoom
from kantong.webmap.search import SearchIndex, normalise


@pytest.fixture(scope="module")
def app(pipeline_run: Path):
    return create_app({"RUN_DIR": str(pipeline_run), "TESTING": True})


@pytest.fixture(scope="module")
def run(pipeline_run: Path) -> PublishedRun:
    return PublishedRun(pipeline_run)


def _our_villages(run: PublishedRun):
    pts = boundaries.village_points()
    return pts[pts["regency_code"].isin(run.regencies()["regency_code"])]


def test_search_finds_a_village_inside_its_regency(app, run: PublishedRun) -> None:
    villages = _our_villages(run)
    unique = villages[~boundaries.village_points()["village_name"].duplicated(keep=False)
                      .reindex(villages.index)]
    assert len(unique) >= 3
    regencies = boundaries.regencies().set_index("regency_code")
    client = app.test_client()
    for row in unique.iloc[[0, len(unique) // 2, -1]].itertuples():
        # typed in lower case, with a prefix and without spaces between words
        answer = client.get("/api/search", query_string={"q": f"desa {row.village_name.lower()}"})
        assert answer.status_code == 200
        hits = [r for r in answer.json["results"] if r["kind"] == "village"]
        assert hits and hits[0]["name"] == row.village_name, answer.json
        hit = hits[0]
        assert hit["codes"]["village_code"] == row.village_code
        assert hit["codes"]["regency_code"] == row.regency_code
        centre = shapely.Point(hit["centre"])
        assert regencies.loc[row.regency_code].geometry.buffer(1e-6).contains(centre)
        west, south, east, north = hit["bbox"]
        assert west <= hit["centre"][0] <= east and south <= hit["centre"][1] <= north


def test_search_ranks_exact_then_prefix_and_finds_regencies_kecamatan_pockets(
        app, run: PublishedRun) -> None:
    client = app.test_client()
    regency = run.regencies().sort_values("households").iloc[-1]
    hits = client.get("/api/search", query_string={"q": regency["regency_name"]}).json["results"]
    assert hits[0]["kind"] == "regency" and hits[0]["name"] == regency["regency_name"]
    outline = boundaries.regencies().set_index("regency_code").loc[regency["regency_code"]]
    assert hits[0]["bbox"] == pytest.approx(list(outline.geometry.bounds), abs=1e-5)
    district = boundaries.districts().query("regency_code == @regency.regency_code").iloc[0]
    hits = client.get("/api/search", query_string={"q": "Kec. " + district["district_name"]}
                      ).json["results"]
    assert any(h["kind"] == "district" and h["codes"]["district_code"] == district["district_code"]
               for h in hits)
    pocket = run.pockets().iloc[0]
    hits = client.get("/api/search", query_string={"q": str(pocket["pocket_id"])}).json["results"]
    assert [h["kind"] for h in hits] == ["pocket"]
    assert hits[0]["codes"]["pocket_id"] == int(pocket["pocket_id"])
    assert hits[0]["bbox"] == pytest.approx(list(pocket.geometry.bounds), abs=1e-5)
    # a number matches pocket ids only, and exactly
    assert client.get("/api/search", query_string={"q": "99999"}).json["results"] == []
    assert client.get("/api/search", query_string={"q": "a"}).json["results"] == []
    assert client.get("/api/search", query_string={"q": "x" * 81}).status_code == 400
    assert client.get("/api/search", query_string={"q": "sun", "limit": "0"}).status_code == 400


def test_search_index_order_and_normalise() -> None:
    assert normalise("Kelurahan  Sungai-Jawi Luar") == "sungai jawi luar"
    assert normalise("Désa Ñanga") == "nanga"
    index = SearchIndex(["6101"])  # Sambas, no pockets
    hits = index.search("sambas", limit=20)
    assert hits[0] == {**hits[0], "name": "Sambas", "kind": "regency"}
    ranks = ["exact" if normalise(h["name"]) == "sambas" else "prefix"
             if normalise(h["name"]).startswith("sambas") else "other" for h in hits]
    order = {"exact": 0, "prefix": 1, "other": 2}
    assert [order[r] for r in ranks] == sorted(order[r] for r in ranks)
    assert all(h["codes"].get("regency_code", "6101") == "6101" for h in hits)


def test_locate_gives_the_cell_drawn_at_a_zoom(app, run: PublishedRun) -> None:
    client = app.test_client()
    cell = run.cells().iloc[0]
    for z in (8, 12):
        answer = client.get("/api/locate", query_string={"lat": cell["lat"], "lon": cell["lon"],
                                                         "z": z}).json
        res = resolution_for_zoom(z, run.resolutions)
        assert answer["resolution"] == res
        assert answer["h3"] == h3.latlng_to_cell(cell["lat"], cell["lon"], res)
        assert answer["published"] == (run.cell(answer["h3"]) is not None)
    base = client.get("/api/locate", query_string={"lat": cell["lat"], "lon": cell["lon"]}).json
    assert base["h3"] == cell["h3"] and base["published"] is True
    # far away: a valid id that is not published
    far = client.get("/api/locate", query_string={"lat": -8.0, "lon": 140.0}).json
    assert far["published"] is False
    assert client.get(f"/api/cells/{far['h3']}").status_code == 404
    for bad in ({"lat": "91", "lon": "0"}, {"lat": "nan", "lon": "0"}, {"lon": "0"},
                {"lat": "0", "lon": "0", "z": "99"}):
        assert client.get("/api/locate", query_string=bad).status_code == 400


def test_facilities_are_published_points_with_names_and_types(app, pipeline_run: Path) -> None:
    answer = app.test_client().get("/api/facilities")
    assert answer.status_code == 200 and answer.mimetype == "application/geo+json"
    doc = answer.json
    source = gpd.read_parquet(pipeline_run / "facilities.parquet")
    assert len(doc["features"]) == len(source) > 0
    by_id = source.set_index("facility_id")
    for feature in doc["features"]:
        props = feature["properties"]
        row = by_id.loc[feature["id"]]
        assert props["type"] == row["type"] and props["name"] == row["name"]
        assert feature["geometry"]["coordinates"] == pytest.approx([row.geometry.x,
                                                                   row.geometry.y], abs=1e-6)
        assert set(props) <= {"facility_id", "type", "name", "lon", "lat"}


def test_context_layers_cover_the_run(app, run: PublishedRun) -> None:
    client = app.test_client()
    places = client.get("/api/context/places.json").json
    assert places["rivers"]["features"], "the Kapuas runs through Kalimantan Barat"
    names = [f["properties"]["name"] for f in places["places"]["features"]]
    assert names and len(names) == len(set(names))
    assert "Natural Earth" in places["attribution"]
    districts = client.get("/api/context/districts.geojson").json
    codes = {f["properties"]["regency_code"] for f in districts["features"]}
    assert codes == set(run.regencies()["regency_code"])
    villages = client.get("/api/context/villages.json").json["villages"]
    assert len(villages) == len(_our_villages(run))
    lon, lat, name = villages[0]
    assert isinstance(name, str) and -5 < lat < 5 and 108 < lon < 120


def test_coast_layer_is_the_shipped_province_outline_unsimplified(app, run: PublishedRun) -> None:
    import shapely.geometry

    doc = app.test_client().get("/api/context/coast.geojson").json
    provinces = {code[:2] for code in run.regencies()["regency_code"]}
    assert {f["properties"]["province_code"] for f in doc["features"]} == provinces
    shipped = boundaries.provinces()
    for feature in doc["features"]:
        code = feature["properties"]["province_code"]
        line = shapely.geometry.shape(feature["geometry"])
        truth = shipped.loc[shipped["province_code"].astype(str) == code].geometry.iloc[0]
        # the BPS outline itself (1e-6 degree rounding), not the 0.002 degree map background
        assert line.hausdorff_distance(truth.boundary) < 2e-6
        assert shapely.get_num_coordinates(line) >= shapely.get_num_coordinates(truth) - 5
    page = app.test_client().get("/").get_data(as_text=True)
    assert "/api/context/coast.geojson" in page
