"""The app factory: configuration, environment, blueprints, fixtures."""

from __future__ import annotations

import pytest

from kantong.engine.errors import ConfigError, RunError
from kantong.engine.publish.published import PublishedRun
from kantong.webmap import create_app


def test_config(web_run):
    assert not create_app({"RUN_DIR": str(web_run)}).testing
    assert create_app({"RUN_DIR": str(web_run), "TESTING": True}).testing


def test_extensions_and_blueprints(app):
    assert isinstance(app.extensions["kantong"], PublishedRun)
    assert app.extensions["kantong"].min_households == 10
    assert {"tiles", "api", "viewer", "find", "downloads"} <= set(app.blueprints)
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {"/tiles/<indicator>/<z>/<x>/<y>.png", "/tiles/cells/<z>/<x>/<y>.pbf",
            "/tiles/<name>.json", "/tiles/<indicator>/legend.json", "/api/legend/<indicator>",
            "/api/pockets", "/api/sites", "/api/cells/<h3_id>", "/api/regencies",
            "/api/boundaries/regencies.geojson", "/api/indicators", "/api/run", "/healthz",
            "/download/<layer>.<fmt>", "/api/search", "/api/locate", "/api/facilities",
            "/api/context/places.json", "/api/context/districts.geojson",
            "/api/context/villages.json", "/"} <= rules


def test_environment_overrides(web_run, monkeypatch):
    monkeypatch.setenv("KANTONG_RUN_DIR", str(web_run))
    monkeypatch.setenv("KANTONG_TILE_CACHE_BYTES", "12345")
    monkeypatch.setenv("KANTONG_MIN_HOUSEHOLDS", "25")
    app = create_app()
    assert app.config["TILE_CACHE_BYTES"] == 12345
    assert app.extensions["kantong_tiles"].cache.max_bytes == 12345
    assert app.extensions["kantong"].min_households == 25
    # test_config wins over the environment
    assert create_app({"MIN_HOUSEHOLDS": 12}).extensions["kantong"].min_households == 12


def test_missing_or_bad_settings(web_run, tmp_path, monkeypatch):
    monkeypatch.delenv("KANTONG_RUN_DIR", raising=False)
    with pytest.raises(ConfigError, match="no run directory"):
        create_app({"TESTING": True})
    with pytest.raises(ConfigError, match="TILE_CACHE_BYTES"):
        create_app({"RUN_DIR": str(web_run), "TILE_CACHE_BYTES": "lots"})
    with pytest.raises(ConfigError, match="TILE_CACHE_BYTES"):
        create_app({"RUN_DIR": str(web_run), "TILE_CACHE_BYTES": -1})
    with pytest.raises(ConfigError):
        create_app({"RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": 1})
    with pytest.raises(RunError, match="not a run directory"):
        create_app({"RUN_DIR": str(tmp_path)})


def test_runner_lists_routes(runner):
    from flask.cli import routes_command

    result = runner.invoke(routes_command)
    assert result.exit_code == 0
    assert "tiles.png_tile" in result.output and "api.healthz" in result.output
