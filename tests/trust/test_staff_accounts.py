"""Issue 18, staff accounts: anonymous vs staff of A vs staff of B vs admin, audit, limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from trustcli import assert_one_line_error, invoke

from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app
from kantong.webmap.accounts import add_user, list_users

PASSWORD = "correct horse battery"
STAFF_K = 3
PUBLIC_K = 10


@pytest.fixture
def two_regency_run(web_run: Path) -> tuple[Path, str, str]:
    """The shared web run and its two regencies with the most households (A, B)."""
    pub = PublishedRun(web_run, min_households=PUBLIC_K)
    base = pd.read_parquet(web_run / "cells.parquet", columns=["regency_code", "households"])
    top = base.groupby("regency_code")["households"].sum().sort_values(ascending=False)
    assert len(top) >= 2
    a, b = str(top.index[0]), str(top.index[1])
    assert {a, b} <= set(pub.regency_codes())
    return web_run, a, b


@pytest.fixture
def staff_app(two_regency_run: tuple[Path, str, str], tmp_path: Path):
    run, a, b = two_regency_run
    users = tmp_path / "users.json"
    add_user(users, "ani", PASSWORD, role="staff", regency=a)
    add_user(users, "budi", PASSWORD, role="staff", regency=b)
    add_user(users, "root", PASSWORD, role="admin")
    app = create_app({"TESTING": True, "RUN_DIR": str(run), "MIN_HOUSEHOLDS": PUBLIC_K,
                      "USERS_FILE": str(users), "STAFF_MIN_HOUSEHOLDS": STAFF_K,
                      "AUDIT_LOG": str(tmp_path / "audit.log")})
    return app, a, b, tmp_path / "audit.log"


def _client(app):
    return app.test_client()


def _login(client, name: str, password: str = PASSWORD):
    form = client.get("/login", base_url="https://localhost")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    return client.post("/login", base_url="https://localhost",
                       data={"username": name, "password": password, "csrf_token": token})


def _staff_cells(client, **params) -> pd.DataFrame:
    r = client.get("/staff/api/cells", base_url="https://localhost", query_string=params)
    assert r.status_code == 200, r.text
    assert "no-store" in r.headers["Cache-Control"] and "private" in r.headers["Cache-Control"]
    return pd.DataFrame(r.json["cells"])


def test_anonymous_sees_only_public_cells(staff_app) -> None:
    app, a, _, _ = staff_app
    client = _client(app)
    assert client.get("/staff/api/cells", base_url="https://localhost").status_code == 401
    public = PublishedRun(app.config["RUN_DIR"], min_households=PUBLIC_K).cells()
    assert (public["households"] >= PUBLIC_K).all()


def test_staff_of_a_sees_finer_cells_of_a_and_nothing_finer_of_b(staff_app) -> None:
    app, a, b, audit = staff_app
    client = _client(app)
    assert _login(client, "ani").status_code == 303
    mine = _staff_cells(client)
    public = PublishedRun(app.config["RUN_DIR"], min_households=PUBLIC_K).cells()
    assert set(mine["regency_code"]) == {a}
    assert (mine["households"] >= STAFF_K).all()
    small = mine[mine["households"] < PUBLIC_K]
    assert len(small) > 0  # finer than the public map
    assert not set(small["h3"]) & set(public["h3"])
    # another regency: refused outright, and nothing of B in A's view
    r = client.get("/staff/api/cells", base_url="https://localhost", query_string={"regency": b})
    assert r.status_code == 403
    # B's staff sees B, not A
    other = _client(app)
    _login(other, "budi")
    theirs = _staff_cells(other)
    assert set(theirs["regency_code"]) <= {b} and not set(theirs["h3"]) & set(mine["h3"])
    # admin sees both regencies at the staff threshold
    root = _client(app)
    _login(root, "root")
    everything = _staff_cells(root)
    assert {a, b} <= set(everything["regency_code"])
    # downloads are staff-only, private and audited
    d = client.get("/staff/cells.geojson", base_url="https://localhost")
    assert d.status_code == 200 and "no-store" in d.headers["Cache-Control"]
    assert {f["properties"]["regency_code"] for f in d.json["features"]} == {a}
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["action"] for e in events if e["user"] == "ani"] == ["login", "view", "download"]
    assert any(e["user"] == "budi" and e["action"] == "view" for e in events)


def test_staff_numbers_never_isolate_a_withheld_cell_of_another_regency(staff_app) -> None:
    """Public atoms touching B stay whole: no staff-visible base cell of A lies in them."""
    app, a, _, _ = staff_app
    public = PublishedRun(app.config["RUN_DIR"], min_households=PUBLIC_K)
    atoms = public.plan.atoms
    base = pd.read_parquet(app.config["RUN_DIR"] + "/cells.parquet",
                           columns=["h3", "regency_code"]).set_index("h3")["regency_code"]
    regencies_of_atom = base.groupby(atoms["atom"].reindex(base.index)).nunique()
    client = _client(app)
    _login(client, "ani")
    mine = _staff_cells(client)
    mixed = set(regencies_of_atom[regencies_of_atom > 1].index)
    assert not set(atoms["atom"].reindex(mine["h3"])) & mixed


def test_login_needs_csrf_and_wrong_passwords_are_rate_limited(staff_app) -> None:
    app, _, _, audit = staff_app
    client = _client(app)
    no_token = client.post("/login", base_url="https://localhost",
                           data={"username": "ani", "password": PASSWORD})
    assert no_token.status_code == 400
    codes = [_login(client, "ani", "wrong password!").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert _login(client, "ani").status_code == 429  # even the right password, for a while
    events = [json.loads(line)["action"] for line in audit.read_text().splitlines()]
    assert events.count("login_failed") == 5 and "login_rate_limited" in events


def test_session_cookie_is_secure_and_logout_ends_it(staff_app) -> None:
    app, _, _, audit = staff_app
    client = _client(app)
    r = _login(client, "ani")
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/login", base_url="https://localhost")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/logout", base_url="https://localhost").status_code == 400  # no token
    assert client.post("/logout", base_url="https://localhost",
                       data={"csrf_token": token}).status_code == 303
    assert client.get("/staff/api/cells", base_url="https://localhost").status_code == 401
    assert "logout" in audit.read_text()


def test_users_command(tmp_path: Path, web_run: Path) -> None:
    users = tmp_path / "users.json"
    r = invoke("users", "add", "ani", "--users", users, "--regency", "6105",
               "--password-stdin", input_=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert [u.name for u in list_users(users)] == ["ani"]
    assert PASSWORD not in users.read_text() and "scrypt" in users.read_text()
    assert users.stat().st_mode & 0o077 == 0
    assert "ani" in invoke("users", "list", "--users", users).output
    assert_one_line_error(invoke("users", "add", "x", "--users", users, "--regency", "6105",
                                 "--password-stdin", input_="short\n"))
    assert_one_line_error(invoke("users", "add", "x", "--users", web_run / "users.json",
                                 "--role", "admin", "--password-stdin", input_=PASSWORD + "\n"))
    assert invoke("users", "remove", "ani", "--users", users).exit_code == 0
    assert list_users(users) == []


def test_tile_urls_come_from_the_configured_base_never_the_host(web_run: Path) -> None:
    app = create_app({"TESTING": True, "RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": PUBLIC_K,
                      "PUBLIC_URL": "https://kantong.example.go.id/"})
    client = app.test_client()
    doc = client.get("/tiles/cells.json", base_url="http://evil.example").json
    assert doc["tiles"] == ["https://kantong.example.go.id/tiles/cells/{z}/{x}/{y}.pbf"]
    layers = client.get("/api/indicators", base_url="http://evil.example").json
    assert all(x["tiles"].startswith("https://kantong.example.go.id/tiles/") for x in layers)


def test_serve_warns_without_tls_beyond_loopback(two_regency_run: tuple[Path, str, str],
                                                 tmp_path: Path, no_listen: None) -> None:
    """``serve --host 0.0.0.0 --users`` warns and points to the reverse-proxy recipe."""
    run, a, _ = two_regency_run
    users = tmp_path / "users.json"
    add_user(users, "ani", PASSWORD, role="staff", regency=a)
    out = invoke("serve", "--run", run, "--host", "0.0.0.0", "--users", users).output
    assert "no TLS" in out and "docs/security.md" in out and "staff login at" in out
    quiet = invoke("serve", "--run", run, "--host", "127.0.0.1").output
    assert "no TLS" not in quiet
