"""Bad input through the ``kantong`` CLI: one-line errors, nothing lost.

Every scenario runs the click group in process (fast; an uncaught exception would surface
as its traceback), and the ones that used to crash also run through the real console script
in a subprocess. Each checks: exit code != 0, exactly one ``Error ...`` line on stderr
naming the problem (click's ``Usage:`` / ``Try`` lines aside), no traceback, and no output
left behind (no run directory after a failed build, no partial export, no temporary files).
A few "accepted" scenarios (Latin-1 CSV, UTM layers, exact solver with a tiny time limit,
an output folder that does not exist yet) check that unusual but valid input works and that
every row is counted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from rasterio.transform import from_origin

from kantong.engine.cli.group import cli
from kantong.engine.constants import DEPRIVATION_FIELDS, WGS84

sys.path.insert(0, str(Path(__file__).parents[1]))
from factories import DEFAULT_CENTRE, make_households, make_run  # noqa: E402

KANTONG = shutil.which("kantong") or "kantong"
UTM = "EPSG:32649"  # UTM 49N, Kalimantan Barat


@dataclass(frozen=True)
class Case:
    """One CLI scenario: arguments (``{name}`` placeholders), what must happen."""

    id: str
    args: tuple[str, ...]
    #: substrings of the one ``Error`` line (case-insensitive); None = the command succeeds
    error: tuple[str, ...] | None
    #: substrings of stdout + stderr when it succeeds
    output: tuple[str, ...] = ()
    #: paths (placeholders) that must not exist afterwards
    absent: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def _c(id_: str, args: str, error: str | tuple[str, ...] | None, **kw) -> Case:
    err = (error,) if isinstance(error, str) else error
    return Case(id_, tuple(args.split()), err, **kw)


BUILD = "build --population none --no-pockets --boundaries {box} --out {out}"
SITE = "sites --run {run} --max-minutes 60"
EXPORT = "export --run {run} --layer cells"

CASES: list[Case] = [
    # ---- build: files --------------------------------------------------------------------
    _c("build-missing-households", f"{BUILD} --households {{tmp}}/nope.csv",
       ("nope.csv", "not found"), absent=("{out}",)),
    _c("build-dir-as-households", f"{BUILD} --households {{empty_dir}}",
       ("no parquet file",), absent=("{out}",)),
    _c("build-dir-as-facilities", f"{BUILD} --households {{csv}} --facilities {{empty_dir}}",
       ("--facilities", "is a directory"), absent=("{out}",)),
    _c("build-empty-csv", f"{BUILD} --households {{empty_csv}}",
       ("empty.csv", "not a readable csv"), absent=("{out}",)),
    _c("build-header-only", f"{BUILD} --households {{header_csv}}",
       ("header.csv", "no household rows"), absent=("{out}",)),
    _c("build-missing-column", f"{BUILD} --households {{nodesil_csv}}",
       ("nodesil.csv", "missing required column", "desil"), absent=("{out}",)),
    _c("build-households-gpkg-no-crs", f"{BUILD} --households {{hh_nocrs}}",
       ("hh_nocrs.gpkg", "no crs"), absent=("{out}",)),
    _c("build-geojson-utm-without-crs", f"{BUILD} --households {{hh_utm_nocrs}}",
       ("hh_utm_nocrs.geojson", "outside -180..180", "projected crs"), absent=("{out}",)),
    _c("build-facilities-no-crs", f"{BUILD} --households {{csv}} --facilities {{fac_nocrs}}",
       ("fac_nocrs.gpkg", "no crs"), absent=("{out}",)),
    _c("build-friction-not-a-tif",
       f"{BUILD} --households {{csv}} --facilities {{fac}} --friction {{text_tif}}",
       ("text.tif", "cannot read raster"), absent=("{out}",)),
    _c("build-raster-no-crs", f"{BUILD} --households {{csv}} --raster x={{nocrs_tif}}",
       ("nocrs.tif", "no crs"), absent=("{out}",)),
    _c("build-raster-no-overlap", f"{BUILD} --households {{csv}} --raster x={{far_tif}}",
       ("far.tif", "does not overlap"), absent=("{out}",)),
    _c("build-raster-without-equals", f"{BUILD} --households {{csv}} --raster {{far_tif}}",
       ("--raster", "expected name=tif"), absent=("{out}",)),
    _c("build-resolution-4", f"{BUILD} --households {{csv}} --resolution 4",
       ("--resolution", "5<=x<=10"), absent=("{out}",)),
    _c("build-resolution-11", f"{BUILD} --households {{csv}} --resolution 11",
       ("--resolution", "5<=x<=10"), absent=("{out}",)),
    _c("build-resolution-abc", f"{BUILD} --households {{csv}} --resolution abc",
       ("--resolution", "'abc'"), absent=("{out}",)),
    _c("build-province-99", "build --households {csv} --province 99 --out {out}",
       ("--province", "unknown province '99'"), absent=("{out}",)),
    _c("build-out-is-a-file", "build --households {csv} --out {csv}", ("--out", "is a file")),
    _c("build-fails-into-existing-run", "build --households {nodesil_csv} --out {run_copy}",
       ("missing required column",), extra={"unchanged": "run_copy"}),
    # ---- build: configuration ------------------------------------------------------------
    _c("config-bad-toml", f"{BUILD} --households {{csv}} --config {{cfg_syntax}}",
       ("syntax.toml", "not valid toml"), absent=("{out}",)),
    _c("config-unknown-key", f"{BUILD} --households {{csv}} --config {{cfg_key}}",
       ("key.toml", "unknown key", "resolutoin"), absent=("{out}",)),
    _c("config-bad-value", f"{BUILD} --households {{csv}} --config {{cfg_value}}",
       ("value.toml", "pockets.fdr", "(0, 1)"), absent=("{out}",)),
    _c("config-section-not-a-table", f"{BUILD} --households {{csv}} --config {{cfg_table}}",
       ("table.toml", "build must be a table"), absent=("{out}",)),
    _c("config-float-for-integer", f"{BUILD} --households {{csv}} --config {{cfg_float}}",
       ("float.toml", "pockets.k_ring must be an integer"), absent=("{out}",)),
    _c("config-not-utf8", f"{BUILD} --households {{csv}} --config {{cfg_binary}}",
       ("binary.toml", "not valid toml"), absent=("{out}",)),
    # ---- build: unusual but valid input is accepted and every row counted -----------------
    _c("build-latin1-csv", f"{BUILD} --households {{latin1_csv}}", None,
       output=("not valid UTF-8",), extra={"counts": "latin1_csv"}),
    _c("build-utm-gpkg", f"{BUILD} --households {{hh_utm}} --facilities {{fac_utm}}", None,
       extra={"counts": "hh_utm"}),
    # ---- pockets -------------------------------------------------------------------------
    _c("pockets-not-a-run", "pockets --run {empty_dir}", ("cells.parquet", "missing")),
    _c("pockets-corrupt-cells", "pockets --run {corrupt}", ("cells.parquet", "tampered")),
    # ---- sites ---------------------------------------------------------------------------
    _c("sites-count-0", f"{SITE} --type puskesmas --count 0", ("--count", "x>=1")),
    _c("sites-budget-without-cost", f"{SITE} --type puskesmas --budget 1000",
       ("--budget needs --cost",)),
    _c("sites-count-and-budget", f"{SITE} --type puskesmas --count 2 --budget 10 --cost 1",
       ("either --count or --budget",)),
    _c("sites-regency-9999", f"{SITE} --type puskesmas --count 2 --regency 9999",
       ("unknown regency code '9999'",)),
    _c("sites-candidates-no-crs", f"{SITE} --type puskesmas --count 2 --candidates {{fac_nocrs}}",
       ("fac_nocrs.gpkg", "no crs")),
    _c("sites-candidates-outside", f"{SITE} --type puskesmas --count 2 --candidates {{far_cand}}",
       ("far.geojson", "no candidate site lies in or near")),
    _c("sites-out-wrong-suffix", f"{SITE} --type puskesmas --count 2 --out {{out}}.csv",
       ("must end in .geojson",), absent=("{out}.csv", "{out}.parquet")),
    _c("sites-corrupt-run", "sites --run {corrupt} --max-minutes 60 --type school --count 1",
       ("cells.parquet", "tampered")),
    _c("sites-type-without-facilities",
       f"{SITE} --type hospital --count 2 --out {{out}}.geojson", None,
       output=("has no hospital facilities", "puskesmas", "already served by 0")),
    _c("sites-exact-tiny-time-limit",
       f"{SITE} --type puskesmas --count 3 --method exact --time-limit 0.01 "
       "--out {out}.geojson", None, output=("Method: exact", "gap")),
    # ---- export --------------------------------------------------------------------------
    _c("export-unknown-regency", f"{EXPORT} --out {{out}}.geojson --regency 9999",
       ("regency '9999' not in this run",), absent=("{out}.geojson",)),
    _c("export-resolution-not-in-run", f"{EXPORT} --out {{out}}.geojson --resolution 9",
       ("resolution 9 not in this run",), absent=("{out}.geojson",)),
    _c("export-min-households-2", f"{EXPORT} --out {{out}}.geojson --min-households 2",
       ("--min-households", "x>=3"), absent=("{out}.geojson",)),
    _c("export-format-suffix-mismatch", f"{EXPORT} --out {{out}}.geojson --format csv",
       ("format csv does not match", ".geojson"), absent=("{out}.geojson",)),
    _c("export-unknown-suffix", f"{EXPORT} --out {{out}}.xyz",
       ("cannot tell the format",), absent=("{out}.xyz",)),
    # a missing output folder is created (as for every output: kantong.engine.atomic), atomically
    _c("export-into-missing-folder", f"{EXPORT} --out {{tmp}}/new/c.geojson", None,
       output=("wrote",), extra={"exists": "{tmp}/new/c.geojson"}),
    _c("export-under-a-file", f"{EXPORT} --out {{csv}}/c.geojson",
       ("not a directory", "hh.csv")),
    _c("export-out-is-a-directory", f"{EXPORT} --out {{empty_dir}}", ("--out", "is a directory")),
    _c("export-sites-none-chosen", "export --run {run_copy2} --layer sites --out {out}.geojson",
       ("no sites in this run",), absent=("{out}.geojson",)),
    _c("export-wkt-not-csv", f"{EXPORT} --out {{out}}.geojson --wkt",
       ("--wkt applies to --format csv only",), absent=("{out}.geojson",)),
    _c("export-corrupt-run", "export --run {corrupt} --layer cells --out {out}.geojson",
       ("cells.parquet", "tampered"), absent=("{out}.geojson",)),
    # ---- compare -------------------------------------------------------------------------
    _c("compare-same-run", "compare {run} {run} --out {out}", ("same directory",),
       absent=("{out}",)),
    _c("compare-different-resolutions", "compare {run} {run7} --out {out}",
       ("different h3 resolutions", "--resolution 7"), absent=("{out}",)),
    _c("compare-not-a-run", "compare {run} {empty_dir} --out {out}", ("not a run directory",),
       absent=("{out}",)),
    # ---- serve ---------------------------------------------------------------------------
    _c("serve-missing-run", "serve --run {tmp}/nope", ("nope", "not found")),
    _c("serve-port-99999", "serve --run {run} --port 99999", ("--port", "0<=x<=65535")),
    _c("serve-bad-host", "serve --run {run} --host bad!host --port 0",
       ("cannot listen on bad!host",), extra={"script_only": True}),  # no gc.freeze here
    # ---- demo-data -----------------------------------------------------------------------
    _c("demo-out-is-a-file", "demo-data --out {csv} --households 10", ("--out", "is a file")),
    _c("demo-out-under-a-file", "demo-data --out {csv}/sub --households 10",
       ("not a directory",)),
    _c("demo-province-99", "demo-data --out {out} --province 99 --households 10",
       ("unknown province '99'",), absent=("{out}",)),
]


# ---- inputs -------------------------------------------------------------------------------
def _register(n_max: int = 120) -> pd.DataFrame:
    hh = make_households(seed=5, radius=2, mean_households=6.0).households.head(n_max)
    frame = hh[["household_id", "lon", "lat", "desil", "members"]].copy()
    for f in DEPRIVATION_FIELDS:
        frame[f] = np.where(hh[f], "true", "false")
    return frame


def _write_without_crs(gdf: gpd.GeoDataFrame, path: Path) -> None:
    with warnings.catch_warnings():  # the point: a layer without a CRS
        warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
        gdf.set_crs(None, allow_override=True).to_file(path)


def _tif(path: Path, *, crs: str | None, west: float, north: float) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1,
                       dtype="float32", crs=crs,
                       transform=from_origin(west, north, 0.01, 0.01)) as dst:
        dst.write(np.full((10, 10), 0.01, dtype="float32"), 1)


def _inputs(ws: Path) -> dict[str, Path]:
    p: dict[str, Path] = {"tmp": ws, "out": ws / "out"}
    (ws / "out").mkdir()
    p["empty_dir"] = ws / "empty_dir"
    p["empty_dir"].mkdir()
    p["run"] = ws / "run"
    make_run(p["run"], seed=0)
    p["run7"] = ws / "run7"
    make_run(p["run7"], seed=0, resolution=7)
    for name in ("run_copy", "run_copy2", "corrupt"):
        shutil.copytree(p["run"], ws / name)
        p[name] = ws / name
    cells = p["corrupt"] / "cells.parquet"
    cells.write_bytes(cells.read_bytes()[:500])
    lat0, lon0 = DEFAULT_CENTRE
    box = gpd.GeoDataFrame(geometry=[shapely.box(lon0 - 0.4, lat0 - 0.4, lon0 + 0.4, lat0 + 0.4)],
                           crs=WGS84)
    p["box"] = ws / "box.geojson"
    box.to_file(p["box"])

    frame = _register()
    p["csv"] = ws / "hh.csv"
    frame.to_csv(p["csv"], index=False)
    p["empty_csv"] = ws / "empty.csv"
    p["empty_csv"].write_bytes(b"")
    p["header_csv"] = ws / "header.csv"
    frame.head(0).to_csv(p["header_csv"], index=False)
    p["nodesil_csv"] = ws / "nodesil.csv"
    frame.drop(columns="desil").to_csv(p["nodesil_csv"], index=False)
    latin = frame.copy()
    latin.loc[:2, "household_id"] = ["Désa-1", "Dèsa-1", "Dêsa-1"]  # distinct in cp1252
    latin["nama"] = "José Müller"  # a personal field, dropped at ingest
    p["latin1_csv"] = ws / "latin1.csv"
    latin.to_csv(p["latin1_csv"], index=False, encoding="latin-1")

    pts = gpd.GeoDataFrame(frame.drop(columns=["lon", "lat"]),
                           geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=WGS84)
    p["hh_utm"] = ws / "hh_utm.gpkg"
    pts.to_crs(UTM).to_file(p["hh_utm"])
    p["hh_nocrs"] = ws / "hh_nocrs.gpkg"
    _write_without_crs(pts, p["hh_nocrs"])
    p["hh_utm_nocrs"] = ws / "hh_utm_nocrs.geojson"
    doc = json.loads(pts.to_crs(UTM).to_json())
    doc.pop("crs", None)  # a projected GeoJSON that lost its CRS: GDAL reads it as WGS84
    p["hh_utm_nocrs"].write_text(json.dumps(doc))

    fac = gpd.read_parquet(p["run"] / "facilities.parquet")
    p["fac"] = ws / "fac.geojson"
    fac.to_file(p["fac"])
    p["fac_utm"] = ws / "fac_utm.gpkg"
    fac.to_crs(UTM).to_file(p["fac_utm"])
    p["fac_nocrs"] = ws / "fac_nocrs.gpkg"
    _write_without_crs(fac, p["fac_nocrs"])
    p["far_cand"] = ws / "far.geojson"
    gpd.GeoDataFrame({"name": ["Paris"]}, geometry=[shapely.Point(2.35, 48.85)],
                     crs=WGS84).to_file(p["far_cand"])

    p["text_tif"] = ws / "text.tif"
    p["text_tif"].write_text("this is not a GeoTIFF\n")
    p["nocrs_tif"] = ws / "nocrs.tif"
    _tif(p["nocrs_tif"], crs=None, west=lon0 - 0.05, north=lat0 + 0.05)
    p["far_tif"] = ws / "far.tif"
    _tif(p["far_tif"], crs=WGS84, west=10.0, north=50.0)

    configs = {"cfg_syntax": b"[build\nresolution = 7\n", "cfg_key": b"[build]\nresolutoin = 7\n",
               "cfg_value": b"[pockets]\nfdr = 2.0\n", "cfg_table": b"build = 5\n",
               "cfg_float": b"[pockets]\nk_ring = 1.5\n", "cfg_binary": b"\xff\xfe[build]\n"}
    for key, text in configs.items():
        p[key] = ws / f"{key.removeprefix('cfg_')}.toml"
        p[key].write_bytes(text)
    return p


@dataclass(frozen=True)
class Outcome:
    """What one invocation gave: exit code, stdout, stderr (plus any uncaught traceback)."""

    code: int
    stdout: str
    stderr: str


def _script(args: list[str]) -> Outcome:
    """Run the real ``kantong`` console script."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    res = subprocess.run([KANTONG, *args], capture_output=True, text=True, timeout=180, env=env)
    return Outcome(res.returncode, res.stdout, res.stderr)


def _in_process(args: list[str]) -> Outcome:
    """Run the click group in this process; an uncaught exception becomes its traceback."""
    res = CliRunner().invoke(cli, args, prog_name="kantong")
    exc = res.exception
    tb = "" if exc is None or isinstance(exc, SystemExit) else \
        "".join(traceback.format_exception(exc))
    return Outcome(res.exit_code, res.stdout, res.stderr + tb)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], dict]:
    """The inputs of every scenario and a snapshot of the run that a failed build must keep."""
    paths = _inputs(tmp_path_factory.mktemp("cli_errors"))
    snapshot = {p.relative_to(paths["run_copy"]): p.read_bytes()
                for p in sorted(paths["run_copy"].rglob("*")) if p.is_file()}
    return paths, snapshot


@pytest.fixture(autouse=True)
def _keep_log_handlers():
    """The CLI points the engine loggers at its (captured) stderr: restore them afterwards."""
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level)
             for n in ("kantong",)}
    yield
    for name, (handlers, level) in saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).setLevel(level)


def _fill(text: str, paths: dict[str, Path], out: Path) -> str:
    return text.format(**({k: str(v) for k, v in paths.items()} | {"out": str(out)}))


def _counts(stdout: str) -> tuple[int, int, int]:
    m = re.search(r"households\s+read\s+([\d,]+) = accepted\s+([\d,]+) \+ rejected\s+([\d,]+)",
                  stdout)
    assert m, stdout
    read, accepted, rejected = (int(g.replace(",", "")) for g in m.groups())
    return read, accepted, rejected


def _check(case: Case, res: Outcome, paths: dict[str, Path], out: Path, snapshot: dict) -> None:
    everything = res.stdout + res.stderr
    assert "Traceback" not in everything, everything
    if case.error is None:
        assert res.code == 0, everything
        for text in case.output:
            assert text in everything, everything
    else:
        assert res.code != 0, everything
        lines = [ln for ln in res.stderr.splitlines()
                 if ln.strip() and not ln.startswith(("Usage:", "Try "))]
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith("Error"), res.stderr
        for text in case.error:
            assert text.lower() in lines[0].lower(), lines[0]
    for text in case.absent:
        assert not Path(_fill(text, paths, out)).exists(), f"{text} left behind"
    leftovers = [p.name for p in paths["out"].iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers  # no temporary files or directories
    if "exists" in case.extra:
        assert Path(_fill(case.extra["exists"], paths, out)).is_file()
    if "unchanged" in case.extra:
        run = paths[case.extra["unchanged"]]
        after = {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*"))
                 if p.is_file()}
        assert after == snapshot  # a failed build never touches an existing run
    if "counts" in case.extra:
        read, accepted, rejected = _counts(res.stdout)
        n_rows = len(_register())
        assert read == n_rows and accepted + rejected == read
        rejects = pd.read_csv(out / "rejects.csv")
        source = paths[case.extra["counts"]].name
        assert (rejects["source"] == source).sum() == rejected  # each reject is written
        assert accepted == n_rows  # clean rows: nothing rejected, Latin-1 ids stay distinct


IN_PROCESS = [c for c in CASES if not c.extra.get("script_only")]
#: Also run through the real console script: the cases that used to crash with a traceback.
SCRIPT = [c for c in CASES if c.extra.get("script_only") or c.id in {
    "config-section-not-a-table", "config-not-utf8", "export-corrupt-run",
    "demo-out-under-a-file", "build-geojson-utm-without-crs", "build-latin1-csv"}]


@pytest.mark.parametrize("case", IN_PROCESS, ids=[c.id for c in IN_PROCESS])
def test_scenario(ws, case: Case) -> None:
    paths, snapshot = ws
    out = paths["out"] / case.id
    _check(case, _in_process([_fill(a, paths, out) for a in case.args]), paths, out, snapshot)


@pytest.mark.parametrize("case", SCRIPT, ids=[c.id for c in SCRIPT])
def test_scenario_console_script(ws, case: Case) -> None:
    paths, snapshot = ws
    out = paths["out"] / f"{case.id}-script"
    _check(case, _script([_fill(a, paths, out) for a in case.args]), paths, out, snapshot)


def test_serve_port_already_in_use(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run, seed=1)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen([KANTONG, "serve", "--run", str(run), "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        assert first.stdout is not None
        for line in first.stdout:  # until the "serving http://127.0.0.1:PORT/" line
            m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = m.group(1)
                break
        assert port, first.stderr.read() if first.stderr else ""
        second = _script(["serve", "--run", str(run), "--port", port])
        assert second.code == 1, second.stderr
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error"), second.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
        assert "in use" in lines[0].lower() and "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)
