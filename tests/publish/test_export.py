"""Exports: every format round-trips, GeoJSON follows RFC 7946, ogrinfo accepts each file,
provenance travels with the data, and the CLI validates its arguments in one line."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from click.testing import CliRunner
from factories import make_households, make_run
from test_published import add_pockets_and_sites

from kantong.engine.cli.group import cli
from kantong.engine.errors import InputError
from kantong.engine.publish.export import (
    COORDINATE_DECIMALS,
    FORMATS,
    LAYERS,
    export_layer,
    format_from_path,
    geojson_dict,
    layer_frame,
    round_and_orient,
)
from kantong.engine.publish.published import PublishedRun

OGRINFO = shutil.which("ogrinfo")
ID = {"cells": "h3", "pockets": "pocket_id", "sites": None}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("export") / "run"
    truth = make_run(run, seed=21, planted=make_households(seed=21, mean_households=14.0),
                     with_friction=False)
    add_pockets_and_sites(run, truth, seed=21)
    return run


@pytest.fixture(scope="module")
def pub(run) -> PublishedRun:
    return PublishedRun(run)


def _read_back(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        # the GDAL builds here (pyogrio wheel, Debian 3.6) have no Parquet driver
        if "Parquet" in pyogrio.list_drivers():
            pyogrio.read_dataframe(path)
        return gpd.read_parquet(path)
    if fmt == "csv":
        return pyogrio.read_dataframe(path, AUTODETECT_TYPE="YES", X_POSSIBLE_NAMES="lon",
                                      Y_POSSIBLE_NAMES="lat")
    return pyogrio.read_dataframe(path)


def _sort(frame: pd.DataFrame, layer: str) -> pd.DataFrame:
    keys = [ID[layer]] if ID[layer] else ["type", "rank"]
    return frame.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("layer", LAYERS)
def test_round_trip(pub, tmp_path, layer, fmt):
    out = tmp_path / f"{layer}{FORMATS[fmt]}"
    summary = export_layer(pub, layer, out, fmt=fmt)
    expected, _, _ = layer_frame(pub, layer)
    assert summary.rows_written == len(expected) > 0
    back = _read_back(out, fmt)
    assert len(back) == len(expected)
    exp, got = _sort(expected, layer), _sort(back, layer)
    for col in expected.columns:
        if col == "geometry":
            continue
        assert col in got.columns, col
        e, g = exp[col], got[col]
        if pd.api.types.is_bool_dtype(e):
            assert (g.astype(str).str.lower().isin(["true", "1"]) == e.astype(bool)).all(), col
        elif pd.api.types.is_numeric_dtype(e):
            ev = e.astype("float64").to_numpy()
            gv = pd.to_numeric(g, errors="raise").astype("float64").to_numpy()
            assert np.array_equal(np.isnan(ev), np.isnan(gv)), col
            assert np.allclose(ev[~np.isnan(ev)], gv[~np.isnan(gv)], rtol=1e-12), col
        else:
            assert (e.astype("string").fillna("") == g.astype("string").fillna("")).all(), col
    if fmt != "csv":
        geoms = gpd.GeoSeries(got.geometry).to_numpy()
        assert shapely.is_valid(geoms).all()
        diff = shapely.hausdorff_distance(geoms, exp.geometry.to_numpy())
        assert diff.max() < 1e-9
        truth = _sort(getattr(pub, layer)(), layer).geometry.to_numpy()
        assert shapely.hausdorff_distance(geoms, truth).max() < 10 ** -COORDINATE_DECIMALS
    else:
        assert np.allclose(got.geometry.x, exp["lon"]) and np.allclose(got.geometry.y, exp["lat"])


def _rings(geom: dict):
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else (
        geom["coordinates"] if geom["type"] == "MultiPolygon" else [])
    for poly in polys:
        yield True, poly[0]
        for hole in poly[1:]:
            yield False, hole


def _signed_area(ring) -> float:
    xy = np.asarray(ring)
    return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))


def _reject_constant(name: str):
    raise AssertionError(f"non-JSON number {name}")


@pytest.mark.parametrize("layer", LAYERS)
def test_geojson_follows_rfc7946(pub, tmp_path, layer):
    out = tmp_path / f"{layer}.geojson"
    export_layer(pub, layer, out)
    doc = json.loads(out.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    assert doc["type"] == "FeatureCollection"
    assert "crs" not in doc
    assert doc["kantong"]["contains_household_records"] is False
    assert doc["kantong"]["min_households"] == pub.min_households
    for feature in doc["features"]:
        assert feature["type"] == "Feature"
        geom = feature["geometry"]
        assert "crs" not in geom
        shape = shapely.geometry.shape(geom)
        assert shape.is_valid
        xy = shapely.get_coordinates(shape)
        assert (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all()
        assert (xy[:, 0] > 100).all()  # lon first: Kalimantan is at ~110 E, ~0 N
        assert np.allclose(xy, np.round(xy, COORDINATE_DECIMALS), rtol=0, atol=1e-12)
        for exterior, ring in _rings(geom):
            assert ring[0] == ring[-1]
            assert (_signed_area(ring) > 0) == exterior  # exterior CCW, holes CW
        for key, value in feature["properties"].items():
            assert value is None or isinstance(value, str | int | float | bool), key
            assert not (isinstance(value, float) and math.isnan(value))
        if layer != "sites":
            assert isinstance(feature["properties"]["households"], int)
            assert feature["id"] == feature["properties"][ID[layer]]
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    if layer == "sites":
        hidden = [f for f in doc["features"] if f["properties"]["new_extreme_households"] is None]
        assert hidden  # withheld counts are null, not NaN


def test_geojson_orients_clockwise_input(pub):
    frame, _, _ = layer_frame(pub, "cells", resolution=6)
    flipped = frame.copy()
    flipped["geometry"] = shapely.orient_polygons(frame.geometry.to_numpy(), exterior_cw=True)
    doc = geojson_dict(round_and_orient(flipped))
    for feature in doc["features"]:
        for exterior, ring in _rings(feature["geometry"]):
            assert (_signed_area(ring) > 0) == exterior


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("layer", LAYERS)
def test_ogrinfo_accepts_each_file(pub, tmp_path, layer, fmt):
    assert OGRINFO, "ogrinfo (Debian gdal-bin) must be installed"
    out = tmp_path / f"{layer}{FORMATS[fmt]}"
    export_layer(pub, layer, out, fmt=fmt)
    formats = subprocess.run([OGRINFO, "--formats"], capture_output=True, text=True).stdout
    if fmt == "parquet" and "Parquet" not in formats:
        # Debian's GDAL is built without Arrow: validate the GeoParquet metadata instead
        geo = json.loads(pq.read_schema(out).metadata[b"geo"])
        assert geo["version"].startswith("1.") and geo["primary_column"] == "geometry"
        assert geo["columns"]["geometry"]["encoding"] == "WKB"
        assert geo["columns"]["geometry"]["crs"]["id"]["code"] == 4326
        return
    proc = subprocess.run([OGRINFO, "-ro", "-al", "-so", str(out)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    expected = len(layer_frame(pub, layer)[0])
    assert f"Feature Count: {expected}" in proc.stdout


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_provenance_in_every_format(pub, tmp_path, fmt):
    out = tmp_path / f"cells{FORMATS[fmt]}"
    summary = export_layer(pub, "cells", out, fmt=fmt, resolution=7)
    if fmt == "geojson":
        meta = json.loads(out.read_text())["kantong"]
    elif fmt == "parquet":
        meta = json.loads(pq.read_schema(out).metadata[b"kantong"])
    elif fmt == "gpkg":
        info = pyogrio.read_info(out)
        meta = json.loads(info["dataset_metadata"]["KANTONG_PROVENANCE"])
        assert json.loads(info["layer_metadata"]["DESCRIPTION"]) == meta
    elif fmt == "fgb":
        info = pyogrio.read_info(out)
        meta = json.loads(info["layer_metadata"]["DESCRIPTION"])
        assert "kantong cells" in info["layer_metadata"]["TITLE"]
    else:
        assert summary.sidecar == out.with_name(out.name + ".json")
        meta = json.loads(summary.sidecar.read_text())
    assert meta["run_id"] == pub.run_id
    assert meta["min_households"] == pub.min_households
    assert meta["resolution"] == 7 and meta["layer"] == "cells"
    assert meta["contains_household_records"] is False
    assert "no household records" in meta["statement"]
    assert meta["engine_version"] and meta["exported"][:4].isdigit()
    assert meta["parameters"] == pub.manifest["parameters"]
    assert "SYNTHETIC" in meta["synthetic"]


def test_csv_optional_wkt(pub, tmp_path):
    out = tmp_path / "cells.csv"
    export_layer(pub, "cells", out, wkt=True)
    table = pd.read_csv(out)
    assert {"h3", "lon", "lat", "wkt"} <= set(table.columns) and "geometry" not in table
    geoms = shapely.from_wkt(table["wkt"].to_numpy())
    assert shapely.is_valid(geoms).all()
    plain = tmp_path / "plain.csv"
    export_layer(pub, "cells", plain)
    assert "wkt" not in pd.read_csv(plain).columns


def test_resolution_and_regency_subsets(pub, tmp_path):
    code = pub.regency_codes()[0]
    out = tmp_path / "r6.geojson"
    summary = export_layer(pub, "cells", out, resolution=6, regency=code)
    doc = json.loads(out.read_text())
    assert {f["properties"]["resolution"] for f in doc["features"]} == {6}
    assert {f["properties"]["regency_code"] for f in doc["features"]} == {code}
    assert summary.rows_written == len(pub.cells(6, regency=code))
    assert summary.rows_suppressed == pub.withheld(6, regency=code)
    sites = export_layer(pub, "sites", tmp_path / "s.geojson", regency=code)
    assert sites.rows_written == int((pub.sites()["regency_code"] == code).sum())


def test_empty_layers_are_valid_files(tiny_run, tmp_path):
    pub = PublishedRun(tiny_run[0])
    for fmt in FORMATS:
        out = tmp_path / f"pockets{FORMATS[fmt]}"
        summary = export_layer(pub, "pockets", out)
        assert summary.rows_written == 0
        assert len(_read_back(out, fmt)) == 0
        if fmt in ("geojson", "gpkg", "fgb"):
            proc = subprocess.run([OGRINFO, "-ro", "-al", "-so", str(out)], capture_output=True,
                                  text=True)
            assert proc.returncode == 0, proc.stderr


def test_format_from_path():
    assert format_from_path("a/b.GeoJSON") == "geojson"
    assert format_from_path("x.fgb") == "fgb"
    with pytest.raises(InputError, match="cannot tell the format"):
        format_from_path("x.shp")


# ---- the CLI --------------------------------------------------------------------------
def _invoke(*args: str):
    return CliRunner().invoke(cli, ["export", *args])


def test_cli_exports_and_summarises(run, pub, tmp_path):
    out = tmp_path / "cells.gpkg"
    res = _invoke("--run", str(run), "--layer", "cells", "--format", "gpkg", "--out", str(out),
                  "--resolution", "7")
    assert res.exit_code == 0, res.output
    n, hidden = len(pub.cells(7)), pub.withheld(7)
    assert f"wrote {n} cells r7 rows" in res.output
    assert f"{hidden} rows suppressed (min_households=10)" in res.output
    assert len(pyogrio.read_dataframe(out)) == n


def test_cli_min_households(run, tmp_path):
    out = tmp_path / "c.csv"
    res = _invoke("--run", str(run), "--layer", "cells", "--out", str(out),
                  "--min-households", "20")
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert len(table) > 0 and table["households"].min() >= 20
    assert json.loads((tmp_path / "c.csv.json").read_text())["min_households"] == 20
    assert "provenance:" in res.output


@pytest.mark.parametrize(("args", "message"), [
    (["--min-households", "2"], "2 is not in the range x>=3"),
    (["--regency", "9999"], "regency '9999' not in this run"),
    (["--resolution", "9"], "resolution 9 not in this run"),
    (["--resolution", "12"], "12 is not in the range"),
    (["--format", "shp"], "'shp' is not one of"),
])
def test_cli_errors_are_one_line(run, tmp_path, args, message):
    out = tmp_path / "x.geojson"
    first = _invoke("--run", str(run), "--layer", "cells", "--out", str(out))
    assert first.exit_code == 0, first.output  # a previous export may be replaced ...
    previous = out.read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    res = _invoke("--run", str(run), "--layer", "cells", "--out", str(out), *args)
    assert res.exit_code != 0
    lines = [line for line in res.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], res.output
    assert "Traceback" not in res.output
    assert out.read_bytes() == previous  # ... but a failed one leaves it untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp files


def test_cli_resolution_only_for_cells_and_wkt_only_for_csv(run, tmp_path):
    res = _invoke("--run", str(run), "--layer", "pockets", "--out", str(tmp_path / "p.fgb"),
                  "--resolution", "7")
    assert res.exit_code == 2 and "applies to --layer cells only" in res.output
    res = _invoke("--run", str(run), "--layer", "cells", "--out", str(tmp_path / "p.fgb"),
                  "--wkt")
    assert res.exit_code == 2 and "--wkt applies to --format csv only" in res.output


def test_cli_sites_and_pockets(run, tmp_path):
    res = _invoke("--run", str(run), "--layer", "sites", "--out", str(tmp_path / "s.fgb"))
    assert res.exit_code == 0, res.output
    assert "0 rows suppressed, 12 counts withheld (min_households=10)" in res.output
    res = _invoke("--run", str(run), "--layer", "pockets", "--out", str(tmp_path / "p.parquet"))
    assert res.exit_code == 0, res.output
    assert "1 rows suppressed" in res.output


def test_cli_not_a_run(tmp_path):
    res = _invoke("--run", str(tmp_path), "--layer", "cells", "--out", str(tmp_path / "x.csv"))
    assert res.exit_code == 1 and "not a run directory" in res.output


def test_failed_write_leaves_nothing(pub, tmp_path, monkeypatch):
    out = tmp_path / "cells.gpkg"
    export_layer(pub, "cells", out)  # a previous export of the same layer
    old = out.read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    import kantong.engine.publish.export as export_mod

    def half_then_fail(frame, path, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(export_mod.pyogrio, "write_dataframe", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_layer(pub, "cells", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert out.read_bytes() == old
