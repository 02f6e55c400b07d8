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


class SharedStrings:
    """The shared-string table of a workbook (as Excel writes text cells).

    Built once from every text column of the frames it serves (Arrow ``unique``), then
    each column's cells are looked up in it (``index_in``): no Python loop over cells.
    """

    def __init__(self, frames: Sequence[pd.DataFrame]) -> None:
        texts = [_text(f[c]) for f in frames for c in f.columns
                 if not _is_number(f[c])]
        values = pa.chunked_array(texts, type=pa.string()).unique() if texts \
            else pa.array([], type=pa.string())
        values = pc.drop_null(values)
        self.values = values.filter(pc.not_equal(values, ""))

    def codes(self, text: pa.Array) -> pa.Array:
        """Return the table index of each string, as text (null for blanks)."""
        return pc.cast(pc.index_in(text, value_set=self.values), pa.string())

    def xml(self) -> bytes:
        """Return ``xl/sharedStrings.xml``."""
        strings = self.values
        space = pc.if_else(pc.match_substring_regex(strings, r"^\s|\s$"),
                           ' xml:space="preserve"', "")
        items = pc.binary_join_element_wise("<si><t", space, ">", _escape(strings),
                                            "</t></si>", "")
        return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                + f'<sst xmlns="{_NS}" count="{len(strings)}" uniqueCount="{len(strings)}">'
                .encode() + _join(items) + b"</sst>")


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column)


def _join(parts: pa.Array) -> bytes:
    """Concatenate a string array into bytes (one Arrow kernel call)."""
    if len(parts) == 0:
        return b""
    if isinstance(parts, pa.ChunkedArray):
        parts = parts.combine_chunks()
    one = pa.ListArray.from_arrays(pa.array([0, len(parts)], type=pa.int32()), parts)
    return pc.binary_join(one, "")[0].as_py().encode("utf-8")


def _cells(column: pd.Series, letter: str, rows: pa.Array,
           sst: SharedStrings | None = None) -> pa.Array:
    """Return the ``<c>`` XML of one column (empty string for blanks)."""
    ref = pc.binary_join_element_wise(pa.scalar(f'<c r="{letter}'), rows, "")
    if _is_number(column):
        cell = pc.binary_join_element_wise(ref, '"><v>', _text(column), "</v></c>", "")
    elif sst is not None:
        text = _text(column)
        blank = pc.fill_null(pc.equal(text, ""), True)
        index = sst.codes(pc.if_else(blank, pa.scalar(None, pa.string()), text))
        cell = pc.binary_join_element_wise(ref, '" t="s"><v>', index, "</v></c>", "")
        cell = pc.if_else(blank, "", cell)
    else:
        text = _escape(_text(column))
        space = pc.if_else(pc.match_substring_regex(text, r"^\s|\s$"),
                           ' xml:space="preserve"', "")
        cell = pc.binary_join_element_wise(ref, '" t="inlineStr"><is><t', space, ">", text,
                                           "</t></is></c>", "")
        cell = pc.if_else(pc.equal(text, ""), "", cell)
    return pc.fill_null(cell, "")


def sheet_xml(frame: pd.DataFrame, *, top: Sequence[Sequence[object]] = (),
              sst: SharedStrings | None = None) -> bytes:
    """Return the XML of a sheet: the ``top`` rows (a title block), then header and data.

    Parameters
    ----------
    frame
        The table; its column names become the header row.
    top
        Rows written above the header (each a sequence of cell values; may be empty).
    sst
        Shared strings to put the data's text in (as Excel does); ``None``: inline strings.
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
        parts = [_cells(frame[c], column_letter(i), rows, sst)
                 for i, c in enumerate(frame.columns)]
        joined = pc.binary_join_element_wise(
            pc.binary_join_element_wise('<row r="', rows, '">', ""), *parts, "</row>", "")
        body = _join(joined)
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            + f'<worksheet xmlns="{_NS}"><sheetData>'.encode() + head + body
            + b"</sheetData></worksheet>")


def _small_cell(letter: str, row: int, value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<c r="{letter}{row}"><v>{value}</v></c>'
    return f'<c r="{letter}{row}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'


def write_xlsx(path: str | Path, sheets: Sequence[tuple[str, bytes]],
               sst: SharedStrings | None = None) -> Path:
    """Write a workbook of ready sheet XML parts (see :func:`sheet_xml`), atomically.

    ``sst`` is the shared-string table the sheets refer to (if any).
    """
    path = Path(path)
    names = [escape(name, {'"': "&quot;"}) for name, _ in sheets]
    content = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, len(sheets) + 1))
    if sst is not None:
        content += ('<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')
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
    if sst is not None:
        book_rels += (f'<Relationship Id="rId{len(sheets) + 1}" Type="{_REL}/sharedStrings" '
                      'Target="sharedStrings.xml"/>')
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
        if sst is not None:
            zf.writestr("xl/sharedStrings.xml", sst.xml())
    return path


__all__ = ["SharedStrings", "column_letter", "sheet_xml", "write_xlsx"]
