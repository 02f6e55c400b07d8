"""Open and validate rasters (GeoTIFF or any format GDAL reads), in their own CRS.

A raster is never assumed to be in EPSG:4326: its CRS is read from the file and
kept; a raster without one is refused. When the study area is known, only the
window covering it (plus a one-pixel margin) is read. Nodata pixels (the band's
nodata value or mask) become NaN.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import affine
import numpy as np
import rasterio
import rasterio.crs
import rasterio.errors
import rasterio.transform
import rasterio.windows
from rasterio.warp import transform_bounds

from kantong.engine.constants import WGS84
from kantong.engine.errors import CRSError, InputError, NoOverlapError, first_line

logger = logging.getLogger(__name__)

#: Pixels of margin kept around the study-area window.
WINDOW_MARGIN = 1


@dataclass(frozen=True, eq=False)
class RasterLayer:
    """One raster band read into memory, with its georeferencing.

    Attributes
    ----------
    name
        Short name given by the caller (used in column names such as ``<name>_mean``).
    path
        The file path as given.
    data
        2-D array (rows, cols); float32 for float32 sources, float64 otherwise; nodata -> NaN.
    transform
        Affine transform of ``data`` (of the window read, not of the whole file).
    crs
        The raster's own CRS (never assumed).
    width, height
        Size of ``data`` in pixels.
    """

    name: str
    path: str
    data: np.ndarray
    transform: affine.Affine
    crs: rasterio.crs.CRS
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(west, south, east, north)`` of ``data`` in the raster's CRS."""
        west, south, east, north = rasterio.transform.array_bounds(self.height, self.width,
                                                                 self.transform)
        return float(west), float(south), float(east), float(north)

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the x and y of every pixel centre, in the raster's own CRS.

        Returns
        -------
        tuple of numpy.ndarray
            Two float64 arrays shaped like ``data`` (``x[r, c]``, ``y[r, c]`` is the centre
            of pixel ``data[r, c]``); ravel them together with ``data``. Rotated transforms
            are honoured.

        Examples
        --------
        >>> x, y = layer.pixel_centres()                                 # doctest: +SKIP
        >>> lon, lat = pyproj.Transformer.from_crs(layer.crs, "EPSG:4326",
        ...                                        always_xy=True).transform(x, y)  # doctest: +SKIP
        """
        cols = np.arange(self.width, dtype=np.float64) + 0.5
        rows = np.arange(self.height, dtype=np.float64) + 0.5
        t = self.transform
        x = t.a * cols[None, :] + t.b * rows[:, None] + t.c
        y = t.d * cols[None, :] + t.e * rows[:, None] + t.f
        return x, y


def _window(src: rasterio.DatasetReader, bounds: tuple[float, float, float, float],
            path: str) -> rasterio.windows.Window:
    """Return the window of ``src`` covering ``bounds`` (EPSG:4326) plus a margin."""
    west, south, east, north = transform_bounds(WGS84, src.crs, *bounds, densify_pts=21)
    left, bottom, right, top = src.bounds
    if not (west < right and east > left and south < top and north > bottom):
        raise NoOverlapError(
            f"{path}: raster does not overlap the study area (raster bounds "
            f"{left:.6g}, {bottom:.6g}, {right:.6g}, {top:.6g} in {src.crs}; study area "
            f"{west:.6g}, {south:.6g}, {east:.6g}, {north:.6g})"
        )
    win = rasterio.windows.from_bounds(west, south, east, north, transform=src.transform)
    col0 = math.floor(win.col_off) - WINDOW_MARGIN
    row0 = math.floor(win.row_off) - WINDOW_MARGIN
    col1 = math.ceil(win.col_off + win.width) + WINDOW_MARGIN
    row1 = math.ceil(win.row_off + win.height) + WINDOW_MARGIN
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, src.width), min(row1, src.height)
    return rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)


def open_raster(path: str | Path, *, name: str,
                study_area_bounds: tuple[float, float, float, float] | None = None,
                window_to_bounds: bool = True) -> RasterLayer:
    """Open band 1 of a raster, check its CRS and overlap, and read it into memory.

    Parameters
    ----------
    path
        A GeoTIFF (or any single-file raster GDAL reads).
    name
        Short name of the layer (e.g. ``"elevation"``).
    study_area_bounds
        ``(west, south, east, north)`` of the study area in EPSG:4326. They are transformed
        to the raster's CRS (densified edges) to test the overlap and choose the window.
    window_to_bounds
        Read only the window covering ``study_area_bounds`` plus one pixel of margin
        (default). With ``False`` the whole raster is read (the overlap is still checked).

    Returns
    -------
    RasterLayer
        The band in its own CRS; nodata (value or mask) -> NaN.

    Raises
    ------
    InputError
        The file is missing or GDAL cannot read it.
    CRSError
        The raster has no CRS.
    NoOverlapError
        The raster does not overlap ``study_area_bounds``.

    Examples
    --------
    >>> layer = open_raster("elevation.tif", name="elevation",
    ...                     study_area_bounds=(108.0, -3.1, 114.2, 2.1))  # doctest: +SKIP
    >>> layer.crs, layer.data.shape                                       # doctest: +SKIP
    """
    path_s = str(path)
    if not Path(path_s).exists():
        raise InputError(f"{path_s}: raster file not found")
    try:
        with warnings.catch_warnings():
            # A raster without georeferencing warns on open; it is refused just below.
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(path_s)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{path_s}: cannot read raster ({first_line(exc)})") from None
    with src:
        if src.crs is None:
            raise CRSError(f"{path_s}: raster has no CRS")
        if src.count > 1:
            logger.info("%s has %d bands; reading band 1", path_s, src.count)
        window = None
        if study_area_bounds is not None:
            full = _window(src, study_area_bounds, path_s)
            if window_to_bounds:
                window = full
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                band = src.read(1, window=window, masked=True)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"{path_s}: cannot read raster ({first_line(exc)})") from None
        dtype = np.float32 if src.dtypes[0] == "float32" else np.float64
        data = np.ma.filled(band.astype(dtype), np.nan)
        transform = src.window_transform(window) if window is not None else src.transform
        crs = src.crs
    height, width = data.shape
    logger.info("raster %s (%s): %d x %d px in %s", name, path_s, width, height, crs)
    return RasterLayer(name=name, path=path_s, data=data, transform=transform, crs=crs,
                       width=width, height=height)



__all__ = ["RasterLayer", "open_raster", "WINDOW_MARGIN"]
