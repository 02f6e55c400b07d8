"""``kantong build``: fuse households, facilities and rasters into H3 cells (a run directory)."""

from __future__ import annotations

from pathlib import Path

import click

from kantong.engine.constants import MAX_RESOLUTION, MIN_RESOLUTION

_FILE = click.Path(dir_okay=False, path_type=Path)


def _rasters(ctx: click.Context, param: click.Parameter,
             values: tuple[str, ...]) -> dict[str, Path]:
    from kantong.engine.build.run import check_raster_name
    from kantong.engine.errors import InputError

    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name = name.strip()
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=TIF, got {value!r}")
        try:
            check_raster_name(name)
        except InputError as exc:
            raise click.BadParameter(str(exc)) from None
        if name in out:
            raise click.BadParameter(f"raster name {name!r} given twice")
        out[name] = Path(path)
    return out


def _province(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from kantong.engine.errors import InputError
    from kantong.engine.inputs.boundaries import check_province

    try:
        return check_province(value)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("build")
@click.option("--households", required=True, metavar="PATH|DIR|GLOB|URL",
              help="Household register (CSV, Parquet, GeoPackage, ...), or partitioned "
                   "Parquet: a directory, a quoted glob or a URL (s3://...).")
@click.option("--facilities", type=_FILE, default=None,
              help="Facility points with a `type` column (gives travel_min_<type>).")
@click.option("--friction", type=_FILE, default=None,
              help="Friction GeoTIFF in minutes per metre (least-cost travel time); without "
                   "it travel times are straight-line at 4 km/h.")
@click.option("--raster", "rasters", multiple=True, callback=_rasters, metavar="NAME=TIF",
              help="Extra raster averaged per cell as <NAME>_mean (repeatable).")
@click.option("--population", default=None, metavar="TIF|none",
              help="Population count raster [default: the bundled GHS-POP 1 km grid]; "
                   "`none` for no population.")
@click.option("--boundaries", "boundaries_path", type=_FILE, default=None,
              help="Study-area polygons (any CRS) [default: the Kalimantan provinces].")
@click.option("--province", default=None, callback=_province,
              help="Study area: one BPS province code (61, 62, 63, 64, 65).")
@click.option("--resolution", type=click.IntRange(MIN_RESOLUTION, MAX_RESOLUTION), default=None,
              help=f"H3 resolution {MIN_RESOLUTION}-{MAX_RESOLUTION} [default: 8, or the "
                   "config's build.resolution].")
@click.option("--config", "config_path", type=_FILE, default=None,
              help="kantong.toml; flags override it.")
@click.option("--no-pockets", is_flag=True, help="Skip the pockets stage.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to write (replaced atomically).")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="Where households are validated and aggregated: this process "
                   "(streaming), or a Dask cluster (see docs/distributed.md).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler to use (tcp://host:8786) [default: start a LocalCluster]; "
                   "with --backend dask.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the LocalCluster (1 thread each) [default: 2]; "
                   "with --backend dask and no --scheduler.")
@click.option("--schema", default=None, metavar="PRESET|TOML",
              help="Map the register's own columns and answer labels: a shipped preset "
                   "(`p3ke`: P3KE family exports) or a schema file (docs/input-schema.md).")
@click.option("--sheet", default=None, metavar="NAME|INDEX",
              help="Excel: the sheet to read (name, or 0-based index) [default: the sheet "
                   "whose header names the most known columns].")
@click.option("--header-row", type=click.IntRange(min=1), default=None, metavar="N",
              help="Excel: 1-based row of the header [default: found past title rows].")
@click.option("--village-codes", type=click.Choice(["auto", "bps", "kemendagri"]),
              default="auto", show_default=True,
              help="Code system of 10-digit village codes; `auto` detects it per file and "
                   "refuses an ambiguous file (dotted codes are always Kemendagri).")
@click.option("--facility-type-column", default=None, metavar="NAME",
              help="Facility column holding the type [default: type, jenis_faskes, "
                   "bentuk_pendidikan, ... see docs/input-schema.md].")
@click.option("--facility-buffer-km", type=click.FloatRange(min=0), default=50.0,
              show_default=True,
              help="Keep facilities up to this far beyond the study area (they serve border "
                   "villages, across provincial or national borders); 0 = inside only.")
@click.option("--straight-line-kmh", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Speed of the straight-line travel time used without --friction "
                   "[default: 4 km/h walking, or the config's build.straight_line_kmh].")
def command(households: str, facilities: Path | None, friction: Path | None,
            rasters: dict[str, Path], population: str | None, boundaries_path: Path | None,
            province: str | None, resolution: int | None, config_path: Path | None,
            no_pockets: bool, out: Path, backend: str, scheduler: str | None,
            workers: int | None, schema: str | None, sheet: str | None,
            header_row: int | None, village_codes: str, facility_type_column: str | None,
            facility_buffer_km: float, straight_line_kmh: float | None) -> None:
    """Fuse households, facilities and rasters into H3 cells: a run directory.

    Writes OUT/cells.parquet, rollups/, rejects.csv, facilities.parquet, friction.tif,
    travel/<type>.tif and manifest.json, then runs the pockets stage. The run directory
    holds unsuppressed aggregates: keep it on the server.

    \b
    Household register (full schema, aliases and reject reasons: docs/input-schema.md):
      household_id   unique id (text)                                  required
      lon, lat       WGS84 degrees; may be blank if village_code is valid
                     (or a point geometry in any CRS for GeoJSON/GPKG/GeoParquet)
      desil          welfare decile 1-4, 1 = extreme poor               required
      members        household size, integer >= 1                        required
      village_code   BPS 10-digit (6102010001) or Kemendagri (61.07.01.2001)
      water_improved, sanitation_improved, electricity, housing_adequate,
      child_out_of_school, receives_assistance
                     booleans (true/false, 1/0, ya/tidak, yes/no)        required
    Names, NIK, addresses and any other column are dropped at ingest. Every row is
    accepted or written to rejects.csv with its reason; read = accepted + rejected.
    A register in its own layout (a P3KE Excel export: --schema p3ke) is mapped by a
    schema; `kantong inspect FILE` shows what maps to what. If every row is rejected
    the build stops and writes OUT.rejects.csv beside OUT.
    Facilities: points (any CRS) with a `type` column. Rasters: GeoTIFF with a CRS.
    """
    from kantong.engine.build.run import BUNDLED, build_run
    from kantong.engine.config import Config

    if backend != "dask" and scheduler is not None:
        raise click.BadParameter("needs --backend dask", param_hint="'--scheduler'")
    if backend != "dask" and workers is not None:
        raise click.BadParameter("needs --backend dask", param_hint="'--workers'")
    if scheduler is not None and workers is not None:
        raise click.BadParameter("sizes the LocalCluster only; an existing scheduler has "
                                 "its own workers", param_hint="'--workers'")

    from kantong.engine.inputs.options import ReadOptions

    config = Config.from_toml(config_path).replace("build", resolution=resolution,
                                                   straight_line_kmh=straight_line_kmh)
    reading = ReadOptions(schema=schema, sheet=sheet, header_row=header_row,
                          village_codes=village_codes,
                          facility_type_column=facility_type_column,
                          facility_buffer_km=facility_buffer_km)
    reading.loaded_schema  # a bad schema fails here, before any work  # noqa: B018
    if population is None:
        pop: str | Path | None = BUNDLED
    elif population.strip().lower() == "none":
        pop = None
    else:
        pop = Path(population)
    summary = build_run(households, out=out, facilities=facilities, friction=friction,
                        rasters=rasters, population=pop, boundaries_path=boundaries_path,
                        province=province, config=config, pockets=not no_pockets,
                        backend=backend, scheduler=scheduler, workers=workers,
                        reading=reading)
    click.echo(f"run written to {summary.run_dir} (H3 resolution {config.build.resolution})")
    for name, c in summary.counts.items():
        extra = f", {c['village_located']:,} placed from village code" \
            if "village_located" in c else ""
        click.echo(f"  {name:<11} read {c['read']:>10,} = accepted {c['accepted']:>10,} "
                   f"+ rejected {c['rejected']:>8,}{extra}")
    cells = ", ".join(f"r{r}: {n:,}" for r, n in sorted(summary.cells.items(), reverse=True,
                                                        key=lambda kv: int(kv[0])))
    click.echo(f"  cells       {cells}")
    used = summary.manifest.get("backend", {})
    if used.get("name") == "dask":
        where = "LocalCluster" if used.get("local_cluster") else used.get("scheduler")
        click.echo(f"  backend     dask: {used['workers']} workers, {used['threads']} threads "
                   f"({where}), {used['pieces']} pieces from {used['files']} files")
    register = summary.manifest.get("register", {})
    if register:
        codes = register.get("village_codes")
        system = codes.get("system") if isinstance(codes, dict) else codes
        absent = ", ".join(register.get("absent_indicators", [])) or "none"
        click.echo(f"  register    schema {register.get('schema')}, village codes {system}, "
                   f"indicators not in this register: {absent}")
    travel = summary.manifest.get("travel_time", {}).get("method")
    if travel:
        click.echo(f"  travel time {travel}")
    for warning in summary.manifest.get("warnings", []):
        click.echo(f"  warning: {warning}")
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in summary.timings.items() if k != "total")
    click.echo(f"  timings     {timings}; total {summary.timings['total']:.1f} s, "
               f"peak memory {summary.manifest.get('peak_memory_mib', 0):,.0f} MiB")
