"""``kantong export``: write privacy-safe cells, pockets or sites of a run for GIS tools."""

from __future__ import annotations

from pathlib import Path

import click

from kantong.engine.cli.options import allow_lower_k_option, trust_run_option
from kantong.engine.constants import LOWEST_MIN_HOUSEHOLDS, MAX_RESOLUTION, MIN_RESOLUTION
from kantong.engine.errors import InputError
from kantong.engine.publish.export import (
    FORMATS,
    LAYERS,
    check_format,
    export_layer,
    format_from_path,
)
from kantong.engine.publish.published import PublishedRun


@click.command("export")
@click.option("--run", "run_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Run directory written by `kantong build`.")
@click.option("--layer", required=True, type=click.Choice(LAYERS), help="Layer to export.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
              help="Output format (default: from the --out suffix).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (written atomically).")
@click.option("--regency", default=None, help="Only this regency (BPS code, e.g. 6105).")
@click.option("--resolution", type=click.IntRange(MIN_RESOLUTION, MAX_RESOLUTION), default=None,
              help="H3 resolution of the cells layer (default: the run's base resolution).")
@click.option("--min-households", type=click.IntRange(min=LOWEST_MIN_HOUSEHOLDS), default=None,
              help="Withhold cells with fewer households (default: the run's privacy setting, "
                   f"else 10; never below {LOWEST_MIN_HOUSEHOLDS}).")
@click.option("--wkt", is_flag=True, help="CSV only: add the geometry as a `wkt` column.")
@allow_lower_k_option
@trust_run_option
def command(run_dir: Path, layer: str, fmt: str | None, out: Path, regency: str | None,
            resolution: int | None, min_households: int | None, wkt: bool,
            allow_lower_k: bool, trust_run: bool) -> None:
    """Export privacy-safe cells, pockets or sites of RUN for GIS tools.

    Everything goes through the privacy gate (docs/privacy.md): cells with fewer than
    --min-households households are withheld, with complementary suppression so that no
    withheld count can be recovered by subtraction. The files contain no household records.
    """
    if fmt is None:
        try:
            fmt = format_from_path(out)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--format") from None
    try:
        check_format(out, fmt)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--format") from None
    if wkt and fmt != "csv":
        raise click.BadParameter("--wkt applies to --format csv only", param_hint="--wkt")
    if resolution is not None and layer != "cells":
        raise click.BadParameter("applies to --layer cells only", param_hint="--resolution")
    published = PublishedRun(run_dir, min_households=min_households,
                             allow_lower_k=allow_lower_k, trust_run=trust_run)
    summary = export_layer(published, layer, out, fmt=fmt, resolution=resolution,
                           regency=regency, wkt=wkt)
    what = f"{layer} r{resolution or published.base_resolution}" if layer == "cells" else layer
    withheld = (f", {summary.values_withheld} counts withheld" if summary.values_withheld
                else "")
    click.echo(f"wrote {summary.rows_written} {what} rows to {summary.path} ({fmt}); "
               f"{summary.rows_suppressed} rows suppressed{withheld} "
               f"(min_households={published.min_households})")
    if summary.sidecar is not None:
        click.echo(f"provenance: {summary.sidecar}")
