"""Turn the shipped GHS-POP 1 km point grid (cell centres) into a GeoTIFF.

The source CSV holds one row per non-zero 30 arc-second cell centre; absent cells
are zero. The grid is regular: centres sit at ``(k + 0.55) / 120`` degrees of
longitude and ``(k + 0.45) / 120`` degrees of latitude, so each point maps to
exactly one pixel with no resampling. Run ``python -m kantong.engine.inputs.popgrid`` to
regenerate ``data/rasters/kalimantan_ghspop_1km.tif``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

from kantong.engine.atomic import atomic_path
from kantong.engine.constants import WGS84
from kantong.engine.datapaths import POPULATION_POINTS, POPULATION_TIF, data_file, data_root
from kantong.engine.errors import InputError

logger = logging.getLogger(__name__)

#: Pixels per degree of the GHS-POP 30 arc-second grid.
PIXELS_PER_DEGREE = 120
_LON_OFFSET = 0.55
_LAT_OFFSET = 0.45


def points_to_population_raster(points: pd.DataFrame, out: str | Path) -> Path:
    """Write the point grid ``points`` (``lon``, ``lat``, ``pop``) as a float32 GeoTIFF.

    Parameters
    ----------
    points
        Cell centres of the 30 arc-second grid with persons per cell in ``pop``.
    out
        Destination GeoTIFF (written atomically, EPSG:4326, DEFLATE, tiled).

    Returns
    -------
    Path
        ``out``. Pixels with no point hold 0 persons.
    """
    missing = {"lon", "lat", "pop"} - set(points.columns)
    if missing:
        raise InputError(f"population points lack column(s) {sorted(missing)}")
    col_k = np.rint(points["lon"].to_numpy() * PIXELS_PER_DEGREE - _LON_OFFSET).astype(np.int64)
    row_k = np.rint(points["lat"].to_numpy() * PIXELS_PER_DEGREE - _LAT_OFFSET).astype(np.int64)
    west_k, north_k = col_k.min(), row_k.max()
    width = int(col_k.max() - west_k + 1)
    height = int(north_k - row_k.min() + 1)
    grid = np.zeros((height, width), dtype=np.float32)
    np.add.at(grid, (north_k - row_k, col_k - west_k), points["pop"].to_numpy(np.float32))
    res = 1.0 / PIXELS_PER_DEGREE
    transform = from_origin((west_k + _LON_OFFSET - 0.5) * res, (north_k + _LAT_OFFSET + 0.5) * res,
                            res, res)
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "width": width, "height": height,
        "crs": WGS84, "transform": transform, "compress": "deflate", "predictor": 3,
        "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    with atomic_path(out) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(grid, 1)
            dst.update_tags(
                source="GHS-POP, European Commission JRC, 30 arc-second grid, "
                       "via datawan-labs/schools",
                units="persons per pixel",
            )
    logger.info("population raster %s: %d x %d px, %.0f persons", out, width, height, grid.sum())
    return Path(out)


def main() -> None:
    """Regenerate the bundled population GeoTIFF from the bundled point grid."""
    logging.basicConfig(level=logging.INFO)
    points = pd.read_csv(data_file(POPULATION_POINTS), usecols=["lon", "lat", "pop"])
    points_to_population_raster(points, data_root() / POPULATION_TIF)


if __name__ == "__main__":  # pragma: no cover
    main()
