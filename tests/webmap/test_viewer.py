"""The viewer page (``/``) as HTML: offline assets, controls, layers, popups (Flask client).

Most checks read the English page (``/?lang=en``); the Indonesian default is checked too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from factories import make_run

from kantong.engine.errors import RunError
from kantong.engine.inputs import boundaries
from kantong.webmap import create_app
from kantong.webmap.i18n import indicator_label
from kantong.webmap.page.build import (
    POCKET_MARKER_MAX_ZOOM,
    POCKET_MARKER_RADIUS,
    choose_layers,
    initial_zoom,
    render_page,
    to_feature_collection,
)
from kantong.webmap.page.markers import marker_radius
from kantong.webmap.page.popups import pocket_popup_html, site_popup_html
from kantong.webmap.views.viewer import content_from_published, main_provinces, pocket_contributions

STATIC = Path(__file__).resolve().parents[2] / "webmap" / "static"


@pytest.fixture(scope="module")
def full_run(pipeline_run: Path) -> Path:
    return pipeline_run


@pytest.fixture(scope="module")
def app(full_run: Path):
    return create_app({"RUN_DIR": str(full_run), "TESTING": True})


@pytest.fixture(scope="module")
def page(app) -> str:
    response = app.test_client().get("/?lang=en")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def test_indonesian_by_default_english_on_request(app) -> None:
    client = app.test_client()
    page_id = client.get("/").get_data(as_text=True)
    assert page_id.startswith('<!DOCTYPE html>\n<html lang="id">')
    assert "<title>Kantong — kantong kemiskinan Kalimantan Barat</title>" in page_id
    assert "Cari desa, kecamatan, kabupaten atau kantong" in page_id
    assert "Poverty pocket" not in page_id and "Extreme-poor households" not in page_id
    page_en = client.get("/?lang=en").get_data(as_text=True)
    assert page_en.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert "<title>Kantong — poverty pockets of Kalimantan Barat</title>" in page_en
    # pinch zoom is allowed (Folium's viewport tag forbids it)
    for page in (page_id, page_en):
        viewport = re.findall(r'<meta name="viewport"[^>]*>', page)
        assert viewport == ['<meta name="viewport" content="width=device-width, '
                            'initial-scale=1.0">']
    bad = client.get("/?lang=fr")
    assert bad.status_code == 400 and "lang=id or lang=en" in bad.json["error"]


def _embedded_layers(page: str) -> list[dict]:
    """The GeoJSON FeatureCollections embedded in the page (Folium's ``_add(...)`` calls)."""
    return [json.loads(m) for m in re.findall(r"_add\((\{\"features\".*?\})\);\n", page)]


def test_page_has_no_external_url(page: str) -> None:
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    for dropped in ("jquery", "bootstrap", "awesome-markers", "fontawesome", "glyphicons"):
        assert dropped not in page.lower()
    assets = re.findall(r"<(?:script|link)[^>]*(?:src|href)=\"([^\"]+)\"", page)
    assert set(assets) == {"/static/vendor/leaflet/leaflet.js", "/static/viewer.js",
                           "/static/viewer-tools.js", "/static/viewer-legend.js",
                           "/static/vendor/leaflet/leaflet.css",
                           "/static/viewer.css", "/static/favicon.svg"}
    # Folium's class defaults (CDN links) are untouched: overrides are per map instance
    assert any("cdn" in url for _, url in folium.Map.default_js)


def test_assets_are_served_locally(app, page: str) -> None:
    client = app.test_client()

    def fetch(url: str) -> tuple[int, str]:
        with client.get(url) as response:  # static files: close the file handle
            return response.status_code, response.get_data(as_text=url.endswith((".js", ".css")))

    for url in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", page):
        status, body = fetch(url)
        assert status == 200 and body, url
    css = fetch("/static/vendor/leaflet/leaflet.css")[1]
    for image in re.findall(r"url\((images/[^)]+)\)", css):
        assert fetch(f"/static/vendor/leaflet/{image}")[0] == 200, image
    leaflet = fetch("/static/vendor/leaflet/leaflet.js")[1]
    assert 'version="1.9.4"' in leaflet
    assert "1.9.4" in (STATIC / "VENDOR.md").read_text()


def test_title_panel_selector_and_downloads(app, page: str) -> None:
    assert "<title>Kantong — poverty pockets of Kalimantan Barat</title>" in page
    assert 'id="kantong-legend"' in page
    select = re.search(r'<select id="kantong-regency">(.*?)</select>', page, re.S)
    assert select, "regency selector missing"
    options = dict(re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', select.group(1)))
    regencies = app.extensions["kantong"].regencies()
    assert set(options) == {"", *regencies["regency_code"]}
    for row in regencies.itertuples():
        assert options[row.regency_code].startswith(row.regency_name)
        assert f"{row.extreme_households:,} extreme-poor households" in options[row.regency_code]
    # every selectable regency has the bounds of its outline in the script config
    config, _ = _viewer_call(page)
    assert set(config["regencyBounds"]) == set(regencies["regency_code"])
    for west, south, east, north in config["regencyBounds"].values():
        assert west < east and south < north
    assert config["legendUrl"] == "/tiles/{indicator}/legend.json"
    assert config["minHouseholds"] == 10
    client = app.test_client()
    for layer in ("cells", "pockets", "sites"):
        for fmt in ("geojson", "csv", "gpkg"):
            assert f'href="/download/{layer}.{fmt}"' in page
            assert client.get(f"/download/{layer}.{fmt}").status_code == 200


def test_layer_control_offers_indicators_with_priority_on(app, page: str) -> None:
    assert "L.control.layers(" in page
    layers = re.findall(r"var (tile_layer_\w+) = L\.tileLayer\(\s*\"([^\"]+)\",\s*(\{.*?\})\s*\);",
                        page, re.S)
    urls = [url for _, url, _ in layers]
    served = app.extensions["kantong_tiles"].indicators()
    expected = ["priority", "extreme_households", "extreme_rate",
                *[s for s in served if s.startswith("travel_min_")], "pocket"]
    assert urls == [f"/tiles/{name}/{{z}}/{{x}}/{{y}}.png" for name in expected]
    on_map = [name for name, _, _ in layers if f"{name}.addTo(" in page]
    assert on_map == [layers[0][0]], "only the priority layer is shown on load"
    for _, _, options in layers:
        assert '"attribution": "Kantong"' in options
    # base layers (radio group) are named after the indicators
    base = re.search(r"base_layers : \{(.*?)\},", page, re.S).group(1)
    for name in expected:
        assert f'"{indicator_label(name, "en")}"' in base


def test_embedded_pockets_sites_and_outlines(app, page: str) -> None:
    run = app.extensions["kantong"]
    layers = _embedded_layers(page)
    by_kind = {}
    for fc in layers:
        keys = set(fc["features"][0]["properties"]) if fc["features"] else set()
        point = bool(fc["features"]) and fc["features"][0]["geometry"]["type"] == "Point"
        by_kind["markers" if "radius" in keys and point else "pockets" if "pocket_id" in keys
                else "sites" if "rank" in keys
                else "outlines" if "regency_code" in keys else "background"] = fc
    pockets = run.pockets()
    assert [f["properties"]["pocket_id"] for f in by_kind["pockets"]["features"]] == \
        pockets["pocket_id"].tolist()
    for feature in by_kind["pockets"]["features"]:
        html = feature["properties"]["popup_html"]
        assert "Extreme-poor households" in html and "Recommended strategy:" in html
        assert 'class="kantong-zoom" data-bbox=' in html
        assert "Top contributing indicators" in html
    assert len(by_kind["sites"]["features"]) == len(run.sites())
    codes = {f["properties"]["regency_code"] for f in by_kind["outlines"]["features"]}
    assert set(run.regencies()["regency_code"]) <= codes
    assert all(c.startswith("61") for c in codes)  # the run's province only
    # popups are bound on click; nothing is fetched for them
    assert "bindPopup(f.properties.popup_html" in page
    assert "bubblingMouseEvents = false" in page  # a click on a feature is not a cell click
    # pocket markers (rings at low zoom): one point inside each pocket, same popup
    markers = by_kind["markers"]["features"]
    assert [f["properties"]["pocket_id"] for f in markers] == pockets["pocket_id"].tolist()
    for marker, pocket in zip(markers, by_kind["pockets"]["features"], strict=True):
        assert marker["properties"]["popup_html"] == pocket["properties"]["popup_html"]
        assert shapely.geometry.shape(pocket["geometry"]).buffer(1e-4).contains(
            shapely.geometry.shape(marker["geometry"]))
    radius = [f["properties"]["radius"] for f in markers]
    assert min(radius) >= POCKET_MARKER_RADIUS[0] and max(radius) == POCKET_MARKER_RADIUS[1]
    biggest = int(pockets["extreme_households"].to_numpy().argmax())
    assert radius[biggest] == max(radius)
    assert marker_radius(np.array([0.0, 25.0, 100.0, np.nan])).tolist() == [7.0, 11.5, 16.0, 7.0]


def _viewer_call(page: str) -> tuple[dict, dict[str, object]]:
    """``kantongViewer(map, config, {outlines, control, pockets, sites, tiles, pairs})``."""
    match = re.search(r"kantongViewer\((\w+), (\{.*?\}), (\{outlines: .*?\})\);\n", page, re.S)
    assert match, "kantongViewer(map, config, layers) call missing"
    layers_js = match.group(3)
    names = dict(re.findall(r"(\w+): (\w+)[,}]", layers_js.split("tiles:")[0]))
    pairs = [[a, b] for a, b in re.findall(r"\[(\w+), (\w+)\]", layers_js.split("pairs:")[1])]
    tiles = dict(re.findall(r'"(\w+)": (\w+)', layers_js.split("tiles:")[1].split("pairs:")[0]))
    return json.loads(match.group(2)), {**names, "pairs": pairs, "tiles": tiles}


def test_viewer_config_pockets_markers_and_labels(app, page: str) -> None:
    config, layers = _viewer_call(page)
    outlines, pairs = layers["outlines"], layers["pairs"]
    assert len(pairs) == 1
    pockets, markers = pairs[0]
    assert layers["pockets"] == pockets and layers["sites"].startswith("geo_json_")
    assert layers["control"].startswith("layer_control_")
    assert set(layers["tiles"]) == set(choose_layers(app.extensions["kantong_tiles"].indicators()))
    assert config["pocketMarkerMaxZoom"] == POCKET_MARKER_MAX_ZOOM
    assert config["lang"] == "en" and config["messages"]["legend"] == "Legend"
    assert config["urls"]["cell"] == "/api/cells/{h3}" and config["urls"]["search"] == \
        "/api/search"
    assert config["pocketStatuses"] == []  # no --compare
    for name in (outlines, pockets, markers):
        assert name.startswith("geo_json_") and f"var {name} = L.geoJson(" in page
    assert "kantong-pocket-marker" in page
    # the markers are not in the layer control: viewer.js shows them with the pockets overlay
    control = re.search(r"overlays :  \{(.*?)\},", page, re.S).group(1)
    assert markers not in control and pockets in control
    # labels: largest regencies first (they win label collisions)
    outline = boundaries.regencies().set_index("regency_name")
    names = [name for _, _, name in config["regencyLabels"]]
    areas = [outline.loc[n].geometry.area for n in names]
    assert len(names) >= 10 and areas == sorted(areas, reverse=True)


def test_main_provinces_ignore_a_few_border_cells() -> None:
    regs = pd.DataFrame({"regency_code": ["6101", "6102", "6206"],
                         "households": [5000, 3000, 40]})
    assert main_provinces(regs) == ("61",)
    assert main_provinces(regs.assign(households=[5000, 3000, 900])) == ("61", "62")
    assert main_provinces(regs.drop(columns="households")) == ("61", "62")
    assert main_provinces(regs.iloc[:0]) == ()
    assert main_provinces(pd.DataFrame({"regency_code": ["3171"], "households": [9]})) == ()


class _BorderRun:
    """A stand-in for PublishedRun: Kalbar plus two border cells in Sukamara (Kalteng)."""

    run_id = "border"
    manifest = {"synthetic": True}
    min_households = 10

    def regencies(self) -> pd.DataFrame:
        return pd.DataFrame({"regency_code": ["6101", "6106", "6206"],
                             "regency_name": ["Sambas", "Ketapang", "Sukamara"],
                             "households": [60000, 48000, 87],
                             "extreme_households": [540, 2559, 14]})

    def pockets(self) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"pocket_id": []}, geometry=[], crs="EPSG:4326")

    sites = pockets

    def cells(self) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"h3": [], "households": []}, geometry=[], crs="EPSG:4326")


def test_title_and_outlines_follow_the_main_province() -> None:
    content = content_from_published(_BorderRun(), indicators=["priority"],
                                     bounds=(108.7, -2.8, 113.1, 2.0))
    assert content.province_name == "Kalimantan Barat" and content.province_codes == ("61",)
    codes = set(content.outlines["regency_code"])
    kalbar = set(boundaries.regencies().query("province_code == '61'")["regency_code"])
    assert codes == kalbar | {"6206"}  # Kalteng's other regencies are not drawn or labelled
    page = render_page(content)
    assert "<title>Kantong — kantong kemiskinan Kalimantan Barat</title>" in page
    config, layers = _viewer_call(page)
    assert layers["pairs"] == [] and layers["pockets"] == "null" and config["lang"] == "id"
    assert {name for _, _, name in config["regencyLabels"]} == set(
        content.outlines["regency_name"])


def test_page_is_cached_with_etag(app) -> None:
    client = app.test_client()
    first = client.get("/")
    etag = first.headers["ETag"]
    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert first.headers["Cache-Control"] == "no-cache"


def test_viewer_of_run_without_pockets_or_sites(tmp_path: Path) -> None:
    make_run(tmp_path / "bare", seed=1)
    app = create_app({"RUN_DIR": str(tmp_path / "bare"), "TESTING": True})
    page = app.test_client().get("/?lang=en").get_data(as_text=True)
    assert "https://" not in page and "http://" not in page
    assert 'href="/download/cells.geojson"' in page
    assert "/download/pockets." not in page and "/download/sites." not in page
    layers = re.findall(r"var (tile_layer_\w+) = L\.tileLayer\(\s*\"([^\"]+)\"", page)
    assert layers[0][1] == "/tiles/extreme_households/{z}/{x}/{y}.png"  # no priority yet
    assert f"{layers[0][0]}.addTo(" in page
    assert '"name": "Poverty pockets (' not in page and "Poverty pockets (0)" not in page
    _, layers = _viewer_call(page)
    assert layers["pockets"] == "null" and layers["pairs"] == []


def test_pocket_popup_escapes_and_ranks_contributions() -> None:
    pocket = {
        "pocket_id": 7, "households": 1234, "extreme_households": 456.0, "priority": 0.8123,
        "strategy_label": "<script>alert(1)</script>", "extreme_rate": 0.25,
        "regency_name": "Sanggau & Sekadau", "districts": "Mukok, Jangkang", "cells": 12,
        "rank_province": 3, "travel_min_puskesmas": 61.4,
        "contrib_travel": 0.1, "contrib_extreme_rate": 0.5,
        "contrib_deprivation": 0.3, "contrib_assistance_gap": 0.0,
        "contrib_extreme_households": None,
    }
    html = pocket_popup_html(pocket, "en", bbox=(110.1, 0.1, 110.2, 0.2))
    assert "<script>" not in html and "&lt;script&gt;" in html and "Sanggau &amp; Sekadau" in html
    assert "1,234" in html and "456" in html and "0.81" in html and "25.0%" in html
    assert "Mukok, Jangkang" in html and "61 min" in html and "<td>3</td>" in html
    assert 'data-bbox="110.10000,0.10000,110.20000,0.20000"' in html
    items = re.findall(r"<li>(.*?) <span class=\"kantong-share\">(\d+)%</span></li>", html)
    assert [name for name, _ in items] == ["Extreme-poverty rate",
                                           "Lack of water, sanitation, electricity, housing",
                                           "Travel time to services"]
    assert [int(p) for _, p in items] == [56, 33, 11]
    # the same pocket in Bahasa Indonesia: Indonesian separators, the strategy by its number
    html_id = pocket_popup_html({**pocket, "strategy": 3}, "id")
    assert "Kantong kemiskinan 7" in html_id and "1.234" in html_id and "0,81" in html_id
    assert "25,0 %" in html_id and "61 menit" in html_id
    assert "Menghapus kantong kemiskinan: infrastruktur dasar" in html_id
    assert re.findall(r"kantong-share\">(\d+) %</span>", html_id) == ["56", "33", "11"]


def test_site_popup() -> None:
    site = {"rank": 2, "type": "water_point", "new_extreme_households": None,
            "cumulative_extreme_households": 40, "regency_name": "Sekadau",
            "district_name": "Belitang", "lon": 110.98765, "lat": 0.12345, "max_minutes": 60.0}
    html = site_popup_html(site, "en")
    assert "Site #2: new water point" in html
    assert "–" in html  # a withheld (small) count is shown as a dash, not as 0
    assert "40" in html and "Sekadau" in html and "Belitang" in html
    assert "0.12345, 110.98765" in html and "60 min" in html
    html_id = site_popup_html(site, "id")
    assert "Lokasi #2: sarana air bersih baru" in html_id and "0,12345, 110,98765" in html_id


def test_choose_layers_and_labels() -> None:
    served = ["households", "extreme_rate", "travel_min_school", "priority", "travel_min_posyandu",
              "pocket", "extreme_households"]
    assert choose_layers(served) == ("priority", "extreme_households", "extreme_rate",
                                     "travel_min_school", "travel_min_posyandu", "pocket")
    assert choose_layers(["households"]) == ("households",)
    assert indicator_label("travel_min_water_point", "en") == "Travel time to water point"
    assert indicator_label("travel_min_water_point", "id") == "Waktu tempuh ke sarana air bersih"
    assert indicator_label("share_inadequate_housing", "en") == \
        "Share of households: inadequate housing"
    assert indicator_label("priority", "en") == "Priority score"
    assert indicator_label("priority", "id") == "Skor prioritas"


def test_initial_zoom_fits_bounds() -> None:
    small = initial_zoom((110.6, -0.05, 110.85, 0.15))
    province = initial_zoom((108.7, -3.1, 114.2, 2.1))
    assert 11 <= small <= 13
    assert 6 <= province <= 8
    assert initial_zoom((110.0, 0.0, 110.0, 0.0)) == 16  # a point: capped


def test_pocket_contributions_weighted_mean() -> None:
    cells = pd.DataFrame({"pocket_id": pd.array([1, 1, 2, None], dtype="Int64"),
                          "households": [10, 30, 5, 100],
                          "contrib_travel": [0.2, 0.6, 0.1, 0.9],
                          "contrib_extreme_rate": [0.0, 0.4, 0.3, 0.9]})
    out = pocket_contributions(cells)
    assert out.loc[1, "contrib_travel"] == pytest.approx((0.2 * 10 + 0.6 * 30) / 40)
    assert out.loc[1, "contrib_extreme_rate"] == pytest.approx(0.3)
    assert out.loc[2, "contrib_travel"] == pytest.approx(0.1)
    assert list(out.index) == [1, 2]


def test_feature_collection_rounds_and_requires_crs() -> None:
    gdf = gpd.GeoDataFrame({"regency_code": ["6105"], "other": [1]},
                           geometry=[shapely.box(110.123456789, 0.1, 110.2, 0.2)], crs="EPSG:4326")
    fc = to_feature_collection(gdf, columns=("regency_code",), extra={"label": ["x"]})
    feature = fc["features"][0]
    assert feature["properties"] == {"regency_code": "6105", "label": "x"}
    xs = {pt[0] for pt in feature["geometry"]["coordinates"][0]}
    assert 110.12346 in xs
    with pytest.raises(RunError):
        to_feature_collection(gdf.set_crs(None, allow_override=True))
