"""Staff login for the web map: sessions, CSRF, rate limiting, audit log, staff data.

Enabled when the app is created with ``USERS_FILE`` (``kantong serve --users FILE``).
Without a login everything is as before: the public view at the run's ``K``. A logged-in
account also reaches ``/staff/...``:

- ``staff`` of regency A: A's cells at ``STAFF_MIN_HOUSEHOLDS`` (``[privacy]
  staff_min_households``, never below 3), only cells whose households all lie in A and in
  public atoms entirely inside A (see :class:`StaffView`), so nothing finer about another
  regency can be derived by combining the staff and the public numbers.
- ``admin``: every regency at that threshold.

Sessions are Flask's signed cookies (``HttpOnly``, ``SameSite=Strict``, ``Secure``; browsers
send those over HTTPS and to ``http://localhost`` only) that expire after
``STAFF_SESSION_MINUTES``. Every state-changing request carries a CSRF token bound to the
session. Failed logins are rate limited per client address and per user name. Every
login, logout, staff view and staff download is appended to the audit log (JSON lines,
opened in append mode), and staff responses are ``Cache-Control: private, no-store``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    request,
    session,
)
from markupsafe import escape

from kantong.engine.errors import InputError
from kantong.webmap.accounts import User, authenticate, read_users

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

#: Failed logins allowed per client address (and per user name) within the window.
MAX_FAILURES = 5
#: Window of the failure count, in seconds.
FAILURE_WINDOW_S = 900
_SESSION_KEYS = ("user", "role", "regency", "login_at")


class RateLimiter:
    """Count failures per key in a sliding window (thread-safe, in memory)."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._events[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def blocked(self, *keys: str) -> float:
        """Return seconds until the first of ``keys`` may try again (0 when none is blocked)."""
        now = time.monotonic()
        with self._lock:
            waits = [q[0] + self.window_s - now for q in map(lambda k: self._trim(k, now), keys)
                     if len(q) >= self.limit]
        return max(waits, default=0.0)

    def failure(self, *keys: str) -> None:
        """Record one failure for every key."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._trim(key, now).append(now)

    def reset(self, *keys: str) -> None:
        """Forget the failures of ``keys`` (after a successful login)."""
        with self._lock:
            for key in keys:
                self._events.pop(key, None)


class AuditLog:
    """Append-only JSON-lines audit log: who, when, from where, what."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, action: str, *, user: str | None, **details: Any) -> None:
        """Append one event (``O_APPEND``: earlier lines are never rewritten)."""
        event = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "user": user, "address": request.remote_addr if request else None,
                 "action": action, **details}
        line = json.dumps(event, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)


def current_user() -> User | None:
    """Return the logged-in account of this request, or ``None``."""
    name = session.get("user")
    if not name:
        return None
    limit = current_app.config["STAFF_SESSION_MINUTES"] * 60
    if time.time() - float(session.get("login_at", 0)) > limit:
        session.clear()
        return None
    rec = current_app.extensions["kantong_users"]().get(name)
    if rec is None or rec["role"] != session.get("role") or rec.get("regency") != session.get(
            "regency"):
        session.clear()  # account removed or changed since the login
        return None
    return User(name, rec["role"], rec.get("regency"))


def csrf_token() -> str:
    """Return this session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, description="missing or wrong CSRF token; reload the page")


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Vary"] = "Cookie"
    return response


def login_required(view: Callable[..., Response]) -> Callable[..., Response]:
    """Decorate a staff view: 401 without a valid session; responses never cached."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        user = current_user()
        if user is None:
            return _private(jsonify({"error": "login required"})), 401
        return _private(current_app.make_response(view(user, *args, **kwargs)))
    return wrapped


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Kantong staff</title>
</head><body><h1>Kantong staff</h1>{body}</body></html>"""


def _page(body: str, status: int = 200) -> Response:
    return _private(Response(_PAGE.format(body=body), status=status, mimetype="text/html"))


@bp.get("/login")
def login_form() -> Response:
    """Show the login form (with its CSRF token), or the signed-in account."""
    user = current_user()
    token = escape(csrf_token())
    if user is not None:
        scope = "every regency" if user.is_admin else f"regency {escape(user.regency)}"
        return _page(f"<p>Signed in as <b>{escape(user.name)}</b> ({scope}).</p>"
                     f'<p><a href="/staff/cells.geojson">Download staff cells (GeoJSON)</a></p>'
                     f'<form method="post" action="/logout"><input type="hidden" '
                     f'name="csrf_token" value="{token}"><button>Log out</button></form>')
    return _page(f'<form method="post" action="/login"><input type="hidden" name="csrf_token" '
                 f'value="{token}"><label>User <input name="username" autocomplete="username">'
                 f'</label> <label>Password <input name="password" type="password" '
                 f'autocomplete="current-password"></label> <button>Log in</button></form>')


@bp.post("/login")
def login() -> Response:
    """Check the password (rate limited, CSRF protected) and start a session."""
    _check_csrf()
    name = str(request.form.get("username", "")).strip()[:64]
    password = str(request.form.get("password", ""))[:1024]
    limiter: RateLimiter = current_app.extensions["kantong_login_limiter"]
    audit: AuditLog = current_app.extensions["kantong_audit"]
    keys = (f"addr:{request.remote_addr}", f"user:{name}")
    wait = limiter.blocked(*keys)
    if wait > 0:
        audit.record("login_rate_limited", user=name or None)
        response = _page("<p>Too many failed logins; try again later.</p>", 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = authenticate(current_app.extensions["kantong_users"](), name, password)
    if user is None:
        limiter.failure(*keys)
        audit.record("login_failed", user=name or None)
        return _page("<p>Wrong user name or password.</p>", 401)
    limiter.reset(*keys)
    session.clear()  # new session: no fixation of a pre-login cookie
    session.update(user=user.name, role=user.role, regency=user.regency, login_at=time.time())
    session.permanent = True
    csrf_token()
    audit.record("login", user=user.name, role=user.role, regency=user.regency)
    return _private(redirect("/login", code=303))


@bp.post("/logout")
def logout() -> Response:
    """End the session (CSRF protected)."""
    _check_csrf()
    user = session.get("user")
    session.clear()
    if user:
        current_app.extensions["kantong_audit"].record("logout", user=user)
    return _private(redirect("/login", code=303))


def _staff_frame(user: User) -> Any:
    view = current_app.extensions["kantong_staff"]
    resolution = request.args.get("resolution")
    res = None
    if resolution is not None:
        if not resolution.isdigit() or len(resolution) > 2:
            raise InputError(f"resolution must be an integer, got {resolution!r}")
        res = int(resolution)
    regency = request.args.get("regency")
    if not user.is_admin:
        if regency is not None and regency != user.regency:
            abort(403, description="this account sees its own regency only")
        regency = user.regency
    return view.cells(res, regency=regency), res, regency


@bp.get("/staff/api/cells")
@login_required
def staff_cells(user: User) -> Response:
    """Cells of the account's regency at the staff threshold, as JSON rows (no geometry)."""
    frame, res, regency = _staff_frame(user)
    current_app.extensions["kantong_audit"].record(
        "view", user=user.name, what="staff cells", resolution=res, regency=regency,
        rows=len(frame))
    rows = json.loads(frame.drop(columns="geometry").to_json(orient="records"))
    view = current_app.extensions["kantong_staff"]
    return jsonify({"min_households": view.min_households, "regency": regency, "cells": rows})


@bp.get("/staff/cells.geojson")
@login_required
def staff_download(user: User) -> Response:
    """Download the staff cells (GeoJSON) of the account's regency."""
    from kantong.engine.publish.export import geojson_text, round_and_orient

    frame, res, regency = _staff_frame(user)
    current_app.extensions["kantong_audit"].record(
        "download", user=user.name, what="staff cells.geojson", resolution=res,
        regency=regency, rows=len(frame))
    body = geojson_text(round_and_orient(frame), id_column="h3")
    response = Response(body, mimetype="application/geo+json")
    name = f"kantong-staff-{regency or 'all'}-r{res or 'base'}.geojson"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def init_app(app: Flask, users_file: str | os.PathLike[str]) -> None:
    """Enable staff accounts on ``app`` from ``users_file`` (read on every login/request)."""
    from kantong.engine.publish.staff import StaffView

    path = Path(users_file)
    read_users(path)  # fail early on a malformed file
    state: dict[str, Any] = {"mtime": None, "users": {}}
    lock = threading.Lock()

    def users() -> dict[str, dict[str, Any]]:
        with lock:
            mtime = path.stat().st_mtime_ns if path.exists() else None
            if mtime != state["mtime"]:
                state["users"], state["mtime"] = read_users(path), mtime
            return state["users"]

    cfg = app.config
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = secrets.token_bytes(32)  # sessions end when the server restarts
    cfg["SESSION_COOKIE_SECURE"] = True  # browsers also send it to http://localhost
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = "Strict"
    cfg["SESSION_COOKIE_NAME"] = "kantong_session"
    cfg["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(minutes=cfg["STAFF_SESSION_MINUTES"])
    audit = cfg.get("AUDIT_LOG") or str(path.with_name(path.name + ".audit.log"))
    app.extensions["kantong_users"] = users
    app.extensions["kantong_audit"] = AuditLog(audit)
    app.extensions["kantong_login_limiter"] = RateLimiter(cfg["LOGIN_MAX_FAILURES"])
    app.extensions["kantong_staff"] = StaffView(app.extensions["kantong"],
                                                min_households=cfg["STAFF_MIN_HOUSEHOLDS"])
    app.register_blueprint(bp)
    logger.info("staff accounts from %s; audit log %s", path, audit)


__all__ = ["AuditLog", "RateLimiter", "bp", "csrf_token", "current_user", "init_app",
           "login_required"]
