"""Facility layer ingest: formats, CRS, reasons, types."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from kantong.engine.build.placement import StudyArea
from kantong.engine.constants import WGS84
from kantong.engine.errors import CRSError, EmptyInputError, InputError, MissingColumnError
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.facilities import read_facilities

PROVINCE = "61"


@pytest.fixture(scope="module")
def area() -> gpd.GeoDataFrame:
    return boundaries.province_polygon(PROVINCE)


@pytest.fixture(scope="module")
def points61(area) -> pd.DataFrame:
    pts = boundaries.village_points()
    pts = pts[pts["province_code"] == PROVINCE].reset_index(drop=True)
    inside = StudyArea.from_layer(area).contains(pts["lon"].to_numpy(), pts["lat"].to_numpy())
    return pts[inside].sample(40, random_state=0).reset_index(drop=True)


def make_layer(points: pd.DataFrame, n: int = 10) -> gpd.GeoDataFrame:
    types = ["Puskesmas ", "posyandu", "SCHOOL", "water_point", "Pustu"]
    return gpd.GeoDataFrame({
        "facility_id": [f"F{i:03d}" for i in range(n)],
        "type": [types[i % len(types)] for i in range(n)],
        "name": [f"Facility {i}" for i in range(n)],
        "operator_phone": "0812-secret",
    }, geometry=gpd.points_from_xy(points["lon"][:n], points["lat"][:n]), crs=WGS84)


def test_geojson_types_normalised_and_unknown_kept(tmp_path, area, points61):
    layer = make_layer(points61)
    path = tmp_path / "f.geojson"
    layer.to_file(path, engine="pyogrio")
    result = read_facilities(path, study_area=area)
    acc = result.accepted
    assert result.read == 10 and len(acc) == 10 and result.rejects.empty
    assert list(acc.columns) == ["facility_id", "type", "name", "geometry"]
    assert acc.crs.to_epsg() == 4326
    assert set(acc["type"]) == {"puskesmas", "posyandu", "school", "water_point", "pustu"}
    assert acc["facility_id"].tolist() == layer["facility_id"].tolist()
    assert (acc.geometry.geom_type == "Point").all()


def test_each_bad_row_has_its_reason(tmp_path, area, points61):
    layer = make_layer(points61, n=12)
    layer.loc[1, "type"] = " "
    layer.loc[2, "geometry"] = None
    layer.loc[3, "geometry"] = shapely.LineString([(109.3, 0.0), (109.4, 0.1)])
    layer.loc[4, "geometry"] = shapely.Point(116.9, 0.5)  # Kalimantan Timur
    layer.loc[5, "facility_id"] = layer.loc[0, "facility_id"]
    square = shapely.box(109.30, -0.05, 109.32, -0.03)
    layer.loc[6, "geometry"] = square  # a footprint: kept as its representative point
    path = tmp_path / "bad.gpkg"
    layer.to_file(path, engine="pyogrio")
    result = read_facilities(path, study_area=area)
    rej = result.rejects
    assert rej["row"].tolist() == [2, 3, 4, 5, 6]
    assert rej["reason"].tolist() == ["missing type", "missing geometry", "non-point geometry",
                                      "outside study area", "duplicate facility_id"]
    assert rej["record_id"].tolist() == ["F001", "F002", "F003", "F004", "F000"]
    assert rej["source"].eq("bad.gpkg").all()
    assert len(result.accepted) + len(rej) == result.read == 12
    kept = result.accepted.set_index("facility_id").loc["F006", "geometry"]
    assert square.contains(kept)


def test_utm_gpkg_is_reprojected(tmp_path, area, points61):
    layer = make_layer(points61)
    path = tmp_path / "utm.gpkg"
    layer.to_crs("EPSG:32749").to_file(path, engine="pyogrio")
    result = read_facilities(path, study_area=area)
    assert result.accepted.crs.to_epsg() == 4326
    np.testing.assert_allclose(result.accepted.geometry.x, layer.geometry.x, atol=1e-7)
    np.testing.assert_allclose(result.accepted.geometry.y, layer.geometry.y, atol=1e-7)


def test_layer_without_crs_is_refused(tmp_path, points61):
    path = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):
        make_layer(points61).set_crs(None, allow_override=True).to_file(path, engine="pyogrio")
    with pytest.raises(CRSError, match="nocrs.gpkg.*no CRS"):
        read_facilities(path)


def test_csv_with_lon_lat_and_custom_type_column(tmp_path, area, points61):
    layer = make_layer(points61)
    table = pd.DataFrame({"ID": layer["facility_id"], "Jenis_Fasilitas": layer["type"],
                          "Longitude": layer.geometry.x.round(6).astype(str),
                          "Latitude": layer.geometry.y.round(6).astype(str)})
    table.loc[2, "Longitude"] = "abc"
    table.loc[3, "Latitude"] = ""
    table.loc[4, "Latitude"] = "95"
    path = tmp_path / "f.csv"
    table.to_csv(path, index=False)
    result = read_facilities(path, study_area=area, type_column="jenis_fasilitas")
    assert result.rejects["reason"].tolist() == ["non-numeric coordinates", "missing geometry",
                                                 "coordinates out of range"]
    assert len(result.accepted) == 7 and result.accepted["name"].isna().all()
    same = read_facilities(path, study_area=area)  # `jenis_fasilitas` is a known spelling
    pd.testing.assert_frame_equal(same.accepted, result.accepted)
    table.drop(columns="Jenis_Fasilitas").assign(kategori="x").to_csv(path, index=False)
    with pytest.raises(MissingColumnError, match=r"f\.csv: missing facility type column.*"
                                                 r"file columns: ID, Longitude, Latitude"):
        read_facilities(path)


def test_generated_ids_and_geoparquet(tmp_path, area, points61):
    layer = make_layer(points61).drop(columns=["facility_id"])
    path = tmp_path / "sekolah.parquet"
    layer.to_parquet(path)
    result = read_facilities(path, study_area=area)
    assert result.accepted["facility_id"].tolist() == [f"sekolah:{i}" for i in range(1, 11)]
    assert "operator_phone" not in result.accepted.columns


def test_unusable_files(tmp_path, points61):
    empty = tmp_path / "empty.geojson"
    make_layer(points61).iloc[:0].to_file(empty, engine="pyogrio")
    with pytest.raises(EmptyInputError, match="empty.geojson"):
        read_facilities(empty)
    junk = tmp_path / "junk.geojson"
    junk.write_text("{not json")
    with pytest.raises(InputError, match="junk.geojson"):
        read_facilities(junk)


def test_facilities_within_the_buffer_beyond_the_border_are_kept(tmp_path, area):
    """Points due east of Kalbar's easternmost vertex: 20 km out kept, 80 km out rejected
    (distances from pyproj.Geod, independent of the engine's projection)."""
    boundary = shapely.get_coordinates(area.geometry.iloc[0].exterior
                                       if area.geometry.iloc[0].geom_type == "Polygon"
                                       else max(area.geometry.iloc[0].geoms,
                                                key=lambda g: g.area).exterior)
    east = boundary[np.argmax(boundary[:, 0])]
    geod = __import__("pyproj").Geod(ellps="WGS84")
    lon20, lat20, _ = geod.fwd(east[0], east[1], 90, 20_000)
    lon80, lat80, _ = geod.fwd(east[0], east[1], 90, 80_000)
    layer = gpd.GeoDataFrame({"facility_id": ["near", "far"], "type": ["RSUD", "PUSKESMAS"],
                              "nama_faskes": ["RS Sebelah", "PKM Jauh"]},
                             geometry=gpd.points_from_xy([lon20, lon80], [lat20, lat80]),
                             crs=WGS84)
    path = tmp_path / "border.geojson"
    layer.to_file(path, engine="pyogrio")
    result = read_facilities(path, study_area=area, schema="p3ke")
    assert result.accepted["facility_id"].tolist() == ["near"]
    assert result.accepted["type"].tolist() == ["hospital"]
    assert result.accepted["name"].tolist() == ["RS Sebelah"]
    assert result.beyond_study_area == 1
    assert result.rejects["reason"].tolist() == ["outside study area"]
    wide = read_facilities(path, study_area=area, buffer_km=100)
    assert len(wide.accepted) == 2 and wide.accepted["type"].tolist() == ["rsud", "puskesmas"]
    inside_only = read_facilities(path, study_area=area, buffer_km=0)
    assert inside_only.accepted.empty
    with pytest.raises(InputError, match="buffer"):
        read_facilities(path, study_area=area, buffer_km=-1)
