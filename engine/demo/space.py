"""Study area of the synthetic demo: the 1 km grid, boundary masks and point sampling.

Everything the demo generator draws lives on the GHS-POP 30 arc-second grid
(1/120 degree, about 1 km) clipped to a province's bounding box plus a margin.
Points are drawn pixel-first (proportional to a weight, usually population),
jittered uniformly inside the pixel, and kept only when they fall inside both
the province polygon and one of its village polygons; the rest are re-drawn.
Distances are measured in the UTM zone of the province.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio import features
from rasterio.windows import from_bounds
from scipy.spatial import cKDTree

from kantong.engine import datapaths
from kantong.engine.constants import WGS84
from kantong.engine.errors import EmptyInputError, InputError
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Margin (degrees) added around the province bounding box for the rasters.
GRID_MARGIN_DEG = 0.25
_MAX_ROUNDS = 60


@dataclass(frozen=True, eq=False)
class DemoArea:
    """The province, its units and the 1 km grid that every demo layer is drawn on.

    Attributes
    ----------
    province, province_name
        BPS province code and name.
    polygon
        The province polygon (EPSG:4326), prepared for fast point tests.
    regencies, districts, villages
        The province's units (EPSG:4326); villages carry ``village_code`` (BPS, or the
        ``K`` placeholder) and ``kemendagri_code``.
    population
        GHS-POP persons per pixel on the grid (float32, 0 outside the source extent).
    transform, crs
        Affine transform and CRS (EPSG:4326) of the grid.
    land
        Pixels touching any Kalimantan province polygon.
    in_province, province_border
        Pixels touching the province polygon, and those its boundary crosses.
    district_id, village_id
        Index (1-based, 0 = none) of the district / village whose polygon holds each
        pixel centre.
    towns
        GeoNames towns inside the grid: ``name, lon, lat, population``.
    metric_crs
        UTM zone used for distances.
    """

    province: str
    province_name: str
    polygon: shapely.Geometry
    regencies: gpd.GeoDataFrame
    districts: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    population: np.ndarray
    transform: Affine
    crs: str
    land: np.ndarray
    in_province: np.ndarray
    province_border: np.ndarray
    district_id: np.ndarray
    village_id: np.ndarray
    towns: pd.DataFrame
    metric_crs: str

    @property
    def shape(self) -> tuple[int, int]:
        """Return ``(rows, cols)`` of the grid."""
        return self.population.shape  # type: ignore[return-value]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(west, south, east, north)`` of the grid in degrees."""
        rows, cols = self.shape
        west, north = self.transform.c, self.transform.f
        return (west, north + rows * self.transform.e, west + cols * self.transform.a, north)

    def pixel_of(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the (row, col) of points, clipped to the grid."""
        col = np.floor((np.asarray(lon) - self.transform.c) / self.transform.a).astype(np.int64)
        row = np.floor((np.asarray(lat) - self.transform.f) / self.transform.e).astype(np.int64)
        rows, cols = self.shape
        return np.clip(row, 0, rows - 1), np.clip(col, 0, cols - 1)

    def pixel_centres(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return lon, lat of pixel centres."""
        lon = self.transform.c + (np.asarray(col) + 0.5) * self.transform.a
        lat = self.transform.f + (np.asarray(row) + 0.5) * self.transform.e
        return lon, lat

    def to_metric(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Project points to the metric CRS; return an ``(n, 2)`` array in metres."""
        tr = Transformer.from_crs(WGS84, self.metric_crs, always_xy=True)
        x, y = tr.transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        return np.column_stack([x, y])

    def nearest_m(self, lon: np.ndarray, lat: np.ndarray, to_lon: np.ndarray,
                  to_lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return distance (m) to, and index of, the nearest target point (KD-tree)."""
        if len(to_lon) == 0:
            return np.full(len(lon), np.inf), np.full(len(lon), -1, dtype=np.int64)
        tree = cKDTree(self.to_metric(to_lon, to_lat))
        dist, idx = tree.query(self.to_metric(lon, lat), k=1)
        return dist, idx.astype(np.int64)


def utm_crs(lon: float, lat: float) -> str:
    """Return the EPSG code of the UTM zone holding ``(lon, lat)``."""
    zone = int((lon + 180.0) // 6.0) + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _rasterize_ids(geoms: gpd.GeoSeries, shape: tuple[int, int], transform: Affine) -> np.ndarray:
    shapes = ((g, i + 1) for i, g in enumerate(geoms))
    return features.rasterize(shapes, out_shape=shape, transform=transform, fill=0,
                              all_touched=False, dtype="int32")


def _towns_in(bounds: tuple[float, float, float, float]) -> pd.DataFrame:
    towns = pd.read_csv(datapaths.data_file(datapaths.TOWNS),
                        usecols=["geonameid", "name", "lon", "lat", "population"])
    west, south, east, north = bounds
    inside = towns["lon"].between(west, east) & towns["lat"].between(south, north)
    return towns[inside].sort_values("geonameid", kind="stable").reset_index(drop=True)


def load_demo_area(province: str, *, margin_deg: float = GRID_MARGIN_DEG) -> DemoArea:
    """Load the province, its units and the population grid around it.

    Parameters
    ----------
    province
        BPS province code (``"61"`` .. ``"65"``).
    margin_deg
        Margin in degrees around the province bounding box.

    Returns
    -------
    DemoArea
        The grid is aligned with the bundled GHS-POP raster (same pixel edges).
    """
    code = boundaries.check_province(province)
    prov = boundaries.province_polygon(code)
    if prov.empty:
        raise InputError(f"{datapaths.PROVINCES}: no polygon for province {code}")
    polygon = prov.geometry.iloc[0]
    regs = boundaries.regencies()
    regs = regs[regs["province_code"] == code].reset_index(drop=True)
    dists = boundaries.districts()
    dists = dists[dists["province_code"] == code]
    dists = dists.sort_values("district_code").reset_index(drop=True)
    vils = boundaries.villages()
    vils = vils[vils["province_code"] == code].sort_values("village_code").reset_index(drop=True)
    if vils.empty:
        raise EmptyInputError(f"{datapaths.VILLAGES}: no villages for province {code}")

    west, south, east, north = polygon.bounds
    pop_path = datapaths.data_file(datapaths.POPULATION_TIF)
    with rasterio.open(pop_path) as src:
        if src.crs is None:
            raise InputError(f"{pop_path}: population raster has no CRS")
        window = from_bounds(west - margin_deg, south - margin_deg, east + margin_deg,
                             north + margin_deg, src.transform).round_offsets().round_lengths()
        population = src.read(1, window=window, boundless=True, fill_value=0).astype(np.float32)
        transform = src.window_transform(window)
    population[~np.isfinite(population) | (population < 0)] = 0.0
    shape = population.shape

    land_geoms = list(boundaries.provinces().geometry)
    land = features.rasterize(((g, 1) for g in land_geoms), out_shape=shape, transform=transform,
                              all_touched=True, dtype="uint8").astype(bool)
    in_province = features.rasterize([(polygon, 1)], out_shape=shape, transform=transform,
                                     all_touched=True, dtype="uint8").astype(bool)
    border = features.rasterize([(polygon.boundary, 1)], out_shape=shape, transform=transform,
                                all_touched=True, dtype="uint8").astype(bool)
    shapely.prepare(polygon)
    centre = polygon.centroid
    grid_bounds = (transform.c, transform.f + shape[0] * transform.e,
                   transform.c + shape[1] * transform.a, transform.f)
    area = DemoArea(
        province=code,
        province_name=boundaries.KALIMANTAN_PROVINCES[code],
        polygon=polygon,
        regencies=regs,
        districts=dists,
        villages=vils,
        population=population,
        transform=transform,
        crs=WGS84,
        land=land,
        in_province=in_province,
        province_border=border & in_province,
        district_id=_rasterize_ids(dists.geometry, shape, transform),
        village_id=_rasterize_ids(vils.geometry, shape, transform),
        towns=_towns_in(grid_bounds),
        metric_crs=utm_crs(centre.x, centre.y),
    )
    logger.info("study area %s: grid %d x %d, %.0f persons in province pixels, %d towns, %s",
                code, shape[0], shape[1], float(population[in_province].sum()), len(area.towns),
                area.metric_crs)
    return area


def locate_villages(area: DemoArea, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return the index (0-based into ``area.villages``) of the village holding each point.

    Points in no village polygon get -1. Points on a shared edge take the first village.
    """
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=WGS84)
    joined = gpd.sjoin(pts, area.villages[["geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    out = joined["index_right"].reindex(pts.index).to_numpy(dtype=np.float64)
    return np.where(np.isnan(out), -1, out).astype(np.int64)


def sample_points(area: DemoArea, n: int, rng: np.random.Generator, *,
                  weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` points proportionally to a pixel weight, inside the province and a village.

    Parameters
    ----------
    area
        The study area.
    n
        Number of points.
    rng
        Random generator (consumed deterministically).
    weights
        Non-negative weight per pixel (grid shape); default the population.

    Returns
    -------
    tuple of numpy.ndarray
        ``lon``, ``lat`` (degrees) and the village index into ``area.villages`` of each point.
    """
    w = area.population if weights is None else weights
    w = np.where(area.in_province & np.isfinite(w), np.maximum(w, 0.0), 0.0).ravel()
    total = float(w.sum(dtype=np.float64))
    if total <= 0:
        raise EmptyInputError(f"province {area.province}: no populated pixels to sample from")
    cdf = np.cumsum(w, dtype=np.float64)
    cdf /= cdf[-1]
    cols = area.shape[1]
    border = area.province_border.ravel()
    lon = np.empty(n)
    lat = np.empty(n)
    village = np.full(n, -1, dtype=np.int64)
    todo = np.arange(n)
    for round_ in range(_MAX_ROUNDS):
        if todo.size == 0:
            break
        k = todo.size
        pix = np.minimum(np.searchsorted(cdf, rng.random(k), side="right"), cdf.size - 1)
        row, col = np.divmod(pix, cols)
        # rounded to the 6 decimals the register stores, so the tests below hold as written
        x = np.round(area.transform.c + (col + rng.random(k)) * area.transform.a, 6)
        y = np.round(area.transform.f + (row + rng.random(k)) * area.transform.e, 6)
        ok = np.ones(k, dtype=bool)
        on_border = border[pix]
        ok[on_border] = shapely.contains_xy(area.polygon, x[on_border], y[on_border])
        vil = np.full(k, -1, dtype=np.int64)
        vil[ok] = locate_villages(area, x[ok], y[ok])
        ok &= vil >= 0
        lon[todo[ok]], lat[todo[ok]], village[todo[ok]] = x[ok], y[ok], vil[ok]
        logger.debug("sample round %d: %d of %d accepted", round_, int(ok.sum()), k)
        todo = todo[~ok]
    if todo.size:
        raise EmptyInputError(f"province {area.province}: could not place {todo.size} points "
                              "inside the province after repeated sampling")
    return lon, lat, village
