"""Helpers of the real-browser tests: a live app on loopback and a cut-off headless Chromium.

Chromium (Debian's ``chromium`` + ``chromium-driver``) runs with every non-local host
unresolvable and a dead proxy, so any request leaving 127.0.0.1 fails (and shows in the
resource list). ``phone=True`` emulates a 390 x 844 CSS-pixel touch screen (Chromium's
device metrics; a headless window cannot be narrower than 500 px).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 20
#: axe-core, vendored as a test asset (tests/webmap/vendor/axe-core/README.md).
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PHONE = (390, 844)
DESKTOP = (1366, 768)


@contextlib.contextmanager
def live(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium(profile: Path, *, size: tuple[int, int] = DESKTOP, phone: bool = False
             ) -> Iterator[webdriver.Chrome]:
    """Start headless Chromium with the network cut off (no skip: CI installs it)."""
    assert CHROMIUM.is_file(), f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver"
    assert CHROMEDRIVER.is_file(), f"{CHROMEDRIVER} missing: apt-get install -y chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    width, height = (max(size[0], 500), size[1]) if phone else size
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-extensions", "--disable-default-apps",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}",
                 "--force-device-scale-factor=1",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(WAIT)
    drv.set_script_timeout(WAIT)
    if phone:
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": True})
        drv.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})
    try:
        yield drv
    finally:
        drv.quit()


def wait(drv: webdriver.Chrome, script: str, message: str, *args: Any,
         navigating: bool = False) -> Any:
    """Poll ``script`` (JavaScript returning a truthy value) until it holds.

    ``navigating``: a page is being replaced, so a failed call is retried rather than
    raised (Chromium may answer a script or element read under a page that is going away
    with an "unknown error" such as "Node with given id does not belong to the document").
    """
    ignored = (WebDriverException,) if navigating else None
    return WebDriverWait(drv, WAIT, poll_frequency=0.1, ignored_exceptions=ignored).until(
        lambda d: d.execute_script(script, *args), message=message)


def severe(drv: webdriver.Chrome) -> list[dict[str, Any]]:
    """Return the console errors (CSP violations and failed loads included)."""
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def resources(drv: webdriver.Chrome) -> list[dict[str, Any]]:
    """Return the page's resource timing entries (name, status, sizes)."""
    return drv.execute_script(
        "return performance.getEntriesByType('resource').concat("
        "performance.getEntriesByType('navigation')).map(e => ({name: e.name, "
        "status: e.responseStatus, encoded: e.encodedBodySize, decoded: e.decodedBodySize}));")


def rects(drv: webdriver.Chrome, selector: str) -> list[dict[str, float]]:
    """Return the bounding boxes of the visible elements matching ``selector``."""
    return drv.execute_script(
        "return [...document.querySelectorAll(arguments[0])].filter(e => e.getClientRects()"
        ".length && getComputedStyle(e).visibility !== 'hidden').map(e => {"
        "const r = e.getBoundingClientRect();"
        "return {left: r.left, top: r.top, right: r.right, bottom: r.bottom,"
        " name: e.className || e.id}; })"
        ".filter(r => r.right > r.left && r.bottom > r.top);", selector)


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two boxes overlap (touching edges do not)."""
    return (a["left"] < b["right"] and b["left"] < a["right"]
            and a["top"] < b["bottom"] and b["top"] < a["bottom"])


def screen_xy(drv: webdriver.Chrome, lon: float, lat: float) -> tuple[float, float]:
    """Viewport CSS pixel position of a lon/lat on the map."""
    x, y = drv.execute_script(
        "const p = window.kantongMap.latLngToContainerPoint([arguments[1], arguments[0]]);"
        "const r = window.kantongMap.getContainer().getBoundingClientRect();"
        "return [r.left + p.x, r.top + p.y];", lon, lat)
    return float(x), float(y)


def axe_violations(drv: webdriver.Chrome, impacts: tuple[str, ...] = ("serious", "critical")
                   ) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2 A/AA rules) on the page; return violations of ``impacts``."""
    drv.execute_script(AXE.read_text(encoding="utf-8"))
    result = drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',"
        " 'wcag21aa', 'best-practice']}, resultTypes: ['violations']})"
        ".then(r => done(JSON.stringify(r.violations)), e => done(JSON.stringify("
        "[{id: 'axe-error', impact: 'critical', description: String(e), nodes: []}])));")
    return [{"id": v["id"], "impact": v["impact"], "help": v.get("help", v.get("description")),
             "nodes": [n.get("target") for n in v["nodes"]][:5]}
            for v in json.loads(result) if v.get("impact") in impacts]
