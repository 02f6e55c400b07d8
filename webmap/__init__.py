"""The Kantong web map: an offline Folium viewer, a tile server and a JSON API for one run.

Usage::

    from kantong.webmap import create_app
    app = create_app({"RUN_DIR": "run"})      # or KANTONG_RUN_DIR=run in the environment

The app reads the run only through :class:`kantong.engine.publish.published.PublishedRun` (the
privacy
gate), kept in ``app.extensions["kantong"]``; the tile service (indexes, colour scales,
tile cache) is ``app.extensions["kantong_tiles"]``. ``kantong serve`` runs it with waitress.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from kantong.engine.errors import ConfigError
from kantong.engine.publish.published import PublishedRun
from kantong.webmap.compress import register_compression
from kantong.webmap.config import DEFAULTS
from kantong.webmap.errors import register_error_handlers
from kantong.webmap.security import register_security_headers
from kantong.webmap.tiling.cache import TileCache
from kantong.webmap.tiling.service import TileService

logger = logging.getLogger(__name__)

__all__ = ["create_app"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the web map application of one run.

    Parameters
    ----------
    test_config
        Configuration overriding the defaults (:data:`kantong.webmap.config.DEFAULTS`) and the
        ``KANTONG_*`` environment variables, e.g. ``{"RUN_DIR": path, "TESTING": True}``.

    Returns
    -------
    flask.Flask
        The app, with the ``tiles``, ``api`` and ``viewer`` blueprints registered.

    Raises
    ------
    ConfigError
        If no run directory is configured or a setting is invalid.
    RunError
        If the run directory is not a readable run.

    Examples
    --------
    >>> app = create_app({"RUN_DIR": "run", "TESTING": True})  # doctest: +SKIP
    >>> app.test_client().get("/healthz").json["status"]  # doctest: +SKIP
    'ok'
    """
    app = Flask(__name__, static_folder=None)  # /static is served by the viewer blueprint
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("KANTONG")
    if test_config is not None:
        app.config.from_mapping(test_config)
    run_dir = app.config.get("RUN_DIR") or app.config.get("KANTONG_RUN_DIR")
    if not run_dir:
        raise ConfigError("no run directory to serve: set KANTONG_RUN_DIR or RUN_DIR")
    app.config["RUN_DIR"] = str(Path(run_dir).resolve())
    cache_bytes = _int_setting(app, "TILE_CACHE_BYTES", minimum=0)
    download_bytes = _int_setting(app, "DOWNLOAD_CACHE_BYTES", minimum=0)
    for key in ("TILE_MAX_AGE", "API_MAX_AGE"):
        _int_setting(app, key, minimum=0)
    k = app.config.get("MIN_HOUSEHOLDS")
    run = PublishedRun(app.config["RUN_DIR"],
                       min_households=None if k in (None, "") else _int_setting(
                           app, "MIN_HOUSEHOLDS", minimum=0),
                       allow_lower_k=bool(app.config.get("ALLOW_LOWER_K")),
                       trust_run=bool(app.config.get("TRUST_RUN")))
    app.extensions["kantong"] = run
    app.extensions["kantong_tiles"] = TileService(run, cache_bytes=cache_bytes)
    app.extensions["kantong_downloads"] = TileCache(download_bytes)

    register_error_handlers(app)
    register_security_headers(app)
    register_compression(app)

    from kantong.webmap.views.api import bp as api_bp
    from kantong.webmap.views.downloads import bp as downloads_bp
    from kantong.webmap.views.find import bp as find_bp
    from kantong.webmap.views.tiles import bp as tiles_bp
    from kantong.webmap.views.viewer import bp as viewer_bp

    app.register_blueprint(tiles_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(find_bp)
    app.register_blueprint(downloads_bp)
    app.register_blueprint(viewer_bp)
    compare_dir = app.config.get("COMPARE_RUN_DIR") or app.config.get("KANTONG_COMPARE_RUN_DIR")
    if compare_dir:  # `kantong serve --compare OLD`: change layers (webmap/views/compare.py)
        from kantong.webmap.views.compare import init_app as init_compare

        init_compare(app, compare_dir)
    if app.config.get("USERS_FILE"):  # `kantong serve --users FILE`: staff login (auth.py)
        from kantong.webmap.auth import init_app as init_auth

        for key in ("STAFF_MIN_HOUSEHOLDS", "STAFF_SESSION_MINUTES", "LOGIN_MAX_FAILURES"):
            _int_setting(app, key, minimum=1)
        init_auth(app, app.config["USERS_FILE"])
    if app.config.get("BEHIND_PROXY"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    logger.info("web map of run %s (K=%d)", run.run_id, run.min_households)
    return app


def _int_setting(app: Flask, key: str, *, minimum: int) -> int:
    value = app.config.get(key)
    if isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"setting {key} must be an integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {key} must be an integer, got {value!r}") from None
    if number < minimum or isinstance(value, bool):
        raise ConfigError(f"setting {key} must be an integer >= {minimum}, got {value!r}")
    app.config[key] = number
    return number
