"""``kantong sites``: choose sites for new facilities (coverage, fewest sites, least travel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kantong.engine.cli.options import finite, trust_run_option
from kantong.engine.config import SITE_OBJECTIVES, Config

_POSITIVE = click.FloatRange(0.0, min_open=True)


def _site_label(r: Any) -> str:
    for key in ("name", "village_name"):
        if isinstance(r.get(key), str) and r.get(key):
            return str(r[key])
    return str(r["candidate_id"])


def _table(sites, objective: str, remaining: float) -> list[str]:
    """Format the chosen sites as fixed-width lines (one per site; K is small)."""
    travel = objective in ("min-travel", "min-max-travel")
    head = (f"{'rank':>4}  {'site (desa)':<22} {'kecamatan':<16} {'regency':<16} "
            f"{'BPS desa':<10} ")
    if travel:
        lines = [head + f"{'nearest for':>11} {'mean min':>8} {'p90 min':>7} {'max min':>7}"]
    else:
        lines = [head + f"{'new':>8} {'cumulative':>10} {'% of remaining':>14}"]
    for _, r in sites.iterrows():
        district = str(r["district_name"]) if isinstance(r["district_name"], str) else "-"
        regency = str(r["regency_name"]) if isinstance(r["regency_name"], str) else "-"
        code = str(r["village_code"]) if isinstance(r["village_code"], str) else "-"
        line = (f"{int(r['rank']):>4}  {_site_label(r)[:22]:<22} {district[:16]:<16} "
                f"{regency[:16]:<16} {code:<10} ")
        if travel:
            line += (f"{int(r['new_extreme_households']):>11,} {r['mean_minutes_after']:>8.1f} "
                     f"{r['p90_minutes_after']:>7.1f} {r['max_minutes_after']:>7.1f}")
        else:
            cum = float(r["cumulative_extreme_households"])
            pct = f"{100 * cum / remaining:.1f}%" if remaining else "-"
            line += f"{int(r['new_extreme_households']):>8,} {int(cum):>10,} {pct:>14}"
        lines.append(line)
    return lines


def _fmt(x: float | None, spec: str = ",.1f") -> str:
    return "n/a" if x is None or x != x else format(x, spec)


def _summary(plan, cfg) -> list[str]:
    """Return the objective-specific lines printed before the table."""
    tot, res = plan.metadata["totals"], plan.result
    n_ex, n_used = tot["existing_facilities"], tot["existing_facilities_used"]
    where = f"in regency {cfg.regency}" if cfg.regency else "in the run"
    ex = f"{n_ex} existing {cfg.facility_type} {where}" + (
        f" ({n_used} used, including those outside it)" if n_used != n_ex else "")
    if cfg.objective in ("min-travel", "min-max-travel"):
        return [f"Extreme-poor households: {tot['extreme_households']:,}; {ex}.",
                f"Travel (household-weighted, trips capped at {tot['horizon_minutes']:g} min): "
                f"mean {tot['mean_minutes_before']:.1f} -> {tot['mean_minutes_after']:.1f} min, "
                f"p90 {tot['p90_minutes_before']:.1f} -> {tot['p90_minutes_after']:.1f} min, "
                f"longest {tot['max_minutes_before']:.1f} -> {tot['max_minutes_after']:.1f} min"
                f" (leaving out {tot['extreme_households_out_of_reach']:,} extreme-poor "
                "households beyond the horizon from every facility and candidate)."]
    if "capacity_unit" in tot:
        return [f"Extreme-poor households: {tot['extreme_households']:,}; {ex}; capacity "
                f"{tot['capacity_new_site']:,.0f} {tot['capacity_unit']} per new site.",
                f"Served by existing: {tot['extreme_households_served_by_existing']:,.0f}; "
                f"by new sites: {tot['extreme_households_served_by_new']:,.0f}; unserved by "
                f"capacity: {tot['extreme_households_unserved_by_capacity_before']:,.0f} -> "
                f"{tot['extreme_households_unserved_by_capacity']:,.0f}; unserved by distance: "
                f"{tot['extreme_households_unserved_by_distance_before']:,.0f} -> "
                f"{tot['extreme_households_unserved_by_distance']:,.0f}."]
    lines = [f"Extreme-poor households: {tot['extreme_households']:,}; already served by "
             f"{ex}: {tot['extreme_households_served_by_existing']:,}; remaining "
             f"{tot['extreme_households_remaining']:,}."]
    if cfg.objective == "min-sites":
        lines.append(f"Sites needed to reach {100 * cfg.target_share:g}% of extreme-poor "
                     f"households within {cfg.max_minutes:g} min: {len(plan.sites)}"
                     f" (lower bound {_fmt(res.bound, ',.0f')}).")
        if tot["extreme_households_unreachable"]:
            lines.append(f"No candidate reaches {tot['extreme_households_unreachable']:,} "
                         "extreme-poor households within the limit.")
        if not tot["target_met"]:
            lines.append("The target share cannot be met with these candidates: all reachable "
                         "households are covered.")
    return lines


@click.command("sites")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory written by `kantong build`.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="kantong.toml (its [sites] section; flags override it).")
@click.option("--type", "facility_type", default=None,
              help="Facility type to site (puskesmas, posyandu, school, water_point, ...).")
@click.option("--objective", type=click.Choice(SITE_OBJECTIVES), default=None,
              help="max-coverage (default): most households newly within --max-minutes; "
                   "min-sites: fewest sites to reach all (or --target-share); min-travel: "
                   "least total travel; min-max-travel: shortest longest trip.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Number of new sites (or use --budget with --cost).")
@click.option("--budget", type=_POSITIVE, default=None, callback=finite,
              help="Budget in Rupiah; sites = floor(budget / cost), or a cost budget with "
                   "per-candidate costs (max-coverage).")
@click.option("--cost", type=_POSITIVE, default=None, callback=finite,
              help="Cost of one site in Rupiah (fills candidates without a cost).")
@click.option("--max-minutes", type=_POSITIVE, default=None, callback=finite,
              help="Reach limit of max-coverage and min-sites; for min-travel and "
                   "min-max-travel the horizon (longer trips count as this long; default "
                   "[sites] travel_horizon_min, 120).")
@click.option("--target-share", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="min-sites: share of extreme-poor households to reach (default 1).")
@click.option("--capacity", default=None,
              help="Capacity of a new site in --capacity-unit, or a CSV table type,capacity "
                   "(existing facilities use their own capacity column, else the table).")
@click.option("--capacity-unit", type=click.Choice(["persons", "households"]), default=None,
              help="Unit of capacities: persons (cell population) or registered households.")
@click.option("--candidates", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Candidate sites: points file (GPKG/GeoJSON/SHP/GeoParquet with a CRS) or "
                   "CSV lon,lat in EPSG:4326; optional cost (Rp) and name columns. "
                   "Default: populated cell centres.")
@click.option("--method", type=click.Choice(["greedy", "exact"]), default=None,
              help="Heuristic with a bound, or the exact HiGHS model with its gap (default "
                   "greedy for max-coverage, exact otherwise).")
@click.option("--time-limit", type=_POSITIVE, default=None, callback=finite,
              help="Seconds for the exact solver (default 60).")
@click.option("--regency", default=None,
              help="BPS 4-digit regency code (e.g. 6111) restricting demand and candidates.")
@click.option("--demand", type=click.Choice(["extreme", "weighted"]), default=None,
              help="extreme-poor households (default), or desil 1-4 weighted 1, 0.5, 0.25, "
                   "0.125.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="GeoJSON output (default RUNDIR/sites/sites_<type>.geojson); a .parquet "
                   "and a .json sidecar are written beside it.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Curve PNG (default <out stem>_coverage.png or _travel.png).")
@trust_run_option
def command(run_dir: Path, config_path: Path | None, facility_type: str | None,
            objective: str | None, count: int | None, budget: float | None,
            cost: float | None, max_minutes: float | None, target_share: float | None,
            capacity: str | None, capacity_unit: str | None, candidates: Path | None,
            method: str | None, time_limit: float | None, regency: str | None,
            demand: str | None, out: Path | None, plot: Path | None,
            trust_run: bool) -> None:
    """Choose where to build new facilities for the extreme-poor households.

    A household is reached when its H3 cell centre is within --max-minutes of a site
    (least-cost travel over the run's friction surface, or straight-line distance when
    the run has none); existing facilities of --type count. Writes the chosen sites in
    order with their desa, kecamatan and regency (GeoJSON, GeoParquet, JSON sidecar,
    curve PNG) and RUNDIR/sites/sites_<type>.parquet for the web map.
    """
    if count is not None and budget is not None:
        raise click.BadParameter("use either --count or --budget, not both",
                                 param_hint="'--count' / '--budget'")
    if cost is not None and budget is not None and candidates is None and budget < cost:
        raise click.BadParameter(f"budget Rp {budget:,.0f} is below the cost of one site "
                                 f"Rp {cost:,.0f}", param_hint="'--budget'")
    cap_number, cap_table = _capacity(capacity)
    config = Config.from_toml(config_path).replace(
        "sites", facility_type=facility_type, objective=objective, count=count, budget=budget,
        cost=cost, max_minutes=max_minutes, target_share=target_share, capacity=cap_number,
        capacity_table=cap_table, capacity_unit=capacity_unit,
        candidates=str(candidates) if candidates is not None else None, method=method,
        time_limit=time_limit, regency=regency, demand=demand)
    from kantong.engine.sites.run import plan_sites, resolve_settings

    cfg = resolve_settings(config.sites)
    if cfg.objective != "min-sites" and not cfg.count and not cfg.budget:
        raise click.UsageError("give --count K, or --budget RP with --cost RP")
    plan = plan_sites(run_dir, cfg, out=out, plot=plot, trust_run=trust_run)
    _report(plan, cfg)


def _capacity(value: str | None) -> tuple[float | None, str | None]:
    """``--capacity``: a number (> 0) or the path of a CSV table."""
    if value is None:
        return None, None
    try:
        number = float(value)
    except ValueError:
        if not Path(value).is_file():
            raise click.BadParameter(f"{value!r} is neither a number nor a capacity table "
                                     "file", param_hint="'--capacity'") from None
        return None, value
    if not number > 0:
        raise click.BadParameter(f"capacity must be > 0, got {value}",
                                 param_hint="'--capacity'")
    return number, None


def _report(plan, cfg) -> None:
    meta, res = plan.metadata, plan.result
    travel, params = meta["travel"], meta["parameters"]
    if travel["method"] == "straight-line":
        click.echo(f"NOTE: no friction surface in this run: coverage uses straight-line "
                   f"distance at {travel['speed_kmh']:g} km/h.")
    scope = f"regency {cfg.regency}" if cfg.regency else "the whole run"
    limit = (f"up to {params['sites_allowed']} sites" if params["sites_allowed"] is not None
             else f"up to Rp {cfg.budget:,.0f}" if cfg.budget else "as few sites as needed")
    reach = f"within {cfg.max_minutes:g} min" if cfg.max_minutes else ""
    click.echo(f"Sites for {cfg.facility_type} ({cfg.objective}) {reach} "
               f"({travel['method']}), {scope}; {limit}.".replace("  ", " "))
    for line in _summary(plan, cfg):
        click.echo(line)
    click.echo(f"Candidates: {params['candidates_scored']:,} scored "
               f"(of {params['candidates_considered']:,}, {params['candidates']}).")
    gap = "n/a" if res.gap != res.gap else f"{100 * res.gap:.2f}%"
    word = "upper" if cfg.objective == "max-coverage" else "lower"
    click.echo(f"Method: {res.method} ({res.status}); objective {res.objective:,.1f}, "
               f"{word} bound {_fmt(res.bound)}, gap {gap}; {res.seconds:.2f} s.")
    tot = meta["totals"]
    if len(plan.sites) == 0:
        click.echo("No candidate site improves on the existing facilities.")
    else:
        remaining = float(tot.get("extreme_households_remaining") or 0)
        for line in _table(plan.sites, cfg.objective, remaining):
            click.echo(line)
    if params["sites_allowed"] is not None and len(plan.sites) < params["sites_allowed"]:
        click.echo(f"Only {len(plan.sites)} sites improve on what exists; more would add "
                   "nothing.")
    if "extreme_households_newly_covered" in tot:
        click.echo(f"New sites cover {tot['extreme_households_newly_covered']:,} extreme-poor "
                   f"households ({tot['persons_newly_covered']:,} persons in newly covered "
                   "cells).")
    for key in ("geojson", "parquet", "json", "plot", "web"):
        click.echo(f"  {key:<8}{plan.paths[key]}")
    click.echo(f"Done in {meta['timings_s']['total']:.1f} s.")
