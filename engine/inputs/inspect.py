"""Look at a register before building: sheets, header, columns, what maps to what.

:func:`inspect_register` reads the first rows of a file (every format ingest reads) and
reports, for ``kantong inspect``: the sheets and the header row found (workbooks), each
column with its type and commonest values, which Kantong field each satisfies under a
schema (and how: the labels not understood are listed), which fields are missing with
the closest column names, and how the village codes read. Values of personal columns
(names, NIK, addresses) are never read; values of id-like columns are never shown.
:func:`starting_schema` writes a schema file to edit from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kantong.engine.constants import DEPRIVATION_FIELDS
from kantong.engine.errors import InputError
from kantong.engine.inputs.excel import is_excel, read_sheet
from kantong.engine.inputs.schema import (
    HOUSEHOLD_FIELDS,
    Schema,
    is_personal,
    near_matches,
    normalise_label,
)
from kantong.engine.inputs.tables import iter_tables, table_kind
from kantong.engine.inputs.village_codes import detect_system

logger = logging.getLogger(__name__)

#: Rows looked at (the first ones of the file).
SAMPLE_ROWS = 100_000
#: Commonest values shown per column.
TOP_VALUES = 5
#: Columns with more distinct values than this share of their filled rows are id-like:
#: their values are not shown.
ID_LIKE_SHARE = 0.5


@dataclass
class ColumnReport:
    """One column of the file: type, fill, commonest values, the fields it feeds."""

    name: str
    kind: str
    filled: int
    distinct: int
    top: list[tuple[str, int]]
    personal: bool = False
    feeds: list[str] = field(default_factory=list)


@dataclass
class Inspection:
    """What :func:`inspect_register` found (see :meth:`to_text`)."""

    path: str
    kind: str
    schema: str
    rows: int
    sheets: list[str]
    sheet: str | None
    header_row: int | None
    columns: list[ColumnReport]
    satisfied: dict[str, str]
    unmatched_labels: dict[str, list[tuple[str, int]]]
    missing: dict[str, list[str]]
    village_codes: str | None
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """Return the report as printed by ``kantong inspect``."""
        out = [f"{self.path} ({self.kind}; schema {self.schema}; first {self.rows:,} rows "
               "looked at)"]
        if self.sheets:
            out.append(f"sheets: {', '.join(repr(s) for s in self.sheets)}; reading "
                       f"{self.sheet!r}, header in row {self.header_row}")
        out.append("columns:")
        for c in self.columns:
            if c.personal:
                out.append(f"  {c.name:<36} personal: not read, never kept")
                continue
            feeds = f"  -> {', '.join(c.feeds)}" if c.feeds else ""
            if c.top:
                values = ", ".join(f"{v!r} ({n:,})" for v, n in c.top)
            elif c.filled:
                values = f"{c.distinct:,} distinct values (id-like, not shown)"
            else:
                values = "empty"
            out.append(f"  {c.name:<36} {c.kind:<7} {c.filled:>9,} filled  {values}{feeds}")
        out.append("fields satisfied:")
        for name, how in self.satisfied.items():
            out.append(f"  {name:<20} <- {how}")
            for label, n in self.unmatched_labels.get(name, []):
                out.append(f"  {'':<20}    label not understood: {label!r} ({n:,} rows)")
        if self.missing:
            out.append("fields missing:")
            for name, close in self.missing.items():
                hint = f"closest: {', '.join(close)}" if close else "no close column"
                out.append(f"  {name:<20} {hint}")
        if self.village_codes:
            out.append(f"village codes: {self.village_codes}")
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)


def _kind(s: pd.Series) -> str:
    text = s.astype("string").str.strip()
    text = text[text.notna() & (text != "")]
    if text.empty:
        return "empty"
    uniq = pd.Series(text.unique(), dtype="string")
    number = pd.to_numeric(uniq.str.replace(",", ".", regex=False), errors="coerce")
    if number.notna().all():
        whole = (number == np.round(number)).all()
        return "integer" if whole else "number"
    if uniq.str.lower().isin(["true", "false"]).all():
        return "boolean"
    return "text"


def _column(name: str, s: pd.Series) -> ColumnReport:
    text = s.astype("string").str.strip()
    text = text.mask(text == "")
    filled = int(text.notna().sum())
    counts = text.value_counts()
    distinct = int(len(counts))
    id_like = filled > 20 and distinct > ID_LIKE_SHARE * filled
    top = [] if id_like else [(str(v), int(n)) for v, n in counts.head(TOP_VALUES).items()]
    return ColumnReport(name=str(name), kind=_kind(s), filled=filled, distinct=distinct,
                        top=top)


def inspect_register(path: str | Path, *, schema: Schema | str | Path | None = None,
                     sheet: str | int | None = None, header_row: int | None = None,
                     sample_rows: int = SAMPLE_ROWS) -> Inspection:
    """Inspect a household register against a schema (see the module docs).

    Parameters
    ----------
    path
        CSV, Excel workbook, Parquet or vector file.
    schema
        Preset name, schema file or :class:`~kantong.engine.inputs.schema.Schema`;
        ``None`` for the built-in one.
    sheet, header_row
        Workbooks: the sheet (name or 0-based index) and 1-based header row (else found).
    sample_rows
        Rows looked at.

    Returns
    -------
    Inspection

    Examples
    --------
    >>> print(inspect_register("p3ke.xlsx", schema="p3ke").to_text())  # doctest: +SKIP
    """
    schema = Schema.load(schema)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    kind = table_kind(path)
    sheets: list[str] = []
    chosen = header = None
    if is_excel(path):
        got = read_sheet(path, score=lambda names: len(schema.resolve(list(names))),
                         sheet=sheet, header_row=header_row)
        sheets, chosen, header = got.sheets, got.sheet, got.header_row
    names_seen: list[str] = []

    def resolve(names: list[str]) -> dict[str, str]:
        names_seen[:] = [str(n) for n in names]
        return {n: n for n in names if not is_personal(n, schema)}

    def check(present: set[str], **_: object) -> None:
        return None

    frame = pd.DataFrame()
    for batch in iter_tables(path, batch_rows=sample_rows, resolve=resolve, check=check,
                             text_columns=frozenset(),
                             empty_message="holds no rows", sheet=chosen if sheets else None,
                             header_row=header):
        frame = pd.DataFrame(batch.drop(columns="geometry", errors="ignore"))
        break
    columns = [ColumnReport(name=n, kind="", filled=0, distinct=0, top=[], personal=True)
               if is_personal(n, schema) else _column(n, frame[n]) for n in names_seen]
    by_name = {c.name: c for c in columns}
    feeds = schema.resolve_all(names_seen)
    for src, keys in feeds.items():
        by_name[src].feeds = keys
    key_source = {k: src for src, keys in feeds.items() for k in keys}
    satisfied, unmatched, missing = _fields(schema, frame, key_source, names_seen)
    codes_text = None
    if "village_code" in key_source and key_source["village_code"] in frame:
        try:
            system = detect_system(frame[key_source["village_code"]], source=path.name)
            codes_text = (f"{system.system} ({system.how}); rows: " + ", ".join(
                f"{k} {v:,}" for k, v in system.counts.items()))
        except InputError as exc:
            codes_text = str(exc)
    notes = []
    if "lon" not in key_source and "village_code" in key_source:
        notes.append("no coordinates: every household is placed from its village code")
    return Inspection(path=str(path), kind=kind, schema=schema.name, rows=len(frame),
                      sheets=sheets, sheet=chosen, header_row=header, columns=columns,
                      satisfied=satisfied, unmatched_labels=unmatched, missing=missing,
                      village_codes=codes_text, notes=notes)


def _fields(schema: Schema, frame: pd.DataFrame, key_source: dict[str, str],
            names: list[str]) -> tuple[dict[str, str], dict[str, list[tuple[str, int]]],
                                       dict[str, list[str]]]:
    """Return (field -> how, field -> labels not understood, field -> near matches)."""
    satisfied: dict[str, str] = {}
    unmatched: dict[str, list[tuple[str, int]]] = {}
    missing: dict[str, list[str]] = {}
    for name in HOUSEHOLD_FIELDS:
        if name in key_source:
            satisfied[name] = key_source[name]
        elif name in ("household_id", "desil", "members", "village_code", "lon", "lat"):
            missing[name] = near_matches(schema.columns[name], names)
    for name in DEPRIVATION_FIELDS:
        ind = schema.indicators[name]
        keys = [schema.part_key(name, i) for i in range(len(ind.parts))]
        if not all(k in key_source for k in keys):
            spellings = [s for p in ind.parts for s in p.spellings]
            missing[name + (" (optional)" if ind.optional else "")] = near_matches(
                spellings, names)
            continue
        sources = [key_source[k] for k in keys]
        how = sources[0] if len(sources) == 1 else f"{ind.combine}({', '.join(sources)})"
        kinds = {p.kind for p in ind.parts}
        satisfied[name] = how + (" (count > 0)" if kinds == {"count"} else "")
        bad: list[tuple[str, int]] = []
        for part, src in zip(ind.parts, sources, strict=True):
            if part.kind != "label" or src not in frame:
                continue
            counts = frame[src].astype("string").str.strip().replace("", pd.NA).value_counts()
            known = (part.true | part.false) if part.true else None
            for value, n in counts.items():
                label = normalise_label(value)
                ok = label in known if known is not None else label in (
                    "true", "false", "t", "f", "yes", "no", "y", "n", "ya", "tidak", "1", "0",
                    "1.0", "0.0")
                if not ok:
                    bad.append((str(value), int(n)))
        if bad:
            unmatched[name] = sorted(bad, key=lambda kv: -kv[1])[:10]
    return satisfied, unmatched, missing


def starting_schema(report: Inspection, frame_schema: Schema | str | Path | None = None) -> str:
    """Return a schema file (TOML text) to start from: the columns found, labels to sort.

    Fields satisfied are written as found; missing ones get their closest column (or a
    placeholder comment). Labels not understood are listed in comments so they can be
    moved into ``true = [...]`` or ``false = [...]``.
    """
    schema = Schema.load(frame_schema)
    lines = [f"# Kantong schema written by kantong inspect from {Path(report.path).name}.",
             "# Edit, then: kantong build --schema THIS_FILE ... (docs/input-schema.md)",
             f'name = "{Path(report.path).stem}"', "", "[households.columns]"]
    for name in HOUSEHOLD_FIELDS:
        if name in report.satisfied:
            lines.append(f"{name} = {_toml(report.satisfied[name])}")
        elif report.missing.get(name):
            lines.append(f"# {name} = {_toml(report.missing[name][0])}  # closest column: check")
    lines.append("")
    for name in DEPRIVATION_FIELDS:
        ind = schema.indicators[name]
        found = report.satisfied.get(name)
        lines.append(f"[households.indicators.{name}]")
        if found is None:
            close = report.missing.get(name) or report.missing.get(name + " (optional)") or []
            guess = close[0] if close else "COLUMN"
            lines.append(f"# not found; closest column: {guess}")
            lines.append(f"column = {_toml(guess)}")
            lines.append("optional = true")
            lines.append("")
            continue
        if len(ind.parts) > 1:
            lines.append(f'combine = "{ind.combine}"')
        if ind.optional:
            lines.append("optional = true")
        for i, part in enumerate(ind.parts):
            prefix = ""
            if len(ind.parts) > 1:
                lines.append(f"[[households.indicators.{name}.parts]]")
            source = found.split("(", 1)[-1].rstrip(")").split(", ")[i] if len(ind.parts) > 1 \
                else found.split(" (")[0]
            lines.append(f"{prefix}column = {_toml(source)}")
            if part.kind == "count":
                lines.append('kind = "count"')
            if part.true:
                lines.append(f"true = {_toml(sorted(part.true))}")
                lines.append(f"false = {_toml(sorted(part.false))}")
        for value, n in report.unmatched_labels.get(name, []):
            lines.append(f"# label not understood: {value!r} ({n} rows): add it to true or false")
        lines.append("")
    return "\n".join(lines) + "\n"


def _toml(value: str | list[str]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


__all__ = ["ColumnReport", "Inspection", "inspect_register", "starting_schema"]
