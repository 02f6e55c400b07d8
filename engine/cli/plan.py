"""``kantong plan``: a budget across pockets and Inpres strategies, targets before and after."""

from __future__ import annotations

from pathlib import Path

import click

from kantong.engine.cli.options import finite, trust_run_option

_POSITIVE = click.FloatRange(0.0, min_open=True)


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}%"


@click.command("plan")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory with pockets (`kantong build` / `kantong pockets`).")
@click.option("--costs", "costs_path", required=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="costs.toml: unit costs of assistance, income, water, sanitation, "
                   "education (per household) and new facilities (see docs/sites.md).")
@click.option("--budget", type=_POSITIVE, default=None, callback=finite,
              help="Budget in Rupiah: reach the most extreme-poor households within it.")
@click.option("--meet-targets", is_flag=True, default=False,
              help="Instead: the cheapest mix meeting extreme poverty 0 %, water and "
                   "sanitation 80 %, school 90 % in every regency (--budget caps it).")
@click.option("--time-limit", type=_POSITIVE, default=60.0, show_default=True, callback=finite,
              help="Seconds for the HiGHS solver.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Output folder outside the run (default RUNDIR/plan, the run resealed).")
@trust_run_option
def command(run_dir: Path, costs_path: Path, budget: float | None, meet_targets: bool,
            time_limit: float, out: Path | None, trust_run: bool) -> None:
    """Plan a budget across pockets and strategies (Inpres 4/2022) with new facilities.

    Chooses, per poverty pocket and per regency outside the pockets, how many households
    get each intervention and how many new facilities to build, to reach the most
    extreme-poor households within --budget, or (--meet-targets) to meet the programme
    targets at least cost. Writes per-pocket and per-regency tables (CSV), the pockets
    and new sites (GeoJSON, GeoParquet), a JSON sidecar and a PNG.
    """
    if budget is None and not meet_targets:
        raise click.UsageError("give --budget RP, or --meet-targets")
    from kantong.engine.sites.plan import plan_budget
    from kantong.engine.sites.plan_costs import PlanCosts

    plan = plan_budget(run_dir, PlanCosts.from_toml(costs_path), budget=budget,
                       meet_targets=meet_targets, out=out, time_limit=time_limit,
                       trust_run=trust_run)
    meta, tot = plan.metadata, plan.metadata["totals"]
    res = meta["result"]
    if meet_targets:
        click.echo(f"Cheapest plan meeting the targets: Rp {tot['spent_rp']:,.0f}"
                   + (f" (budget Rp {budget:,.0f})" if budget else "") + f"; {res['status']}.")
    else:
        click.echo(f"Plan for Rp {budget:,.0f}: spends Rp {tot['spent_rp']:,.0f}, reaches "
                   f"{tot['reached']:,.0f} of {tot['extreme_households']:,} extreme-poor "
                   f"households; {res['status']}, gap {100 * (res['gap'] or 0):.2f}%.")
    click.echo(f"By strategy: 1 reduce expenditure Rp {tot['rp_strategy_1']:,.0f}; 2 raise "
               f"income Rp {tot['rp_strategy_2']:,.0f}; 3 remove pockets Rp "
               f"{tot['rp_strategy_3']:,.0f} ({tot['sites']} new facilities).")
    click.echo(f"{'regency':<18} {'Rp str.1':>14} {'Rp str.2':>14} {'Rp str.3':>14} "
               f"{'sites':>5} {'reached':>8}  extreme   water   sanit.  school")
    for _, r in plan.regencies.iterrows():  # one line per regency (at most 14 in a province)
        sites = int(sum(r[c] for c in plan.regencies.columns if c.startswith("sites_")))
        click.echo(
            f"{str(r['regency_name'])[:18]:<18} {r['rp_strategy_1']:>14,.0f} "
            f"{r['rp_strategy_2']:>14,.0f} {r['rp_strategy_3']:>14,.0f} {sites:>5} "
            f"{r['reached']:>8,.0f}  "
            + "  ".join(f"{_pct(r[f'{k}_before'])}->{_pct(r[f'{k}_after'])}"
                        for k in ("extreme_rate", "water_access", "sanitation_access",
                                  "school_proxy")))
    for key, path in plan.paths.items():
        click.echo(f"  {key:<14}{path}")
