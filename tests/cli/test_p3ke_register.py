"""A P3KE-shaped Excel export, as planners get it, builds with --schema p3ke and nothing else.

The fixture is made here from the demo register (``kantong demo-data --format
p3ke-xlsx``): a Rekap sheet first, title rows above the header, labels with stray spaces
and mixed case, dotted and undotted Kemendagri codes, synthetic personal columns. The
reference is the same register in Kantong's own columns with the coordinates dropped
(P3KE has none), built without a schema.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kantong.engine.cli.group import cli
from kantong.engine.demo.p3ke import register_to_p3ke, write_p3ke_workbook


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def p3ke(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("p3ke")
    out = _run(["demo-data", "--out", str(root), "--households", "3000", "--seed", "5",
                "--clean", "--format", "p3ke-xlsx"])
    assert "households_synthetic_p3ke.xlsx" in out
    register = pd.read_csv(root / "households_synthetic.csv",
                           dtype={"household_id": str, "village_code": str})
    p3 = register_to_p3ke(register, seed=5)
    canonical = register[p3.attrs["kept"]].assign(lon=np.nan, lat=np.nan)
    canonical.to_csv(root / "canonical.csv", index=False)
    return {"root": root, "workbook": root / "households_synthetic_p3ke.xlsx",
            "canonical": root / "canonical.csv", "facilities":
            root / "facilities_synthetic.geojson"}


def test_workbook_looks_like_a_p3ke_export(p3ke):
    import fastexcel

    book = fastexcel.read_excel(p3ke["workbook"])
    assert book.sheet_names == ["Rekap", "Data Keluarga"]
    data = book.load_sheet(1, header_row=4).to_pandas()
    for column in ("id_keluarga_p3ke", "kode_kemdagri", "desil_kesejahteraan", "jumlah_art",
                   "nik", "alamat", "kepala_keluarga", "penerima_pkh", "jenis_atap"):
        assert column in data.columns
    assert "lon" not in data.columns and "lat" not in data.columns
    codes = data["kode_kemdagri"].astype(str)
    assert codes.str.fullmatch(r"\d{2}\.\d{2}\.\d{2}\.\d{4}").any()
    assert codes.str.fullmatch(r"\d{10}").any()
    labels = data["sumber_penerangan"].astype(str)
    assert (labels != labels.str.strip()).any() or (labels.str.isupper()).any()


def test_p3ke_workbook_builds_with_the_preset_like_the_canonical_file(p3ke, tmp_path):
    out = _run(["build", "--households", str(p3ke["workbook"]), "--schema", "p3ke",
                "--province", "61", "--no-pockets", "--out", str(tmp_path / "a")])
    assert "village codes kemendagri" in out
    _run(["build", "--households", str(p3ke["canonical"]), "--province", "61", "--no-pockets",
          "--out", str(tmp_path / "b")])
    a = pd.read_parquet(tmp_path / "a" / "cells.parquet").drop(columns="geometry")
    b = pd.read_parquet(tmp_path / "b" / "cells.parquet").drop(columns="geometry")
    pd.testing.assert_frame_equal(a, b)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    counts = manifest["counts"]["households"]
    assert counts["read"] == counts["accepted"] + counts["rejected"]
    assert counts["read"] == len(pd.read_csv(p3ke["canonical"]))
    assert manifest["register"]["schema"] == "p3ke"
    assert manifest["register"]["village_codes"]["system"] == "kemendagri"
    for path in (tmp_path / "a").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for secret in (b"NAMA SINTETIS", b"JL. SINTETIS", b"99000000000"):
                assert secret not in blob, (path, secret)


def test_all_rejected_register_writes_rejects_and_names_reasons(p3ke, tmp_path):
    book = pd.read_excel if False else None  # noqa: F841 - keep the reader out of this test
    frame = register_to_p3ke(pd.read_csv(p3ke["canonical"], dtype={"household_id": str,
                                                                  "village_code": str}).head(30))
    frame["sumber_air_minum"] = "Sungai Keruh"
    frame.loc[:9, "desil_kesejahteraan"] = "Desil 9"
    path = write_p3ke_workbook(frame, tmp_path / "bad.xlsx")
    result = CliRunner().invoke(cli, ["build", "--households", str(path), "--schema", "p3ke",
                                      "--province", "61", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.count("\n") == 0 and line.startswith("Error: ")
    assert "no household was accepted (30 read" in line
    assert "invalid water_improved (20, e.g. 'Sungai Keruh')" in line
    assert "invalid desil (10, e.g. 'Desil 9')" in line
    rejects = pd.read_csv(tmp_path / "run.rejects.csv")
    assert len(rejects) == 30 and set(rejects.columns) == {"source", "row", "record_id",
                                                           "reason"}
    assert not (tmp_path / "run").exists()
    assert "SINTETIS" not in (tmp_path / "run.rejects.csv").read_text()


def test_inspect_reports_the_mapping_and_writes_a_schema(p3ke, tmp_path):
    out = _run(["inspect", str(p3ke["workbook"]), "--schema", "p3ke"])
    assert "reading 'Data Keluarga', header in row 5" in out
    assert "housing_adequate     <- all(jenis_atap, jenis_dinding, jenis_lantai)" in out
    assert "village codes: kemendagri" in out
    assert "personal: not read" in out and "SINTETIS" not in out
    plain = _run(["inspect", str(p3ke["workbook"]), "--write-schema", str(tmp_path / "s.toml")])
    assert "household_id         closest: id_keluarga_p3ke" in plain
    assert (tmp_path / "s.toml").read_text().startswith("# Kantong schema")


def test_facility_list_lookalikes_build_without_rewriting(p3ke, tmp_path):
    """Kemenkes puskesmas / Kemendikbud school list headers, a hospital and a border clinic."""
    fac = pd.DataFrame({
        "kode_faskes": ["P1", "P2", "R1"], "nama_faskes": ["PKM Satu", "PKM Dua", "RSUD X"],
        "jenis_faskes": ["PUSKESMAS", "Puskesmas", "RS"],
        "lat_": ["-0,05", "0,40", "-0,02"], "long_": ["109,35", "111,50", "109,33"]})
    fac.to_csv(tmp_path / "faskes.csv", index=False, sep=";")
    out = _run(["build", "--households", str(p3ke["workbook"]), "--schema", "p3ke",
                "--facilities", str(tmp_path / "faskes.csv"), "--province", "61",
                "--straight-line-kmh", "8", "--out", str(tmp_path / "run")])
    assert "facilities  read          3 = accepted          3" in out
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["travel_time"]["speed_kmh"] == 8
    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    assert {"travel_min_puskesmas", "travel_min_hospital"} <= set(cells.columns)
    pockets = pd.read_parquet(tmp_path / "run" / "pockets.parquet")
    if len(pockets):
        # the hospital does not feed the strategy: the mean is over puskesmas only
        np.testing.assert_allclose(pockets["travel_min_mean"],
                                   pockets["travel_min_puskesmas"], rtol=1e-9)


def test_optional_indicator_absent_is_not_filled_in(p3ke, tmp_path):
    register = pd.read_csv(p3ke["canonical"], dtype={"household_id": str, "village_code": str})
    frame = register_to_p3ke(register, seed=5).drop(columns="jumlah_anak_tidak_sekolah")
    path = write_p3ke_workbook(frame, tmp_path / "no_child.xlsx")
    out = _run(["build", "--households", str(path), "--schema", "p3ke", "--province", "61",
                "--out", str(tmp_path / "run")])
    assert "indicators not in this register: child_out_of_school" in out
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["register"]["absent_indicators"] == ["child_out_of_school"]
    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    assert cells["n_child_out_of_school"].isna().all()
    assert cells["share_child_out_of_school"].isna().all()
    assert cells["n_no_improved_water"].notna().all()
    for rollup in (tmp_path / "run" / "rollups").glob("*.parquet"):
        assert pd.read_parquet(rollup)["share_child_out_of_school"].isna().all()
    assert cells["priority"].notna().all()  # the build ran the pockets stage
    # the viewer says so, in both languages
    from kantong.webmap import create_app

    client = create_app({"RUN_DIR": str(tmp_path / "run"), "TESTING": True}).test_client()
    page = client.get("/").get_data(as_text=True)
    assert "tidak ada di register ini: anak tidak sekolah" in page
    page = client.get("/?lang=en").get_data(as_text=True)
    assert "not in this register: child out of school" in page


def test_absent_assistance_drops_out_of_the_score_with_weights_renormalised():
    from kantong.engine.inputs.absent import blank_absent
    from kantong.engine.pockets.score import score_cells

    cells = pd.DataFrame({"households": [10, 10], "extreme_households": [2, 6],
                          "n_no_assistance": [1, 2], "assistance_gap": [1, 3]})
    gone = blank_absent(cells, ["receives_assistance"])
    assert gone["assistance_gap"].isna().all() and gone["n_no_assistance"].isna().all()
    weights = {"extreme_households": 0.5, "assistance_gap": 0.5}
    with_gap = score_cells(cells, weights=weights, smooth_rate=False)
    without = score_cells(gone, weights=weights, smooth_rate=False)
    assert with_gap.attrs["weights"]["assistance_gap"] == 0.5
    assert without.attrs["weights"] == {"extreme_households": 1.0, "extreme_rate": 0.0,
                                        "deprivation": 0.0, "travel": 0.0,
                                        "assistance_gap": 0.0}
    # by the definition: extreme households / the largest, weight 1
    np.testing.assert_allclose(without["priority"], [2 / 6, 1.0])
