"""``kantong compare``: compare two runs (e.g. two years) cell by cell and pocket by pocket."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kantong.engine.cli.options import allow_lower_k_option, trust_run_option
from kantong.engine.constants import LOWEST_MIN_HOUSEHOLDS, MAX_RESOLUTION, MIN_RESOLUTION

if TYPE_CHECKING:
    from kantong.engine.compare.run import Comparison

_RUN = click.Path(exists=True, file_okay=False, path_type=Path)


def _pct(value: float) -> str:
    return "   n/a" if value is None or math.isnan(value) else f"{100 * value:6.2f}"


def _pp(value: float) -> str:
    return "    n/a" if value is None or math.isnan(value) else f"{100 * value:+7.2f}"


def summary_lines(comparison: Comparison, *, top: int = 5) -> list[str]:
    """Format the console summary: cells, pocket statuses, regencies that improved most."""
    s = comparison.summary
    cells = s["cells"]
    lines = [f"cells r{s['resolution']}: {cells['both']:,} published in both runs, "
             f"{cells['old_only']:,} in the old run only, {cells['new_only']:,} in the new "
             f"run only (their change is withheld)"]
    tot_o, tot_n = s["totals"]["old"], s["totals"]["new"]
    lines.append(f"extreme-poor households (released regency totals): "
                 f"{tot_o.get('extreme_households', 0):,} -> "
                 f"{tot_n.get('extreme_households', 0):,}")
    status = comparison.status_counts()
    lines.append("pockets: " + ", ".join(f"{k} {v}" for k, v in status.items())
                 + f" (published: {s['pockets']['published_old']} old, "
                 f"{s['pockets']['published_new']} new)")
    best = comparison.top_improvements(top)
    if len(best):
        lines += ["", f"regencies with the largest fall in the extreme-poverty rate (top {top}):",
                  f"{'regency':<28} {'old %':>6} {'new %':>6} {'chg pp':>7} "
                  f"{'water %':>7} {'sanit %':>7} {'school* %':>9}"]
        for _, r in best.iterrows():  # at most `top` rows
            name = f"{r['regency_code']} {r['regency_name']}"[:28]
            lines.append(f"{name:<28} {_pct(r['extreme_rate_old'])} {_pct(r['extreme_rate_new'])} "
                         f"{_pp(r['extreme_rate_change'])} {_pct(r['water_access_new']):>7} "
                         f"{_pct(r['sanitation_access_new']):>7} "
                         f"{_pct(r['school_proxy_new']):>9}")
        lines.append("(* school completion proxy: 1 - share of households with a child out of "
                     "school; targets: water/sanitation 80 %, school 90 %, extreme poverty 0 %)")
    return lines


@click.command("compare")
@click.argument("run_old", type=_RUN)
@click.argument("run_new", type=_RUN)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (written atomically; replaced if it holds a previous "
                   "comparison).")
@click.option("--plot/--no-plot", default=True, show_default=True,
              help="Write regencies.png (target chart) and changes.png (change map).")
@click.option("--min-households", type=click.IntRange(min=LOWEST_MIN_HOUSEHOLDS), default=None,
              help="Privacy threshold K for both runs (default: each run's own, else 10).")
@click.option("--resolution", type=click.IntRange(MIN_RESOLUTION, MAX_RESOLUTION), default=None,
              help="H3 resolution of the cell comparison, available in both runs (default: "
                   "the common base resolution). Coarser cells hide fewer values.")
@click.option("--change-threshold", type=click.FloatRange(0.0, 1.0, max_open=True),
              default=None, help="Relative change of a pocket's extreme-poor households that "
                                 "counts as growing/shrinking (default 0.10).")
@click.option("--min-overlap", type=click.FloatRange(0.0, 1.0), default=None,
              help="Pockets match when shared cells are at least this share of the smaller "
                   "pocket (default 0.10).")
@click.option("--top", type=click.IntRange(min=0), default=5, show_default=True,
              help="How many regencies to list.")
@allow_lower_k_option
@trust_run_option
def command(run_old: Path, run_new: Path, out: Path, plot: bool, min_households: int | None,
            resolution: int | None, change_threshold: float | None, min_overlap: float | None,
            top: int, allow_lower_k: bool, trust_run: bool) -> None:
    """Compare RUN_OLD with RUN_NEW (e.g. two years) through their published views.

    Writes OUT/compare.parquet, cells_change.geojson, pockets_change.geojson,
    pocket_matches.csv, regencies.csv, compare.json and (with --plot) regencies.png and
    changes.png. Every output is privacy-safe: a cell withheld in either run has its
    change withheld. See docs/compare.md.
    """
    from kantong.engine.compare.run import (
        CHANGE_THRESHOLD,
        MIN_OVERLAP,
        compare_runs,
        write_comparison,
    )

    comparison = compare_runs(
        run_old, run_new, resolution=resolution, min_households=min_households,
        change_threshold=CHANGE_THRESHOLD if change_threshold is None else change_threshold,
        min_overlap=MIN_OVERLAP if min_overlap is None else min_overlap,
        allow_lower_k=allow_lower_k, trust_run=trust_run)
    paths = write_comparison(comparison, out, plot=plot)
    runs = comparison.summary["runs"]
    click.echo(f"compared {run_old} (run {runs['old']['run_id'][:12]}, "
               f"K={runs['old']['min_households']}) with {run_new} "
               f"(run {runs['new']['run_id'][:12]}, K={runs['new']['min_households']})")
    for line in summary_lines(comparison, top=top):
        click.echo(line)
    click.echo("")
    click.echo(f"wrote {len(paths)} files to {out}: " + ", ".join(p.name for p in paths.values()))
