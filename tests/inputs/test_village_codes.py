"""Village-code systems: Kemendagri codes without dots are never read as BPS codes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from kantong.engine import datapaths
from kantong.engine.errors import InputError
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.households import read_households, validate_households
from kantong.engine.inputs.village_codes import codes_to_bps, detect_system


@pytest.fixture(scope="module")
def collisions() -> pd.DataFrame:
    """Kemendagri desa codes whose digits are also a BPS code of another village (independent
    of the engine: straight from the two shipped code lists)."""
    kem = pd.read_csv(datapaths.data_file(datapaths.CODES_KEMENDAGRI), dtype=str)
    kem = kem[kem["level"] == "desa_kelurahan"]
    bps = pd.read_csv(datapaths.data_file(datapaths.VILLAGE_POINTS), dtype=str)
    digits = kem["kode"].str.replace(".", "", regex=False)
    both = kem[digits.isin(set(bps["adm4_code"].dropna()))]
    return both.assign(digits=both["kode"].str.replace(".", "", regex=False))


def test_the_shipped_lists_collide_as_the_issue_says(collisions):
    assert len(collisions) == 228
    assert collisions["kode"].str.startswith("61.").sum() == 73


def test_undotted_kemendagri_codes_are_placed_in_their_own_village(tmp_path, collisions):
    """A Kemendagri file (some codes dotted, the colliding ones without dots): every household
    lands inside the village polygon of its Kemendagri desa point, none in the BPS namesake."""
    kalbar = collisions[collisions["kode"].str.startswith("61.")].head(20)
    others = pd.read_csv(datapaths.data_file(datapaths.DESA_POINTS_KEMENDAGRI), dtype=str)
    others = others[~others["kode"].isin(collisions["kode"])].head(20)
    codes = list(kalbar["digits"]) + list(others["kode"])
    frame = pd.DataFrame({"household_id": [f"h{i}" for i in range(len(codes))],
                          "village_code": codes, "desil": "1", "members": "3"})
    for f in ("water_improved", "sanitation_improved", "electricity", "housing_adequate",
              "child_out_of_school", "receives_assistance"):
        frame[f] = "ya"
    result = validate_households(frame, source="k.csv")
    assert result.village_codes.system == "kemendagri"
    assert len(result.accepted) == len(codes) and result.rejects.empty
    desa = pd.read_csv(datapaths.data_file(datapaths.DESA_POINTS_KEMENDAGRI), dtype=str)
    desa = desa.set_index(desa["kode"].str.replace(".", "", regex=False))
    villages = boundaries.villages().set_index("village_code")
    acc = result.accepted.iloc[:20]
    for (_, row), digits in zip(acc.iterrows(), kalbar["digits"], strict=True):
        own = shapely.Point(float(desa.loc[digits, "lng"]), float(desa.loc[digits, "lat"]))
        home = villages.geometry[villages.geometry.contains(own)]
        placed = shapely.Point(row["lon"], row["lat"])
        assert home.iloc[0].contains(placed) or home.iloc[0].touches(placed)
        assert not villages.geometry.loc[digits].contains(placed)  # the BPS namesake


def test_only_colliding_codes_is_refused_naming_them(collisions):
    codes = pd.Series(collisions["digits"].head(5).to_list())
    with pytest.raises(InputError, match=r"ambiguous.*e\.g\. \d{10} = BPS .* / Kemendagri .*"
                                         r"--village-codes bps or --village-codes kemendagri"):
        detect_system(codes, source="c.csv")
    bps, why = codes_to_bps(codes, detect_system(codes, source="c.csv", system="bps"))
    assert bps.tolist() == codes.tolist() and why.isna().all()
    kem, _ = codes_to_bps(codes, "kemendagri")
    cw = boundaries.kemendagri_village_crosswalk()
    assert kem.tolist() == cw.loc[collisions["kode"].head(5)].tolist()
    assert not (kem == codes).any()


def test_majority_system_applies_and_the_minority_is_rejected(collisions):
    bps_only = boundaries.village_points()["village_code"]
    kem_digits = set(collisions["digits"])
    desa = pd.read_csv(datapaths.data_file(datapaths.CODES_KEMENDAGRI), dtype=str)
    kem_only = desa.loc[desa["level"] == "desa_kelurahan", "kode"].str.replace(".", "",
                                                                               regex=False)
    bps_only = bps_only[~bps_only.isin(set(kem_only)) & bps_only.str.fullmatch(r"\d{10}")]
    kem_only = kem_only[~kem_only.isin(kem_digits)]
    codes = pd.Series(list(kem_only.head(40)) + list(bps_only.head(1))
                      + list(collisions["digits"].head(2)))
    system = detect_system(codes, source="m.csv")
    assert (system.system, system.how) == ("kemendagri", "majority")
    assert system.counts["only_bps"] == 1 and system.counts["both"] == 2
    bps, why = codes_to_bps(codes, system)
    assert bps.iloc[:40].notna().all() and bps.iloc[41:].notna().all()
    assert pd.isna(bps.iloc[40]) and "is a BPS code" in why.iloc[40]
    mixed = pd.Series(list(kem_only.head(10)) + list(bps_only.head(10)))
    with pytest.raises(InputError, match="mix both systems"):
        detect_system(mixed, source="m.csv")


def test_wrong_system_code_is_a_reason_not_a_placement(tmp_path, collisions):
    path = tmp_path / "r.csv"
    desa = pd.read_csv(datapaths.data_file(datapaths.CODES_KEMENDAGRI), dtype=str)
    kem = desa.loc[desa["level"] == "desa_kelurahan", "kode"]
    kem = kem[~kem.isin(collisions["kode"])].str.replace(".", "", regex=False).head(30)
    frame = pd.DataFrame({"household_id": [f"h{i}" for i in range(31)],
                          "village_code": list(kem) + ["6101010001"], "desil": 1, "members": 2,
                          "lon": "", "lat": ""})
    for f in ("water_improved", "sanitation_improved", "electricity", "housing_adequate",
              "child_out_of_school", "receives_assistance"):
        frame[f] = "tidak"
    frame.to_csv(path, index=False)
    result = read_households(path)
    assert result.read == len(result.accepted) + len(result.rejects) == 31
    assert result.rejects["reason"].tolist() == [
        "missing coordinates; village_code is a BPS code (file read as Kemendagri codes)"]
    assert result.examples[result.rejects["reason"].iloc[0]] == "6101010001"
    explicit = read_households(path, village_codes="bps")
    assert len(explicit.accepted) == 1 + int(np.isin(kem, boundaries.village_points()[
        "village_code"]).sum())
