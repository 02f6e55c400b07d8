"""The shipped administrative boundaries and code systems, with uniform column names.

Every loader returns EPSG:4326 data with the BPS code as the key and the
Kemendagri code beside it (the two systems differ below province level; they
are never joined on digits alone). Loaded layers are cached per process.

Uniform columns: ``province_code``, ``province_name``, ``regency_code``,
``regency_name``, ``regency_kemendagri_code``, ``district_code``,
``district_name``, ``village_code``, ``village_name`` (all codes are strings).
"""

from __future__ import annotations

import functools
import logging

import geopandas as gpd
import pandas as pd

from kantong.engine import datapaths
from kantong.engine.constants import WGS84
from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)

_RENAME = {
    "adm1_code": "province_code", "adm1_name": "province_name",
    "adm2_code": "regency_code", "adm2_name": "regency_name",
    "adm3_code": "district_code", "adm3_name": "district_name",
    "adm4_code": "village_code", "adm4_name": "village_name",
}

#: Province codes of Kalimantan (the same in BPS and Kemendagri).
KALIMANTAN_PROVINCES = {
    "61": "Kalimantan Barat", "62": "Kalimantan Tengah", "63": "Kalimantan Selatan",
    "64": "Kalimantan Timur", "65": "Kalimantan Utara",
}


def _read(relative: str) -> gpd.GeoDataFrame:
    path = datapaths.data_file(relative)
    gdf = gpd.read_file(path, engine="pyogrio")
    if gdf.crs is None:
        raise InputError(f"{path}: boundary layer has no CRS")
    if gdf.crs.to_epsg() != 4326:
        logger.info("reprojecting %s from %s to %s", path.name, gdf.crs, WGS84)
        gdf = gdf.to_crs(WGS84)
    gdf = gdf.rename(columns=_RENAME)
    for col in _RENAME.values():
        if col in gdf.columns and col.endswith("_code"):
            gdf[col] = gdf[col].astype("string")
    return gdf


def check_province(code: str | int) -> str:
    """Return the province code as a string if it is a Kalimantan province, else raise."""
    code = str(code).strip()
    if code not in KALIMANTAN_PROVINCES:
        raise InputError(
            f"unknown province {code!r}: expected one of {', '.join(sorted(KALIMANTAN_PROVINCES))} "
            "(61 Kalbar, 62 Kalteng, 63 Kalsel, 64 Kaltim, 65 Kaltara)"
        )
    return code


@functools.cache
def provinces() -> gpd.GeoDataFrame:
    """Return the five Kalimantan provinces (BPS 2020)."""
    return _read(datapaths.PROVINCES)


@functools.cache
def regencies() -> gpd.GeoDataFrame:
    """Return the 56 regencies and cities (BPS 2020) with ``regency_kemendagri_code``."""
    gdf = _read(datapaths.REGENCIES)
    return gdf.rename(columns={"kemendagri_code": "regency_kemendagri_code",
                               "kemendagri_name": "regency_kemendagri_name"})


@functools.cache
def districts() -> gpd.GeoDataFrame:
    """Return the 618 kecamatan (BPS 2020) with their regency and province codes."""
    gdf = _read(datapaths.DISTRICTS)
    kemendagri = regencies()[["regency_code", "regency_kemendagri_code"]]
    return gdf.merge(kemendagri, on="regency_code", how="left")


@functools.cache
def villages() -> gpd.GeoDataFrame:
    """Return the 7,228 village polygons (BPS 2020).

    The 8 villages of Anggana have no BPS code; they get the placeholder code
    ``"K" + kemendagri digits`` so that every village has a unique key.
    """
    gdf = _read(datapaths.VILLAGES)
    missing = gdf["village_code"].isna()
    gdf.loc[missing, "village_code"] = "K" + gdf.loc[missing, "kemendagri_code"].str.replace(
        ".", "", regex=False)
    return gdf


@functools.cache
def village_points() -> pd.DataFrame:
    """Return one representative point per village (inside it): ``village_code, lon, lat``."""
    pts = pd.read_csv(datapaths.data_file(datapaths.VILLAGE_POINTS), dtype=str)
    pts = pts.rename(columns=_RENAME)
    missing = pts["village_code"].isna()
    pts.loc[missing, "village_code"] = "K" + pts.loc[missing, "kemendagri_code"].str.replace(
        ".", "", regex=False)
    for col in ("lon", "lat", "area_km2"):
        pts[col] = pts[col].astype(float)
    keep = ["village_code", "village_name", "district_code", "regency_code", "province_code",
            "lon", "lat", "area_km2"]
    return pts[keep]


@functools.cache
def kemendagri_village_crosswalk() -> pd.Series:
    """Map Kemendagri 2025 desa codes (dotted) to BPS 2020 village codes.

    Derived by point-in-polygon: each Kemendagri desa point is assigned the BPS
    village polygon that holds it. Desa points outside every BPS polygon (coast
    slivers) map to the nearest village within 2 km, else they are left out.

    Returns
    -------
    pandas.Series
        Index: Kemendagri code (``"61.07.01.2001"``); values: BPS village code.
    """
    desa = pd.read_csv(datapaths.data_file(datapaths.DESA_POINTS_KEMENDAGRI), dtype={"kode": str})
    pts = gpd.GeoDataFrame(
        {"kode": desa["kode"]}, geometry=gpd.points_from_xy(desa["lng"], desa["lat"]), crs=WGS84
    )
    vil = villages()[["village_code", "geometry"]]
    joined = gpd.sjoin(pts.to_crs("EPSG:6933"), vil.to_crs("EPSG:6933"), how="left",
                       predicate="within")
    joined = joined[~joined.index.duplicated()]
    out = joined.set_index("kode")["village_code"]
    unmatched = out.isna()
    if unmatched.any():
        near = gpd.sjoin_nearest(pts[unmatched.to_numpy()].to_crs("EPSG:6933"),
                                 vil.to_crs("EPSG:6933"), max_distance=2000, how="left")
        near = near[~near.index.duplicated()].set_index("kode")["village_code"]
        out.loc[near.index] = near
    out = out.dropna()
    logger.debug("kemendagri village crosswalk: %d of %d desa matched", len(out), len(desa))
    return out.astype(str)


def normalise_village_codes(codes: pd.Series) -> pd.Series:
    """Return BPS 10-digit village codes for a column of BPS or Kemendagri dotted codes.

    Parameters
    ----------
    codes
        Village codes as read: BPS ``"6102010001"`` or Kemendagri ``"61.07.01.2001"``;
        blanks allowed.

    Returns
    -------
    pandas.Series
        The BPS village code of each row, or ``<NA>`` where the code is blank, malformed or
        names no village in the shipped boundaries. Digits are never reinterpreted across
        code systems: dotted codes go through the crosswalk only.
    """
    raw = codes.astype("string").str.strip()
    raw = raw.str.replace(r"\.0$", "", regex=True)  # "6101010001.0" from a float column
    known = set(village_points()["village_code"])
    is_dotted = raw.str.fullmatch(r"\d{2}\.\d{2}\.\d{2}\.\d{4}").fillna(False)
    is_bps = raw.str.fullmatch(r"\d{10}").fillna(False)
    out = pd.Series(pd.NA, index=codes.index, dtype="string")
    bps_ok = is_bps & raw.isin(known)
    out[bps_ok] = raw[bps_ok]
    if is_dotted.any():
        crosswalk = kemendagri_village_crosswalk()
        mapped = raw[is_dotted].map(crosswalk)
        out[is_dotted] = mapped.astype("string")
    return out


def province_polygon(code: str) -> gpd.GeoDataFrame:
    """Return the single-row GeoDataFrame of one province (BPS 2020)."""
    code = check_province(code)
    prov = provinces()
    return prov[prov["province_code"] == code].reset_index(drop=True)


def study_area_bounds(gdf: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    """Return ``(west, south, east, north)`` of a layer in EPSG:4326."""
    west, south, east, north = gdf.to_crs(WGS84).total_bounds
    return float(west), float(south), float(east), float(north)


__all__ = [
    "KALIMANTAN_PROVINCES", "check_province", "provinces", "regencies", "districts", "villages",
    "village_points", "kemendagri_village_crosswalk", "normalise_village_codes",
    "province_polygon", "study_area_bounds",
]

