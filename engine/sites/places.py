"""Name the place of each site: desa, kecamatan and regency, with BPS and Kemendagri codes.

A site is a point. Its **BPS 2020** village (desa/kelurahan), district (kecamatan) and
regency come from the shipped village polygons (point in polygon; a point in the sea or
a coastal sliver takes the nearest village within ``NEAREST_VILLAGE_M``). The regency's
**Kemendagri 2025** code comes from the regency layer. The **Kemendagri 2025** desa and
kecamatan codes come from the Kemendagri desa points that the shipped crosswalk maps to
the same BPS village, the one nearest the site (the two code systems are never matched on
digits, see :mod:`kantong.engine.inputs.boundaries`); sites whose BPS village has no
Kemendagri desa keep those two codes empty.
"""

from __future__ import annotations

import logging
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd

from kantong.engine import datapaths
from kantong.engine.constants import WGS84
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: A site outside every village polygon takes the nearest village within this distance.
NEAREST_VILLAGE_M: Final = 2000.0
#: Equal-area CRS used for point-to-polygon distances (metres).
_METRIC_CRS: Final = "EPSG:6933"
_EARTH_RADIUS_M: Final = 6_371_008.8

#: Columns added by :func:`name_places`, in order.
PLACE_COLUMNS: Final = (
    "village_code", "village_name", "district_code", "district_name", "regency_code",
    "regency_name", "regency_kemendagri_code", "village_kemendagri_code",
    "village_kemendagri_name", "district_kemendagri_code", "district_kemendagri_name",
)


def _haversine_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    lo1, la1, lo2, la2 = (np.radians(np.asarray(v, dtype=np.float64))
                          for v in (lon1, lat1, lon2, lat2))
    a = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * _EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _bps_villages(pts: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return the BPS village row of each point (NA when none within reach)."""
    vil = boundaries.villages()[["village_code", "village_name", "district_code",
                                 "district_name", "regency_code", "regency_name", "geometry"]]
    hit = gpd.sjoin(pts, vil, how="left", predicate="within")
    hit = hit[~hit.index.duplicated(keep="first")].drop(columns=["geometry", "index_right"])
    missing = hit["village_code"].isna().to_numpy()
    if missing.any():
        near = gpd.sjoin_nearest(pts[missing].to_crs(_METRIC_CRS), vil.to_crs(_METRIC_CRS),
                                 how="left", max_distance=NEAREST_VILLAGE_M)
        near = near[~near.index.duplicated(keep="first")]
        cols = [c for c in hit.columns if c in near.columns]
        hit.loc[near.index, cols] = near[cols].to_numpy()
        logger.info("%d sites outside every village polygon took the nearest village "
                    "(within %.0f m)", int(missing.sum()), NEAREST_VILLAGE_M)
    return hit


def _kemendagri_desa(villages: pd.Series, lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    """Return the Kemendagri desa (nearest among those of the same BPS village) per point."""
    desa = pd.read_csv(datapaths.data_file(datapaths.DESA_POINTS_KEMENDAGRI),
                       dtype={"kode": str, "kode_kec": str},
                       usecols=["kode", "nama", "kode_kec", "nama_kec", "lat", "lng"])
    cross = boundaries.kemendagri_village_crosswalk()
    desa = desa.rename(columns={"lat": "desa_lat", "lng": "desa_lon"})
    desa["village_code"] = desa["kode"].map(cross)
    sites = pd.DataFrame({"site": np.arange(len(villages)),
                          "village_code": villages.astype("string").to_numpy(),
                          "lon": lon, "lat": lat}).dropna(subset=["village_code"])
    pairs = sites.merge(desa.dropna(subset=["village_code"]).astype({"village_code": "string"}),
                        on="village_code", how="inner")
    out = pd.DataFrame(index=np.arange(len(villages)),
                       columns=["village_kemendagri_code", "village_kemendagri_name",
                                "district_kemendagri_code", "district_kemendagri_name"],
                       dtype="string")
    if len(pairs):
        pairs["d"] = _haversine_m(pairs["lon"], pairs["lat"], pairs["desa_lon"],
                                  pairs["desa_lat"])
        pairs = pairs.sort_values(["site", "d", "kode"], kind="stable")
        best = pairs.drop_duplicates("site").set_index("site")
        out.loc[best.index, "village_kemendagri_code"] = best["kode"].astype("string")
        out.loc[best.index, "village_kemendagri_name"] = best["nama"].astype("string")
        out.loc[best.index, "district_kemendagri_code"] = best["kode_kec"].astype("string")
        out.loc[best.index, "district_kemendagri_name"] = best["nama_kec"].astype("string")
    return out


def name_places(lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    """Return the desa, kecamatan and regency (BPS 2020 and Kemendagri 2025) of each point.

    Parameters
    ----------
    lon, lat
        Site coordinates, degrees EPSG:4326.

    Returns
    -------
    pandas.DataFrame
        One row per point (same order) with :data:`PLACE_COLUMNS` as strings; NA where a
        point lies outside the shipped boundaries.

    Examples
    --------
    >>> name_places([109.0026], [1.0021])["village_name"].tolist()  # doctest: +SKIP
    ['Semelagi Besar']
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=WGS84)
    bps = _bps_villages(pts).reset_index(drop=True)
    reg = boundaries.regencies()[["regency_code", "regency_kemendagri_code"]]
    bps = bps.merge(reg.astype("string"), on="regency_code", how="left")
    kem = _kemendagri_desa(bps["village_code"], lon, lat)
    out = pd.concat([bps.reset_index(drop=True), kem.reset_index(drop=True)], axis=1)
    return out[list(PLACE_COLUMNS)].astype("string")


__all__ = ["name_places", "PLACE_COLUMNS", "NEAREST_VILLAGE_M"]
