"""Schema files and the p3ke preset: columns and labels mapped without code."""

from __future__ import annotations

import tomllib

import numpy as np
import pandas as pd
import pytest

from kantong.engine.errors import ConfigError, MissingColumnError
from kantong.engine.inputs.households import validate_households
from kantong.engine.inputs.schema import Schema, normalise_label, normalise_name, preset_names

P3KE_HEADER = ["id_keluarga_p3ke", "kode_kemdagri", "desil_kesejahteraan", "jumlah_art",
               "jenis_atap", "jenis_dinding", "jenis_lantai", "sumber_penerangan",
               "sumber_air_minum", "memiliki_fasilitas_buang_air_besar", "penerima_bpnt",
               "penerima_bpum", "penerima_bst", "penerima_pkh", "penerima_sembako",
               "nik", "alamat"]


def p3ke_rows(rows: list[dict[str, str]]) -> pd.DataFrame:
    """P3KE-shaped text rows; unspecified columns get an adequate / 'Tidak' answer."""
    base = {"kode_kemdagri": "61.11.03.2004", "desil_kesejahteraan": "1", "jumlah_art": "4",
            "jenis_atap": "Genteng", "jenis_dinding": "Tembok", "jenis_lantai": "Semen",
            "sumber_penerangan": "Listrik PLN", "sumber_air_minum": "Ledeng/PAM",
            "memiliki_fasilitas_buang_air_besar": "Ya, dengan Septic Tank",
            "penerima_bpnt": "Tidak", "penerima_bpum": "Tidak", "penerima_bst": "Tidak",
            "penerima_pkh": "Tidak", "penerima_sembako": "Tidak", "nik": "6101", "alamat": "JL"}
    out = [{**base, "id_keluarga_p3ke": f"P3KE{i:04d}", **row} for i, row in enumerate(rows)]
    return pd.DataFrame(out)[P3KE_HEADER]


def test_labels_are_compared_trimmed_and_case_folded():
    assert normalise_label("  LEDENG / pam ") == normalise_label("Ledeng/PAM")
    assert normalise_label("Jerami/Ijuk/Rumbia/ Daun-daunan") == "jerami/ijuk/rumbia/daun-daunan"
    assert normalise_name(" Kode Kemdagri ") == "kode_kemdagri"
    assert normalise_name("Lat_") == "lat"


def test_p3ke_preset_is_shipped_and_loads():
    assert "p3ke" in preset_names()
    schema = Schema.load("p3ke")
    assert schema.indicators["housing_adequate"].combine == "all"
    assert len(schema.indicators["receives_assistance"].parts) == 5
    assert schema.indicators["child_out_of_school"].optional


@pytest.mark.parametrize(("column", "label", "field", "expected"), [
    ("sumber_air_minum", " ledeng/pam", "water_improved", True),
    ("sumber_air_minum", "SUMUR TIDAK TERLINDUNG", "water_improved", False),
    ("sumber_air_minum", "Air Permukaan (Sungai, Danau, dll)", "water_improved", False),
    ("memiliki_fasilitas_buang_air_besar", "Ya, dengan  Septic Tank", "sanitation_improved",
     True),
    ("memiliki_fasilitas_buang_air_besar", "Ya, tanpa Septic Tank", "sanitation_improved",
     False),
    ("memiliki_fasilitas_buang_air_besar", "Tidak, Jamban Umum/Bersama", "sanitation_improved",
     False),
    ("sumber_penerangan", "Non Listrik", "electricity", False),
    ("sumber_penerangan", "listrik bukan pln", "electricity", True),
    ("jenis_atap", "Jerami/Ijuk/Rumbia/ Daun-daunan", "housing_adequate", False),
    ("jenis_dinding", "Plesteran anyaman bambu/kawat/Lainnya", "housing_adequate", False),
    ("jenis_lantai", "TANAH", "housing_adequate", False),
    ("jenis_lantai", "Keramik/Granit/Marmer/Ubin/Tegel/Teraso", "housing_adequate", True),
    ("penerima_pkh", " YA ", "receives_assistance", True),
])
def test_p3ke_labels_give_the_indicator_of_the_definition(column, label, field, expected):
    frame = p3ke_rows([{column: label}])
    result = validate_households(frame, source="p.csv", schema="p3ke")
    assert result.rejects.empty, result.rejects
    assert bool(result.accepted[field].iloc[0]) is expected


def test_derived_indicators_combine_all_and_any():
    frame = p3ke_rows([
        {},                                                          # all adequate, no programme
        {"jenis_dinding": "Bambu"},                                  # one inadequate part
        {"penerima_bst": "Ya", "penerima_sembako": "Ya"},            # any programme
        {"penerima_bpnt": ""},                                       # blank and the rest Tidak
        {"penerima_bpnt": "", "penerima_pkh": "Ya"},                 # blank but one Ya: true
    ])
    result = validate_households(frame, source="p.csv", schema="p3ke")
    ok = result.accepted.set_index("household_id")
    assert ok["housing_adequate"].tolist() == [True, False, True, True]
    assert ok["receives_assistance"].tolist() == [False, False, True, True]
    assert result.rejects["reason"].tolist() == ["missing receives_assistance"]
    assert "child_out_of_school" in result.absent
    assert "child_out_of_school" not in result.accepted.columns


def test_desil_labels_and_unknown_labels_are_rejected_with_an_example():
    frame = p3ke_rows([{"desil_kesejahteraan": "Desil 1"}, {"desil_kesejahteraan": " desil 4"},
                       {"desil_kesejahteraan": "Desil 9"},
                       {"sumber_air_minum": "Sungai Deras"}])
    result = validate_households(frame, source="p.csv", schema="p3ke")
    assert result.accepted["desil"].tolist() == [1, 4]
    assert result.rejects["reason"].tolist() == ["invalid desil", "invalid water_improved"]
    assert result.examples == {"invalid desil": "Desil 9",
                               "invalid water_improved": "Sungai Deras"}


def test_personal_columns_are_never_read():
    frame = p3ke_rows([{"nik": "6101SECRET"}])
    schema = Schema.load("p3ke")
    assert "nik" not in schema.resolve(list(frame.columns))
    result = validate_households(frame, source="p.csv", schema=schema)
    assert "6101SECRET" not in result.accepted.to_csv()


def test_schema_file_maps_own_columns(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('''
name = "mine"
[households.columns]
household_id = "no_urut"
members = "jml"
desil = "kelas"
village_code = "desa"
[households.desil]
"sangat miskin" = 1
"miskin" = 2
[households.indicators.water_improved]
column = "air"
true = ["PAM"]
false = ["Sungai"]
[households.indicators.sanitation_improved]
column = "wc"
[households.indicators.electricity]
column = "listrik"
[households.indicators.housing_adequate]
column = "rumah"
[households.indicators.child_out_of_school]
column = "anak"
kind = "count"
[households.indicators.receives_assistance]
column = "bansos"
''', encoding="utf-8")
    frame = pd.DataFrame({"no_urut": ["a", "b"], "jml": ["3", "2"],
                          "kelas": ["Sangat Miskin", "miskin"], "desa": ["6101010001"] * 2,
                          "air": ["pam", "SUNGAI"], "wc": ["ya", "tidak"], "listrik": ["1", "0"],
                          "rumah": ["true", "false"], "anak": ["2", "0"], "bansos": ["y", "n"]})
    result = validate_households(frame, source="x.csv", schema=path)
    assert result.rejects.empty
    acc = result.accepted
    assert acc["desil"].tolist() == [1, 2]
    assert acc["water_improved"].tolist() == [True, False]
    assert acc["child_out_of_school"].tolist() == [True, False]
    assert acc["electricity"].tolist() == [True, False]


@pytest.mark.parametrize(("text", "match"), [
    ('[households.columns]\nhousehold = "x"', "unknown field 'household'"),
    ('[households.indicators.water]\ncolumn = "x"', "unknown field 'water'"),
    ('[households.indicators.electricity]\ncolumn = "x"\ntrue = ["a"]', "both true"),
    ('[households.indicators.electricity]\ncolumn = "x"\ntrue = ["a"]\nfalse = ["A "]',
     "both true and false"),
    ('[households.indicators.electricity]\ntrue = ["a"]\nfalse = ["b"]', "exactly one of"),
    ('[households]\ncolumn = 1', "unknown key"),
    ('[households.desil]\n"x" = 7', "must be 1..4"),
])
def test_bad_schema_files_are_one_line_errors(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        Schema.load(path)


def test_unknown_preset_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="p3ke"):
        Schema.load("nonesuch")


def test_missing_column_lists_file_columns_and_near_matches():
    frame = p3ke_rows([{}]).drop(columns=["jumlah_art"]).assign(jumlah_artt="3")
    with pytest.raises(MissingColumnError) as err:
        validate_households(frame, source="p.csv", schema="p3ke")
    text = str(err.value)
    assert "members" in text and "closest: members ~ jumlah_artt" in text
    assert "file columns: id_keluarga_p3ke" in text and "\n" not in text
    with pytest.raises(MissingColumnError, match=r"household_id ~ id_keluarga_p3ke"):
        validate_households(p3ke_rows([{}]), source="p.csv")


def test_schema_round_trips_through_toml_text():
    raw = tomllib.loads('[households.indicators.electricity]\ncolumns = ["a", "b"]\n'
                        'combine = "all"\ntrue = ["x"]\nfalse = ["y"]\n')
    schema = Schema.from_mapping(raw)
    frame = pd.DataFrame({"a": ["X", "x", "y"], "b": ["x", "Y", "y"]})
    got = schema.read_indicator(frame.rename(columns={"a": "electricity:0",
                                                      "b": "electricity:1"}), "electricity")
    assert got.values.tolist() == [True, False, False]
    assert not got.blank.any() and not got.invalid.any()
    assert np.array_equal(got.values, np.array([True, False, False]))
