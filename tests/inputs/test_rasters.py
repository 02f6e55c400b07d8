"""Raster opening: CRS kept and required, overlap, windowing, nodata."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.transform import from_origin

from kantong.engine.errors import CRSError, InputError, NoOverlapError
from kantong.engine.inputs.rasters import open_raster

# Kalimantan Barat, around Pontianak, in EPSG:4326
BOUNDS = (109.2, -0.2, 109.5, 0.1)


def write_tif(path, data, *, crs, transform, nodata=None):
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype, "transform": transform}
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def utm_raster(tmp_path, *, nodata=None, dtype="float32"):
    """A 1 km UTM 49S grid covering BOUNDS with a margin, values = row * 1000 + col."""
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32749", always_xy=True)
    x0, y0 = to_utm.transform(BOUNDS[0] - 0.3, BOUNDS[3] + 0.3)
    rows, cols = 90, 95
    data = (np.arange(rows)[:, None] * 1000 + np.arange(cols)[None, :]).astype(dtype)
    transform = from_origin(round(x0), round(y0), 1000.0, 1000.0)
    return write_tif(tmp_path / "utm.tif", data, crs="EPSG:32749", transform=transform,
                     nodata=nodata), data, transform


def test_utm_raster_is_read_in_its_own_crs(tmp_path):
    path, data, transform = utm_raster(tmp_path)
    layer = open_raster(path, name="elev", window_to_bounds=False)
    assert layer.crs.to_epsg() == 32749
    assert layer.data.dtype == np.float32 and layer.data.shape == data.shape
    np.testing.assert_array_equal(layer.data, data)
    x, y = layer.pixel_centres()
    assert x.shape == data.shape
    assert x[0, 0] == transform.c + 500.0 and y[0, 0] == transform.f - 500.0
    assert x[3, 7] == transform.c + 7500.0 and y[3, 7] == transform.f - 3500.0


def test_window_covers_study_area_plus_one_pixel(tmp_path):
    path, data, _ = utm_raster(tmp_path)
    full = open_raster(path, name="elev", study_area_bounds=BOUNDS, window_to_bounds=False)
    win = open_raster(path, name="elev", study_area_bounds=BOUNDS)
    assert win.data.shape[0] < full.data.shape[0] and win.data.shape[1] < full.data.shape[1]
    # the window is an exact slice of the full raster
    row0 = int(round((full.transform.f - win.transform.f) / 1000.0))
    col0 = int(round((win.transform.c - full.transform.c) / 1000.0))
    np.testing.assert_array_equal(win.data, data[row0:row0 + win.height, col0:col0 + win.width])
    # every corner of the study area (in UTM) lies inside the window, at least one pixel in
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32749", always_xy=True)
    xs, ys = to_utm.transform([BOUNDS[0], BOUNDS[2], BOUNDS[0], BOUNDS[2]],
                              [BOUNDS[1], BOUNDS[1], BOUNDS[3], BOUNDS[3]])
    west, south, east, north = win.bounds
    # (the window edge is the study-area edge rounded out to a pixel, plus one pixel)
    for gap in (min(xs) - west, east - max(xs), min(ys) - south, north - max(ys)):
        assert 1000.0 - 1e-6 <= gap <= 2000.0 + 1e-6
    x, y = win.pixel_centres()
    assert x[0, 0] == win.transform.c + 500.0


def test_raster_without_crs_is_refused(tmp_path):
    data = np.ones((5, 5), dtype="float32")
    path = write_tif(tmp_path / "nocrs.tif", data, crs=None,
                     transform=from_origin(109.0, 0.5, 0.01, 0.01))
    with pytest.raises(CRSError, match="nocrs.tif: raster has no CRS"):
        open_raster(path, name="x")
    bare = tmp_path / "bare.tif"
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):
        with rasterio.open(bare, "w", driver="GTiff", width=4, height=4, count=1,
                           dtype="uint8") as dst:
            dst.write(np.zeros((4, 4), dtype="uint8"), 1)
    with pytest.raises(CRSError, match="raster has no CRS"):
        open_raster(bare, name="x")


def test_no_overlap_is_an_error(tmp_path):
    path, _, _ = utm_raster(tmp_path)
    with pytest.raises(NoOverlapError, match="utm.tif.*does not overlap"):
        open_raster(path, name="elev", study_area_bounds=(116.0, 1.0, 117.0, 2.0))


def test_nodata_becomes_nan(tmp_path):
    data = np.arange(20, dtype="int16").reshape(4, 5)
    data[1, 2] = -9999
    path = write_tif(tmp_path / "nd.tif", data, crs="EPSG:4326",
                     transform=from_origin(109.2, 0.1, 0.1, 0.1), nodata=-9999)
    layer = open_raster(path, name="nd")
    assert layer.data.dtype == np.float64
    assert np.isnan(layer.data[1, 2]) and np.isnan(layer.data).sum() == 1
    assert layer.data[0, 1] == 1.0
    nan_path = write_tif(tmp_path / "ndnan.tif", np.where(data == -9999, np.nan, data)
                         .astype("float32"), crs="EPSG:4326",
                         transform=from_origin(109.2, 0.1, 0.1, 0.1), nodata=np.nan)
    assert np.isnan(open_raster(nan_path, name="n").data).sum() == 1


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff" * 10)
    with pytest.raises(InputError, match="junk.tif"):
        open_raster(junk, name="j")
    with pytest.raises(InputError, match="not found"):
        open_raster(tmp_path / "absent.tif", name="a")
