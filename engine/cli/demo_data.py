"""``kantong demo-data``: write a synthetic P3KE-style demo data set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from click.core import ParameterSource

from kantong.engine.atomic import claim_dir
from kantong.engine.errors import InputError
from kantong.engine.inputs import boundaries


def _province(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from kantong.engine.demo.partitions import parse_provinces

    try:
        if value.strip().lower() == "all" or "," in value:
            return parse_provinces(value)
        return (boundaries.check_province(value),)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(name="demo-data")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created if needed).")
@click.option("--province", "--provinces", "province", default="61", show_default=True,
              callback=_province,
              help="BPS province code: 61 Kalbar, 62 Kalteng, 63 Kalsel, 64 Kaltim, 65 Kaltara; "
                   "several as 61,62,... or `all` (writes Parquet partitions).")
@click.option("--households", type=click.IntRange(min=1, max=50_000_000), default=None,
              help="Register size, shared among the provinces [default: a realistic P3KE "
                   "count, 500,000 for 61; other provinces scaled by population]. Up to "
                   "20,000,000 in one file, 50,000,000 with --partitions.")
@click.option("--partitions", type=click.IntRange(min=1), default=None,
              help="Write the register as households_synthetic/part-NNNNN.parquet files "
                   "(row groups of at most 1,000,000 rows), generated chunk by chunk with "
                   "bounded memory [default with several provinces: one per million "
                   "households, at least one per province].")
@click.option("--seed", type=click.IntRange(min=0), default=42, show_default=True,
              help="Random seed; the same arguments give the same bytes.")
@click.option("--follow-up", is_flag=True,
              help="Also write the next-year register and facilities (*_year2 files).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "p3ke-xlsx"]),
              default="csv", show_default=True,
              help="Format of the household register. `p3ke-xlsx` also writes it the way a "
                   "P3KE family export looks (households_synthetic_p3ke.xlsx: Indonesian "
                   "columns and labels, Kemendagri codes, no coordinates, a Rekap sheet and "
                   "title rows); build it with --schema p3ke.")
@click.option("--clean", is_flag=True,
              help="Leave out the ~0.1 % deliberately bad rows (blank coordinates stay).")
@click.pass_context
def command(ctx: click.Context, out_dir: Path, province: tuple[str, ...], households: int | None,
            partitions: int | None, seed: int, follow_up: bool, fmt: str, clean: bool) -> None:
    """Write a SYNTHETIC P3KE-style demo register, facilities and rasters.

    Writes households_synthetic.csv|parquet, facilities_synthetic.geojson,
    friction_synthetic.tif (minutes per metre), population_ghspop.tif (the REAL
    GHS-POP grid clipped to the province), README.txt and metadata.json. Everything
    except the population grid and the boundaries is synthetic.

    Like a real register, about 2 % of households have blank coordinates but a valid
    village code (some as Kemendagri dotted codes), and about 0.1 % of rows are bad on
    purpose - swapped lat/lon, desil 0 or 7, a duplicate household_id, a non-numeric
    coordinate - so that ingest has rejects to report. --clean leaves the bad rows out.

    With several provinces (--province all) or --partitions the register is written as
    Parquet partitions (households_synthetic/part-00000.parquet ...) for scale tests; a
    few ids then also repeat across partitions.
    """
    start = time.perf_counter()
    claim_dir(out_dir, command="demo-data", marker="metadata.json",
              recognise=_previous_demo)  # never mix demo files into someone else's folder
    if len(province) > 1 or partitions is not None:
        if fmt != "parquet" and ctx.get_parameter_source("fmt") != ParameterSource.DEFAULT:
            raise click.BadParameter("partitions are written as Parquet: drop --format csv",
                                     param_hint="'--format'")
        if follow_up:
            raise click.BadParameter("--follow-up is not available with partitions",
                                     param_hint="'--follow-up'")
        if fmt == "p3ke-xlsx":
            raise click.BadParameter("the P3KE workbook is written for one province, "
                                     "without partitions", param_hint="'--format'")
        _partitioned(out_dir, province, households, partitions, seed, clean, start)
        return
    from kantong.engine.demo.make import make_demo

    paths = make_demo(out_dir, province=province[0], households=households, seed=seed,
                      follow_up=follow_up, fmt="csv" if fmt == "p3ke-xlsx" else fmt,
                      clean=clean)
    elapsed = time.perf_counter() - start
    click.echo(f"SYNTHETIC demo data for province {paths.province} (seed {paths.seed}) "
               f"written to {paths.out_dir} in {elapsed:.1f} s")
    click.echo(f"  households:  {paths.n_households:,} -> {paths.households.name}")
    if fmt == "p3ke-xlsx":
        from kantong.engine.demo.p3ke import register_file_to_p3ke

        workbook = paths.out_dir / "households_synthetic_p3ke.xlsx"
        families = register_file_to_p3ke(paths.households, workbook, seed=seed)
        click.echo(f"  P3KE form:   {families:,} families -> {workbook.name} "
                   "(build with --schema p3ke)")
    click.echo(f"  extreme rate (desil-1 persons / population): {100 * paths.extreme_rate:.3f} %")
    click.echo(f"  facilities:  {paths.n_facilities:,} -> {paths.facilities.name}")
    click.echo(f"  rasters:     {paths.friction.name}, {paths.population.name} (real GHS-POP)")
    if paths.households_year2 is not None and paths.facilities_year2 is not None:
        click.echo(f"  year 2:      {paths.n_households_year2:,} households -> "
                   f"{paths.households_year2.name}, {paths.facilities_year2.name}; extreme rate "
                   f"{100 * (paths.extreme_rate_year2 or 0.0):.3f} %")


def _previous_demo(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a previous ``kantong demo-data`` output (its metadata.json)."""
    try:
        meta = json.loads((out_dir / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "generator_version" in str(meta)


def _partitioned(out_dir: Path, provinces: tuple[str, ...], households: int | None,
                 partitions: int | None, seed: int, clean: bool, start: float) -> None:
    from kantong.engine.demo.partitions import make_partitioned_demo

    demo = make_partitioned_demo(out_dir, provinces=provinces, households=households,
                                 partitions=partitions, seed=seed, clean=clean)
    elapsed = time.perf_counter() - start
    click.echo(f"SYNTHETIC demo data for provinces {', '.join(demo.provinces)} (seed "
               f"{demo.seed}) written to {demo.out_dir} in {elapsed:.1f} s")
    click.echo(f"  households:  {demo.n_households:,} in {len(demo.parts)} Parquet files -> "
               f"{demo.parts[0].parent.name}/")
    click.echo(f"  facilities:  {demo.n_facilities:,} -> {demo.facilities.name}")
    if demo.friction is not None and demo.population is not None:
        click.echo(f"  rasters:     {demo.friction.name}, {demo.population.name} (real GHS-POP)")
