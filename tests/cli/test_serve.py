"""``kantong serve``: argument errors, and a real waitress server on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import geopandas as gpd
import pytest
from click.testing import CliRunner

from kantong.engine.cli.group import cli


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "run directory not found"),
    (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "not a directory"),
    (lambda p: p, "not a run directory"),
])
def test_bad_run_is_one_line_error(tmp_path, make, message):
    result = CliRunner().invoke(cli, ["serve", "--run", str(make(tmp_path))])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


@pytest.mark.parametrize("args", [["--port", "70000"], ["--threads", "0"],
                                  ["--min-households", "1"], ["--port", "x"]])
def test_bad_options_are_usage_errors(web_run, args):
    result = CliRunner().invoke(cli, ["serve", "--run", str(web_run), *args])
    assert result.exit_code == 2
    assert "Error: Invalid value" in result.output


def test_serve_help_mentions_waitress():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "waitress" in result.output


def _read_url(proc: subprocess.Popen, timeout: float) -> str:
    """Return the served URL from the server's stdout (within ``timeout`` seconds)."""
    found: list[str] = []
    lines: list[str] = []

    def reader() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving http://"):
                found.append(line.split()[1])
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    assert found, f"server did not start in {timeout} s: {''.join(lines)}"
    return found[0]


def test_serve_starts_waitress_on_loopback(web_run):
    exe = shutil.which("kantong")
    cmd = [exe] if exe else [sys.executable, "-m", "kantong.engine.cli.group"]
    proc = subprocess.Popen([*cmd, "serve", "--run", str(web_run), "--port", "0", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = _read_url(proc, timeout=60)
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "healthz", timeout=5) as resp:
                    assert resp.status == 200
                    assert resp.headers["Server"] == "kantong"  # waitress ident, not werkzeug
                    assert b'"status":"ok"' in resp.read()
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(url + "tiles/priority/0/0/0.png", timeout=10) as resp:
            assert resp.headers["Content-Type"] == "image/png"
        # GDAL reads a zoom level of the vector tiles (via metadata.json) and the downloads
        ogrinfo = shutil.which("ogrinfo")
        assert ogrinfo, "gdal-bin is a test dependency (tests/install_and_run.sh)"
        out = subprocess.run([ogrinfo, "-ro", "-so", "-al", f"MVT:{url}tiles/cells/10"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert "Layer name: cells" in out and "Feature Count: 0" not in out
        out = subprocess.run([ogrinfo, "-ro", "-so", "-al",
                              f"/vsicurl/{url}download/cells.geojson"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        from kantong.engine.publish.published import PublishedRun

        # the served download holds the published base cells: withheld ones are absent
        published = len(PublishedRun(web_run).cells())
        assert published < len(gpd.read_parquet(web_run / "cells.parquet"))
        assert f"Feature Count: {published}\n" in out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()


def test_default_cache_dir(monkeypatch, tmp_path):
    from kantong.engine.cli.serve import default_cache_dir

    monkeypatch.setenv("KANTONG_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KANTONG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "kantong"


@pytest.mark.slow
def test_demo_run_is_built_once_then_served(tmp_path):
    """ensure_demo_run (what `kantong serve` without --run uses), on a small register."""
    from kantong.engine.demo.cached_run import STAMP_FILE, ensure_demo_run
    from kantong.webmap import create_app

    cache = tmp_path / "demo-61"
    run = ensure_demo_run(cache, households=3000)
    assert run == cache / "run" and (cache / STAMP_FILE).is_file()
    assert list((run / "sites").glob("sites_puskesmas.parquet"))
    built = (run / "cells.parquet").stat().st_mtime_ns
    assert ensure_demo_run(cache, households=3000) == run  # cached: nothing rebuilt
    assert (run / "cells.parquet").stat().st_mtime_ns == built
    client = create_app({"TESTING": True, "RUN_DIR": str(run)}).test_client()
    info = client.get("/api/run").json
    from kantong.engine.publish.published import PublishedRun

    pub = PublishedRun(run)
    assert info["counts"]["published_cells"] == len(pub.cells()) > 0
    assert info["counts"]["pockets"] == len(pub.pockets())
    assert len(client.get("/api/pockets").json["features"]) == len(pub.pockets())
    assert "priority" in info["indicators"]
    assert client.get("/api/sites").json["type"] == "FeatureCollection"
    (cache / STAMP_FILE).write_text("{}")  # another version: rebuilt
    ensure_demo_run(cache, households=3000)
    assert (run / "cells.parquet").stat().st_mtime_ns != built
