"""``kantong pockets``: find poverty pockets and priority scores in a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import geopandas as gpd

from kantong.engine.atomic import claim_file, is_png
from kantong.engine.cli.options import trust_run_option
from kantong.engine.config import Config
from kantong.engine.constants import CELLS_FILE
from kantong.engine.rundir import update_run

if TYPE_CHECKING:
    from kantong.engine.pockets.run import PocketSummary


def _fmt_share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({100 * part / whole:.1f}%)" if whole else f"{part:,} of 0"


def _table(summary: PocketSummary, top: int) -> list[str]:
    """Format the top pockets as fixed-width lines."""
    rows = summary.top(top)
    lines = [f"{'id':>4} {'rank':>4} {'priority':>8} {'confidence':<10} {'extreme':>7} "
             f"{'households':>10} {'strategy':<44} regencies"]
    for _, r in rows.iterrows():  # at most `top` rows
        regencies = str(r.get("regencies", ""))
        if len(regencies) > 48:
            regencies = regencies[:45] + "..."
        lines.append(f"{int(r['pocket_id']):>4} {int(r['rank_province']):>4} "
                     f"{r['priority']:>8.3f} {str(r.get('confidence', '')):<10} "
                     f"{int(r['extreme_households']):>7,} "
                     f"{int(r['households']):>10,} "
                     f"{int(r['strategy'])} {str(r['strategy_label']).split(' / ')[0]:<42} "
                     f"{regencies}")
    return lines


@click.command("pockets")
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory written by `kantong build`.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="kantong.toml ([pockets] and [score] sections are used).")
@click.option("--method", type=click.Choice(["scan", "gistar"]), default=None,
              help="Hot-cell statistic: scan (Kulldorff scan over H3 windows, default) or "
                   "gistar (Getis-Ord Gi* with FDR); docs/pockets.md.")
@click.option("--k-ring", type=click.IntRange(1, 5), default=None,
              help="Gi* neighbourhood: H3 ring distance, 1-5 (default 1).")
@click.option("--fdr", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=None, help="Benjamini-Hochberg false discovery rate, 0<Q<1 (default 0.05).")
@click.option("--min-extreme-households", type=click.IntRange(min=1), default=None,
              help="Smallest pocket kept, in extreme-poor households (default 20).")
@click.option("--analysis-resolution", type=click.IntRange(0, 10), default=None,
              help="H3 resolution of the pocket search, 5-10 and not finer than the run; "
                   "0 = automatic (default).")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write a static pocket map PNG to this file.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many pockets to list.")
@trust_run_option
def command(run_dir: Path, config_path: Path | None, method: str | None, k_ring: int | None,
            fdr: float | None,
            min_extreme_households: int | None, analysis_resolution: int | None,
            plot: Path | None, top: int, trust_run: bool) -> None:
    """Find poverty pockets (scan statistic or Gi* + contiguous clusters) and priority scores.

    Rewrites only the pocket outputs of RUNDIR: the pocket and score columns of
    cells.parquet, pockets.parquet, pockets.geojson and the "pockets" record of
    manifest.json. Safe to re-run with other parameters.
    """
    from kantong.engine.pockets.run import plot_pockets, write_pockets

    config = Config.from_toml(config_path).replace(
        "pockets", method=method, k_ring=k_ring, fdr=fdr,
        min_extreme_households=min_extreme_households, analysis_resolution=analysis_resolution)
    if plot is not None:  # never a file of a run, never a foreign file
        claim_file(plot, command="pockets", recognise=is_png, inputs=[run_dir], flag="--plot")
    with update_run(run_dir, trust=trust_run) as work:  # the old or the new run, never half
        summary = write_pockets(work, config)
    pc = config.pockets
    statistic = (f"scan windows of radius 1-{pc.scan_max_k}, alpha {pc.scan_alpha:g}, "
                 f"{pc.scan_permutations} permutations" if pc.method == "scan"
                 else f"Gi* k-ring {pc.k_ring}, FDR {pc.fdr:g}")
    click.echo(f"Pockets in {run_dir}: {summary.n_pockets} pockets; {summary.n_hot:,} of "
               f"{summary.n_cells:,} cells hot (searched at H3 resolution "
               f"{summary.analysis_resolution}, run resolution {summary.run_resolution}; "
               f"method {pc.method}: {statistic}; >= {pc.min_extreme_households} "
               f"extreme-poor households per pocket)")
    hh = _fmt_share(summary.households_in_pockets, summary.households)
    ex = _fmt_share(summary.extreme_households_in_pockets, summary.extreme_households)
    click.echo(f"Households in pockets: {hh}; extreme-poor: {ex}")
    if summary.n_pockets:
        names = {1: "reduce burden", 2: "raise income", 3: "infrastructure"}
        click.echo("Strategies: " + ", ".join(
            f"{k} {names[k]}: {summary.strategies.get(k, 0)}" for k in (3, 1, 2)))
        if top:
            click.echo("")
            for line in _table(summary, top):
                click.echo(line)
    click.echo(f"Done in {summary.timings['total']:.1f} s.")
    if plot is not None:
        cells = gpd.read_parquet(Path(run_dir) / CELLS_FILE)
        plot_pockets(cells, summary.pockets, plot)
        click.echo(f"Map: {plot}")
