"""The map as provincial staff use it, in the real headless Chromium (network cut off).

Desktop (1366 x 768) and phone (390 x 844): Bahasa Indonesia by default with no English
text of the translation table left, English with ``?lang=en``; a click on a published cell
shows its households from ``/api/cells/<h3>``; the search box finds a village and zooms
there; on the phone no two visible controls overlap (closed, menu open, layers open, legend
open) and popups opened anywhere stay fully visible; the page and GeoJSON arrive
gzip-compressed; no request leaves loopback; axe-core finds no serious or critical
violation. Screenshots are kept in /tmp/kantong_staff_*.png.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import h3
import pytest
from browser import (
    DESKTOP,
    PHONE,
    axe_violations,
    chromium,
    live,
    overlap,
    rects,
    resources,
    screen_xy,
    severe,
    wait,
)
from selenium import webdriver
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from kantong.engine.inputs import boundaries
from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app
from kantong.webmap.config import resolution_for_zoom
from kantong.webmap.i18n import MESSAGES, fmt_int

pytestmark = pytest.mark.browser

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy env


@pytest.fixture(scope="module")
def server(pipeline_run: Path) -> Iterator[str]:
    with live(create_app({"RUN_DIR": str(pipeline_run), "TESTING": True})) as url:
        yield url


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-desktop"), size=DESKTOP) as drv:
        yield drv


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-phone"), size=PHONE, phone=True) as drv:
        yield drv


def english_fragments() -> set[str]:
    """English texts of the table that an Indonesian page must not show.

    Each English message that differs from its Indonesian one, split at its placeholders,
    gives the fragments with a word of at least 4 letters that the Indonesian text does not
    contain itself (proper names such as "Kalimantan" are in both).
    """
    out = set()
    for ind, en in MESSAGES.values():
        if ind == en:
            continue
        for part in re.split(r"\{[a-z_]+\}|<br>", en):
            part = part.strip(" :·,.()#")
            if re.search(r"[A-Za-z]{4,}", part) and part not in ind:
                out.add(part)
    return out


def _page_text(drv: webdriver.Chrome) -> str:
    """Visible text plus the text-bearing attributes (titles, labels, placeholders)."""
    return drv.execute_script(
        "const attrs = [...document.querySelectorAll('[title],[aria-label],[placeholder]')]"
        ".flatMap(e => [e.title, e.getAttribute('aria-label'), e.placeholder]);"
        "return document.body.innerText + '\\n' + document.title + '\\n' + attrs.join('\\n');")


def _open(drv: webdriver.Chrome, url: str) -> None:
    drv.get(url)
    wait(drv, "return !!window.kantongMap && !!document.querySelector("
              "'#kantong-legend .kantong-legend-title');", "the viewer did not start")


def _popup_text(drv: webdriver.Chrome) -> str:
    return wait(drv, "const p = document.querySelector('.leaflet-popup');"
                     "const c = p && p.querySelector('.leaflet-popup-content');"
                     "return c && getComputedStyle(p).opacity === '1' &&"
                     " !c.textContent.includes('…') && c.innerText.length > 10 && c.innerText;",
                "no popup content")


def _click(drv: webdriver.Chrome, x: float, y: float) -> None:
    actions = ActionBuilder(drv)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y))).click()
    actions.perform()


def _plain_cell(run: PublishedRun, drv: webdriver.Chrome) -> tuple[float, float, str]:
    """A published base cell outside pockets and away from site markers, on screen."""
    cells = run.cells()
    sites = [screen_xy(drv, p.x, p.y) for p in run.sites().geometry]
    plain = cells[cells["pocket_id"].isna()].sort_values("households", ascending=False)
    for lon, lat, cell_id in zip(plain["lon"], plain["lat"], plain["h3"], strict=True):
        x, y = screen_xy(drv, lon, lat)
        if all((x - sx) ** 2 + (y - sy) ** 2 > 30 ** 2 for sx, sy in sites):
            hit = drv.execute_script("const e = document.elementFromPoint(arguments[0],"
                                     " arguments[1]); return e && e.classList.contains("
                                     "'leaflet-container');", x, y)
            if hit:  # the map itself (tiles take no pointer events), no control or feature
                return lon, lat, cell_id
    raise AssertionError("no plain published cell is clickable")


def test_indonesian_first_inspect_search_gzip_axe(desktop: webdriver.Chrome, server: str,
                                                  pipeline_run: Path) -> None:
    drv = desktop
    run = PublishedRun(pipeline_run)
    _open(drv, server + "/")
    assert drv.execute_script("return document.documentElement.lang") == "id"
    assert drv.title == "Kantong — kantong kemiskinan Kalimantan Barat"

    # --- keyboard: Tab walks the panel first (language, search, regency, lists, actions),
    # then the map's own controls; everything reached has a name
    order = []
    drv.execute_script("document.activeElement.blur();")
    for _ in range(24):
        drv.switch_to.active_element.send_keys(Keys.TAB)
        order.append(drv.execute_script(
            "const e = document.activeElement; const l = e.labels && e.labels[0];"
            "return [e.id || e.className || e.tagName, (e.getAttribute('aria-label') ||"
            " (l && l.textContent) || e.textContent || e.title || '').trim()];"))
    ids = [i for i, _ in order]
    panel = ["kantong-lang", "kantong-search", "kantong-regency", "kantong-print",
             "kantong-copy-link"]
    positions = [ids.index(name) for name in panel]
    assert positions == sorted(positions), order
    zoom = next(i for i, (name, _) in enumerate(order) if "zoom-in" in name)
    assert zoom > positions[-1], ids
    assert all(label for name, label in order if "leaflet-container" not in name), order

    # --- a real click on a published cell: its figures from /api/cells/<h3>
    drv.execute_script("window.kantongMap.setZoom(12, {animate: false});")
    wait(drv, "return !window.kantongMap._animatingZoom;", "zoom did not settle")
    lon, lat, _ = _plain_cell(run, drv)
    x, y = screen_xy(drv, lon, lat)
    _click(drv, x, y)
    text = _popup_text(drv)
    res = resolution_for_zoom(12, run.resolutions)
    cell_id = h3.latlng_to_cell(lat, lon, res)
    assert f"Sel H3 {cell_id}" in text
    with DIRECT.open(f"{server}/api/cells/{cell_id}", timeout=20) as answer:
        record = json.load(answer)
    assert f"Rumah tangga {fmt_int(record['households'], 'id')}" in text.replace("\t", " ")
    assert f"Kecamatan {record['district_name']}" in text.replace("\t", " ")

    # --- a pocket popup (translated, with zoom-to) and a site popup
    pid = int(run.pockets().sort_values("rank_province")["pocket_id"].iloc[0])
    drv.find_element(By.CSS_SELECTOR, "details.kantong-pockets summary").click()
    drv.find_element(By.CSS_SELECTOR, f"button.kantong-pocket-item[data-pocket='{pid}']").click()
    wait(drv, "const h = document.querySelector('.leaflet-popup-content h3');"
              f"return h && h.textContent === 'Kantong kemiskinan {pid}';", "no pocket popup")
    pocket_text = _popup_text(drv)
    assert "Strategi yang disarankan:" in pocket_text and "Perbesar ke sini" in pocket_text
    shown = _page_text(drv) + "\n" + pocket_text + "\n" + text
    drv.execute_script("window.kantongMap.closePopup();")
    site = run.sites().sort_values("rank").iloc[0]
    drv.execute_script("window.kantongMap.setView([arguments[1], arguments[0]], 12,"
                       " {animate: false});", site["lon"], site["lat"])
    sx, sy = screen_xy(drv, site["lon"], site["lat"])
    _click(drv, sx, sy)
    site_text = _popup_text(drv)
    assert "Lokasi #1: puskesmas baru" in site_text and "Batas waktu tempuh" in site_text
    shown += "\n" + site_text + "\n" + _page_text(drv)
    drv.execute_script("window.kantongMap.closePopup();")

    # --- no English text of the translation table on the Indonesian page
    left = sorted(f for f in english_fragments() if f in shown)
    assert not left, f"English left on the Indonesian page: {left}"

    # --- search a village by name; choosing it zooms there
    villages = boundaries.village_points()
    ours = villages[villages["regency_code"].isin(run.regencies()["regency_code"])]
    unique = ours[~villages["village_name"].duplicated(keep=False).reindex(ours.index)]
    village = unique.sort_values("area_km2").iloc[len(unique) // 2]
    box = drv.find_element(By.ID, "kantong-search")
    box.clear()
    box.send_keys(village["village_name"])
    wait(drv, "return [...document.querySelectorAll('.kantong-result-name')].some("
              "e => e.textContent === arguments[0]);", "village not found", village["village_name"])
    box.send_keys(Keys.ARROW_DOWN)
    drv.switch_to.active_element.send_keys(Keys.ENTER)
    wait(drv, "const m = window.kantongMap; const b = m.getBounds();"
              "return !m._animatingZoom && b.getEast() - b.getWest() < 0.5 &&"
              " b.contains([arguments[1], arguments[0]]);",
         "the map did not zoom to the village", float(village["lon"]), float(village["lat"]))
    zoom = drv.execute_script("return window.kantongMap.getZoom()")
    assert f"z={zoom}" in drv.current_url  # the view is kept in the URL

    # --- gzip (the page and GeoJSON), and nothing left loopback
    entries = resources(drv)
    page = next(e for e in entries if e["name"].startswith(server + "/?") or
                e["name"] == server + "/")
    assert 0 < page["encoded"] < page["decoded"] / 2, page
    geo = [e for e in entries if "/api/context/districts.geojson" in e["name"]]
    assert geo and 0 < geo[0]["encoded"] < geo[0]["decoded"] / 2, geo
    foreign = [e["name"] for e in entries if not e["name"].startswith(server + "/")
               and not e["name"].startswith("data:")]
    assert not foreign, f"requests left the app: {foreign}"

    # --- downloads: three formats per layer, each with its size (a HEAD request)
    drv.find_element(By.CSS_SELECTOR, "details.kantong-downloads summary").click()
    sizes = wait(drv, "const s = [...document.querySelectorAll('.kantong-size')]"
                      ".filter(e => e.offsetParent).map(e => e.textContent);"
                      "return s.length >= 6 && s.every(t => /^[0-9.,]+ (B|KB|MB)$/.test(t)) && s;",
                 "download sizes not shown")
    with DIRECT.open(urllib.request.Request(f"{server}/download/pockets.gpkg", method="HEAD"),
                     timeout=20) as answer:
        kb = int(answer.headers["Content-Length"]) / 1024
    href = drv.find_element(By.CSS_SELECTOR, "a[data-layer=pockets][data-format=gpkg]")
    shown_size = href.find_element(By.XPATH, "following-sibling::span").text
    assert shown_size in (f"{kb:.0f} KB", f"{kb / 1024:.1f} MB".replace(".", ",")), \
        (shown_size, kb, sizes)

    # --- existing facilities: loaded on demand from /api/facilities, all of them drawn
    facilities = run.facilities()
    drv.execute_script("const api = window.kantongViewerApi;"
                       "api.map.addLayer(api.layers.facilities);")
    wait(drv, "return window.kantongViewerApi.layers.facilities.getLayers().length ==="
              " arguments[0];", "facilities not drawn", len(facilities))

    # --- print: title, legend, scale, date, run and source; no other control
    drv.execute_script("window.dispatchEvent(new Event('beforeprint'));")
    drv.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        info = drv.find_element(By.ID, "kantong-print-info").text
        assert run.run_id in info and "Dicetak" in info and "BPS 2020" in info
        for hidden in (".leaflet-control-zoom", ".leaflet-control-layers", "#kantong-panel-body",
                       "#kantong-lang"):
            assert not drv.find_element(By.CSS_SELECTOR, hidden).is_displayed(), hidden
        for shown in ("#kantong-panel h1", "#kantong-legend", ".leaflet-control-scale"):
            assert drv.find_element(By.CSS_SELECTOR, shown).is_displayed(), shown
        assert drv.execute_script("return document.getElementById('kantong-legend-details')"
                                  ".open;")
    finally:
        drv.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        drv.execute_script("window.dispatchEvent(new Event('afterprint'));")

    # --- accessibility: axe-core, no serious or critical violation (page and open popup)
    bad = axe_violations(drv)
    assert not bad, json.dumps(bad, indent=1)
    errors = severe(drv)
    assert not errors, f"browser console errors: {errors}"
    drv.save_screenshot("/tmp/kantong_staff_desktop.png")

    # --- English on request, and the switch keeps the view
    drv.find_element(By.ID, "kantong-lang").click()
    wait(drv, "return document.documentElement.lang === 'en' && !!document.querySelector("
              "'#kantong-legend .kantong-legend-title');", "the English page did not open")
    assert "lang=en" in drv.current_url and drv.title.startswith("Kantong — poverty pockets")
    assert drv.execute_script("return window.kantongMap.getZoom()") == zoom


def _controls_clear(drv: webdriver.Chrome, state: str) -> None:
    boxes = rects(drv, ".leaflet-control-container .leaflet-control")
    assert len(boxes) >= 4, boxes
    clashes = [(a["name"], b["name"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
               if overlap(a, b)]
    assert not clashes, f"{state}: controls overlap: {clashes}"
    width, height = PHONE
    outside = [b["name"] for b in boxes if b["left"] < 0 or b["top"] < 0
               or b["right"] > width or b["bottom"] > height]
    assert not outside, f"{state}: controls off screen: {outside}"


def test_phone_layout_no_overlap_and_popups_visible(phone: webdriver.Chrome, server: str) -> None:
    drv = phone
    _open(drv, server + "/")
    assert drv.execute_script("return [innerWidth, innerHeight]") == list(PHONE)
    viewport = drv.find_element(By.CSS_SELECTOR, "meta[name=viewport]").get_attribute("content")
    assert "user-scalable=no" not in viewport and "maximum-scale" not in viewport
    _controls_clear(drv, "closed")
    # controls take little of the screen when closed
    area = sum((b["right"] - b["left"]) * (b["bottom"] - b["top"])
               for b in rects(drv, ".leaflet-control-container .leaflet-control"))
    assert area < 0.2 * PHONE[0] * PHONE[1], area
    drv.save_screenshot("/tmp/kantong_staff_phone.png")

    drv.find_element(By.ID, "kantong-menu-toggle").click()
    wait(drv, "return !document.getElementById('kantong-panel-body').hidden;", "menu closed")
    _controls_clear(drv, "menu open")
    drv.find_element(By.CSS_SELECTOR, ".leaflet-control-layers-toggle").click()
    wait(drv, "return document.querySelector('.leaflet-control-layers')"
              ".classList.contains('leaflet-control-layers-expanded');", "layer list closed")
    assert drv.execute_script("return document.getElementById('kantong-panel-body').hidden")
    _controls_clear(drv, "layers open")
    drv.find_element(By.CSS_SELECTOR, "#kantong-legend-details summary").click()
    wait(drv, "return document.getElementById('kantong-legend-details').open;", "legend closed")
    _controls_clear(drv, "legend open")
    drv.save_screenshot("/tmp/kantong_staff_phone_legend.png")

    # popups opened near every edge pan into view, clear of the controls
    drv.execute_script("window.kantongMap.setZoom(12, {animate: false});")
    for fx, fy in ((0.5, 0.5), (0.05, 0.05), (0.95, 0.05), (0.05, 0.95), (0.95, 0.95)):
        drv.execute_script(
            "const m = window.kantongMap; const s = m.getSize();"
            "m.fire('click', {latlng: m.containerPointToLatLng([s.x * arguments[0],"
            " s.y * arguments[1]])});", fx, fy)
        wait(drv, "const c = document.querySelector('.leaflet-popup-content');"
                  "return c && !c.textContent.includes('…') && !window.kantongMap._panAnim"
                  "?._inProgress;", "popup did not settle")
        wait(drv, "return !window.kantongMap._panAnim || !window.kantongMap._panAnim._inProgress;",
             "pan did not end")
        popup = rects(drv, ".leaflet-popup")[0]
        assert popup["left"] >= 0 and popup["top"] >= 0, (fx, fy, popup)
        assert popup["right"] <= PHONE[0] and popup["bottom"] <= PHONE[1], (fx, fy, popup)
        under = [c["name"] for c in rects(drv, ".leaflet-control-container .leaflet-control")
                 if overlap(popup, c)]
        assert not under, f"popup at {fx},{fy} under controls {under}"
    drv.save_screenshot("/tmp/kantong_staff_phone_popup.png")
    bad = axe_violations(drv)
    assert not bad, json.dumps(bad, indent=1)
    errors = severe(drv)
    assert not errors, f"browser console errors: {errors}"
