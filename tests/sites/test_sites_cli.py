import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from factories import make_run

from kantong.engine.build.travel import STRAIGHT_LINE_SPEED_KMH
from kantong.engine.cli.group import cli
from kantong.engine.sites.coverage import FrictionSurface, travel_coverage
from kantong.engine.sites.places import PLACE_COLUMNS
from kantong.engine.sites.run import plan_sites

#: Every column a sites output may hold: site points with aggregate counts only.
SITE_COLUMNS = {
    "rank", "candidate_id", "name", "regency_code", "regency_name", "lon", "lat",
    "new_extreme_households", "new_extreme_persons", "new_households", "new_persons_covered",
    "new_cells", "cumulative_extreme_households", "covered_persons", "pct_remaining_covered",
    "new_demand", "cumulative_demand", "cost", "cumulative_cost", "facility_type", "method",
    "max_minutes", "travel_method", "geometry", "objective", *PLACE_COLUMNS,
    "minutes_saved", "mean_minutes_after", "p90_minutes_after", "max_minutes_after",
    "capacity", "served_units", "served_extreme_households",
}


def _invoke(*args):
    return CliRunner().invoke(cli, ["sites", *map(str, args)])


def test_greedy_writes_every_output(tiny_run):
    run, _ = tiny_run
    res = _invoke("--run", run, "--type", "puskesmas", "--count", 4, "--max-minutes", 30)
    assert res.exit_code == 0, res.output
    assert "greedy" in res.output and "% of remaining" in res.output
    sites_dir = run / "sites"
    for name in ("sites_puskesmas.geojson", "sites_puskesmas.parquet", "sites_puskesmas.json",
                 "sites_puskesmas_coverage.png"):
        assert (sites_dir / name).stat().st_size > 0
    gj = gpd.read_file(sites_dir / "sites_puskesmas.geojson")
    pq = gpd.read_parquet(sites_dir / "sites_puskesmas.parquet")
    assert gj.crs.to_epsg() == 4326 and pq.crs.to_epsg() == 4326
    assert set(pq.columns) <= SITE_COLUMNS  # privacy: no household rows or identifiers
    assert pq["rank"].tolist() == list(range(1, len(pq) + 1)) and len(pq) == 4
    assert (pq["cumulative_extreme_households"].diff().dropna() >= 0).all()
    assert pq["cumulative_extreme_households"].iat[-1] == pq["new_extreme_households"].sum()
    assert (pq["new_extreme_households"].diff().dropna() <= 0).all()  # greedy order
    assert (pq["method"] == "greedy").all() and (pq["max_minutes"] == 30).all()
    meta = json.loads((sites_dir / "sites_puskesmas.json").read_text())
    assert meta["run_id"] == "test-0" and meta["result"]["method"] == "greedy"
    assert meta["travel"]["method"] == "least-cost"
    assert 0 <= meta["result"]["gap"] and meta["result"]["bound"] >= meta["result"]["objective"]
    tot = meta["totals"]
    assert tot["extreme_households_remaining"] == (tot["extreme_households"]
                                                   - tot["extreme_households_served_by_existing"])


def test_no_household_is_counted_twice(tiny_run):
    run, _ = tiny_run
    plan = plan_sites(run, facility_type="puskesmas", count=6, max_minutes=25)
    cells = pd.read_parquet(run / "cells.parquet")
    fac = gpd.read_parquet(run / "facilities.parquet")
    fac = fac[fac["type"] == "puskesmas"]
    surface = FrictionSurface.from_file(run / "friction.tif")
    served = travel_coverage(surface, fac.geometry.x, fac.geometry.y, cells["lon"], cells["lat"],
                             max_minutes=25).covered()
    sites = plan.sites
    reach = travel_coverage(surface, sites["lon"], sites["lat"], cells["lon"], cells["lat"],
                            max_minutes=25).matrix.toarray()
    taken = served.copy()
    ext = cells["extreme_households"].to_numpy()
    for i in range(len(sites)):
        newly = reach[i] & ~taken
        assert sites["new_extreme_households"].iat[i] == ext[newly].sum()
        assert sites["new_persons_covered"].iat[i] == cells["persons"].to_numpy()[newly].sum()
        taken |= newly
    assert plan.metadata["totals"]["extreme_households_served_by_existing"] == ext[served].sum()
    assert sites["new_extreme_households"].sum() <= ext[~served].sum()


def test_exact_method_reports_optimality(tiny_run):
    run, _ = tiny_run
    out = run.parent / "exact" / "pus.geojson"
    res = _invoke("--run", run, "--type", "puskesmas", "--count", 3, "--max-minutes", 30,
                  "--method", "exact", "--out", out, "--plot", run.parent / "curve.png")
    assert res.exit_code == 0, res.output
    assert "exact (Optimal)" in res.output and "gap 0.00%" in res.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["result"]["status"] == "Optimal" and meta["result"]["gap"] == 0.0
    assert (run.parent / "curve.png").exists() and out.with_suffix(".parquet").exists()
    # the web map copy is always refreshed
    web = gpd.read_parquet(run / "sites" / "sites_puskesmas.parquet")
    assert (web["method"] == "exact").all()
    greedy = plan_sites(run, facility_type="puskesmas", count=3, max_minutes=30,
                        out=run.parent / "g.geojson")
    assert meta["result"]["objective"] >= greedy.result.objective


def test_straight_line_fallback(tmp_path):
    run = tmp_path / "nofriction"
    make_run(run, seed=1, with_friction=False)
    res = _invoke("--run", run, "--type", "school", "--count", 2, "--max-minutes", 20)
    assert res.exit_code == 0, res.output
    assert "straight-line" in res.output
    meta = json.loads((run / "sites" / "sites_school.json").read_text())
    assert meta["travel"] == {"method": "straight-line", "friction": None,
                              "speed_kmh": STRAIGHT_LINE_SPEED_KMH}
    assert (gpd.read_parquet(run / "sites" / "sites_school.parquet")["travel_method"]
            == "straight-line").all()


def test_regency_budget_and_weighted_demand(tiny_run):
    run, _ = tiny_run
    res = _invoke("--run", run, "--type", "water_point", "--budget", 17e9, "--cost", 2.5e9,
                  "--max-minutes", 20, "--regency", "6109", "--demand", "weighted")
    assert res.exit_code == 0, res.output
    sites = gpd.read_parquet(run / "sites" / "sites_water_point.parquet")
    assert 0 < len(sites) <= 6  # floor(17 bn / 2.5 bn)
    assert (sites["regency_code"] == "6109").all()  # default candidates of the regency
    assert (sites["cost"] == 2.5e9).all() and "cumulative_demand" in sites.columns
    meta = json.loads((run / "sites" / "sites_water_point.json").read_text())
    assert meta["parameters"]["sites_allowed"] == 6
    assert meta["parameters"]["demand_weights"] == {"1": 1.0, "2": 0.5, "3": 0.25, "4": 0.125}
    cells = pd.read_parquet(run / "cells.parquet")
    assert meta["totals"]["extreme_households"] == \
        cells.loc[cells["regency_code"] == "6109", "extreme_households"].sum()


def test_candidates_file_with_costs_and_budget(tiny_run, tmp_path):
    run, _ = tiny_run
    cells = pd.read_parquet(run / "cells.parquet").sample(12, random_state=2)
    csv = tmp_path / "cand.csv"
    pd.DataFrame({"lon": cells["lon"], "lat": cells["lat"], "name": [f"S{i}" for i in range(12)],
                  "cost": np.linspace(1e9, 4e9, 12)}).to_csv(csv, index=False)
    res = _invoke("--run", run, "--type", "school", "--budget", 5e9, "--max-minutes", 30,
                  "--candidates", csv, "--method", "exact")
    assert res.exit_code == 0, res.output
    sites = gpd.read_parquet(run / "sites" / "sites_school.parquet")
    assert sites["cost"].sum() <= 5e9 and sites["name"].str.startswith("S").all()
    assert sites["cumulative_cost"].iat[-1] == sites["cost"].sum()
    # a vector file without a CRS is refused; one in UTM is reprojected
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(cells["lon"], cells["lat"]), crs=4326)
    pts.to_crs("EPSG:32649").to_file(tmp_path / "utm.gpkg")
    res = _invoke("--run", run, "--type", "school", "--count", 2, "--max-minutes", 30,
                  "--candidates", tmp_path / "utm.gpkg")
    assert res.exit_code == 0, res.output
    got = gpd.read_parquet(run / "sites" / "sites_school.parquet")
    assert got["lon"].between(110.6, 110.9).all()
    with pytest.warns(UserWarning, match="crs"):  # a shapefile without a .prj
        gpd.GeoDataFrame(geometry=pts.geometry.to_numpy(), crs=None).to_file(
            tmp_path / "nocrs.shp")
    res = _invoke("--run", run, "--type", "school", "--count", 2, "--max-minutes", 30,
                  "--candidates", tmp_path / "nocrs.shp")
    assert res.exit_code == 1 and "no CRS" in res.output
    res = _invoke("--run", run, "--type", "school", "--budget", 1e8, "--max-minutes", 30,
                  "--candidates", csv)
    assert res.exit_code == 1 and "below the cheapest" in res.output


def test_default_candidates_are_shortlisted(tiny_run):
    run, _ = tiny_run
    full = plan_sites(run, facility_type="posyandu", count=5, max_minutes=20)
    short = plan_sites(run, facility_type="posyandu", count=5, max_minutes=20,
                       candidate_limit=60)
    params = short.metadata["parameters"]
    assert params["candidates_scored"] <= 60 < params["candidates_considered"]
    assert short.result.objective >= 0.9 * full.result.objective


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One run for the read-only error cases (nothing is written on an error)."""
    run = tmp_path_factory.mktemp("shared") / "run"
    make_run(run, seed=0)
    return run


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--method", "best"], 2, "Invalid value for '--method'"),
    (["--count", "0"], 2, "Invalid value for '--count'"),
    (["--count", "2", "--budget", "5e9", "--cost", "1e9"], 2, "either --count or --budget"),
    (["--max-minutes", "0"], 2, "Invalid value for '--max-minutes'"),
    (["--budget", "1e9", "--cost", "2e9"], 2, "below the cost of one site"),
    (["--budget", "1e9"], 1, "needs --cost"),
    (["--regency", "9999"], 1, "unknown regency code"),
    (["--regency", "6111"], 1, "no households in this run"),
])
def test_bad_arguments_are_one_line_errors(shared_run, args, code, needle):
    run = shared_run
    base = ["--run", run, "--type", "puskesmas", "--max-minutes", "30"]
    if "--count" not in args and "--budget" not in args:
        base += ["--count", "2"]
    res = _invoke(*base, *args)
    assert res.exit_code == code, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert sum(line.startswith("Error") for line in res.output.splitlines()) == 1
    assert not (run / "sites").exists()


def test_missing_run_dir_and_unknown_type(tmp_path, tiny_run):
    res = _invoke("--run", tmp_path / "nope", "--type", "puskesmas", "--count", 2,
                  "--max-minutes", 30)
    assert res.exit_code == 1 and res.output.strip().startswith("Error:")
    assert len(res.output.strip().splitlines()) == 1
    run, _ = tiny_run
    res = _invoke("--run", run, "--type", "bank sampah", "--count", 2, "--max-minutes", 30)
    assert res.exit_code == 0, res.output
    assert "0 existing bank sampah" in res.output
    assert (run / "sites" / "sites_bank_sampah.parquet").exists()
