"""Excel workbooks (``.xlsx``, ``.xlsm``, ``.xlsb``, ``.xls``, ``.ods``) as input tables.

``.xlsx``/``.xlsm`` sheets are read by :mod:`kantong.engine.inputs.xlsx_reader` (a
compiled, parallel scan of the sheet XML that gives calamine's cells about 2x faster); every
other format, and any sheet that reader declines, by `fastexcel
<https://github.com/ToucanToco/fastexcel>`_ (the Rust calamine parser, straight to Arrow).
Neither loops over cells in Python. When a column the caller reads holds a cell whose
text the fast reader cannot vouch for (a date, an error value, ...), the sheet is read
again with calamine. A workbook as planners get it has title rows above the header and
a summary sheet (*Rekap*) before the data sheet, so:

* **sheet**: ``sheet`` (a name, or a 0-based index) chooses it; otherwise every sheet is
  looked at and the one whose header names the most known columns is read (ties: the
  sheet with the most rows), and the choice is logged;
* **header row**: ``header_row`` (1-based, as Excel numbers rows) chooses it; otherwise
  it is the row, among the first :data:`HEADER_SCAN_ROWS`, that names the most known
  columns, or (when none does) the first row as wide as the widest row with text in
  every filled cell.

Every cell is read as text (numbers as Excel stores them, ``6111032004`` not
``6111032004.0``); the readers parse values themselves. Only the columns the caller
resolves leave this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from kantong.engine.errors import InputError
from kantong.engine.inputs import xlsx_reader

logger = logging.getLogger(__name__)

#: File name suffixes read as workbooks.
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
#: Rows searched for the header when it is not given.
HEADER_SCAN_ROWS = 30

#: ``score(names) -> int``: how many of a candidate header's names are known columns.
Score = Callable[[Sequence[str]], int]
#: ``need(names) -> names``: the header names whose values the caller reads.
Need = Callable[[list[str]], Iterable[str]]


@dataclass(frozen=True)
class SheetTable:
    """One sheet read as a table.

    Attributes
    ----------
    sheet
        Sheet name.
    sheets
        Every sheet name of the workbook, in order.
    header_row
        1-based row number of the header (as Excel shows it).
    how
        ``"given"`` or ``"detected"`` (sheet and header).
    columns
        Header names (blank headers become ``column_<n>``; repeated ones get ``_2`` ...).
    table
        The data rows below the header as text (Arrow): the columns ``need`` named when
        the sheet was read (every column when it named none).
    """

    sheet: str
    sheets: list[str]
    header_row: int
    how: str
    columns: list[str]
    table: pa.Table


def is_excel(path: str | Path) -> bool:
    """Return True when ``path`` has a workbook suffix (see :data:`EXCEL_SUFFIXES`)."""
    return Path(path).suffix.lower() in EXCEL_SUFFIXES


def _reader(path: Path):  # noqa: ANN202 - fastexcel type imported lazily
    try:
        import fastexcel
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError("reading Excel files needs fastexcel (pip install fastexcel)") from None
    try:
        return fastexcel.read_excel(path)
    except Exception as exc:  # fastexcel raises its own error types for bad files
        raise InputError(f"{path}: not a readable Excel workbook ({_one_line(exc)})") from None


def sheet_names(path: str | Path) -> list[str]:
    """Return the sheet names of a workbook, in order."""
    return _Workbook(Path(path)).names


@dataclass
class _Workbook:
    """A workbook open for reading: the fast reader where it applies, else calamine."""

    path: Path
    fast: xlsx_reader.Workbook | None = None
    names: list[str] = field(default_factory=list)
    _calamine: object = None
    _tables: xlsx_reader.Tables | None = None

    def __post_init__(self) -> None:
        if self.path.suffix.lower() in xlsx_reader.XLSX_SUFFIXES:
            try:
                self.fast = xlsx_reader.open_workbook(self.path)
            except xlsx_reader.UnsupportedError as exc:
                logger.info("%s: read with calamine (%s)", self.path, exc)
        self.names = self.fast.sheets if self.fast else list(self.calamine().sheet_names)

    def calamine(self):  # noqa: ANN201 - fastexcel type imported lazily
        if self._calamine is None:
            self._calamine = _reader(self.path)
        return self._calamine

    def grid(self, index: int) -> xlsx_reader.Grid | _TableGrid:
        """Sheet ``index``: its columns built on demand, and those to re-read for exact text."""
        if self.fast is not None:
            try:
                if self._tables is None:
                    self._tables = xlsx_reader.load_tables(self.fast)
                return xlsx_reader.read_grid(self.fast, index, tables=self._tables)
            except xlsx_reader.UnsupportedError as exc:
                logger.info("%s: sheet %r read with calamine (%s)", self.path,
                            self.names[index], exc)
        return self.exact_grid(index)

    def exact_grid(self, index: int) -> _TableGrid:
        """Sheet ``index`` read by calamine."""
        return _TableGrid(_grid(self.calamine(), index, self.path))


@dataclass(frozen=True)
class _TableGrid:
    """A calamine sheet table behind the interface of :class:`xlsx_reader.Grid`."""

    table: pa.Table
    inexact: frozenset[int] = frozenset()

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def to_table(self, columns: list[int] | None = None, *, start: int = 0,
                 stop: int | None = None) -> pa.Table:
        table = self.table if columns is None else self.table.select(columns)
        return table.slice(start, None if stop is None else max(stop - start, 0))


def _grid(reader, index: int, path: Path) -> pa.Table:  # noqa: ANN001
    """Return a whole sheet as text columns, row 0 = the sheet's first row."""
    try:
        # eager: calamine's cells straight into one Arrow batch (no lazy sheet object;
        # docs/performance.md "Excel registers")
        batch = reader.load_sheet(index, header_row=None, skip_rows=0, dtypes="string",
                                  eager=True)
        return pa.Table.from_batches([batch])
    except Exception as exc:  # calamine errors on corrupt sheets
        raise InputError(f"{path}: cannot read sheet {index + 1} ({_one_line(exc)})") from None


def _row_texts(grid: pa.Table, row: int) -> list[str | None]:
    out = []
    for col in grid.columns:
        value = col[row].as_py() if row < len(col) else None
        out.append(value.strip() if isinstance(value, str) and value.strip() else None)
    return out


def find_header(grid: pa.Table, score: Score) -> tuple[int, int]:
    """Return ``(row index, known names)`` of the header of a sheet grid (0-based row).

    The row naming the most known columns wins (the first on ties). When no row names
    any, the first row whose filled cells are all text and as many as the widest row's.
    """
    rows = min(HEADER_SCAN_ROWS, grid.num_rows)
    texts = [_row_texts(grid, r) for r in range(rows)]
    scores = [score([t for t in row if t]) for row in texts]
    if scores and max(scores) > 0:
        best = max(range(rows), key=lambda r: (scores[r], -r))
        return best, scores[best]
    widths = [sum(t is not None for t in row) for row in texts]
    widest = max(widths, default=0)
    for r, row in enumerate(texts):
        filled = [t for t in row if t is not None]
        if widest and len(filled) == widest and not any(_is_number(t) for t in filled):
            return r, 0
    return 0, 0


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def _names(header: list[str | None]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        base = name if name else f"column_{i + 1}"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


def read_sheet(path: str | Path, *, score: Score, sheet: str | int | None = None,
               header_row: int | None = None, need: Need | None = None) -> SheetTable:
    """Read the data sheet of a workbook as a text table (see the module docs).

    Parameters
    ----------
    path
        The workbook.
    score
        Counts the known column names among a candidate header's names.
    sheet
        Sheet name or 0-based index; ``None`` chooses it.
    header_row
        1-based header row; ``None`` detects it.
    need
        The header names whose values will be read (``None``: all). When one of them
        holds a cell the fast reader cannot vouch for, the sheet is read with calamine.

    Returns
    -------
    SheetTable

    Raises
    ------
    InputError
        Unreadable workbook, unknown sheet, header row out of range.
    """
    path = Path(path)
    book = _Workbook(path)
    names = book.names
    if not names:
        raise InputError(f"{path}: workbook holds no sheet")
    if header_row is not None and header_row < 1:
        raise InputError(f"header row must be >= 1 (rows are numbered as in Excel), "
                         f"got {header_row}")
    if sheet is not None:
        candidates = [_sheet_index(sheet, names, path)]
    else:
        candidates = list(range(len(names)))
    best = None
    for index in candidates:
        grid = book.grid(index)
        if grid.num_rows == 0:
            continue
        head = grid.to_table(stop=max(HEADER_SCAN_ROWS, header_row or 0))
        if header_row is not None:
            row, known = header_row - 1, score([t for t in _row_texts(head, header_row - 1)
                                                 if t]) if header_row <= grid.num_rows else 0
        else:
            row, known = find_header(head, score)
        key = (known, grid.num_rows - row - 1)
        if best is None or key > best[0]:
            best = (key, index, grid, head, row)
    if best is None:
        raise InputError(f"{path}: every sheet is empty")
    _, index, grid, head, row = best
    if row >= grid.num_rows:
        raise InputError(f"{path}: header row {row + 1} is below the last row of sheet "
                         f"{names[index]!r} ({grid.num_rows} rows)")
    header = _names(_row_texts(head, row))
    needed = set(header) if need is None else set(need(header))
    wanted = [j for j, name in enumerate(header) if name in needed]
    redo = sorted(header[j] for j in grid.inexact if j in wanted)
    if redo:
        logger.info("%s: sheet %r read again with calamine for the exact text of %s "
                    "(dates, error values or long numbers)", path, names[index],
                    ", ".join(redo))
        grid = book.exact_grid(index)
        header = _names(_row_texts(grid.to_table(stop=row + 1), row))
    # only the columns asked for are built (a register's personal columns never are)
    table = grid.to_table(wanted, start=row + 1).rename_columns([header[j] for j in wanted])
    how = "given" if sheet is not None and header_row is not None else "detected"
    if len(candidates) > 1:
        logger.info("%s: reading sheet %r (%d of %d: %s), header in row %d", path,
                    names[index], index + 1, len(names), ", ".join(map(repr, names)), row + 1)
    else:
        logger.info("%s: reading sheet %r, header in row %d", path, names[index], row + 1)
    return SheetTable(sheet=names[index], sheets=names, header_row=row + 1, how=how,
                      columns=header, table=table)


def _sheet_index(sheet: str | int, names: list[str], path: Path) -> int:
    if isinstance(sheet, int) or (isinstance(sheet, str) and sheet.strip().isdigit()
                                  and sheet.strip() not in names):
        index = int(sheet)
        if not 0 <= index < len(names):
            raise InputError(f"{path}: no sheet {index} (sheets are numbered from 0: "
                             f"{', '.join(f'{i}={n!r}' for i, n in enumerate(names))})")
        return index
    lowered = {n.strip().casefold(): i for i, n in enumerate(names)}
    key = str(sheet).strip().casefold()
    if key not in lowered:
        raise InputError(f"{path}: no sheet named {sheet!r}; sheets: "
                         f"{', '.join(map(repr, names))}")
    return lowered[key]


def iter_excel(path: str | Path, *, batch_rows: int | None, resolve: Callable[[list[str]],
               dict[str, str]], check: Callable[..., None], score: Score,
               sheet: str | int | None = None, header_row: int | None = None
               ) -> Iterator[pd.DataFrame]:
    """Yield a workbook's data rows in batches with resolved column names (text values).

    Blank trailing rows (every resolved cell empty) are dropped: Excel often keeps
    formatted empty rows below the data.
    """
    got = read_sheet(path, score=score, sheet=sheet, header_row=header_row,
                     need=lambda names: resolve(list(names)))
    mapping = resolve(got.columns)
    check(set(mapping.values()), source=str(path), columns=got.columns)
    table = got.table.select(list(mapping))
    frame_rows = table.num_rows
    if frame_rows and mapping:
        import pyarrow.compute as pc

        filled = None
        for col in table.columns:
            has = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(col), ""), False)
            filled = has if filled is None else pc.or_(filled, has)
        idx = pc.indices_nonzero(filled)
        last = int(idx[-1].as_py()) + 1 if len(idx) else 0
        table = table.slice(0, last)
    step = batch_rows or max(table.num_rows, 1)
    for start in range(0, table.num_rows, step):
        part = table.slice(start, step).to_pandas(types_mapper=pd.ArrowDtype)
        part = part.astype("string")
        yield part.rename(columns=mapping)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["EXCEL_SUFFIXES", "HEADER_SCAN_ROWS", "SheetTable", "find_header", "is_excel",
           "iter_excel", "read_sheet", "sheet_names"]
