"""Excel workbooks: sheet and header found past title rows and summary sheets."""

from __future__ import annotations

import pandas as pd
import pytest

from kantong.engine.demo.xlsx import sheet_xml, write_xlsx
from kantong.engine.errors import InputError, MissingColumnError
from kantong.engine.inputs.excel import read_sheet
from kantong.engine.inputs.facilities import read_facilities
from kantong.engine.inputs.households import read_households
from kantong.engine.inputs.schema import Schema

FIELDS = ("water_improved", "sanitation_improved", "electricity", "housing_adequate",
          "child_out_of_school", "receives_assistance")


def register(n: int = 6) -> pd.DataFrame:
    frame = pd.DataFrame({"household_id": [f"H{i}" for i in range(n)],
                          "village_code": ["6101010001"] * n,
                          "desil": [1, 2, 3, 4, 1, 2][:n], "members": [3] * n})
    for f in FIELDS:
        frame[f] = ["Ya", "Tidak"] * (n // 2)
    return frame


def workbook(path, frame, *, top=(("JUDUL",), ("Sumber: uji",), ()), summary=True):
    sheets = [("Rekap", sheet_xml(pd.DataFrame({"desil": [1, 2], "jumlah": [5, 6]}),
                                  top=[("REKAP",)]))] if summary else []
    sheets.append(("Data", sheet_xml(frame, top=top)))
    return write_xlsx(path, sheets)


def test_header_found_past_title_rows_on_the_data_sheet(tmp_path):
    path = workbook(tmp_path / "r.xlsx", register())
    got = read_sheet(path, score=lambda names: len(Schema.default().resolve(list(names))))
    assert (got.sheet, got.header_row, got.sheets) == ("Data", 4, ["Rekap", "Data"])
    result = read_households(path)
    assert result.read == 6 and len(result.accepted) == 6
    assert result.accepted["desil"].tolist() == [1, 2, 3, 4, 1, 2]
    assert result.accepted["water_improved"].tolist() == [True, False] * 3


def test_sheet_and_header_row_options(tmp_path):
    path = workbook(tmp_path / "r.xlsx", register())
    by_name = read_households(path, sheet="data", header_row=4)
    by_index = read_households(path, sheet=1)
    pd.testing.assert_frame_equal(by_name.accepted, by_index.accepted)
    with pytest.raises(InputError, match="no sheet named 'Nope'.*'Rekap', 'Data'"):
        read_households(path, sheet="Nope")
    with pytest.raises(InputError, match="no sheet 5"):
        read_households(path, sheet=5)
    with pytest.raises(MissingColumnError, match="file columns: desil, jumlah"):
        read_households(path, sheet="Rekap")
    with pytest.raises(InputError, match="Excel workbooks only"):
        read_households(tmp_path / "r.xlsx".replace("xlsx", "csv") if False else
                        _csv(tmp_path), sheet="Data")


def _csv(tmp_path):
    path = tmp_path / "r.csv"
    register().to_csv(path, index=False)
    return path


def test_trailing_blank_rows_are_not_records(tmp_path):
    frame = pd.concat([register().astype("string"),
                       pd.DataFrame({"household_id": ["", " "]})], ignore_index=True)
    result = read_households(workbook(tmp_path / "b.xlsx", frame))
    assert result.read == 6


def test_not_a_workbook_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.xlsx"
    path.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.xlsx: not a readable Excel workbook"):
        read_households(path)


def test_real_facility_list_headers_work_by_alias(tmp_path):
    """Lookalike of the Kemenkes puskesmas / Kemendikbud school lists (same headers)."""
    puskesmas = pd.DataFrame({"kode_faskes": ["P1", "P2"], "nama_faskes": ["PKM A", "PKM B"],
                              "jenis_faskes": ["PUSKESMAS", "RS"],
                              "lat_": ["0,10", "-0,05"], "long_": ["109,30", "109,40"]})
    path = tmp_path / "puskesmas.xlsx"
    write_xlsx(path, [("Sheet1", sheet_xml(puskesmas, top=[("DATA PUSKESMAS",)]))])
    result = read_facilities(path, schema="p3ke")
    acc = result.accepted
    assert acc["type"].tolist() == ["puskesmas", "hospital"]
    assert acc["name"].tolist() == ["PKM A", "PKM B"]
    assert acc.geometry.x.tolist() == [109.30, 109.40]
    schools = pd.DataFrame({"npsn": ["1", "2"], "nama_sekolah": ["SDN 1", "SMPN 2"],
                            "bentuk_pendidikan": ["SD", "SMP"], "lintang": [0.1, 0.2],
                            "bujur": [109.3, 109.2]})
    path = tmp_path / "sekolah.csv"
    schools.to_csv(path, index=False, sep=";")
    result = read_facilities(path, schema="p3ke")
    assert result.accepted["facility_id"].tolist() == ["1", "2"]
    assert result.accepted["type"].tolist() == ["school", "junior_secondary"]


def test_indonesian_csv_semicolons_and_decimal_commas(tmp_path):
    frame = register().assign(lon=["109,3401", "109,2", "109,35", "", "x", "109,30"],
                              lat=["0,0210", "-0,05", "0,01", "", "0,02", "0,03"])
    path = tmp_path / "id.csv"
    frame.to_csv(path, index=False, sep=";")
    result = read_households(path)
    acc = result.accepted.set_index("household_id")
    assert acc.loc["H0", "lon"] == pytest.approx(109.3401)
    assert acc.loc["H1", "lat"] == pytest.approx(-0.05)
    assert acc.loc["H0", "location_precision"] == "point"
    assert acc.loc["H3", "location_precision"] == "village"   # blank: from the village code
    assert acc.loc["H4", "location_precision"] == "village"   # "x" is not a number
    mixed = frame.assign(lon=["109.34", "109,2", "109.35", "109.3", "109.3", "109.3"])
    mixed.to_csv(path, index=False, sep=";")
    acc = read_households(path).accepted.set_index("household_id")
    assert acc.loc["H1", "location_precision"] == "village"   # ambiguous column: not read
    assert acc.loc["H0", "location_precision"] == "point"
