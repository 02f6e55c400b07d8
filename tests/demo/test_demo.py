"""Tests of the synthetic demo data generator (kantong.engine.demo.make, ``kantong demo-data``)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from scipy.spatial import cKDTree

from kantong.engine.cli.group import cli
from kantong.engine.constants import DEPRIVATION_FIELDS, FACILITY_TYPES, SYNTHETIC_LABEL
from kantong.engine.demo.make import (
    DemoPaths,
    default_households,
    make_demo,
    province_population,
    target_extreme_rate,
)
from kantong.engine.errors import ConfigError, InputError
from kantong.engine.inputs import boundaries

N = 4000
METRIC = "EPSG:32749"  # UTM 49S, Kalimantan Barat


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return make_demo(tmp_path_factory.mktemp("a"), households=N, seed=42, follow_up=True)


@pytest.fixture(scope="module")
def register(demo: DemoPaths) -> pd.DataFrame:
    return pd.read_csv(demo.households, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def meta(demo: DemoPaths) -> dict:
    return json.loads(demo.metadata.read_text(encoding="utf-8"))


def _numeric(register: pd.DataFrame) -> pd.DataFrame:
    """Rows with numeric, in-range coordinates and a valid desil, typed."""
    df = register.copy()
    df["lon"] = pd.to_numeric(df["lon"], errors="coerce")
    df["lat"] = pd.to_numeric(df["lat"], errors="coerce")
    df["desil"] = df["desil"].astype(int)
    df["members"] = df["members"].astype(int)
    for field in DEPRIVATION_FIELDS:
        df[field] = df[field] == "true"
    return df


def _located(register: pd.DataFrame) -> pd.DataFrame:
    df = _numeric(register)
    return df[df["lat"].between(-90, 90) & df["lon"].notna()]


def _metric(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    pts = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_crs(METRIC)
    return np.column_stack([pts.x, pts.y])


def test_same_seed_gives_identical_bytes(demo: DemoPaths, tmp_path: Path) -> None:
    again = make_demo(tmp_path / "b", households=N, seed=42, follow_up=True)
    names = sorted(p.name for p in demo.out_dir.iterdir())
    assert names == sorted(p.name for p in again.out_dir.iterdir())
    assert len(names) == 8
    for name in names:
        assert (demo.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name


def test_year1_files_do_not_depend_on_follow_up(demo: DemoPaths, tmp_path: Path) -> None:
    plain = make_demo(tmp_path, households=N, seed=42)
    assert plain.households_year2 is None and plain.extreme_rate_year2 is None
    for name in ("households_synthetic.csv", "facilities_synthetic.geojson",
                 "friction_synthetic.tif", "population_ghspop.tif"):
        assert (demo.out_dir / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert not (tmp_path / "households_synthetic_year2.csv").exists()


def test_different_seed_differs(demo: DemoPaths, tmp_path: Path) -> None:
    other = make_demo(tmp_path, households=N, seed=7)
    for name in ("households_synthetic.csv", "facilities_synthetic.geojson",
                 "friction_synthetic.tif"):
        assert (demo.out_dir / name).read_bytes() != (other.out_dir / name).read_bytes(), name
    assert (demo.population.read_bytes() == other.population.read_bytes())  # real data


def test_register_schema_and_ids(register: pd.DataFrame, meta: dict) -> None:
    assert list(register.columns[:6]) == ["household_id", "lon", "lat", "desil", "members",
                                          "village_code"]
    assert set(DEPRIVATION_FIELDS) <= set(register.columns)
    assert len(register) == N
    assert register["household_id"].str.fullmatch(r"SYN-61-\d{7}").all()
    df = _numeric(register)
    valid = df[df["desil"].between(1, 4)]
    assert len(df) - len(valid) == meta["register_artefacts"]["desil_out_of_range"]
    assert valid["members"].between(1, 9).all()
    assert 3.6 <= valid["members"].mean() <= 4.4
    for field in DEPRIVATION_FIELDS:
        assert set(register[field]) == {"true", "false"}


def test_register_has_planted_problems(register: pd.DataFrame, meta: dict) -> None:
    art = meta["register_artefacts"]
    for kind in ("swapped_lat_lon", "desil_out_of_range", "duplicate_household_id",
                 "non_numeric_coordinate"):
        assert art[kind] >= 1, kind
    assert register["household_id"].duplicated().sum() == art["duplicate_household_id"]
    df = _numeric(register)
    assert (~df["desil"].between(1, 4)).sum() == art["desil_out_of_range"]
    text_given = (register["lon"] != "") & (register["lat"] != "")
    non_numeric = text_given & (df["lon"].isna() | df["lat"].isna())
    assert non_numeric.sum() == art["non_numeric_coordinate"]
    assert (df["lat"].abs() > 90).sum() == art["swapped_lat_lon"]
    blank = (register["lon"] == "") & (register["lat"] == "")
    assert blank.sum() == art["blank_coordinates"] == round(0.02 * N)
    # blank rows keep a village code that resolves; some use the Kemendagri dotted form
    codes = register.loc[blank, "village_code"]
    assert boundaries.normalise_village_codes(codes).notna().all()
    assert codes.str.fullmatch(r"\d{2}\.\d{2}\.\d{2}\.\d{4}").sum() == art["kemendagri_codes"] > 0


def test_points_inside_province_and_village_codes_match(register: pd.DataFrame,
                                                        meta: dict) -> None:
    df = _located(register)
    art = meta["register_artefacts"]
    assert len(df) == (N - art["blank_coordinates"] - art["swapped_lat_lon"]
                       - art["non_numeric_coordinate"])
    polygon = boundaries.province_polygon("61").geometry.iloc[0]
    assert shapely.contains_xy(polygon, df["lon"].to_numpy(), df["lat"].to_numpy()).all()
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326",
                           index=df.index)
    vil = boundaries.villages()[["village_code", "geometry"]]
    joined = gpd.sjoin(pts, vil, how="left", predicate="within")
    joined = joined[~joined.index.duplicated()]
    expected = joined["village_code"].reindex(df.index)
    got = boundaries.normalise_village_codes(df["village_code"])
    assert got.notna().all()
    assert (got.astype(str) == expected.astype(str)).all()


def test_extreme_rate_is_calibrated(register: pd.DataFrame, demo: DemoPaths) -> None:
    df = _numeric(register)
    weight = default_households("61") / N
    persons = df.loc[df["desil"] == 1, "members"].sum()
    rate = persons * weight / province_population("61")
    target = target_extreme_rate("61")
    assert target == pytest.approx(0.008)
    assert abs(rate - target) / target < 0.05
    assert demo.extreme_rate == pytest.approx(rate, rel=1e-4)
    assert 0.0057 <= rate <= 0.0099  # the published Kalbar range


def test_poverty_follows_remoteness(register: pd.DataFrame, demo: DemoPaths) -> None:
    df = _located(register)
    df = df[df["desil"].between(1, 4)]
    fac = gpd.read_file(demo.facilities)
    pkm = fac[fac["type"] == "puskesmas"]
    dist, _ = cKDTree(_metric(pkm.geometry.x, pkm.geometry.y)).query(
        _metric(df["lon"], df["lat"]))
    extreme = (df["desil"] == 1).to_numpy(float)
    assert np.corrcoef(np.log1p(dist), extreme)[0, 1] > 0.05
    quint = pd.qcut(dist, 5, labels=False)
    share = pd.Series(extreme).groupby(quint).mean()
    assert share.iloc[-1] > 2.5 * share.iloc[0]
    no_water = 1.0 - df["water_improved"].to_numpy(float)
    assert np.corrcoef(np.log1p(dist), no_water)[0, 1] > 0.05


def test_pockets_in_the_interior_not_in_pontianak(meta: dict) -> None:
    regencies = {r["regency_name"]: r for r in meta["year1"]["regencies"]}
    province_rate = meta["extreme_rate"]
    pocket_names = {p["regency_name"] for p in meta["pockets"]}
    assert {"Kapuas Hulu", "Melawi", "Sintang", "Ketapang", "Kayong Utara"} == pocket_names
    assert regencies["Kota Pontianak"]["extreme_rate"] < 0.5 * province_rate
    for name in ("Kapuas Hulu", "Melawi", "Kayong Utara"):
        assert regencies[name]["extreme_rate"] > province_rate, name


def test_friction_raster(demo: DemoPaths) -> None:
    with rasterio.open(demo.friction) as src:
        assert src.crs.to_epsg() == 4326
        assert src.res == pytest.approx((1 / 120, 1 / 120))
        assert src.dtypes[0] == "float32"
        assert src.nodata == -9999.0
        assert src.tags()["units"] == "minutes per metre"
        assert src.tags()["label"] == SYNTHETIC_LABEL
        band = src.read(1, masked=True)
        west, south, east, north = boundaries.province_polygon("61").total_bounds
        assert src.bounds.left < west and src.bounds.right > east
        assert src.bounds.bottom < south and src.bounds.top > north
        row, col = src.index(109.325, -0.03194)  # Pontianak
        town = float(band[row, col])
    valid = band.compressed()
    assert valid.min() >= 0.0012 - 1e-7 and valid.max() <= 0.02 + 1e-7
    assert town < 0.002
    assert np.median(valid) > 0.008  # most land is slow interior
    with rasterio.open(demo.population) as pop:
        assert pop.crs.to_epsg() == 4326 and "GHS-POP" in pop.tags()["source"]
        assert pop.read(1).sum() > 4e6  # Kalimantan Barat holds ~5 million GHS-POP persons


def test_facilities(demo: DemoPaths, meta: dict) -> None:
    fac = gpd.read_file(demo.facilities)
    assert fac.crs.to_epsg() == 4326
    assert set(fac["type"]) == set(FACILITY_TYPES)
    assert fac["facility_id"].is_unique and fac["name"].str.len().gt(0).all()
    n_districts = (boundaries.districts()["province_code"] == "61").sum()
    counts = fac["type"].value_counts()
    assert n_districts <= counts["puskesmas"] <= 2 * n_districts
    assert counts["posyandu"] > 1000 and counts["school"] > 1000 and counts["water_point"] > 500
    polygon = boundaries.province_polygon("61").geometry.iloc[0]
    assert shapely.contains_xy(polygon, fac.geometry.x, fac.geometry.y).mean() > 0.99
    doc = json.loads(demo.facilities.read_text(encoding="utf-8"))
    assert doc["description"] == SYNTHETIC_LABEL
    assert meta["facilities"] == {k: int(v) for k, v in counts.sort_index().items()}


def test_follow_up_improves_near_new_facilities(demo: DemoPaths, register: pd.DataFrame,
                                                meta: dict) -> None:
    year2 = pd.read_csv(demo.households_year2, dtype=str, keep_default_na=False)
    assert demo.households_year2.name == "households_synthetic_year2.csv"
    ids1, ids2 = set(register["household_id"]), set(year2["household_id"])
    assert len(ids1 & ids2) > 0.85 * len(ids1)
    assert len(ids2 - ids1) > 0 and len(ids1 - ids2) > 0  # fell in / left
    fac1 = gpd.read_file(demo.facilities)
    fac2 = gpd.read_file(demo.facilities_year2)
    new = fac2[~fac2["facility_id"].isin(fac1["facility_id"])]
    listed = meta["follow_up"]["new_facilities"]
    assert len(new) == len(listed) > 0
    assert sorted(new["facility_id"]) == sorted(f["facility_id"] for f in listed)
    tree = cKDTree(_metric(new.geometry.x, new.geometry.y))

    def shares(frame: pd.DataFrame) -> tuple[float, float, float, float]:
        df = _located(frame)
        df = df[df["desil"].between(1, 4)]
        d, _ = tree.query(_metric(df["lon"], df["lat"]))
        near, far = df[d <= 15_000], df[d > 40_000]
        assert len(near) >= 30
        return ((near["desil"] == 1).mean(), near["water_improved"].mean(),
                (far["desil"] == 1).mean(), near["sanitation_improved"].mean())

    d1_near1, water1, d1_far1, san1 = shares(register)
    d1_near2, water2, d1_far2, san2 = shares(year2)
    assert d1_near2 < 0.7 * d1_near1
    assert water2 > water1 + 0.05 and san2 > san1
    assert d1_near1 - d1_near2 > d1_far1 - d1_far2  # the improvement is local


def test_synthetic_label_everywhere(demo: DemoPaths, meta: dict, tmp_path: Path) -> None:
    assert meta["label"] == SYNTHETIC_LABEL
    assert meta["seed"] == 42 and meta["province"] == "61" and meta["households"] == N
    assert "generator_version" in meta
    assert SYNTHETIC_LABEL in demo.readme.read_text(encoding="utf-8")
    assert meta["files"]["households_synthetic.csv"]["bytes"] == demo.households.stat().st_size
    paths = make_demo(tmp_path, households=300, seed=1, fmt="parquet", clean=True)
    table = pq.read_table(paths.households)
    kantong = json.loads(table.schema.metadata[b"kantong"])
    assert kantong["label"] == SYNTHETIC_LABEL
    df = table.to_pandas()
    assert df["household_id"].is_unique and df["desil"].between(1, 4).all()
    located = df.dropna(subset=["lon", "lat"])
    assert located["lat"].between(-5, 5).all() and located["lon"].between(108, 115).all()


def test_cli_writes_demo(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, ["demo-data", "--out", str(out), "--households", "500",
                                      "--seed", "3", "--format", "parquet", "--clean"])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output and "extreme rate" in result.output
    assert (out / "households_synthetic.parquet").exists()
    assert (out / "facilities_synthetic.geojson").exists()
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["clean"] is True and sum(meta["register_artefacts"][k] for k in (
        "swapped_lat_lon", "desil_out_of_range", "duplicate_household_id",
        "non_numeric_coordinate")) == 0


@pytest.mark.parametrize("args", [["--province", "99"], ["--households", "0"],
                                  ["--format", "xlsx"], ["--seed", "-1"]])
def test_cli_rejects_bad_arguments(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["demo-data", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1
    assert not (tmp_path / "x").exists()


def test_library_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown province"):
        make_demo(tmp_path, province="60", households=10)
    with pytest.raises(ConfigError, match="households"):
        make_demo(tmp_path, households=0)
    with pytest.raises(ConfigError, match="format"):
        make_demo(tmp_path, households=10, fmt="xlsx")


def test_default_households_scale_with_population() -> None:
    assert default_households("61") == 500_000
    assert 200_000 < default_households("62") < 300_000
    assert default_households("65") < default_households("64")
    assert target_extreme_rate("64") == pytest.approx(0.01)
