"""Where households go in space: the study-area test, and placement from a village code.

A household whose coordinates are missing or unusable but whose village code is
valid is placed at a populated point of that village:

1. the populated 1 km pixels of the population raster whose centre lies inside the
   village polygon are the candidates (computed once per process);
2. a hash of ``household_id`` (and ``seed``) picks one candidate, weighted by the
   pixel's population, and a jitter inside that pixel;
3. a jittered point that falls outside the village (or the study area) is drawn again
   (three more jitters from further hash streams), then pulled back towards the pixel
   centre (1/2, 1/4, 1/8, 1/16 of the jitter, then the centre itself);
4. a village without any populated pixel centre uses its representative point
   (:func:`engine.boundaries.village_points`, inside the polygon) with a jitter of
   at most half a pixel, pulled back the same way.

Everything is vectorised over households; the result depends only on the
household id, its village and ``seed`` (not on the batch it arrives in).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from engine import boundaries, datapaths
from engine.constants import WGS84
from engine.errors import CRSError, InputError
from engine.rasters import open_raster

logger = logging.getLogger(__name__)

#: Most cells of the study-area lookup grid (its resolution adapts to the area's extent).
_MAX_MASK_CELLS = 4_000_000
#: Finest resolution of the study-area lookup grid, degrees.
_MIN_MASK_RES = 0.005
#: Attempts (jitter draw, scale) tried in turn until the point lies inside its village:
#: fresh draws first, then the first draw shrunk towards the candidate centre (scale 0).
_ATTEMPTS = ((0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (0, 0.5), (0, 0.25), (0, 0.125),
             (0, 0.0625), (0, 0.0))
_DRAWS = 4
_OUTSIDE, _INSIDE, _EDGE = np.uint8(0), np.uint8(1), np.uint8(2)


@dataclass(frozen=True, eq=False)
class StudyArea:
    """A study area in EPSG:4326 with a fast vectorised point-in-polygon test.

    A lookup grid marks cells wholly inside, wholly outside or crossed by the boundary;
    only points in boundary cells go through the exact test (``shapely.contains_xy``).
    Build it with :meth:`from_layer`.
    """

    geometry: BaseGeometry
    grid: np.ndarray
    transform: Affine

    @classmethod
    def from_layer(cls, layer: gpd.GeoDataFrame | gpd.GeoSeries | BaseGeometry | StudyArea
                   ) -> StudyArea:
        """Return the study area of a layer (its union), reprojected to EPSG:4326.

        Parameters
        ----------
        layer
            Polygons with a CRS (a shapely geometry is taken as EPSG:4326).

        Raises
        ------
        CRSError
            The layer has no CRS.
        InputError
            The layer is empty.
        """
        if isinstance(layer, StudyArea):
            return layer
        if isinstance(layer, gpd.GeoDataFrame | gpd.GeoSeries):
            if layer.crs is None:
                raise CRSError("study area: layer has no CRS")
            if not pyproj.CRS(layer.crs).equals(WGS84, ignore_axis_order=True):
                logger.info("reprojecting study area from %s to %s", layer.crs, WGS84)
                layer = layer.to_crs(WGS84)
            geoms = layer.geometry.to_numpy() if isinstance(layer, gpd.GeoDataFrame) \
                else layer.to_numpy()
        else:
            geoms = np.asarray([layer])
        return _study_area_cached(tuple(shapely.to_wkb(geoms)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(west, south, east, north)`` in EPSG:4326."""
        west, south, east, north = self.geometry.bounds
        return float(west), float(south), float(east), float(north)

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return a bool array: which points (EPSG:4326) lie inside the study area.

        Non-finite coordinates are outside. Points on the boundary count as outside
        (``shapely.contains_xy`` semantics).
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        out = np.zeros(lon.shape, dtype=bool)
        t = self.transform
        with np.errstate(invalid="ignore"):
            col = np.floor((lon - t.c) / t.a)
            row = np.floor((lat - t.f) / t.e)
        height, width = self.grid.shape
        inb = (col >= 0) & (col < width) & (row >= 0) & (row < height)  # False for NaN
        idx = np.flatnonzero(inb)
        state = self.grid[row[idx].astype(np.int64), col[idx].astype(np.int64)]
        out[idx[state == _INSIDE]] = True
        edge = idx[state == _EDGE]
        if edge.size:
            out[edge] = shapely.contains_xy(self.geometry, lon[edge], lat[edge])
        return out


@functools.lru_cache(maxsize=8)
def _study_area_cached(wkb: tuple[bytes, ...]) -> StudyArea:
    geoms = shapely.from_wkb(np.asarray(wkb, dtype=object))
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if geoms.size == 0:
        raise InputError("study area: layer holds no geometry")
    geom = geoms[0] if geoms.size == 1 else shapely.union_all(geoms)
    geom = shapely.make_valid(geom) if not shapely.is_valid(geom) else geom
    shapely.prepare(geom)
    west, south, east, north = geom.bounds
    res = max(_MIN_MASK_RES, float(np.sqrt((east - west) * (north - south) / _MAX_MASK_CELLS)))
    width = int(np.ceil((east - west) / res)) + 2
    height = int(np.ceil((north - south) / res)) + 2
    transform = Affine(res, 0.0, west - res, 0.0, -res, north + res)
    inside = rasterio.features.rasterize([(geom, 1)], out_shape=(height, width),
                                         transform=transform, dtype="uint8")
    edge = rasterio.features.rasterize([(geom.boundary, 1)], out_shape=(height, width),
                                       transform=transform, all_touched=True, dtype="uint8")
    edge = ndimage.binary_dilation(edge.astype(bool), iterations=1)
    grid = np.where(edge, _EDGE, np.where(inside.astype(bool), _INSIDE, _OUTSIDE)).astype(np.uint8)
    logger.debug("study area grid %d x %d at %.4f deg, %.1f%% boundary cells", width, height,
                 res, 100.0 * edge.mean())
    return StudyArea(geometry=geom, grid=grid, transform=transform)


@dataclass(frozen=True, eq=False)
class _Candidates:
    """Populated pixels inside villages, sorted by village, with a weighted search key."""

    codes: pd.Index          # villages holding at least one populated pixel centre
    key: np.ndarray          # village position + cumulative population share (increasing)
    x: np.ndarray            # pixel centre, raster CRS
    y: np.ndarray
    transform: Affine        # raster transform (pixel edge vectors)
    to_wgs84: pyproj.Transformer | None


@functools.cache
def _villages() -> tuple[pd.Index, np.ndarray, pd.DataFrame]:
    """Return village codes, their prepared polygons, and representative points + areas."""
    vil = boundaries.villages()
    geoms = vil.geometry.to_numpy().copy()
    shapely.prepare(geoms)
    points = boundaries.village_points().set_index("village_code")
    points = points.reindex(vil["village_code"].to_numpy())[["lon", "lat", "area_km2"]]
    return pd.Index(vil["village_code"].to_numpy(dtype=object)), geoms, points


@functools.cache
def _candidates(raster_path: str) -> _Candidates:
    layer = open_raster(raster_path, name="population")
    populated = np.isfinite(layer.data) & (layer.data > 0)
    rows, cols = np.nonzero(populated)
    t = layer.transform
    x = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c
    y = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
    weight = layer.data[rows, cols].astype(np.float64)
    to_wgs84 = None
    if not pyproj.CRS(layer.crs).equals(WGS84, ignore_axis_order=True):
        to_wgs84 = pyproj.Transformer.from_crs(layer.crs, WGS84, always_xy=True)
        lon, lat = to_wgs84.transform(x, y)
    else:
        lon, lat = x, y
    codes, geoms, _ = _villages()
    tree = shapely.STRtree(geoms)
    pt_idx, vil_idx = tree.query(shapely.points(lon, lat), predicate="within")
    first = np.unique(pt_idx, return_index=True)[1]  # a centre on a shared edge counts once
    pt_idx, vil_idx = pt_idx[first], vil_idx[first]
    table = pd.DataFrame({"village": codes.to_numpy()[vil_idx], "x": x[pt_idx], "y": y[pt_idx],
                          "w": weight[pt_idx]}).sort_values("village", kind="stable")
    position, uniques = pd.factorize(table["village"], sort=True)
    share = table.groupby(position)["w"].cumsum().to_numpy() / table.groupby(position)[
        "w"].transform("sum").to_numpy()
    key = position + np.minimum(share, 1.0)
    logger.info("placement candidates: %d populated pixels in %d villages (%s)", len(table),
                len(uniques), Path(raster_path).name)
    return _Candidates(codes=pd.Index(np.asarray(uniques, dtype=object)), key=key,
                       x=table["x"].to_numpy(), y=table["y"].to_numpy(), transform=t,
                       to_wgs84=to_wgs84)


def household_uniforms(ids: pd.Series, *, seed: int = 0, streams: int = 3) -> np.ndarray:
    """Return deterministic uniforms in ``[0, 1)`` derived from household ids.

    Parameters
    ----------
    ids
        Household ids (any dtype; compared as strings).
    seed
        Changes every stream.
    streams
        Number of independent streams.

    Returns
    -------
    numpy.ndarray
        Shape ``(streams, len(ids))``; the same id always gives the same numbers.
    """
    values = ids.astype("string").fillna("").to_numpy(dtype=object)
    base = pd.util.hash_array(values, categorize=True).astype(np.uint64)
    out = np.empty((streams, len(values)), dtype=np.float64)
    for k in range(streams):
        salt = np.uint64(((seed * 1_000_003 + k + 1) * 0x9E3779B97F4A7C15) % 2**64)
        z = base ^ salt
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        out[k] = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


def _settle(cx: np.ndarray, cy: np.ndarray, jx: np.ndarray, jy: np.ndarray, geoms: np.ndarray,
            area: StudyArea | None, to_wgs84: pyproj.Transformer | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Move each centre by one of its jitters (``jx[draw]``) until it lies in its polygon.

    ``jx``, ``jy`` have shape ``(_DRAWS, n)``; see ``_ATTEMPTS`` for the order of tries.
    """
    lon = np.full(cx.shape, np.nan)
    lat = np.full(cx.shape, np.nan)
    pending = np.arange(cx.size)
    for draw, scale in _ATTEMPTS:
        if pending.size == 0:
            break
        px = cx[pending] + scale * jx[draw, pending]
        py = cy[pending] + scale * jy[draw, pending]
        if to_wgs84 is not None:
            px, py = to_wgs84.transform(px, py)
        ok = shapely.contains_xy(geoms[pending], px, py)
        if area is not None:
            ok &= area.contains(px, py)
        if scale == 0.0:
            ok[:] = True  # the candidate centre itself: inside its village by construction
        lon[pending[ok]] = px[ok]
        lat[pending[ok]] = py[ok]
        pending = pending[~ok]
    return lon, lat


def place_by_village(frame: pd.DataFrame, *, seed: int = 0,
                     study_area: gpd.GeoDataFrame | StudyArea | None = None,
                     population_raster: str | Path | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Place households at populated points of their village.

    Parameters
    ----------
    frame
        ``household_id`` and ``village_code`` (BPS code as returned by
        :func:`engine.boundaries.normalise_village_codes`).
    seed
        Changes the spread (the same seed always gives the same points).
    study_area
        When given, a jittered point must also fall inside it (else it is pulled back to
        the candidate centre, which may still be outside: callers test the result).
    population_raster
        Population GeoTIFF (any CRS); default: the bundled 1 km GHS-POP grid.

    Returns
    -------
    tuple of numpy.ndarray
        ``lon``, ``lat`` in EPSG:4326, aligned with ``frame``; NaN for a code that names
        no village.

    Examples
    --------
    >>> frame = pd.DataFrame({"household_id": ["a", "b"],
    ...                       "village_code": ["6101010001", "6101010001"]})
    >>> lon, lat = place_by_village(frame)                 # doctest: +SKIP
    """
    n = len(frame)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    if n == 0:
        return lon, lat
    area = StudyArea.from_layer(study_area) if study_area is not None else None
    raster = population_raster or datapaths.data_file(datapaths.POPULATION_TIF)
    cands = _candidates(str(raster))
    vil_codes, vil_geoms, vil_points = _villages()
    codes = frame["village_code"].astype("string").fillna("").to_numpy(dtype=object)
    vil_pos = vil_codes.get_indexer(codes)
    if (vil_pos < 0).any():
        logger.warning("%d households name no known village; left unplaced", (vil_pos < 0).sum())
    u = household_uniforms(frame["household_id"], seed=seed, streams=1 + 2 * _DRAWS)
    du, dv = u[1::2] - 0.5, u[2::2] - 0.5  # (_DRAWS, n) jitter fractions
    cand_pos = cands.codes.get_indexer(codes)

    pix = np.flatnonzero(cand_pos >= 0)
    if pix.size:
        j = np.searchsorted(cands.key, cand_pos[pix] + u[0, pix], side="right")
        j = np.minimum(j, cands.key.size - 1)
        t = cands.transform
        a, b = du[:, pix], dv[:, pix]
        lon[pix], lat[pix] = _settle(cands.x[j], cands.y[j], t.a * a + t.b * b, t.d * a + t.e * b,
                                     vil_geoms[vil_pos[pix]], area, cands.to_wgs84)
    rep = np.flatnonzero((cand_pos < 0) & (vil_pos >= 0))
    if rep.size:
        pts = vil_points.iloc[vil_pos[rep]]
        half = np.minimum(0.5 * abs(cands.transform.a) if cands.to_wgs84 is None else 0.5 / 120,
                          0.5 * np.sqrt(pts["area_km2"].to_numpy()) / 111.32)
        lon[rep], lat[rep] = _settle(pts["lon"].to_numpy(), pts["lat"].to_numpy(),
                                     2 * half * du[:, rep], 2 * half * dv[:, rep],
                                     vil_geoms[vil_pos[rep]], area, None)
        logger.debug("%d households placed at village representative points", rep.size)
    return lon, lat


__all__ = ["StudyArea", "household_uniforms", "place_by_village"]
