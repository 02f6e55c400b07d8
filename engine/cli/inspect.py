"""``kantong inspect``: what a register holds and how it maps, before building."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--schema", default=None, metavar="PRESET|TOML",
              help="Schema to check the file against: a preset (`p3ke`) or a schema file "
                   "[default: the built-in names].")
@click.option("--sheet", default=None, metavar="NAME|INDEX",
              help="Excel: the sheet to look at [default: found].")
@click.option("--header-row", type=click.IntRange(min=1), default=None, metavar="N",
              help="Excel: 1-based header row [default: found past title rows].")
@click.option("--write-schema", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="TOML", help="Write a starting schema file for this register.")
def command(file: Path, schema: str | None, sheet: str | None, header_row: int | None,
            write_schema: Path | None) -> None:
    """Show a register's sheets, header, columns and how they map to Kantong's fields.

    Prints the sheets and the header row found (Excel), each column with its type and
    commonest values, the Kantong fields it satisfies (and how: labels not understood
    are listed), the fields missing with the closest columns, and how the village codes
    read (BPS or Kemendagri). Values of personal columns (names, NIK, addresses) are
    never read; values of id-like columns are never shown.
    """
    from kantong.engine.atomic import atomic_path
    from kantong.engine.inputs.inspect import inspect_register, starting_schema

    report = inspect_register(file, schema=schema, sheet=sheet, header_row=header_row)
    click.echo(report.to_text())
    if write_schema is not None:
        text = starting_schema(report, schema)
        with atomic_path(write_schema) as tmp:
            tmp.write_text(text, encoding="utf-8")
        click.echo(f"schema written to {write_schema}: edit it, then kantong build --schema "
                   f"{write_schema} ...")
