"""``kantong sites --objective ...`` end to end on a tiny run, checked independently.

The reference numbers are recomputed from the run's files: least-cost travel with
:func:`travel_coverage` (tested against ``MCP_Geometric`` in test_coverage.py), the cells'
``travel_min_<type>`` for today's travel, and an enumeration of candidate subsets.
"""

import itertools
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from factories import seal_run

from kantong.engine.cli.group import cli
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.facilities import read_facilities
from kantong.engine.sites.coverage import FrictionSurface, travel_coverage


def _invoke(*args):
    return CliRunner().invoke(cli, ["sites", *map(str, args)])


def _candidates(run: Path, tmp: Path, n: int = 9, seed: int = 3) -> tuple[Path, pd.DataFrame]:
    cells = pd.read_parquet(run / "cells.parquet")
    pick = cells[cells["households"] > 0].sample(n, random_state=seed)
    frame = pd.DataFrame({"candidate_id": [f"S{i}" for i in range(n)],
                          "lon": pick["lon"].to_numpy(), "lat": pick["lat"].to_numpy()})
    path = tmp / "cand.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _minutes(run: Path, src: pd.DataFrame, dst: pd.DataFrame, limit: float) -> np.ndarray:
    """Dense (sources x points) least-cost minutes, inf beyond ``limit``."""
    surface = FrictionSurface.from_file(run / "friction.tif")
    cov = travel_coverage(surface, src["lon"], src["lat"], dst["lon"], dst["lat"],
                          max_minutes=limit)
    out = np.full(cov.shape, np.inf)
    m = cov.minutes.tocoo()
    out[m.row, m.col] = m.data
    return out


def _sites(run: Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(run / "sites" / "sites_puskesmas.parquet")


def _meta(run: Path) -> dict:
    return json.loads((run / "sites" / "sites_puskesmas.json").read_text())


def test_min_sites_is_the_fewest_by_enumeration(tiny_run, tmp_path):
    run, _ = tiny_run
    path, cand = _candidates(run, tmp_path)
    res = _invoke("--run", run, "--type", "puskesmas", "--objective", "min-sites",
                  "--max-minutes", 20, "--candidates", path)
    assert res.exit_code == 0, res.output
    assert "Sites needed" in res.output
    cells = pd.read_parquet(run / "cells.parquet")
    fac = gpd.read_parquet(run / "facilities.parquet")
    fac = fac[fac["type"] == "puskesmas"]
    ex = pd.DataFrame({"lon": fac.geometry.x, "lat": fac.geometry.y})
    served = np.isfinite(_minutes(run, ex, cells, 20)).any(axis=0)
    reach = np.isfinite(_minutes(run, cand, cells, 20))
    need = (cells["extreme_households"].to_numpy() > 0) & ~served & reach.any(axis=0)
    fewest = next(r for r in range(len(cand) + 1) if any(
        reach[list(s)][:, need].any(axis=0).all()
        for s in itertools.combinations(range(len(cand)), r)))
    sites = _sites(run)
    assert len(sites) == fewest
    chosen = cand.set_index("candidate_id").loc[sites["candidate_id"]].index
    rows = [cand.index[cand["candidate_id"] == c][0] for c in chosen]
    assert reach[rows][:, need].any(axis=0).all()
    meta = _meta(run)
    assert meta["result"]["status"] == "Optimal" and meta["result"]["gap"] == 0.0
    unreachable = cells["extreme_households"].to_numpy()[~served & ~reach.any(axis=0)].sum()
    assert meta["totals"]["extreme_households_unreachable"] == unreachable


def _travel_reference(run: Path, cand: pd.DataFrame, horizon: float, k: int):
    cells = pd.read_parquet(run / "cells.parquet")
    cells = cells[cells["extreme_households"] > 0].reset_index(drop=True)
    w = cells["extreme_households"].to_numpy(float)
    base = np.minimum(cells["travel_min_puskesmas"].to_numpy(float), horizon)
    t = _minutes(run, cand, cells, horizon)
    after = {s: np.minimum(base, t[list(s)].min(axis=0))
             for s in itertools.combinations(range(len(cand)), k)}
    return w, base, after


def test_min_travel_is_the_least_total_travel(tiny_run, tmp_path):
    run, _ = tiny_run
    path, cand = _candidates(run, tmp_path)
    res = _invoke("--run", run, "--type", "puskesmas", "--objective", "min-travel",
                  "--count", 2, "--max-minutes", 90, "--candidates", path)
    assert res.exit_code == 0, res.output
    assert "mean" in res.output and "p90" in res.output
    w, base, after = _travel_reference(run, cand, 90.0, 2)
    best = min((w * a).sum() for a in after.values())
    meta = _meta(run)
    assert meta["result"]["objective"] == pytest.approx(best, rel=1e-5)
    sites = _sites(run)
    assert len(sites) == 2 and (sites["objective"] == "min-travel").all()
    rows = tuple(sorted(cand.index[cand["candidate_id"].isin(sites["candidate_id"])]))
    mean_after = (w * after[rows]).sum() / w.sum()
    assert sites["mean_minutes_after"].iat[-1] == pytest.approx(mean_after, rel=1e-5)
    assert meta["totals"]["mean_minutes_before"] == pytest.approx((w * base).sum() / w.sum())
    assert (run / "sites" / "sites_puskesmas_travel.png").stat().st_size > 0
    # greedy with interchange: within 1 % and a true lower bound
    res = _invoke("--run", run, "--type", "puskesmas", "--objective", "min-travel",
                  "--count", 2, "--max-minutes", 90, "--candidates", path, "--method", "greedy")
    assert res.exit_code == 0, res.output
    r = _meta(run)["result"]
    assert best * (1 - 1e-6) <= r["objective"] <= 1.01 * best and r["bound"] <= best * (1 + 1e-6)


def test_min_max_travel_is_the_shortest_longest_trip(tiny_run, tmp_path):
    run, _ = tiny_run
    path, cand = _candidates(run, tmp_path)
    res = _invoke("--run", run, "--type", "puskesmas", "--objective", "min-max-travel",
                  "--count", 2, "--max-minutes", 90, "--candidates", path)
    assert res.exit_code == 0, res.output
    _, base, after = _travel_reference(run, cand, 90.0, 2)
    # households beyond the horizon from every facility and candidate are left out
    everything = np.minimum.reduce(list(after.values()))
    keep = ~((base >= 90.0) & (everything >= base))
    best = min(a[keep].max() for a in after.values())
    meta = _meta(run)
    assert meta["result"]["objective"] == pytest.approx(best, rel=1e-5)
    assert meta["totals"]["max_minutes_after"] == pytest.approx(best, rel=1e-5)
    assert meta["totals"]["max_minutes_before"] == pytest.approx(base[keep].max(), rel=1e-5)


def test_capacity_never_exceeded_and_households_add_up(tiny_run, tmp_path):
    run, _ = tiny_run
    table = tmp_path / "capacities.csv"
    pd.DataFrame({"type": ["Puskesmas", "school"], "capacity": [60, 500]}).to_csv(table,
                                                                                index=False)
    for method in ("greedy", "exact"):
        res = _invoke("--run", run, "--type", "puskesmas", "--count", 3, "--max-minutes", 30,
                      "--capacity", table, "--capacity-unit", "households", "--method", method)
        assert res.exit_code == 0, res.output
        assert "unserved by capacity" in res.output
        sites = _sites(run)
        assert (sites["capacity"] == 60).all() and (sites["served_units"] <= 60 + 1e-6).all()
        tot = _meta(run)["totals"]
        parts = (tot["extreme_households_served_by_existing"]
                 + tot["extreme_households_served_by_new"]
                 + tot["extreme_households_unserved_by_capacity"]
                 + tot["extreme_households_unserved_by_distance"])
        assert parts == pytest.approx(tot["extreme_households"], abs=0.5)
        assert tot["extreme_households_served_by_new"] == pytest.approx(
            sites["served_extreme_households"].sum(), abs=0.1)
    res = _invoke("--run", run, "--type", "puskesmas", "--count", 3, "--max-minutes", 30,
                  "--capacity", 0)
    assert res.exit_code == 2 and "capacity must be > 0" in res.output


def test_existing_capacities_come_from_the_facility_column(tiny_run, tmp_path):
    run, _ = tiny_run
    # the build keeps a capacity column (aliases capacity, kapasitas, daya_tampung)
    src = tmp_path / "fac.csv"
    pd.DataFrame({"type": ["puskesmas"] * 3, "lon": [110.7] * 3, "lat": [0.0] * 3,
                  "kapasitas": ["250", "", "-1"]}).to_csv(src, index=False)
    read = read_facilities(src)
    assert read.accepted["capacity"].tolist()[0] == 250.0
    assert np.isnan(read.accepted["capacity"].tolist()[1])
    assert read.rejects["reason"].tolist() == ["capacity not a number >= 0"]
    # existing puskesmas with room for 1 household serve (almost) nothing; with 10^6 they
    # serve everything within reach: the column, not --capacity, sets their capacity
    fac = gpd.read_parquet(run / "facilities.parquet")
    served = {}
    for cap in (1.0, 1e6):
        fac["capacity"] = cap
        fac.to_parquet(run / "facilities.parquet")
        seal_run(run)
        res = _invoke("--run", run, "--type", "puskesmas", "--count", 1, "--max-minutes", 30,
                      "--capacity", 50, "--capacity-unit", "households")
        assert res.exit_code == 0, res.output
        tot = _meta(run)["totals"]
        served[cap] = tot["extreme_households_served_by_existing"]
        assert tot["existing_capacity_total"] == cap * (fac["type"] == "puskesmas").sum()
    assert served[1.0] <= 2 < served[1e6]


def test_sites_are_named_and_regency_runs_count_their_own_facilities(tiny_run):
    run, _ = tiny_run
    res = _invoke("--run", run, "--type", "puskesmas", "--count", 2, "--max-minutes", 30,
                  "--regency", "6109")
    assert res.exit_code == 0, res.output
    sites = _sites(run)
    vil = boundaries.villages()
    for _, s in sites.iterrows():  # each site lies in the village it is named after
        poly = vil.loc[vil["village_code"] == s["village_code"], "geometry"].iat[0]
        assert poly.buffer(0.02).contains(s.geometry)
        assert s["village_code"].startswith(s["district_code"])
        assert s["district_code"].startswith(s["regency_code"])
    assert sites["regency_kemendagri_code"].str.fullmatch(r"\d\d\.\d\d").all()
    fac = gpd.read_parquet(run / "facilities.parquet")
    fac = fac[fac["type"] == "puskesmas"]
    reg = boundaries.regencies()
    inside = fac.within(reg.loc[reg["regency_code"] == "6109", "geometry"].iat[0]).sum()
    tot = _meta(run)["totals"]
    assert tot["existing_facilities"] == inside
    assert tot["existing_facilities_used"] == len(fac)


def test_ties_do_not_depend_on_the_order_of_the_candidates(tiny_run, tmp_path):
    run, _ = tiny_run
    path, cand = _candidates(run, tmp_path, n=8, seed=5)
    twins = pd.concat([cand, cand.assign(candidate_id=cand["candidate_id"] + "b")])
    chosen = []
    for seed in (0, 1):
        shuffled = twins.sample(frac=1.0, random_state=seed)
        shuffled.to_csv(path, index=False)
        for objective in ("max-coverage", "min-travel"):
            res = _invoke("--run", run, "--type", "puskesmas", "--objective", objective,
                          "--count", 2, "--max-minutes", 30, "--candidates", path)
            assert res.exit_code == 0, res.output
            chosen.append(_sites(run)["candidate_id"].tolist())
    assert chosen[0] == chosen[2] and chosen[1] == chosen[3]
    assert not any(c.endswith("b") for c in chosen[0] + chosen[1])  # the smaller id wins


def test_sites_section_of_the_config_file(tiny_run, tmp_path):
    run, _ = tiny_run
    toml = tmp_path / "kantong.toml"
    toml.write_text('[sites]\nobjective = "min-travel"\ncount = 2\nfacility_type = "school"\n'
                    "travel_horizon_min = 60.0\n")
    res = CliRunner().invoke(cli, ["sites", "--run", str(run), "--config", str(toml)])
    assert res.exit_code == 0, res.output
    meta = json.loads((run / "sites" / "sites_school.json").read_text())
    assert meta["parameters"]["objective"] == "min-travel"
    assert meta["totals"]["horizon_minutes"] == 60.0
    toml.write_text("[sites]\ncuont = 2\n")
    res = CliRunner().invoke(cli, ["sites", "--run", str(run), "--config", str(toml)])
    assert res.exit_code == 1 and "unknown key(s) ['cuont'] in [sites]" in res.output


@pytest.mark.parametrize(("args", "needle"), [
    (["--objective", "min-sites", "--max-minutes", "30", "--count", "2"], "drop --count"),
    (["--objective", "min-sites"], "needs --max-minutes"),
    (["--objective", "min-travel", "--count", "2", "--target-share", "0.9"], "min-sites only"),
    (["--objective", "min-travel", "--count", "2", "--capacity", "100"], "max-coverage only"),
])
def test_objective_errors_are_one_line(tiny_run, args, needle):
    run, _ = tiny_run
    res = _invoke("--run", run, "--type", "puskesmas", *args)
    assert res.exit_code == 1, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_site_code_uses_no_pyplot():
    import kantong.engine.sites as sites

    files = sorted(Path(sites.__file__).parent.glob("*.py"))
    assert len(files) > 10
    for path in files:  # plots go through kantong.engine.plots (an Agg Figure, no pyplot)
        assert "pyplot" not in path.read_text() and "matplotlib.use" not in path.read_text()
