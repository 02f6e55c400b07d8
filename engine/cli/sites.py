"""``kantong sites``: choose sites for new facilities to reach the most extreme-poor households."""

from __future__ import annotations

from pathlib import Path

import click

_POSITIVE = click.FloatRange(0.0, min_open=True)


def _table(sites, remaining: int) -> list[str]:
    """Format the chosen sites as fixed-width lines."""
    lines = [f"{'rank':>4}  {'site':<22} {'regency':<20} {'new':>8} {'cumulative':>10} "
             f"{'% of remaining':>14}"]
    for _, r in sites.iterrows():  # one line per chosen site (K is small)
        site = str(r["name"]) if isinstance(r["name"], str) and r["name"] else \
            str(r["candidate_id"])
        regency = str(r["regency_name"]) if isinstance(r["regency_name"], str) else "-"
        pct = f"{r['pct_remaining_covered']:.1f}%" if remaining else "-"
        lines.append(f"{int(r['rank']):>4}  {site[:22]:<22} {regency[:20]:<20} "
                     f"{int(r['new_extreme_households']):>8,} "
                     f"{int(r['cumulative_extreme_households']):>10,} {pct:>14}")
    return lines


@click.command("sites")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory written by `kantong build`.")
@click.option("--type", "facility_type", required=True,
              help="Facility type to site (puskesmas, posyandu, school, water_point, ...).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Number of new sites (or use --budget with --cost).")
@click.option("--budget", type=_POSITIVE, default=None,
              help="Budget in Rupiah; sites = floor(budget / cost), or a cost budget with "
                   "per-candidate costs.")
@click.option("--cost", type=_POSITIVE, default=None,
              help="Cost of one site in Rupiah (fills candidates without a cost).")
@click.option("--max-minutes", required=True, type=_POSITIVE,
              help="A household is covered within this many minutes of a site.")
@click.option("--candidates", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Candidate sites: points file (GPKG/GeoJSON/SHP/GeoParquet with a CRS) or "
                   "CSV lon,lat in EPSG:4326; optional cost (Rp) and name columns. "
                   "Default: populated cell centres.")
@click.option("--method", type=click.Choice(["greedy", "exact"]), default="greedy",
              show_default=True, help="Lazy greedy, or the exact MILP solved by HiGHS.")
@click.option("--time-limit", type=_POSITIVE, default=60.0, show_default=True,
              help="Seconds for --method exact.")
@click.option("--regency", default=None,
              help="BPS 4-digit regency code (e.g. 6111) restricting demand and candidates.")
@click.option("--demand", type=click.Choice(["extreme", "weighted"]), default="extreme",
              show_default=True,
              help="extreme-poor households, or desil 1-4 weighted 1, 0.5, 0.25, 0.125.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="GeoJSON output (default RUNDIR/sites/sites_<type>.geojson); a .parquet "
                   "and a .json sidecar are written beside it.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Coverage-curve PNG (default <out stem>_coverage.png).")
def command(run_dir: Path, facility_type: str, count: int | None, budget: float | None,
            cost: float | None, max_minutes: float, candidates: Path | None, method: str,
            time_limit: float, regency: str | None, demand: str, out: Path | None,
            plot: Path | None) -> None:
    """Choose where to build new facilities to reach the most extreme-poor households.

    A household is covered when its H3 cell centre is within --max-minutes of a site
    (least-cost travel over the run's friction surface, or straight-line distance when
    the run has none). Households already within reach of an existing facility of
    --type do not count. Writes the chosen sites in order (GeoJSON, GeoParquet, JSON
    sidecar, coverage curve) and RUNDIR/sites/sites_<type>.parquet for the web map.
    """
    if count is not None and budget is not None:
        raise click.BadParameter("use either --count or --budget, not both",
                                 param_hint="'--count' / '--budget'")
    if count is None and budget is None:
        raise click.UsageError("give --count K, or --budget RP with --cost RP")
    if cost is not None and budget is not None and candidates is None and budget < cost:
        raise click.BadParameter(f"budget Rp {budget:,.0f} is below the cost of one site "
                                 f"Rp {cost:,.0f}", param_hint="'--budget'")
    from kantong.engine.sites.run import plan_sites

    plan = plan_sites(run_dir, facility_type=facility_type, max_minutes=max_minutes,
                      count=count, budget=budget, cost=cost, candidates=candidates,
                      method=method, time_limit=time_limit, regency=regency, demand=demand,
                      out=out, plot=plot)
    meta, res, tot = plan.metadata, plan.result, plan.metadata["totals"]
    travel = meta["travel"]
    if travel["method"] == "straight-line":
        click.echo(f"NOTE: no friction surface in this run: coverage uses straight-line "
                   f"distance at {travel['speed_kmh']:g} km/h.")
    params = meta["parameters"]
    scope = f"regency {regency}" if regency else "the whole run"
    click.echo(f"Sites for {facility_type} within {max_minutes:g} min ({travel['method']}), "
               f"{scope}; up to "
               + (f"{params['sites_allowed']} sites" if params["sites_allowed"] is not None
                  else f"Rp {budget:,.0f}") + ".")
    click.echo(f"Extreme-poor households: {tot['extreme_households']:,}; already served by "
               f"{tot['existing_facilities']} existing {facility_type}: "
               f"{tot['extreme_households_served_by_existing']:,}; remaining "
               f"{tot['extreme_households_remaining']:,}.")
    click.echo(f"Candidates: {params['candidates_scored']:,} scored "
               f"(of {params['candidates_considered']:,}, {params['candidates']}).")
    gap = "n/a" if res.gap != res.gap else f"{100 * res.gap:.2f}%"
    bound = "n/a" if res.bound != res.bound else f"{res.bound:,.1f}"
    click.echo(f"Method: {res.method} ({res.status}); objective {res.objective:,.1f}, "
               f"upper bound {bound}, gap {gap}; {res.seconds:.2f} s.")
    if len(plan.sites) == 0:
        click.echo("No candidate site covers any remaining demand.")
    else:
        for line in _table(plan.sites, tot["extreme_households_remaining"]):
            click.echo(line)
    if params["sites_allowed"] is not None and len(plan.sites) < params["sites_allowed"]:
        click.echo(f"Only {len(plan.sites)} sites add coverage; more sites would add nothing.")
    click.echo(f"New sites cover {tot['extreme_households_newly_covered']:,} extreme-poor "
               f"households ({tot['persons_newly_covered']:,} persons in newly covered cells).")
    for key in ("geojson", "parquet", "json", "plot", "web"):
        click.echo(f"  {key:<8}{plan.paths[key]}")
    click.echo(f"Done in {meta['timings_s']['total']:.1f} s.")
