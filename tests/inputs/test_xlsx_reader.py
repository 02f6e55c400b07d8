"""The compiled ``.xlsx`` reader agrees with calamine cell for cell, or steps aside.

calamine (through fastexcel, the reader the engine used before and still uses for every
other format) is the reference: each workbook here is read by both, and every column the
fast reader calls exact must be identical, value for value, with the same grid shape.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import zipfile

import fastexcel
import numpy as np
import pyarrow as pa
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st

from kantong.engine.demo.xlsx import write_xlsx
from kantong.engine.errors import InputError
from kantong.engine.inputs import xlsx_kernel, xlsx_reader
from kantong.engine.inputs.excel import read_sheet, sheet_names
from kantong.engine.inputs.xlsx_reader import UnsupportedError, open_workbook, read_grid

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def calamine(path, index: int = 0) -> pa.Table:
    batch = fastexcel.read_excel(path).load_sheet(index, header_row=None, skip_rows=0,
                                                  dtypes="string", eager=True)
    return pa.Table.from_batches([batch])


def assert_agrees(path, *, inexact: dict[int, set[int]] | None = None,
                  threads: int | None = None) -> None:
    """Every sheet: same shape as calamine, exact columns equal, inexact ones as told."""
    book = open_workbook(path)
    assert book.sheets == list(fastexcel.read_excel(path).sheet_names)
    for index in range(len(book.sheets)):
        got = read_grid(book, index, threads=threads)
        ref = calamine(path, index)
        assert got.table.shape == ref.shape, (index, got.table.shape, ref.shape)
        assert got.table.schema.types == ref.schema.types, index
        assert got.inexact == frozenset((inexact or {}).get(index, set())), index
        for j in range(ref.num_columns):
            if j in got.inexact:
                continue
            mine, theirs = got.table.column(j).to_pylist(), ref.column(j).to_pylist()
            assert mine == theirs, (index, j, [(a, b) for a, b in zip(mine, theirs,
                                                                      strict=True) if a != b])


TEXTS = ["plain", "  spaced  ", "Ünïcödé 中文 ✓", 'a & b < c > "q" \'x\'', "line1\nline2",
         "tab\there", "_x000D_ literal", "", "x" * 300, "Ledeng/PAM", "ctrl\x01\x1f end",
         "cr\r\nlf"]


def _kinds_workbook(path, seed: int = 7):
    """A workbook written by xlsxwriter with every kind of cell, gaps and three sheets."""
    rng = random.Random(seed)
    wb = xlsxwriter.Workbook(str(path))
    bold = wb.add_format({"bold": True})
    day = wb.add_format({"num_format": "dd/mm/yyyy"})
    percent = wb.add_format({"num_format": "0.00%"})
    ws = wb.add_worksheet("Data")
    ws.write_blank(0, 0, None, bold)  # a styled blank in column A: not a value
    for r in range(1, 60):
        if r % 13 == 0:
            continue  # blank rows
        ws.write_string(r, 1, rng.choice(TEXTS))                          # B text
        ws.write_number(r, 2, rng.choice([0, 3, -7, 6111032004, 10**14 + 1, 42]))  # C
        ws.write_number(r, 3, rng.choice([2.5, 0.125, -3.75, 1234.5, 0.1 + 0.2]))  # D
        ws.write_boolean(r, 4, rng.random() < 0.5)                         # E
        if r % 2:
            ws.write_formula(r, 5, '="a"&"b"', None, "a & b")              # F str formula
        else:
            ws.write_formula(r, 5, "=1+2", None, 3)
        ws.write_datetime(r, 6, dt.datetime(2020, 1, 1) + dt.timedelta(days=r), day)  # G
        ws.write_number(r, 7, rng.choice([1e20, 1e-7, 123456789012345.6]))  # H exponent
        ws.write_number(r, 8, r / 4, percent)                              # I percent
        ws.write_rich_string(r, 9, "plain ", bold, "bold", " end")         # J rich
    ws.write_string(30, 12, "far right")                                   # M
    rupiah = wb.add_format({"num_format": '"Rp" #,##0'})  # a custom format, not a date
    ws.write_number(31, 10, 1500000, rupiah)                               # K
    wb.add_worksheet("Kosong")
    wb.add_worksheet("Format").write_blank(0, 0, None, bold)  # rows, but no value
    other = wb.add_worksheet("Hidden")
    other.write_row(2, 3, ["x", 1, "y"])
    other.hide()
    wb.close()
    return path


def test_every_kind_of_cell_agrees_with_calamine(tmp_path):
    path = _kinds_workbook(tmp_path / "kinds.xlsx")
    # G (dates) and H (exponent numbers) are flagged, columns counted from B
    assert_agrees(path, inexact={0: {5, 6}})


def test_chunks_and_threads_change_nothing(tmp_path, monkeypatch):
    path = _kinds_workbook(tmp_path / "kinds.xlsx", seed=3)
    book = open_workbook(path)
    one = read_grid(book, 0, threads=1)
    monkeypatch.setattr(xlsx_reader, "CHUNK_BYTES", 256)
    scans = _count_scans(monkeypatch)
    data = xlsx_reader._read(book, book.parts[0])
    chunks = xlsx_reader._chunks(data, *xlsx_reader._body(data), 5)
    many = read_grid(book, 0, threads=5)
    assert len(chunks) == 5 and all(data[s:s + 5] == b'<row ' for s, _ in chunks[1:])
    assert many.table.equals(one.table) and many.inexact == one.inexact
    assert scans == [5]  # every row numbered: no second scan
    assert_agrees(path, inexact={0: {5, 6}}, threads=4)


def _count_scans(monkeypatch) -> list[int]:
    """Record the number of chunks of every scan of a sheet."""
    scans: list[int] = []
    scan = xlsx_reader._scan
    monkeypatch.setattr(xlsx_reader, "_scan", lambda buf, chunks, *a: scans.append(
        len(chunks)) or scan(buf, chunks, *a))
    return scans


def _package(tmp_path, body: str, *, shared: str | None = None, name="v.xlsx",
             worksheet: str | None = None):
    xml = worksheet or (f'<?xml version="1.0" encoding="UTF-8"?>\n<worksheet xmlns="{NS}">'
                        f"<sheetData>{body}</sheetData></worksheet>")

    class Shared:
        def xml(self) -> bytes:
            return (f'<?xml version="1.0" encoding="UTF-8"?>\n<sst xmlns="{NS}">{shared}'
                    "</sst>").encode()

    return write_xlsx(tmp_path / name, [("S", xml.encode())],
                      sst=Shared() if shared is not None else None)


def _hand_written(tmp_path):
    shared = ('<si><t xml:space="preserve"> lead</t></si>'
              "<si><r><rPr><b/></rPr><t>rich </t></r><r><t>runs</t></r>"
              "<rPh sb='0' eb='1'><t>PHONETIC</t></rPh></si>"
              "<si><t>&#x4E2D;&#20013; &amp;&lt;&gt;&quot;&apos;</t></si>"
              "<si/><si><t/></si><si><t>_x0041_BC</t></si>")
    body = ("<row r='1'><c r='A1' t='s'><v>0</v></c><c t=\"s\" r='B1'><v>1</v></c>"
            "<c r='C1' t='s'><v>2</v></c><c r='D1' t='s'><v>3</v></c>"
            "<c r='E1' t='s'><v>4</v></c><c r='F1' t='s'><v>5</v></c></row>\n"
            '<row r="2">\n  <c r="A2" t="inlineStr"><is><t>inline</t></is></c>\n'
            '  <c r="B2" t="inlineStr"><is><r><t>in</t></r><r><t xml:space="preserve">'
            ' line</t></r><rPh><t>skip</t></rPh></is></c>\n'
            '  <c r="C2" t="str"><f>A1&amp;"x"</f><v>a &amp; x</v></c>\n'
            '  <c r="D2" s="0"><f t="shared" si="0"/><v>12.50</v></c>\n'
            '  <c r="E2"><v>007</v></c><!-- a "comment <c r="F2"><v>9</v></c> -->\n'
            '  <c r="F2" t="n"><v>-0.0</v></c>\n</row>'
            # cells without references, then rows without them
            "<row r='4'><c><v>1</v></c><c t='s'><v>0</v></c><c/><c><v>4</v></c></row>"
            "<row><c><v>5</v></c><c r='C5'><v>6</v></c><c><v>7</v></c></row>"
            "<row spans='1:3'><c t='b'><v>1</v></c><c t='b'><v>0</v></c></row>")
    return _package(tmp_path, body, shared=shared)


def test_hand_written_spreadsheetml_in_many_chunks(tmp_path, monkeypatch):
    path = _hand_written(tmp_path)
    monkeypatch.setattr(xlsx_reader, "CHUNK_BYTES", 64)
    scans = _count_scans(monkeypatch)
    # a chunk after the first starts at a <row> without r: the sheet is scanned again
    # in one piece
    assert_agrees(path, threads=4)
    assert_agrees(path, threads=2)
    assert scans == [3, 1, 2, 1]


def test_chunks_are_as_many_as_whole_chunk_sizes_fit(tmp_path, monkeypatch):
    book = open_workbook(_kinds_workbook(tmp_path / "kinds.xlsx"))
    data = xlsx_reader._read(book, book.parts[0])
    start, end = xlsx_reader._body(data)
    assert len(xlsx_reader._chunks(data, start, end, 4)) == 1  # under CHUNK_BYTES
    monkeypatch.setattr(xlsx_reader, "CHUNK_BYTES", (end - start) * 2 // 5)
    chunks = xlsx_reader._chunks(data, start, end, 4)  # 2.5 chunk sizes: 2 chunks
    assert len(chunks) == 2 and chunks[0][0] == start and chunks[-1][1] == end


def test_hand_written_spreadsheetml_agrees(tmp_path):
    path = _hand_written(tmp_path)
    assert_agrees(path)
    got = read_grid(open_workbook(path), 0).table
    # text of <t> trimmed unless xml:space="preserve"; phonetic runs left out; rows and
    # cells without r counted on; numbers normalised
    assert got.column(1).to_pylist() == ["richruns", "in line", None, " lead", None, "false"]
    assert got.column(3).to_pylist()[:2] == ["", "12.5"]
    assert got.column(4).to_pylist()[:2] == ["", "7"]
    assert got.column(0).to_pylist()[3:5] == ["1", "5"]


@pytest.mark.parametrize("body, why", [
    ("<row r='1'><c r='B1'><v>1</v></c><c r='A1'><v>2</v></c></row>", "out of order"),
    ("<row r='1'><c r='A1'><v>1</v></c></row><row r='1'><c r='A1'><v>2</v></c></row>",
     "out of order or repeated"),
    ("<row r='1'><c r='A1'><v><![CDATA[1]]></v></c></row>", "not understood"),
    ("<row r='1'><c r='a1'><v>1</v></c></row>", "not understood"),
    ("<row r='1'><c r='A1' t='s'><v>3</v></c></row>", "not understood"),
    ("<row r='1'><c r='A1'><v>1</v></c></row><row r='900000'><c r='XFD900000'><v>1</v>"
     "</c></row>", "sparse sheet"),
])
def test_sheets_it_does_not_understand_are_declined(tmp_path, body, why):
    path = _package(tmp_path, body, shared="<si><t>a</t></si>")
    with pytest.raises(UnsupportedError, match=why):
        read_grid(open_workbook(path), 0)


def test_prefixed_and_corrupt_packages_are_declined(tmp_path):
    prefixed = _package(tmp_path, "", name="p.xlsx", worksheet=(
        f'<x:worksheet xmlns:x="{NS}"><x:sheetData><x:row r="1"><x:c r="A1"><x:v>1</x:v>'
        "</x:c></x:row></x:sheetData></x:worksheet>"))
    with pytest.raises(UnsupportedError, match="prefixed"):
        read_grid(open_workbook(prefixed), 0)
    good = _package(tmp_path, "<row r='1'><c r='A1'><v>12345</v></c></row>" * 1,
                    name="g.xlsx")
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("xl/worksheets/sheet1.xml")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 2
    data[at] ^= 0xFF
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(bytes(data))
    with pytest.raises(UnsupportedError):
        read_grid(open_workbook(bad), 0)
    with pytest.raises(UnsupportedError):
        open_workbook(tmp_path / "missing.xlsx")
    (tmp_path / "text.xlsx").write_text("not a zip")
    with pytest.raises(UnsupportedError):
        open_workbook(tmp_path / "text.xlsx")
    with pytest.raises(InputError, match="not a readable Excel workbook"):
        sheet_names(tmp_path / "text.xlsx")


def test_declined_sheets_are_read_by_calamine_instead(tmp_path, caplog):
    body = ("<row r='1'><c r='A1' t='inlineStr'><is><t>desil</t></is></c></row>"
            "<row r='2'><c r='B2'><v>2</v></c><c r='A2'><v>1</v></c></row>")
    path = _package(tmp_path, body)
    with caplog.at_level(logging.INFO, logger="kantong.engine.inputs.excel"):
        got = read_sheet(path, score=lambda names: int("desil" in names))
    assert "read with calamine (cells out of order" in caplog.text
    assert got.table.to_pylist() == calamine(path).slice(1).rename_columns(
        ["desil", "column_2"]).to_pylist()
    only = read_sheet(path, score=lambda names: int("desil" in names),
                      need=lambda names: ["desil"])
    assert only.table.to_pylist() == [{"desil": "1"}]


def test_inexact_columns_are_read_again_only_when_needed(tmp_path, caplog):
    wb = xlsxwriter.Workbook(str(tmp_path / "d.xlsx"))
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws = wb.add_worksheet("Data")
    ws.write_row(0, 0, ["desil", "tanggal_lahir"])
    for r in range(1, 4):
        ws.write_number(r, 0, r)
        ws.write_datetime(r, 1, dt.datetime(1970, 1, r), day)
    wb.close()
    path = tmp_path / "d.xlsx"

    def score(names):
        return int("desil" in names)

    with caplog.at_level(logging.INFO, logger="kantong.engine.inputs.excel"):
        fast = read_sheet(path, score=score, need=lambda names: ["desil"])
    assert "read again" not in caplog.text
    assert fast.table.column("desil").to_pylist() == ["1", "2", "3"]
    assert fast.columns == ["desil", "tanggal_lahir"]
    assert fast.table.column_names == ["desil"]  # only the columns asked for are built
    with caplog.at_level(logging.INFO, logger="kantong.engine.inputs.excel"):
        exact = read_sheet(path, score=score, need=lambda names: ["desil", "tanggal_lahir"])
    assert "read again with calamine for the exact text of tanggal_lahir" in caplog.text
    assert exact.table.column("tanggal_lahir").to_pylist() == [
        f"1970-01-0{d} 00:00:00" for d in (1, 2, 3)]
    assert read_sheet(path, score=score).table.equals(exact.table)  # need=None: all


SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                    max_size=12)
CELL = st.one_of(st.none(), SAFE_TEXT, st.integers(-10**14, 10**14),
                 st.integers(-10**8, 10**8).map(lambda i: i / 64), st.booleans())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(CELL, min_size=1, max_size=6), min_size=1, max_size=8))
def test_random_sheets_agree_with_calamine(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("h") / "h.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, str):
                ws.write_string(r, c, value)
            elif isinstance(value, bool):
                ws.write_boolean(r, c, value)
            elif value is not None:
                ws.write_number(r, c, value)
    wb.close()
    assert_agrees(path)


def _number(raw: str) -> tuple[str, bool]:
    buf = np.frombuffer(raw.encode(), np.uint8)
    heap = np.empty(64, np.uint8)
    h, exact = xlsx_kernel._number(buf, 0, buf.size, heap, 0)
    return heap[:h].tobytes().decode(), bool(exact)


def _nine_decimals(raw: str) -> str:
    """calamine's text of a number: the float64 with nine decimals, zeros dropped."""
    return format(float(raw), ".9f").rstrip("0").rstrip(".")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**15), st.integers(0, 12), st.booleans(), st.integers(0, 3))
def test_numbers_called_exact_are_what_calamine_writes(digits, point, negative, zeros):
    text = str(digits)
    point = min(point, len(text))
    raw = ("-" if negative else "") + (text[: len(text) - point] or "0") + (
        "." + text[len(text) - point:] + "0" * zeros if point else "")
    got, exact = _number(raw)
    if exact:
        assert got == _nine_decimals(raw), raw


@pytest.mark.parametrize("raw, text", [
    ("3", "3"), ("-7", "-7"), ("6111032004", "6111032004"), ("007", "7"), ("2.50", "2.5"),
    ("0.125", "0.125"), ("3999999.12345678", "3999999.12345678"), ("-0.0", "-0"),
    ("4000000.25", "4000000.25"), ("999999999999999", "999999999999999"), ("5.", "5")])
def test_register_numbers_are_exact(raw, text):
    assert _number(raw) == (text, True)
    assert _nine_decimals(raw) == text


@pytest.mark.parametrize("raw", ["1E+20", "1e-7", "4000000.1", "0.1234567891", "3999999.123456789",
                                 "1234567890123456", " 5", "+5", ".5", ""])
def test_numbers_calamine_may_write_otherwise_are_flagged(raw):
    assert _number(raw)[1] is False


@pytest.mark.parametrize("code, is_date", [
    ("dd/mm/yyyy", True), ("[$-421]d mmmm yyyy;@", True), ("[h]:mm:ss", True),
    ("hh:mm", True), ("m/d/yy h:mm", True), ("DD/MM/YYYY", True), ("[H]:MM", True),
    ("General", False), ("0.00%", False),
    ("#,##0_);[Red](#,##0)", False), ('"Rp" #,##0', False), ('0 "hari"', False),
    ("0\\d", False), ("[Blue]0.0", False), ("_-* #,##0_-;-* #,##0_-", False),
])
def test_date_formats_are_recognised(code, is_date):
    assert xlsx_reader._is_date_code(code) is is_date


def _raw_package(path, *, sheet: str, shared: str, extra: bytes = b"",
                 more_sheets: str = "", more_rels: str = "", styles: str | None = None,
                 root_target: str = "/xl/workbook.xml"):
    """A package written member by member: stored (not deflated), absolute targets."""
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
            'openxmlformats-package.relationships+xml"/><Default Extension="xml" '
            'ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.'
            'main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="'
            'application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'),
        "_rels/.rels": (f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" '
                        f'Type="{rel}/officeDocument" Target="{root_target}"/>'
                        "</Relationships>"),
        "xl/workbook.xml": (f'<workbook xmlns="{NS}" xmlns:r="{rel}"><sheets><sheet '
                            'name="Isi" sheetId="1" r:id="rId1"/>' + more_sheets
                            + "</sheets></workbook>"),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{pkg}"><Relationship Id="rId0" Type="{rel}/hyperlink" '
            'Target="http://example.org/" TargetMode="External"/>' + more_rels
            + f'<Relationship Id="rId3" Type="{rel}/styles" Target="styles.xml"/>'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="/xl/worksheets/sheet1.xml"/><Relationship Id="rId2" '
            f'Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'),
        "xl/sharedStrings.xml": f'<sst xmlns="{NS}">{shared}</sst>',
        "xl/styles.xml": f'<styleSheet xmlns="{NS}">{styles or ""}</styleSheet>',
        "xl/worksheets/sheet1.xml": (f'<worksheet xmlns="{NS}"><sheetData>{sheet}'
                                     "</sheetData></worksheet>"),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name)
            if name.endswith("sheet1.xml"):
                info.extra = extra
            zf.writestr(info, text.encode("utf-8", "surrogateescape"))
    return path


def test_stored_members_absolute_targets_and_extra_fields_agree(tmp_path):
    path = _raw_package(tmp_path / "raw.xlsx", shared="<si><t>teks</t></si>",
                        sheet="<row r='1'><c r='A1' t='s'><v>0</v></c><c r='B1'><v>5</v>"
                              "</c></row><row r='2'><c r='A2'><v>6</v></c></row>",
                        extra=b"\xfe\xca\x04\x00abcd")
    assert_agrees(path)
    assert read_grid(open_workbook(path), 0).table.to_pylist() == [
        {"__UNNAMED__0": "teks", "__UNNAMED__1": "5"},
        {"__UNNAMED__0": "6", "__UNNAMED__1": None}]


def test_text_that_is_not_utf8_is_declined(tmp_path):
    path = _raw_package(tmp_path / "bad.xlsx", shared="<si><t>o\udcff</t></si>",
                        sheet="<row r='1'><c r='A1' t='s'><v>0</v></c></row>")
    book = open_workbook(path)
    with pytest.raises(UnsupportedError, match="not UTF-8"):
        xlsx_reader.shared_strings(book)


def test_an_encrypted_member_is_declined(tmp_path):
    path = _raw_package(tmp_path / "enc.xlsx", shared="<si><t>a</t></si>",
                        sheet="<row r='1'><c r='A1'><v>1</v></c></row>")
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02"))
    while data[at + 46:at + 46 + 24] != b"xl/worksheets/sheet1.xml":
        at = data.find(b"PK\x01\x02", at + 4)
    data[at + 8] |= 0x1  # the central directory's "encrypted" flag of the sheet
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedError, match="encrypted"):
        read_grid(open_workbook(path), 0)


@pytest.mark.parametrize("last_row, declined", [(524296, False), (524297, True)])
def test_sparse_sheets_are_left_to_calamine(tmp_path, last_row, declined):
    # two cells: the grid is 2 columns x last_row rows; more than 8 cells per value plus
    # 2**20 (2 x 524,296 = 8 x 2 + 2**20) is declined
    path = _package(tmp_path, f"<row r='1'><c r='A1'><v>1</v></c></row><row r='{last_row}'>"
                              f"<c r='B{last_row}'><v>2</v></c></row>")
    if declined:
        with pytest.raises(UnsupportedError, match="sparse sheet"):
            read_grid(open_workbook(path), 0)
    else:
        got = read_grid(open_workbook(path), 0).table
        assert got.shape == (last_row, 2) and got.column(1)[last_row - 1].as_py() == "2"


def test_texts_beyond_a_string_array_go_through_large_strings(tmp_path, monkeypatch):
    path = _kinds_workbook(tmp_path / "kinds.xlsx", seed=5)
    monkeypatch.setattr(xlsx_reader, "STRING_BYTES", 0)
    assert_agrees(path, inexact={0: {5, 6}})


def test_many_empty_shared_strings_agree(tmp_path):
    # "<si/>" holds one "<" only: the table must still have a slot for each
    cells = "".join(f"<c r='A{i}' t='s'><v>{i - 1}</v></c>" for i in range(1, 41))
    path = _raw_package(tmp_path / "e.xlsx", shared="<si/>" * 39 + "<si><t>z</t></si>",
                        sheet=f"<row r='1'>{cells}</row>")
    assert_agrees(path)


def test_a_sheet_without_its_part_and_a_damaged_member_are_declined(tmp_path):
    body = "<row r='1'><c r='A1'><v>5</v></c></row>"
    orphan = _raw_package(tmp_path / "o.xlsx", shared="", sheet=body,
                          more_sheets='<sheet name="Hilang" sheetId="2" r:id="rId9"/>')
    with pytest.raises(UnsupportedError, match="'Hilang' is not a worksheet"):
        open_workbook(orphan)
    damaged = _raw_package(tmp_path / "d.xlsx", shared="", sheet=body)
    data = damaged.read_bytes()
    damaged.write_bytes(data.replace(b"<v>5</v>", b"<v>6</v>"))  # stored: same size
    with pytest.raises(UnsupportedError, match="CRC"):
        read_grid(open_workbook(damaged), 0)


def test_styles_decide_which_numbers_are_dates(tmp_path):
    styles = ('<numFmts count="2"><numFmt numFmtId="164" formatCode="dd/mm/yyyy"/>'
              '<numFmt numFmtId="165" formatCode="&quot;Rp&quot; #,##0"/></numFmts>'
              '<cellXfs count="5"><xf/><xf numFmtId="164"/><xf numFmtId="165"/>'
              '<xf numFmtId="14"/><xf numFmtId="3"/></cellXfs>')
    cells = "".join(f"<c r='{c}1' s='{s}'><v>43832</v></c>"
                    for c, s in zip("ABCDE", range(5), strict=True))
    path = _raw_package(tmp_path / "s.xlsx", shared="", styles=styles,
                        sheet=f"<row r='1'>{cells}</row>")
    book = open_workbook(path)
    assert xlsx_reader.date_styles(book).tolist() == [False, True, False, True, False]
    assert read_grid(book, 0).inexact == {1, 3}
    assert_agrees(path, inexact={0: {1, 3}})


@pytest.mark.parametrize("styles, rels", [
    ('<numFmts><numFmt numFmtId="164"/></numFmts>', ""),  # no formatCode
    ("", '<Relationship Type="x" Target="y.xml"/>'),  # no Id
])
def test_packages_missing_required_attributes_are_declined(tmp_path, styles, rels):
    path = _raw_package(tmp_path / "m.xlsx", shared="", styles=styles, more_rels=rels,
                        sheet="<row r='1'><c r='A1'><v>1</v></c></row>")
    with pytest.raises(UnsupportedError):
        read_grid(open_workbook(path), 0)
