"""A small, vectorised ``.xlsx`` writer for the demo's P3KE-shaped workbooks.

A workbook is a zip of XML parts. The sheet XML is assembled column by column with Arrow
string kernels (no Python loop per row or cell): text as inline strings, numbers as
numbers, blanks left out. Enough for Excel, LibreOffice and calamine to read; no styles.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kantong.engine.atomic import atomic_path

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def column_letter(index: int) -> str:
    """Return the Excel letters of a 0-based column index (0 -> ``A``, 26 -> ``AA``)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def _escape(values: pa.Array) -> pa.Array:
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        values = pc.replace_substring(values, old, new)
    return values


def _text(column: pd.Series) -> pa.Array:
    arr = pa.array(column.astype("string"), type=pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _cells(column: pd.Series, letter: str, rows: pa.Array) -> pa.Array:
    """Return the ``<c>`` XML of one column (empty string for blanks)."""
    ref = pc.binary_join_element_wise(pa.scalar(f'<c r="{letter}'), rows, "")
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column):
        cell = pc.binary_join_element_wise(ref, '"><v>', _text(column), "</v></c>", "")
    else:
        text = _escape(_text(column))
        space = pc.if_else(pc.match_substring_regex(text, r"^\s|\s$"),
                           ' xml:space="preserve"', "")
        cell = pc.binary_join_element_wise(ref, '" t="inlineStr"><is><t', space, ">", text,
                                           "</t></is></c>", "")
        cell = pc.if_else(pc.equal(text, ""), "", cell)
    return pc.fill_null(cell, "")


def sheet_xml(frame: pd.DataFrame, *, top: Sequence[Sequence[object]] = ()) -> bytes:
    """Return the XML of a sheet: the ``top`` rows (a title block), then header and data.

    Parameters
    ----------
    frame
        The table; its column names become the header row.
    top
        Rows written above the header (each a sequence of cell values; may be empty).
    """
    lines = []
    for r, values in enumerate(top, start=1):
        cells = "".join(_small_cell(column_letter(c), r, v) for c, v in enumerate(values))
        lines.append(f'<row r="{r}">{cells}</row>')
    header = len(top) + 1
    cells = "".join(_small_cell(column_letter(c), header, v)
                    for c, v in enumerate(frame.columns))
    lines.append(f'<row r="{header}">{cells}</row>')
    head = "".join(lines).encode("utf-8")
    body = b""
    if len(frame):
        rows = pa.array(np.arange(header + 1, header + 1 + len(frame)).astype(str))
        parts = [_cells(frame[c], column_letter(i), rows) for i, c in enumerate(frame.columns)]
        joined = pc.binary_join_element_wise(
            pc.binary_join_element_wise('<row r="', rows, '">', ""), *parts, "</row>", "")
        if isinstance(joined, pa.ChunkedArray):
            joined = joined.combine_chunks()
        one = pa.ListArray.from_arrays(pa.array([0, len(joined)], type=pa.int32()), joined)
        body = pc.binary_join(one, "")[0].as_py().encode("utf-8")
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            + f'<worksheet xmlns="{_NS}"><sheetData>'.encode() + head + body
            + b"</sheetData></worksheet>")


def _small_cell(letter: str, row: int, value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<c r="{letter}{row}"><v>{value}</v></c>'
    return f'<c r="{letter}{row}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'


def write_xlsx(path: str | Path, sheets: Sequence[tuple[str, bytes]]) -> Path:
    """Write a workbook of ready sheet XML parts (see :func:`sheet_xml`), atomically."""
    path = Path(path)
    names = [escape(name, {'"': "&quot;"}) for name, _ in sheets]
    content = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, len(sheets) + 1))
    types = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Types xmlns="http://'
             'schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels"'
             ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
             '<Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
             'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
             f'spreadsheetml.sheet.main+xml"/>{content}</Types>')
    rels = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns='
            f'"{_PKG}"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>')
    book_sheets = "".join(f'<sheet name="{n}" sheetId="{i}" r:id="rId{i}"/>'
                          for i, n in enumerate(names, start=1))
    book = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{_NS}"'
            f' xmlns:r="{_REL}"><sheets>{book_sheets}</sheets></workbook>')
    book_rels = "".join(f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" '
                        f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, len(sheets) + 1))
    book_rels = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships '
                 f'xmlns="{_PKG}">{book_rels}</Relationships>')
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED,
                                                    compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", types)
        zf.writestr("_rels/.rels", rels)
        zf.writestr("xl/workbook.xml", book)
        zf.writestr("xl/_rels/workbook.xml.rels", book_rels)
        for i, (_, xml) in enumerate(sheets, start=1):
            zf.writestr(f"xl/worksheets/sheet{i}.xml", xml)
    return path


__all__ = ["column_letter", "sheet_xml", "write_xlsx"]
