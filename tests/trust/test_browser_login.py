"""Staff login in the real headless Chromium (issue 18 acceptance), network cut off.

Anonymous: the staff API answers 401 and a cell below K is not in the public API. Staff of
regency A logs in through the form (CSRF token, Secure session cookie over loopback):
sees A's cells below the public K and nothing of B; B's staff sees B only. Wrong passwords
are rate limited (429). The audit log records both accounts' logins and views.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from kantong.webmap import create_app
from kantong.webmap.accounts import add_user

sys.path.insert(0, str(Path(__file__).parents[1] / "webmap"))
from browser import chromium, live, wait  # noqa: E402 (the shared browser helpers)

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
PUBLIC_K = 10


@pytest.fixture(scope="module")
def site(web_run: Path, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[str, str, str, Path]]:
    """A live app with staff accounts for the two largest regencies (A, B)."""
    tmp = tmp_path_factory.mktemp("login")
    base = pd.read_parquet(web_run / "cells.parquet", columns=["regency_code", "households"])
    top = base.groupby("regency_code")["households"].sum().sort_values(ascending=False)
    a, b = str(top.index[0]), str(top.index[1])
    users = tmp / "users.json"
    add_user(users, "ani", PASSWORD, role="staff", regency=a)
    add_user(users, "budi", PASSWORD, role="staff", regency=b)
    app = create_app({"RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": PUBLIC_K,
                      "USERS_FILE": str(users), "STAFF_MIN_HOUSEHOLDS": 3,
                      "AUDIT_LOG": str(tmp / "audit.log")})
    with live(app) as url:
        yield url, a, b, tmp / "audit.log"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "profile") as drv:
        yield drv


def _text(drv: webdriver.Chrome) -> str:
    """The loaded page's text, read in one script call, retried while the page changes.

    Chromium's JSON viewer can replace the body right after load, so a body element found
    first and read afterwards may no longer belong to the document.
    """
    return wait(drv, "return document.readyState === 'complete' && document.body"
                " ? document.body.innerText : null", "the page has no text", navigating=True)


def _json(drv: webdriver.Chrome, url: str) -> object:
    drv.get(url)
    return json.loads(_text(drv))


def _login(drv: webdriver.Chrome, url: str, name: str, password: str = PASSWORD) -> str:
    drv.get(f"{url}/login")
    drv.find_element(By.NAME, "username").send_keys(name)
    drv.find_element(By.NAME, "password").send_keys(password)
    drv.execute_script("window.kantongLoginForm = true")  # gone once the answer page loads
    drv.find_element(By.TAG_NAME, "button").click()
    # not staleness_of(button): Chromium may answer a read of the old button with an
    # "unknown error" instead of a stale element while the next page replaces it
    wait(drv, "return window.kantongLoginForm === undefined"
         " && document.readyState === 'complete'", "the login did not answer", navigating=True)
    return _text(drv)


def test_anonymous_staff_a_b_and_rate_limit_in_chromium(site: tuple[str, str, str, Path],
                                             browser: webdriver.Chrome) -> None:
    url, a, b, audit = site
    assert _json(browser, f"{url}/staff/api/cells") == {"error": "login required"}
    text = _login(browser, url, "ani")
    assert "Signed in as ani" in text and a in text
    mine = pd.DataFrame(_json(browser, f"{url}/staff/api/cells")["cells"])
    assert set(mine["regency_code"]) == {a}
    small = mine[mine["households"] < PUBLIC_K]
    assert len(small) > 0  # finer than the public map ...
    for h3_id in small["h3"].head(3):  # ... and those cells are not public
        browser.get(f"{url}/api/cells/{h3_id}")
        assert '"households"' not in _text(browser)
    browser.get(f"{url}/staff/api/cells?regency={b}")
    assert "403" in browser.title or "own regency" in _text(browser)
    browser.delete_all_cookies()
    _login(browser, url, "budi")
    theirs = pd.DataFrame(_json(browser, f"{url}/staff/api/cells")["cells"])
    assert set(theirs["regency_code"]) == {b} and not set(theirs["h3"]) & set(mine["h3"])
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {(e["user"], e["action"]) for e in events} >= {
        ("ani", "login"), ("ani", "view"), ("budi", "login"), ("budi", "view")}
    # wrong passwords are rate limited (same browser: one Chromium start for the module)
    browser.delete_all_cookies()
    texts = [_login(browser, url, "nobody", "wrong password!") for _ in range(6)]
    assert all("Wrong user name or password" in t for t in texts[:5])
    assert "Too many failed logins" in texts[5]
    assert "login_rate_limited" in audit.read_text()
