"""The viewer page in a real headless Chromium, against a live app, with the network cut off.

The app serves a tiny run (tests/factories.py ``make_run`` + the real pockets and sites
stages) on a free 127.0.0.1 port; Chromium (Debian's ``chromium`` + ``chromium-driver``)
loads ``/`` with every non-local host unresolvable and a dead proxy. Asserts: no console
error (CSP violations and failed loads are console errors), only same-origin requests,
tiles requested with 200 and drawn (pixel colours at published cells differ from the
background), a pocket popup opens on a real click, the regency selector zooms, the legend
shows and follows the base layer. A screenshot is kept in /tmp/kantong_viewer.png.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser import WAIT, chromium, live
from browser import overlap as _overlap
from browser import rects as _rects
from browser import resources as _resources
from browser import screen_xy as _screen_xy
from browser import severe as _severe
from browser import wait as _wait
from factories import make_run
from PIL import Image
from selenium import webdriver
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from kantong.engine.config import Config
from kantong.engine.inputs import boundaries
from kantong.engine.pockets.run import write_pockets
from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app

pytestmark = pytest.mark.browser

SCREENSHOT_COPY = Path("/tmp/kantong_viewer.png")
SCREENSHOT_POPUP = Path("/tmp/kantong_viewer_popup.png")
SCREENSHOT_REGENCY = Path("/tmp/kantong_viewer_regency.png")
WIDTH, HEIGHT = 1280, 860
PROVINCE_FILL = (0xF7, 0xF5, 0xF0)  # kantong.webmap.page.build _STYLE_RUN_PROVINCE fillColor


@pytest.fixture(scope="module")
def run_dir(pipeline_run: Path) -> Path:
    return pipeline_run


@pytest.fixture(scope="module")
def server(run_dir: Path) -> Iterator[str]:
    with live(create_app({"RUN_DIR": str(run_dir), "TESTING": True})) as url:
        yield url


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), size=(WIDTH, HEIGHT)) as drv:
        yield drv










def _tiles_settled(drv: webdriver.Chrome, indicator: str) -> None:
    _wait(drv, "const t = [...document.querySelectorAll('img.leaflet-tile')]"
               f".filter(i => i.src.includes('/tiles/{indicator}/'));"
               "return t.length > 0 && t.every(i => i.classList.contains('leaflet-tile-loaded'))"
               " && !window.kantongMap._animatingZoom;",
          f"{indicator} tiles never finished loading")


def test_viewer_in_headless_chromium(driver: webdriver.Chrome, server: str, run_dir: Path,
                                     tmp_path: Path) -> None:
    drv = driver
    drv.get(server + "/?lang=en")  # the English page (the Indonesian one: test_browser_staff)
    _wait(drv, "return !!window.kantongMap", "the viewer script never created window.kantongMap")
    _tiles_settled(drv, "priority")

    # --- legend of the default (priority) layer
    _wait(drv, "const t = document.querySelector('#kantong-legend .kantong-legend-title');"
               "return t && t.textContent === 'Priority score';", "priority legend not shown")
    legend = drv.find_element(By.ID, "kantong-legend")
    assert legend.is_displayed()
    assert len(legend.find_elements(By.CSS_SELECTOR, ".kantong-legend-tick")) >= 2
    assert "fewer than 10 households" in legend.text
    assert "No data" in legend.text  # the base resolution: no derived values
    assert drv.title.startswith("Kantong — poverty pockets of Kalimantan Barat")

    # --- tiles: requested from this app with 200, and nothing requested anywhere else
    resources = _resources(drv)
    tiles = [r for r in resources if "/tiles/priority/" in r["name"] and r["name"].endswith(".png")]
    assert tiles, "no priority tile was requested"
    assert all(r["status"] == 200 for r in tiles), tiles
    foreign = [r["name"] for r in resources
               if not r["name"].startswith(server + "/") and not r["name"].startswith("data:")]
    assert not foreign, f"requests left the app: {foreign}"

    # --- pixels: published cells are drawn, the background elsewhere is the province fill
    pub = PublishedRun(run_dir)
    cells = pub.cells()
    plain = cells[cells["pocket_id"].isna()]
    sites = pub.sites()
    shot = tmp_path / "viewer.png"
    assert drv.save_screenshot(str(shot))
    shutil.copyfile(shot, SCREENSHOT_COPY)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    site_xy = np.array([_screen_xy(drv, p.x, p.y) for p in sites.geometry])
    sample = plain.sample(n=min(25, len(plain)), random_state=0)
    drawn = 0
    checked = 0
    for lon, lat in zip(sample["lon"], sample["lat"], strict=True):
        x, y = _screen_xy(drv, lon, lat)
        if np.hypot(*(site_xy - (x, y)).T).min() < 15:
            continue  # under a site marker
        checked += 1
        assert 0 <= x < img.shape[1] and 0 <= y < img.shape[0], "cells outside the initial view"
        rgb = img[int(round(y)), int(round(x))]
        drawn += int(np.abs(rgb - PROVINCE_FILL).max() > 30)
    assert checked >= 15
    assert drawn >= 0.9 * checked, f"only {drawn}/{checked} published cells look drawn"
    # left of the cells, at mid height, the map shows the plain province background
    w, s, e, n = cells.total_bounds
    left, mid = _screen_xy(drv, w, (s + n) / 2)
    bx, by = int(left / 2), int(mid)
    assert 10 < bx < left - 10 and 0 < by < img.shape[0], (bx, by)
    assert np.abs(img[by, bx] - PROVINCE_FILL).max() <= 6, img[by, bx]

    # --- a real click on a pocket opens its popup
    pocket = pub.pockets().iloc[0]
    pid = int(pocket["pocket_id"])
    inside = cells[cells["pocket_id"] == pid]
    for lon, lat in zip(inside["lon"], inside["lat"], strict=True):
        x, y = _screen_xy(drv, lon, lat)
        hit = drv.execute_script("const e = document.elementFromPoint(arguments[0], arguments[1]);"
                                 "return e && e.getAttribute('class');", x, y)
        if hit and "kantong-pocket" in hit:
            break
    else:
        pytest.fail(f"no cell of pocket {pid} is clickable on its outline layer")
    actions = ActionBuilder(drv)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y))).click()
    actions.perform()
    _wait(drv, "const p = document.querySelector('.leaflet-popup');"
               "return p && getComputedStyle(p).opacity === '1';", "no popup opened")
    popup = drv.find_element(By.CSS_SELECTOR, ".leaflet-popup-content").text
    assert "extreme" in popup.lower()
    assert f"Poverty pocket {pid}" in popup
    assert "Recommended strategy" in popup and "Top contributing indicators" in popup
    drv.save_screenshot(str(tmp_path / "popup.png"))
    shutil.copyfile(tmp_path / "popup.png", SCREENSHOT_POPUP)
    drv.execute_script("window.kantongMap.closePopup();")

    # --- the regency selector zooms to the regency's outline
    regencies = pub.regencies()
    target = regencies.sort_values("households").iloc[-1]
    outline = boundaries.regencies().set_index("regency_code").loc[target["regency_code"]]
    rw, rs, re_, rn = outline.geometry.bounds
    zoom_before = drv.execute_script("return window.kantongMap.getZoom();")
    options = [o.get_attribute("value") for o in
               drv.find_elements(By.CSS_SELECTOR, "#kantong-regency option")]
    assert set(regencies["regency_code"]) <= set(options)
    Select(drv.find_element(By.ID, "kantong-regency")).select_by_value(target["regency_code"])
    _wait(drv, "const b = window.kantongMap.getBounds(); const t = 0.02;"
               "return !window.kantongMap._animatingZoom"
               f" && b.getWest() <= {rw} + t && b.getSouth() <= {rs} + t"
               f" && b.getEast() >= {re_} - t && b.getNorth() >= {rn} - t;",
          "the map did not zoom to the chosen regency")
    zoom_after, centre = drv.execute_script(
        "const m = window.kantongMap; const c = m.getCenter();"
        "return [m.getZoom(), [c.lng, c.lat]];")
    assert zoom_after < zoom_before
    assert abs(centre[0] - (rw + re_) / 2) < 0.25 * (re_ - rw)
    assert abs(centre[1] - (rs + rn) / 2) < 0.25 * (rn - rs)
    # the legend follows the zoom (count domains depend on the resolution drawn)
    _wait(drv, "return performance.getEntriesByType('resource').some(e => e.name.endsWith("
               f"'/tiles/priority/legend.json?z={zoom_after}'));",
          "legend not refreshed for the new zoom")
    links = {a.get_attribute("data-layer") + "." + a.get_attribute("data-format"):
             a.get_attribute("href")
             for a in drv.find_elements(By.CSS_SELECTOR, "a.kantong-download")}
    assert links["cells.geojson"] == \
        f"{server}/download/cells.geojson?regency={target['regency_code']}"
    assert links["cells.gpkg"] == f"{server}/download/cells.gpkg?regency={target['regency_code']}"
    links["pockets"] = links["pockets.geojson"]
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy env
    with direct.open(links["pockets"], timeout=WAIT) as answer:
        assert answer.status == 200
        assert json.load(answer)["type"] == "FeatureCollection"
    _tiles_settled(drv, "priority")
    drv.save_screenshot(str(tmp_path / "regency.png"))
    shutil.copyfile(tmp_path / "regency.png", SCREENSHOT_REGENCY)

    # --- switching the base layer switches tiles and legend
    base_labels = drv.find_elements(By.CSS_SELECTOR, ".leaflet-control-layers-base label")
    label = next(el for el in base_labels
                 if el.text.strip() == "Travel time to health centre (puskesmas)")
    label.click()
    _wait(drv, "const t = document.querySelector('#kantong-legend .kantong-legend-title');"
               "return t && t.textContent === 'Travel time to health centre (puskesmas)';",
          "legend did not follow the base layer")
    _tiles_settled(drv, "travel_min_puskesmas")
    tiles = [r for r in _resources(drv) if "/tiles/travel_min_puskesmas/" in r["name"]]
    assert tiles and all(r["status"] == 200 for r in tiles)
    assert "min" in drv.find_element(By.ID, "kantong-legend").text

    # --- pocket rings at low zoom (a pocket is a few pixels there), outlines when zoomed in
    n_pockets = len(pub.pockets())
    for zoom, expected in ((9, n_pockets), (11, 0)):
        drv.execute_script("window.kantongMap.setZoom(arguments[0], {animate: false});", zoom)
        _wait(drv, "return !window.kantongMap._animatingZoom && document.querySelectorAll("
                   f"'path.kantong-pocket-marker').length === {expected};",
              f"expected {expected} pocket markers at zoom {zoom}")
    _assert_labels_clear_of_controls(drv)
    # zoomed in (11), the detailed coastline is fetched and drawn over the simplified background
    _wait(drv, "return performance.getEntriesByType('resource').some(e => e.name.endsWith("
               "'/api/context/coast.geojson')) && [...document.querySelectorAll("
               "'path.leaflet-interactive, path')].some(p => p.getAttribute('stroke') === "
               "'#4a4a4a');", "the detailed coastline was not drawn at zoom 11")
    # the province at zoom 8 (as in compare mode): Sambas sits under the title panel and
    # Kapuas Hulu under the layer control unless the viewer hides them
    drv.execute_script("window.kantongMap.setView([-0.2, 111.0], 8, {animate: false});")
    _wait(drv, "return !window.kantongMap._animatingZoom && "
               "document.querySelectorAll('.kantong-regency-label').length > 5;",
          "regency labels not shown at zoom 8")
    _assert_labels_clear_of_controls(drv)
    assert len(_rects(drv, ".kantong-regency-label > div")) >= 6

    errors = _severe(drv)
    assert not errors, f"browser console errors: {errors}"






def _assert_labels_clear_of_controls(drv: webdriver.Chrome) -> None:
    labels = _rects(drv, ".kantong-regency-label > div")
    controls = _rects(drv, ".leaflet-control")
    assert controls
    under = [(lab, c) for lab in labels for c in controls if _overlap(lab, c)]
    assert not under, f"regency labels under a control: {under}"
    clashes = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if _overlap(a, b)]
    assert not clashes, f"regency labels overlap: {clashes}"


@pytest.fixture(scope="module")
def compare_server(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``kantong serve --run NEW --compare OLD``: the module's run is the earlier year."""
    new = tmp_path_factory.mktemp("browser-compare") / "run"
    make_run(new, seed=1)
    write_pockets(new, Config())
    app = create_app({"RUN_DIR": str(new), "COMPARE_RUN_DIR": str(run_dir), "TESTING": True})
    with live(app) as url:
        yield url


def test_compare_mode_controls_do_not_overlap(driver: webdriver.Chrome,
                                              compare_server: str) -> None:
    """Ten base layers, the legend and the open regency table on a short (1024 x 600) window."""
    drv = driver
    drv.set_window_size(1024, 600)
    inner = drv.execute_script("return [window.innerWidth, window.innerHeight];")
    drv.set_window_size(1024 + 1024 - inner[0], 600 + 600 - inner[1])  # a 1024 x 600 viewport
    try:
        drv.get(compare_server + "/?lang=en")
        _wait(drv, "return !!window.kantongMap", "viewer script did not start")
        drv.execute_script(
            "[...document.querySelectorAll('.leaflet-control-layers-base label')].find("
            "l => l.textContent.trim() === 'Change in extreme-poor households').click();")
        _wait(drv, "const t = document.querySelector('#kantong-legend .kantong-legend-title');"
                   "return t && t.textContent.startsWith('Change in extreme-poor households');",
              "legend did not follow the change layer")
        _tiles_settled(drv, "change_extreme_households")
        legend = drv.find_element(By.ID, "kantong-legend").text
        assert "Published in one run only (change withheld)" in legend  # nodata_label
        assert "No data" not in legend
        drv.find_element(By.CSS_SELECTOR, "details.kantong-compare summary").click()
        _wait(drv, "return document.querySelector('details.kantong-compare').open;",
              "regency table did not open")
        _wait(drv, "const l = document.querySelector('.leaflet-control-layers')"
                   ".getBoundingClientRect();"
                   "return [...document.querySelectorAll("
                   "'.leaflet-bottom.leaflet-right > .leaflet-control')].every("
                   "c => c.getBoundingClientRect().top >= l.bottom);",
              "the layer control overlaps the legend or the regency table")
        # the chosen base layer stays visible in the (now scrolling) layer list
        assert drv.execute_script(
            "const i = document.querySelector('.leaflet-control-layers-base input:checked');"
            "const r = i.getBoundingClientRect();"
            "const l = document.querySelector('.leaflet-control-layers-list')"
            ".getBoundingClientRect();"
            "return r.top >= l.top - 1 && r.bottom <= l.bottom + 1;")
        _assert_labels_clear_of_controls(drv)
        drv.save_screenshot("/tmp/kantong_viewer_compare.png")
        resources = _resources(drv)
        foreign = [r["name"] for r in resources if not r["name"].startswith(compare_server + "/")
                   and not r["name"].startswith("data:")]
        assert not foreign, f"requests left the app: {foreign}"
        errors = _severe(drv)
        assert not errors, f"browser console errors: {errors}"
    finally:
        drv.set_window_size(WIDTH, HEIGHT)
