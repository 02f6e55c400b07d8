"""Household ingest: every bad input has its reason, formats, CRS, streaming, privacy."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kantong.engine.build.placement import StudyArea
from kantong.engine.constants import DEPRIVATION_FIELDS, PERSONAL_FIELDS, WGS84
from kantong.engine.errors import CRSError, EmptyInputError, InputError, MissingColumnError
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.households import (
    iter_household_batches,
    read_households,
    validate_households,
)

PROVINCE = "61"
SECRET = "SECRET-PERSONAL-7731"


@pytest.fixture(scope="module")
def area() -> gpd.GeoDataFrame:
    return boundaries.province_polygon(PROVINCE)


@pytest.fixture(scope="module")
def villages61(area: gpd.GeoDataFrame) -> pd.DataFrame:
    """Village representative points of the province that lie inside the study area."""
    pts = boundaries.village_points()
    pts = pts[pts["province_code"] == PROVINCE].reset_index(drop=True)
    inside = StudyArea.from_layer(area).contains(pts["lon"].to_numpy(), pts["lat"].to_numpy())
    return pts[inside].reset_index(drop=True)


def make_register(villages: pd.DataFrame, n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A clean register of ``n`` households at village points (tiny jitter), text columns."""
    rng = np.random.default_rng(seed)
    pick = villages.iloc[rng.integers(0, len(villages), n)].reset_index(drop=True)
    frame = pd.DataFrame({
        "household_id": [f"HH-{seed}-{i:05d}" for i in range(n)],
        "lon": pick["lon"].round(6).astype(str),
        "lat": pick["lat"].round(6).astype(str),
        "desil": rng.integers(1, 5, n).astype(str),
        "members": rng.integers(1, 9, n).astype(str),
        "village_code": pick["village_code"].to_numpy(),
    })
    for field in DEPRIVATION_FIELDS:
        frame[field] = np.where(rng.random(n) < 0.5, "true", "false")
    frame["nama"] = SECRET
    frame["NIK"] = "6101" + SECRET
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_clean_csv_is_all_accepted_and_typed(tmp_path, area, villages61):
    frame = make_register(villages61, n=30)
    result = read_households(write_csv(frame, tmp_path / "h.csv"), study_area=area)
    acc = result.accepted
    assert result.read == 30 and len(acc) == 30 and result.rejects.empty
    assert list(acc.columns) == ["household_id", "lon", "lat", "desil", "members",
                                 "village_code", "location_precision", *DEPRIVATION_FIELDS]
    assert acc["household_id"].dtype == "string"
    assert acc["lon"].dtype == np.float64 and acc["lat"].dtype == np.float64
    assert acc["desil"].dtype == np.int8 and acc["members"].dtype == np.int16
    assert acc["village_code"].dtype == "string"
    assert all(acc[f].dtype == bool for f in DEPRIVATION_FIELDS)
    assert (acc["location_precision"] == "point").all()
    assert result.village_located == 0
    np.testing.assert_allclose(acc["lon"], frame["lon"].astype(float))
    assert acc["village_code"].tolist() == frame["village_code"].tolist()
    assert acc["water_improved"].tolist() == (frame["water_improved"] == "true").tolist()
    assert list(result.rejects.columns) == ["source", "row", "record_id", "reason"]


# (column, bad value, expected reason); the village code is blanked for coordinate cases
BAD_CASES = [
    ("household_id", "", "missing household_id"),
    ("desil", "", "missing desil"),
    ("desil", "5", "invalid desil"),
    ("desil", "0", "invalid desil"),
    ("desil", "2.5", "invalid desil"),
    ("desil", "satu", "invalid desil"),
    ("members", "", "missing members"),
    ("members", "0", "invalid members"),
    ("members", "-2", "invalid members"),
    ("members", "3.5", "invalid members"),
    ("members", "dua", "invalid members"),
    ("water_improved", "", "missing water_improved"),
    ("water_improved", "maybe", "invalid water_improved"),
    ("child_out_of_school", "2", "invalid child_out_of_school"),
    ("lon", "", "missing coordinates"),
    ("lat", "", "missing coordinates"),
    ("lon", "109,33", "non-numeric coordinates"),
    ("lat", "0.12S", "non-numeric coordinates"),
    ("lon", "200", "lon out of range"),
    ("lat", "-95", "lat out of range"),
    ("lon", "116.9", "outside study area"),  # Kalimantan Timur, outside province 61
]


@pytest.mark.parametrize(("column", "value", "reason"), BAD_CASES)
def test_each_bad_value_is_rejected_with_its_reason(tmp_path, area, villages61, column, value,
                                                    reason):
    frame = make_register(villages61, n=12)
    frame.loc[5, column] = value
    frame.loc[5, "village_code"] = ""  # no fallback placement
    result = read_households(write_csv(frame, tmp_path / "bad.csv"), study_area=area)
    assert result.read == 12 and len(result.accepted) == 11
    rej = result.rejects
    assert rej["row"].tolist() == [6] and rej["reason"].tolist() == [reason]
    assert rej["source"].tolist() == ["bad.csv"]
    assert rej["record_id"].tolist() == ([""] if column == "household_id" else [frame.loc[5,
                                         "household_id"]])


def test_swapped_coordinates_rejected_without_village_code(tmp_path, area, villages61):
    frame = make_register(villages61, n=10)
    frame.loc[3, ["lon", "lat"]] = frame.loc[3, ["lat", "lon"]].to_numpy()
    frame.loc[3, "village_code"] = None
    result = read_households(write_csv(frame, tmp_path / "s.csv"), study_area=area)
    assert result.rejects["reason"].tolist() == ["lat/lon swapped"]
    # without a study area the Indonesia bounding box recognises the swap
    result = read_households(tmp_path / "s.csv")
    assert result.rejects["reason"].tolist() == ["lat/lon swapped"]


def test_unknown_village_code_is_named_in_the_reason(tmp_path, area, villages61):
    frame = make_register(villages61, n=10)
    frame.loc[2, ["lon", "lat"]] = ""
    frame.loc[2, "village_code"] = "6199999999"
    frame.loc[4, "village_code"] = "not-a-code"  # usable point: accepted, code NA
    result = read_households(write_csv(frame, tmp_path / "u.csv"), study_area=area)
    assert result.rejects["reason"].tolist() == ["missing coordinates; unknown village_code"]
    acc = result.accepted.set_index("household_id")
    assert pd.isna(acc.loc[frame.loc[4, "household_id"], "village_code"])


def test_duplicate_ids_keep_the_first(tmp_path, area, villages61):
    frame = make_register(villages61, n=10)
    frame.loc[7, "household_id"] = frame.loc[1, "household_id"]
    frame.loc[8, "household_id"] = " " + frame.loc[1, "household_id"] + " "  # stripped
    result = read_households(write_csv(frame, tmp_path / "d.csv"), study_area=area)
    assert result.rejects["row"].tolist() == [8, 9]
    assert set(result.rejects["reason"]) == {"duplicate household_id"}
    assert frame.loc[1, "household_id"] in set(result.accepted["household_id"])


def test_duplicate_ids_across_batches(tmp_path, area, villages61):
    frame = make_register(villages61, n=20)
    frame.loc[17, "household_id"] = frame.loc[2, "household_id"]
    path = write_csv(frame, tmp_path / "d.csv")
    result = read_households(path, study_area=area, chunk_rows=5)
    assert result.rejects["row"].tolist() == [18]
    assert result.rejects["reason"].tolist() == ["duplicate household_id"]
    seen: set = set()
    first = validate_households(frame.iloc[:10], source="d.csv", seen_ids=seen)
    second = validate_households(frame.iloc[10:], source="d.csv", row_offset=10, seen_ids=seen)
    assert first.rejects.empty and second.rejects["row"].tolist() == [18]
    assert len(seen) == 19


def test_streamed_batches_equal_one_batch(tmp_path, area, villages61):
    frame = make_register(villages61, n=60, seed=3)
    frame.loc[[4, 30], "desil"] = "9"
    frame.loc[[10, 50], ["lon", "lat"]] = ""  # placed from the village code
    frame.loc[44, "household_id"] = frame.loc[12, "household_id"]
    frame.loc[33, "members"] = "x"
    path = write_csv(frame, tmp_path / "s.csv")
    whole = read_households(path, study_area=area)
    streamed = read_households(path, study_area=area, chunk_rows=7)
    pd.testing.assert_frame_equal(whole.accepted, streamed.accepted)
    pd.testing.assert_frame_equal(whole.rejects, streamed.rejects)
    assert whole.village_located == streamed.village_located == 2
    batches = list(iter_household_batches(path, batch_rows=7))
    assert [len(b) for b in batches] == [7] * 8 + [4]


def test_invariant_and_row_numbers(tmp_path, area, villages61):
    frame = make_register(villages61, n=50, seed=5)
    rng = np.random.default_rng(5)
    for col in ("desil", "members", "lon", "household_id", "electricity"):
        frame.loc[rng.integers(0, 50, 4), col] = ""
    result = read_households(write_csv(frame, tmp_path / "m.csv"), study_area=area,
                             chunk_rows=9)
    assert len(result.accepted) + len(result.rejects) == result.read == 50
    assert result.rejects["row"].is_unique and result.rejects["row"].between(1, 50).all()


def test_village_placement_for_unusable_coordinates(tmp_path, area, villages61):
    frame = make_register(villages61, n=12)
    frame.loc[0, ["lon", "lat"]] = ""                                          # blank
    frame.loc[1, "lon"] = "abc"                                                # non-numeric
    frame.loc[2, ["lon", "lat"]] = frame.loc[2, ["lat", "lon"]].to_numpy()     # swapped
    frame.loc[3, ["lon", "lat"]] = ["116.9", "0.5"]                            # outside area
    frame.loc[4, "lat"] = "123"                                                # out of range
    result = read_households(write_csv(frame, tmp_path / "p.csv"), study_area=area)
    assert result.rejects.empty and result.village_located == 5
    acc = result.accepted
    assert acc["location_precision"].tolist() == ["village"] * 5 + ["point"] * 7
    polys = boundaries.villages().set_index("village_code").geometry
    geoms = polys.reindex(acc["village_code"][:5]).to_numpy()
    assert shapely.contains_xy(geoms, acc["lon"][:5], acc["lat"][:5]).all()
    assert StudyArea.from_layer(area).contains(acc["lon"].to_numpy(), acc["lat"].to_numpy()).all()


def test_kemendagri_dotted_codes_are_placed_in_their_bps_village(tmp_path, area):
    crosswalk = boundaries.kemendagri_village_crosswalk()
    crosswalk = crosswalk[crosswalk.str.startswith(PROVINCE)]
    dotted = crosswalk.sample(8, random_state=1)
    n = len(dotted)
    frame = pd.DataFrame({
        "household_id": [f"K{i}" for i in range(n)], "lon": "", "lat": "",
        "desil": "1", "members": "4", "kode_desa": dotted.index.to_numpy(),
        **{f: "ya" for f in DEPRIVATION_FIELDS},
    })
    result = read_households(write_csv(frame, tmp_path / "k.csv"), study_area=area)
    acc = result.accepted
    assert len(acc) == n and result.village_located == n
    assert acc["village_code"].tolist() == dotted.tolist()
    polys = boundaries.villages().set_index("village_code").geometry
    assert shapely.contains_xy(polys.reindex(dotted.to_numpy()).to_numpy(), acc["lon"],
                               acc["lat"]).all()


def test_aliases_case_and_boolean_spellings(tmp_path, villages61):
    frame = make_register(villages61, n=8).rename(columns={
        "household_id": "HH_ID", "lon": "Longitude", "lat": "LATITUDE", "desil": "Decile",
        "members": "jumlah_art", "village_code": "Kode_Desa"})
    spellings = ["ya", "tidak", "Yes", "NO", "1", "0", "TRUE", "f"]
    frame["water_improved"] = spellings
    result = read_households(write_csv(frame, tmp_path / "a.csv"))
    assert len(result.accepted) == 8
    assert result.accepted["water_improved"].tolist() == [True, False] * 4


def test_semicolon_csv_with_bom(tmp_path, villages61):
    frame = make_register(villages61, n=6)
    path = tmp_path / "excel.csv"
    frame.to_csv(path, index=False, sep=";", encoding="utf-8-sig")
    result = read_households(path)
    assert len(result.accepted) == 6


def test_compressed_and_non_utf8_csv(tmp_path, villages61):
    frame = make_register(villages61, n=6)
    frame.to_csv(tmp_path / "h.csv.gz", index=False)
    assert len(read_households(tmp_path / "h.csv.gz").accepted) == 6
    frame["nama"] = "Jos\xe9 " + SECRET  # an Excel cp1252 export: not UTF-8
    frame.to_csv(tmp_path / "latin.csv", index=False, encoding="latin-1")
    result = read_households(tmp_path / "latin.csv")
    assert len(result.accepted) == 6 and "nama" not in result.accepted.columns


def test_personal_fields_never_leave_ingest(tmp_path, area, villages61):
    frame = make_register(villages61, n=10)
    for i, field in enumerate(sorted(PERSONAL_FIELDS)):
        frame[field.upper() if i % 2 else field] = f"{SECRET}-{field}"
    frame.loc[3, "desil"] = "7"  # a reject carries personal columns too
    path = write_csv(frame, tmp_path / "p.csv")
    for batch in iter_household_batches(path):
        assert not {c.lower() for c in batch.columns} & PERSONAL_FIELDS
    result = read_households(path, study_area=area)
    assert len(result.rejects) == 1
    for table in (result.accepted, result.rejects):
        assert not {c.lower() for c in table.columns} & PERSONAL_FIELDS
        text = table.astype(str).to_numpy().ravel()
        assert not any(SECRET in value for value in text)


def test_unknown_columns_are_dropped(tmp_path, villages61):
    frame = make_register(villages61, n=5)
    frame["catatan"] = "free text"
    result = read_households(write_csv(frame, tmp_path / "x.csv"))
    assert "catatan" not in result.accepted.columns


def _as_points(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    data = frame.drop(columns=["lon", "lat"]).copy()
    data["desil"] = data["desil"].astype(int)
    data["members"] = data["members"].astype(int)
    for field in DEPRIVATION_FIELDS:
        data[field] = data[field] == "true"
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(frame["lon"].astype(float),
                                                              frame["lat"].astype(float)),
                            crs=WGS84)


@pytest.mark.parametrize("suffix", ["geojson", "gpkg", "parquet"])
def test_utm_layers_are_reprojected(tmp_path, area, villages61, suffix):
    frame = make_register(villages61, n=15)
    gdf = _as_points(frame).to_crs("EPSG:32749")
    path = tmp_path / f"h.{suffix}"
    if suffix == "parquet":
        gdf.to_parquet(path)
    else:
        gdf.to_file(path, engine="pyogrio")
    result = read_households(path, study_area=area)
    assert len(result.accepted) == 15
    np.testing.assert_allclose(result.accepted["lon"], frame["lon"].astype(float), atol=1e-7)
    np.testing.assert_allclose(result.accepted["lat"], frame["lat"].astype(float), atol=1e-7)
    assert not {c.lower() for c in result.accepted.columns} & PERSONAL_FIELDS
    streamed = read_households(path, study_area=area, chunk_rows=4)
    pd.testing.assert_frame_equal(result.accepted, streamed.accepted)


def test_vector_layer_without_crs_is_refused(tmp_path, villages61):
    gdf = _as_points(make_register(villages61, n=5)).set_crs(None, allow_override=True)
    path = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        gdf.to_file(path, engine="pyogrio")
    with pytest.raises(CRSError, match="nocrs.gpkg.*no CRS"):
        read_households(path)
    with pytest.raises(CRSError, match="no CRS"):
        validate_households(gdf, source="frame")


def test_geoparquet_with_null_crs_is_refused(tmp_path, villages61):
    gdf = _as_points(make_register(villages61, n=5)).set_crs(None, allow_override=True)
    path = tmp_path / "nocrs.parquet"
    gdf.to_parquet(path)
    with pytest.raises(CRSError, match="nocrs.parquet"):
        read_households(path)


def test_non_point_geometry_and_null_geometry(tmp_path, villages61):
    gdf = _as_points(make_register(villages61, n=6))
    gdf.loc[1, "village_code"] = None
    gdf.loc[2, "village_code"] = None
    gdf.loc[1, "geometry"] = shapely.LineString([(110, 0), (110.1, 0.1)])
    gdf.loc[2, "geometry"] = None
    path = tmp_path / "g.geojson"
    gdf.to_file(path, engine="pyogrio")
    result = read_households(path)
    assert result.rejects["reason"].tolist() == ["non-point geometry", "missing coordinates"]
    assert result.rejects["row"].tolist() == [2, 3]


def test_plain_parquet_with_lon_lat_and_numeric_types(tmp_path, area, villages61):
    frame = make_register(villages61, n=20)
    typed = frame.assign(lon=frame["lon"].astype(float), lat=frame["lat"].astype(float),
                         desil=frame["desil"].astype(int), members=frame["members"].astype(int))
    typed.loc[3, "lon"] = np.nan
    typed.loc[3, "village_code"] = None
    path = tmp_path / "h.parquet"
    pq.write_table(pa.Table.from_pandas(typed, preserve_index=False), path, row_group_size=6)
    whole = read_households(path, study_area=area)
    assert whole.rejects["reason"].tolist() == ["missing coordinates"]
    streamed = read_households(path, study_area=area, chunk_rows=6)
    pd.testing.assert_frame_equal(whole.accepted, streamed.accepted)


def test_missing_required_column(tmp_path, villages61):
    frame = make_register(villages61, n=5).drop(columns=["desil"])
    with pytest.raises(MissingColumnError, match=r"m\.csv.*desil"):
        read_households(write_csv(frame, tmp_path / "m.csv"))
    frame = make_register(villages61, n=5).drop(columns=["lat"])
    with pytest.raises(MissingColumnError, match="no lat column"):
        read_households(write_csv(frame, tmp_path / "m.csv"))
    frame = make_register(villages61, n=5).drop(columns=["lat", "lon", "village_code"])
    with pytest.raises(MissingColumnError, match="no location"):
        read_households(write_csv(frame, tmp_path / "m.csv"))


def test_village_code_alone_is_a_location(tmp_path, villages61):
    frame = make_register(villages61, n=5).drop(columns=["lat", "lon"])
    result = read_households(write_csv(frame, tmp_path / "v.csv"))
    assert result.village_located == 5


def test_unusable_files(tmp_path, villages61):
    header_only = make_register(villages61, n=3).iloc[:0]
    with pytest.raises(EmptyInputError, match="empty.csv"):
        read_households(write_csv(header_only, tmp_path / "empty.csv"))
    garbage = tmp_path / "garbage.gpkg"
    garbage.write_bytes(b"\x00\x01 not a geopackage " * 20)
    with pytest.raises(InputError, match="garbage.gpkg"):
        read_households(garbage)
    with pytest.raises(InputError, match="not found"):
        read_households(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="garbage.parquet"):
        read_households(garbage.rename(tmp_path / "garbage.parquet"))


def test_frame_not_mutated(villages61):
    frame = make_register(villages61, n=6)
    typed = frame.assign(lon=frame["lon"].astype(float), lat=frame["lat"].astype(float))
    typed.loc[0, "lon"] = np.nan
    before = typed.copy()
    validate_households(typed, source="frame")
    pd.testing.assert_frame_equal(typed, before)


MESSY = st.one_of(st.none(), st.just(""), st.just(" "), st.text(max_size=4),
                  st.integers(-3, 12).map(str), st.floats(allow_nan=True).map(str),
                  st.sampled_from(["ya", "tidak", "true", "0", "1", "2.0", "6101010001",
                                   "61.01.01.2001", "110.2", "-0.5", "nan"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_every_row_accepted_or_rejected(villages61, data):
    n = data.draw(st.integers(1, 25))
    columns = ["household_id", "lon", "lat", "desil", "members", "village_code",
               *DEPRIVATION_FIELDS]
    frame = pd.DataFrame({c: data.draw(st.lists(MESSY, min_size=n, max_size=n))
                          for c in columns}, dtype=object)
    clean = make_register(villages61, n=n, seed=data.draw(st.integers(0, 5)))
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    frame[keep] = clean[columns][keep].to_numpy()
    seen: set = set()
    result = validate_households(frame, source="messy.csv", row_offset=100, seen_ids=seen)
    assert len(result.accepted) + len(result.rejects) == result.read == n
    assert result.rejects["row"].is_unique
    assert result.rejects["row"].between(101, 100 + n).all()
    assert result.rejects["reason"].str.len().gt(0).all()
    acc = result.accepted
    assert np.isfinite(acc["lon"]).all() and np.isfinite(acc["lat"]).all()
    assert acc["desil"].between(1, 4).all() and (acc["members"] >= 1).all()
    assert acc["household_id"].is_unique
