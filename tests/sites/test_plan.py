"""``kantong plan`` on a tiny run with two pockets, checked against closed forms.

With separable costs the optimal plans are known without a solver: a budget buys
``budget / cost`` households of the cheapest household intervention; meeting the targets
costs, per regency, every extreme-poor household at the cheaper lifting cost plus the
missing water, sanitation and school households at their costs. One facility is the best
single site of the pocket, counted here by brute force over its cells.
"""

import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from factories import seal_run

from kantong.engine.cli.group import cli
from kantong.engine.errors import InputError
from kantong.engine.rundir import verify_run
from kantong.engine.sites.coverage import FrictionSurface, travel_coverage
from kantong.engine.sites.plan import plan_budget
from kantong.engine.sites.plan_costs import PlanCosts


@pytest.fixture
def pocket_run(tiny_run):
    """The tiny run with its two planted pockets as pocket_id and pockets.parquet."""
    run, truth = tiny_run
    cells = gpd.read_parquet(run / "cells.parquet")
    pid = pd.Series(pd.NA, index=cells.index, dtype="Int64")
    for i, members in enumerate(truth.pocket_cells):
        pid[cells["h3"].isin(members)] = i + 1
    cells["pocket_id"] = pid
    cells.to_parquet(run / "cells.parquet")
    pockets = cells[pid.notna()].dissolve(by="pocket_id").reset_index()[["pocket_id",
                                                                         "geometry"]]
    pockets["pocket_id"] = pockets["pocket_id"].astype("int64")
    pockets.to_parquet(run / "pockets.parquet")
    seal_run(run)  # the files changed on purpose
    return run, cells


def test_budget_buys_the_cheapest_households(pocket_run, tmp_path):
    run, cells = pocket_run
    costs = PlanCosts.from_mapping({"assistance": {"cost": 3e6}, "income": {"cost": 5e6},
                                    "water": {"cost": 9e6}})
    plan = plan_budget(run, costs, budget=40 * 3e6 + 1e6, out=tmp_path / "p")
    tot = plan.metadata["totals"]
    assert tot["reached"] == pytest.approx(40)  # 40 whole households at Rp 3 m
    assert tot["rp_strategy_1"] == pytest.approx(40 * 3e6) and tot["rp_strategy_2"] == 0
    assert (plan.units["assistance"] <= plan.units["extreme_households"]).all()
    big = plan_budget(run, costs, budget=1e12, out=tmp_path / "q")
    assert big.metadata["totals"]["reached"] == pytest.approx(cells["extreme_households"].sum())
    reg = big.regencies
    assert (reg["extreme_rate_after"] == 0).all()  # everyone lifted
    assert reg["extreme_rate_before"].tolist() == pytest.approx(
        (cells.groupby("regency_code")["extreme_persons"].sum()
         / cells.groupby("regency_code")["persons"].sum()).sort_index().tolist())


def test_meeting_the_targets_costs_the_closed_form(pocket_run, tmp_path):
    run, cells = pocket_run
    c = {"assistance": 3e6, "income": 5e6, "water": 2e6, "sanitation": 4e6, "education": 1e6}
    costs = PlanCosts.from_mapping({k: {"cost": v} for k, v in c.items()})
    plan = plan_budget(run, costs, meet_targets=True, out=tmp_path / "p")
    expected = 0.0
    for _, g in cells.groupby("regency_code"):
        h = g["households"].sum()
        expected += g["extreme_households"].sum() * min(c["assistance"], c["income"])
        for key, col, share in (("water", "n_no_improved_water", 0.8),
                                ("sanitation", "n_no_improved_sanitation", 0.8),
                                ("education", "n_child_out_of_school", 0.9)):
            expected += math.ceil(max(share * h - (h - g[col].sum()), 0) - 1e-9) * c[key]
    assert plan.metadata["totals"]["spent_rp"] == pytest.approx(expected)
    reg = plan.regencies
    assert (reg["extreme_rate_after"] == 0).all()
    for key, target in (("water_access", 0.8), ("sanitation_access", 0.8),
                        ("school_proxy", 0.9)):
        assert (reg[f"{key}_after"] >= target - 1e-9).all()
        assert reg[f"{key}_met_after"].all()
    costs = PlanCosts.from_mapping({"assistance": {"cost": 3e6}})
    with pytest.raises(InputError, match=r"target needs a \["):
        plan_budget(run, costs, meet_targets=True, out=tmp_path / "r")


def test_one_facility_goes_to_the_best_single_site_of_a_pocket(pocket_run, tmp_path):
    run, cells = pocket_run
    costs = PlanCosts.from_mapping({"facilities": {"puskesmas": {
        "cost": 1e9, "max_minutes": 20.0, "max_per_pocket": 2}}})
    plan = plan_budget(run, costs, budget=1e9, out=tmp_path / "p")
    assert len(plan.sites) == 1
    # brute force: the cell of a pocket part reaching the most extreme-poor households not
    # already within 20 minutes of an existing puskesmas
    surface = FrictionSurface.from_file(run / "friction.tif")
    fac = gpd.read_parquet(run / "facilities.parquet")
    fac = fac[fac["type"] == "puskesmas"]
    best = 0.0
    for (_, _), part in cells[cells["pocket_id"].notna()].groupby(["pocket_id",
                                                                   "regency_code"]):
        served = travel_coverage(surface, fac.geometry.x, fac.geometry.y, part["lon"],
                                 part["lat"], max_minutes=20).covered()
        open_ = part[~served]
        cand = part[part["households"] > 0]
        reach = travel_coverage(surface, cand["lon"], cand["lat"], open_["lon"],
                                open_["lat"], max_minutes=20).matrix.toarray()
        best = max(best, float((reach * open_["extreme_households"].to_numpy()).sum(1).max()))
    assert plan.metadata["totals"]["reached"] == pytest.approx(best)
    assert plan.sites["new_extreme_households"].iat[0] == best
    assert isinstance(plan.sites["village_name"].iat[0], str)
    assert plan.metadata["totals"]["rp_strategy_3"] == 1e9


def test_cli_writes_every_output_and_errors_are_one_line(pocket_run, tmp_path):
    run, _ = pocket_run
    costs = tmp_path / "costs.toml"
    costs.write_text("[assistance]\ncost = 3.0e6\n[water]\ncost = 2.5e6\n"
                     "[facilities.puskesmas]\ncost = 2.5e8\nmax_minutes = 30.0\n")
    res = CliRunner().invoke(cli, ["plan", "--run", str(run), "--costs", str(costs),
                                   "--budget", "2e9"])
    assert res.exit_code == 0, res.output
    assert "By strategy" in res.output and "regency" in res.output
    folder = run / "plan"
    verify_run(run)  # the run was updated as one unit and resealed
    for name in ("plan_units.csv", "plan_regencies.csv", "plan.geojson", "plan.parquet",
                 "plan_sites.geojson", "plan_sites.parquet", "plan.json", "plan_curve.png"):
        assert (folder / name).stat().st_size > 0
    meta = json.loads((folder / "plan.json").read_text())
    assert meta["totals"]["spent_rp"] <= 2e9 + 1e-3
    units = pd.read_csv(folder / "plan_units.csv")
    assert units["rp_total"].sum() == pytest.approx(meta["totals"]["spent_rp"])
    assert np.isclose(units[["rp_strategy_1", "rp_strategy_2", "rp_strategy_3"]].sum(axis=1),
                      units["rp_total"]).all()
    costs.write_text("[assistance]\ncots = 3\n")
    for args, needle in ((["--budget", "1e9"], "unknown key(s) ['cots'] in [assistance]"),
                         ([], "give --budget RP, or --meet-targets")):
        res = CliRunner().invoke(cli, ["plan", "--run", str(run), "--costs", str(costs),
                                       *args])
        assert res.exit_code in (1, 2) and needle in res.output, res.output
        assert "Traceback" not in res.output


def test_a_run_without_pockets_is_a_one_line_error(tiny_run, tmp_path):
    run, _ = tiny_run
    costs = tmp_path / "costs.toml"
    costs.write_text("[assistance]\ncost = 3.0e6\n")
    res = CliRunner().invoke(cli, ["plan", "--run", str(run), "--costs", str(costs),
                                   "--budget", "1e9"])
    assert res.exit_code == 1 and "kantong pockets" in res.output
    res = CliRunner().invoke(cli, ["plan", "--run", str(run), "--costs", str(costs),
                                   "--budget", "1e9", "--out", str(run / "elsewhere")])
    assert res.exit_code == 1 and "inside the run directory" in res.output


def test_out_folder_is_owned_and_replaced_as_one_unit(pocket_run, tmp_path):
    run, _ = pocket_run
    costs = PlanCosts.from_mapping({"assistance": {"cost": 3e6}})
    out = tmp_path / "plan"
    first = plan_budget(run, costs, budget=10 * 3e6, out=out)
    assert first.metadata["totals"]["reached"] == pytest.approx(10)
    # a previous plan folder is replaced whole ...
    second = plan_budget(run, costs, budget=20 * 3e6, out=out)
    assert second.metadata["totals"]["reached"] == pytest.approx(20)
    names = sorted(p.name for p in out.iterdir())
    assert "plan.json" in names and not any(n.startswith(".kantong-") for n in names)
    # ... a folder holding anything else is refused, and left as it was
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InputError, match="not a previous `kantong plan` output"):
        plan_budget(run, costs, budget=30 * 3e6, out=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(InputError, match="holds the run directory"):  # nor hold an input
        plan_budget(run, costs, budget=30 * 3e6, out=run.parent)
