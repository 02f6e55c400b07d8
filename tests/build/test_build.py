"""kantong.engine.build.run and `kantong build`: a tiny end-to-end run, its invariants and its
errors."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from factories import make_households
from rasterio.transform import from_origin

from kantong.engine.build import grid
from kantong.engine.build.run import build_run
from kantong.engine.cli.group import cli
from kantong.engine.config import Config
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.errors import CRSError, EmptyInputError, InputError
from kantong.engine.h3ids import uint64_to_cells

CELL_COLUMNS = [
    "h3", "resolution", "geometry", "lon", "lat", "households", "persons",
    "households_desil_1", "households_desil_2", "households_desil_3", "households_desil_4",
    "extreme_households", "extreme_persons", "extreme_rate", "households_village_located",
    *[c for _, c, _ in DEPRIVATIONS.values()], *[s for _, _, s in DEPRIVATIONS.values()],
    "assistance_gap", "population", "travel_min_puskesmas", "travel_min_water_point",
    "elev_mean", "province_code", "province_name", "regency_code", "regency_name",
    "regency_kemendagri_code", "district_code", "district_name",
]


def write_tif(path: Path, data: np.ndarray, transform, crs: str | None) -> Path:
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": data.shape[1],
               "height": data.shape[0], "transform": transform, "nodata": np.nan}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32), 1)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    hh = make_households(seed=7, radius=5, mean_households=6).households
    hh = hh.drop(columns=["location_precision"])
    bad = hh.iloc[:2].copy()
    bad["household_id"] = ["BAD-1", "BAD-2"]
    bad["desil"] = [9, 0]
    pd.concat([hh, bad]).to_csv(root / "households.csv", index=False)
    rng = np.random.default_rng(7)
    fac = gpd.GeoDataFrame(
        {"facility_id": [f"F{i}" for i in range(7)],
         "type": ["puskesmas"] * 3 + ["Water Point"] * 3 + ["puskesmas"],
         "name": [f"site {i}" for i in range(7)]},
        geometry=gpd.points_from_xy(
            np.r_[110.75 + rng.uniform(-0.05, 0.05, 6), 113.5],
            np.r_[0.05 + rng.uniform(-0.05, 0.05, 6), -1.0]), crs="EPSG:4326")
    fac.to_file(root / "facilities.geojson", driver="GeoJSON")
    friction = np.full((80, 80), 0.002)  # 2 min per km
    friction[5:10, 5:60] = np.nan
    write_tif(root / "friction.tif", friction, from_origin(110.55, 0.25, 0.005, 0.005),
              "EPSG:4326")
    write_tif(root / "elev_utm.tif", rng.uniform(0, 300, (60, 60)),
              from_origin(455_000, 25_000, 500, 500), "EPSG:32649")
    write_tif(root / "nocrs.tif", np.ones((10, 10)), from_origin(110.6, 0.2, 0.01, 0.01), None)
    hh.iloc[:0].to_csv(root / "empty.csv", index=False)  # header only
    return {"root": root, "households": root / "households.csv",
            "facilities": root / "facilities.geojson", "friction": root / "friction.tif",
            "elev": root / "elev_utm.tif", "nocrs": root / "nocrs.tif",
            "empty": root / "empty.csv", "n": len(hh)}


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    build_run(inputs["households"], out=out, facilities=inputs["facilities"],
              friction=inputs["friction"], rasters={"elev": inputs["elev"]}, pockets=False)
    return out


def test_run_directory_contents(run):
    names = {p.relative_to(run).as_posix() for p in run.rglob("*")}
    assert {"cells.parquet", "manifest.json", "rejects.csv", "facilities.parquet",
            "friction.tif", "travel/puskesmas.tif", "travel/water_point.tif",
            "rollups/cells_r5.parquet", "rollups/cells_r6.parquet",
            "rollups/cells_r7.parquet"} <= names
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".run")]  # no temp left


def test_cells_schema_and_totals(run, inputs):
    cells = gpd.read_parquet(run / "cells.parquet")
    assert list(cells.columns) == CELL_COLUMNS
    assert cells.crs.to_epsg() == 4326
    assert cells["households"].sum() == inputs["n"]
    assert cells["population"].notna().all() and (cells["population"] >= 0).all()
    assert cells["travel_min_puskesmas"].notna().all()
    assert cells["elev_mean"].between(0, 300).all()
    assert (cells["province_code"] == "61").all()
    for r in (7, 6, 5):
        up = gpd.read_parquet(run / "rollups" / f"cells_r{r}.parquet")
        assert list(up.columns) == CELL_COLUMNS
        for col in grid.COUNT_COLUMNS:
            assert up[col].sum() == cells[col].sum()
        assert up["population"].sum() == pytest.approx(cells["population"].sum())


def test_travel_minutes_are_household_means_of_the_rasters(run, inputs):
    cells = gpd.read_parquet(run / "cells.parquet").set_index("h3")
    hh = pd.read_csv(inputs["households"]).iloc[: inputs["n"]]
    with rasterio.open(run / "travel" / "puskesmas.tif") as src:
        minutes = src.read(1)
        rows, cols = rasterio.transform.rowcol(src.transform, hh["lon"], hh["lat"])
    hh["t"] = minutes[np.asarray(rows), np.asarray(cols)]
    hh["h3"] = uint64_to_cells(grid.points_to_cells(hh["lat"].to_numpy(),
                                                          hh["lon"].to_numpy(), 8))
    expected = hh.groupby("h3")["t"].mean()
    np.testing.assert_allclose(cells.loc[expected.index, "travel_min_puskesmas"], expected,
                               rtol=1e-5)
    # at 2 min/km no household is more than ~20 km from a puskesmas
    assert cells["travel_min_puskesmas"].max() < 60


def test_manifest(run, inputs):
    m = json.loads((run / "manifest.json").read_text())
    assert m["travel_time"]["method"] == ("least-cost 8-connected Dijkstra "
                                          "(MCP_Geometric move costs)")
    hh = m["counts"]["households"]
    assert hh["read"] == inputs["n"] + 2 and hh["rejected"] == 2
    assert hh["accepted"] + hh["rejected"] == hh["read"]
    fac = m["counts"]["facilities"]
    assert fac["read"] == fac["accepted"] + fac["rejected"] == 7
    assert m["travel_time"]["types"]["puskesmas"]["ignored_outside_friction"] == 1
    assert any("ignored" in w for w in m["warnings"])
    assert set(m["inputs"]) == {"households", "facilities", "friction", "population",
                                "raster:elev"}
    assert len(m["inputs"]["households"]["sha256"]) == 64
    assert m["cells"]["8"] == len(gpd.read_parquet(run / "cells.parquet"))
    assert {"households", "travel", "cells", "population", "rollups", "write",
            "total"} <= set(m["timings_s"])
    assert m["peak_memory_mib"] > 0
    assert m["config"] == Config().to_dict()
    rejects = pd.read_csv(run / "rejects.csv")
    assert list(rejects.columns) == ["source", "row", "record_id", "reason"]
    assert sorted(rejects["record_id"]) == ["BAD-1", "BAD-2"]


def test_batches_give_identical_cells(run, inputs, tmp_path):
    out = tmp_path / "batched"
    build_run(inputs["households"], out=out, facilities=inputs["facilities"],
              friction=inputs["friction"], rasters={"elev": inputs["elev"]}, pockets=False,
              batch_rows=97)
    a = gpd.read_parquet(run / "cells.parquet")
    b = gpd.read_parquet(out / "cells.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"),
                                  rtol=1e-12)


def test_straight_line_fallback_and_no_population(inputs, tmp_path):
    out = tmp_path / "straight"
    summary = build_run(inputs["households"], out=out, facilities=inputs["facilities"],
                        population=None, config=Config().replace("build", resolution=6),
                        pockets=False)
    cells = gpd.read_parquet(out / "cells.parquet")
    assert cells["population"].isna().all()
    assert cells["travel_min_water_point"].notna().all()
    assert summary.manifest["travel_time"]["method"] == \
        "straight-line fallback: no friction surface"
    assert not (out / "travel").exists() and not (out / "friction.tif").exists()
    assert sorted(p.name for p in (out / "rollups").iterdir()) == ["cells_r5.parquet"]


def test_failures_leave_no_run_directory(inputs, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(EmptyInputError, match="no household rows"):
        build_run(inputs["empty"], out=out, pockets=False)
    with pytest.raises(CRSError, match="no CRS"):
        build_run(inputs["households"], out=out, rasters={"x": inputs["nocrs"]}, pockets=False)
    with pytest.raises(InputError, match="not found"):
        build_run(inputs["households"], out=out, friction=tmp_path / "missing.tif")
    assert list(tmp_path.iterdir()) == []


def test_all_households_rejected_is_a_clear_error(inputs, tmp_path):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(inputs["households"]).iloc[:5].assign(desil=7)
    frame.to_csv(bad, index=False)
    with pytest.raises(EmptyInputError, match="no household was accepted.*invalid desil"):
        build_run(bad, out=tmp_path / "run", pockets=False)
    assert not (tmp_path / "run").exists()


def test_cli_build_with_pockets_and_config(inputs, tmp_path):
    config = tmp_path / "kantong.toml"
    config.write_text("[build]\nresolution = 9\n")
    out = tmp_path / "cli_run"
    result = CliRunner().invoke(cli, [
        "build", "--households", str(inputs["households"]),
        "--facilities", str(inputs["facilities"]), "--friction", str(inputs["friction"]),
        "--raster", f"elev={inputs['elev']}", "--province", "61", "--config", str(config),
        "--resolution", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "households  read" in result.output and "accepted" in result.output
    assert "timings" in result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["parameters"]["resolution"] == 7  # the flag overrides the file
    assert m["study_area"] == {"kind": "province", "province": "61",
                               "provinces_with_households": ["61"]}
    assert "pockets" in m and (out / "pockets.parquet").exists()
    cells = gpd.read_parquet(out / "cells.parquet")
    assert (cells["resolution"] == 7).all() and "priority" in cells.columns


@pytest.mark.parametrize("args, message", [
    (["--resolution", "11"], "Invalid value for '--resolution'"),
    (["--raster", "elev"], "expected NAME=TIF"),
    (["--raster", "Bad Name=x.tif"], "lower-case identifier"),
    (["--province", "99"], "unknown province"),
])
def test_cli_bad_arguments_are_one_line_errors(inputs, tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["build", "--households", str(inputs["households"]),
                                      "--out", str(out), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("kind", ["missing", "nocrs", "empty", "boundaries"])
def test_cli_input_errors_are_one_line(inputs, tmp_path, kind):
    out = tmp_path / "run"
    args = {"missing": ["--households", str(tmp_path / "nope.csv")],
            "nocrs": ["--households", str(inputs["households"]),
                      "--raster", f"x={inputs['nocrs']}"],
            "empty": ["--households", str(inputs["empty"])],
            "boundaries": ["--households", str(inputs["households"]),
                           "--boundaries", str(tmp_path / "area.csv")]}[kind]
    if kind == "boundaries":
        pd.DataFrame({"wkt": ["POLYGON ((110 0, 111 0, 111 1, 110 1, 110 0))"]}).to_csv(
            tmp_path / "area.csv", index=False)
    result = CliRunner().invoke(cli, ["build", *args, "--no-pockets", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_boundaries_in_another_crs_are_reprojected(inputs, tmp_path):
    area = gpd.GeoDataFrame(geometry=gpd.GeoSeries.from_wkt(
        ["POLYGON ((110.6 -0.1, 110.9 -0.1, 110.9 0.2, 110.6 0.2, 110.6 -0.1))"]),
        crs="EPSG:4326").to_crs("EPSG:32649")
    area.to_file(tmp_path / "area.gpkg")
    summary = build_run(inputs["households"], out=tmp_path / "run",
                        boundaries_path=tmp_path / "area.gpkg", population=None, pockets=False)
    assert summary.counts["households"]["accepted"] == inputs["n"]
    assert summary.manifest["study_area"]["kind"] == "boundaries"


def test_synthetic_inputs_are_flagged(tmp_path):
    import json as _json

    from kantong.engine.build.run import is_synthetic_input

    real, demo = tmp_path / "kalbar_2025", tmp_path / "kalbar_demo"
    real.mkdir()
    demo.mkdir()
    assert is_synthetic_input(real / "households_synthetic.csv")
    assert not is_synthetic_input(real / "p3ke_2025.csv")
    (demo / "metadata.json").write_text(_json.dumps({"label": "SYNTHETIC - demo"}))
    assert is_synthetic_input(demo / "register.csv")


@pytest.mark.parametrize("kind", ["nocrs", "negative"])
def test_friction_without_facilities_is_still_validated(inputs, tmp_path, kind):
    out = tmp_path / "run"
    friction = inputs["nocrs"]
    if kind == "negative":
        friction = write_tif(tmp_path / "neg.tif", np.full((40, 40), -0.01),
                             from_origin(110.55, 0.25, 0.01, 0.01), "EPSG:4326")
    result = CliRunner().invoke(cli, ["build", "--households", str(inputs["households"]),
                                      "--friction", str(friction), "--no-pockets",
                                      "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and str(friction.name) in result.output
    assert result.output.count("\n") == 1
    assert not out.exists()


def test_friction_without_facilities_is_kept_for_siting(inputs, tmp_path):
    out = tmp_path / "run"
    build_run(inputs["households"], out=out, friction=inputs["friction"], pockets=False)
    assert (out / "friction.tif").exists()
