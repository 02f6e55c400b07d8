"""Issue 18, "no tracebacks, no hangs": the reported cases give one ``Error:`` line."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from trustcli import assert_one_line_error, invoke

from kantong.engine.inputs.tables import MAX_LINE_BYTES


def _counts(output: str) -> tuple[int, int, int]:
    m = re.search(r"read\s+([\d,]+) = accepted\s+([\d,]+) \+ rejected\s+([\d,]+)", output)
    assert m, output
    return tuple(int(x.replace(",", "")) for x in m.groups())  # type: ignore[return-value]


@pytest.mark.parametrize("fmt", ["parquet"])  # GPKG takes the same path (geometry column)
def test_empty_points_are_rejected_rows(trust_inputs: Path, tmp_path: Path, fmt: str) -> None:
    hh = pd.read_csv(trust_inputs / "hh.csv").head(60)
    gdf = gpd.GeoDataFrame(hh.drop(columns=["lon", "lat"]),
                           geometry=gpd.points_from_xy(hh["lon"], hh["lat"]), crs=4326)
    gdf.loc[3, "geometry"] = shapely.Point()  # an empty point
    gdf.loc[5, "geometry"] = None
    path = tmp_path / f"hh.{fmt}"
    if fmt == "gpkg":
        gdf.to_file(path)
    else:
        gdf.to_parquet(path)
    result = invoke("build", "--households", path, "--population", "none", "--no-pockets",
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert _counts(result.output) == (60, 58, 2)
    rejects = pd.read_csv(tmp_path / "run" / "rejects.csv")
    assert len(rejects) == 2 and rejects["reason"].str.contains("missing coordinates").all()


@pytest.mark.parametrize("args", [["--max-minutes", "inf", "--count", "2"],
                                  ["--max-minutes", "1e308", "--count", "2"],
                                  ["--max-minutes", "30", "--budget", "inf", "--cost", "5"],
                                  ["--max-minutes", "nan", "--count", "2"]])
def test_non_finite_numbers_are_refused(built_run: Path, args: list[str]) -> None:
    assert_one_line_error(invoke("sites", "--run", built_run, "--type", "puskesmas", *args))


def test_truncated_gzip_and_long_lines(trust_inputs: Path, tmp_path: Path) -> None:
    data = gzip.compress((trust_inputs / "hh.csv").read_bytes())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    line = assert_one_line_error(invoke("build", "--households", tmp_path / "cut.csv.gz",
                                        "--population", "none", "--out", tmp_path / "r1"))
    assert "cut.csv.gz" in line or "truncated" in line
    header = (trust_inputs / "hh.csv").read_text().splitlines()[0]
    (tmp_path / "long.csv").write_text(header + "\n" + "x" * (MAX_LINE_BYTES + 10) + "\n")
    line = assert_one_line_error(invoke("build", "--households", tmp_path / "long.csv",
                                        "--population", "none", "--out", tmp_path / "r2"))
    assert "longer than" in line
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_gpkg_write_failure_is_one_line(built_run: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise pyogrio.errors.DataSourceError("sqlite3_step() failed\nNo space left on device")

    monkeypatch.setattr(pyogrio, "write_dataframe", disk_full)
    for suffix in (".gpkg", ".fgb"):
        line = assert_one_line_error(invoke("export", "--run", built_run, "--layer", "cells",
                                            "--out", tmp_path / f"c{suffix}"))
        assert "cannot write" in line
        assert not list(tmp_path.iterdir())  # no temporary left behind


def test_point_boundaries_are_one_line(trust_inputs: Path, tmp_path: Path) -> None:
    pts = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(109.5, 0.1)], crs=4326)
    pts.to_file(tmp_path / "pts.gpkg")
    result = invoke("build", "--households", trust_inputs / "hh.csv", "--boundaries",
                    tmp_path / "pts.gpkg", "--population", "none", "--out", tmp_path / "run")
    assert "warnings.warn" not in result.output and "File \"" not in result.output
    assert_one_line_error(result)
