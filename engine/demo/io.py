"""Writers of the demo files: register (CSV / Parquet), facilities GeoJSON, GeoTIFFs.

Every file is written atomically (``kantong.engine.atomic``) and deterministically: the same
inputs give the same bytes (no timestamps, fixed ordering, fixed number formatting).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import rasterio
from affine import Affine

from kantong.engine.atomic import atomic_path
from kantong.engine.constants import DEPRIVATION_FIELDS, WGS84
from kantong.engine.demo.register import PARQUET_BAD_COORDINATE, REGISTER_COLUMNS
from kantong.engine.errors import CRSError

logger = logging.getLogger(__name__)


def fixed6(values: np.ndarray) -> pa.Array:
    """Format floats with exactly 6 decimals (``-0.031940``); NaN becomes null. Vectorised."""
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    micro = np.rint(np.where(missing, 0.0, values) * 1e6).astype(np.int64)
    whole = pc.cast(pa.array(np.abs(micro) // 1_000_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(micro) % 1_000_000), pa.string()), width=6,
                        padding="0")
    sign = pa.array(np.where(micro < 0, "-", ""))
    text = pc.binary_join_element_wise(sign, whole, "")
    text = pc.binary_join_element_wise(text, frac, ".")
    return pc.if_else(pa.array(missing), pa.nulls(len(values), pa.string()), text)


def _coordinate_text(table: pd.DataFrame, col: str) -> pa.Array:
    raw = pa.array(table[f"{col}_text"].to_numpy(dtype=object, na_value=None), pa.string())
    return pc.coalesce(raw, fixed6(table[col].to_numpy()))


def write_register_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write the register as UTF-8 CSV (lon/lat with 6 decimals, booleans true/false).

    Fields are quoted only when needed (a comma-decimal bad coordinate, say).
    """
    out = {}
    for col in REGISTER_COLUMNS:
        if col in ("lon", "lat"):
            out[col] = _coordinate_text(table, col).to_numpy(zero_copy_only=False)
        elif col in DEPRIVATION_FIELDS:
            out[col] = np.where(table[col].to_numpy(bool), "true", "false")
        else:
            out[col] = table[col].to_numpy()
    with atomic_path(path) as tmp:
        pd.DataFrame(out).to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")
    return path


def register_arrow(table: pd.DataFrame) -> pa.Table:
    """Return the register as an Arrow table: numeric lon/lat, int desil/members, bools.

    Non-numeric coordinates (CSV text) become :data:`PARQUET_BAD_COORDINATE`.
    """
    arrays = {}
    for col in REGISTER_COLUMNS:
        if col in ("lon", "lat"):
            vals = table[col].to_numpy(np.float64).copy()
            vals[table[f"{col}_text"].notna().to_numpy()] = PARQUET_BAD_COORDINATE
            arrays[col] = pa.array(vals, pa.float64(), from_pandas=True)
        elif col in ("desil", "members"):
            arrays[col] = pa.array(table[col].to_numpy(np.int64))
        elif col in DEPRIVATION_FIELDS:
            arrays[col] = pa.array(table[col].to_numpy(bool))
        else:
            arrays[col] = pa.array(table[col].to_numpy(dtype=object), pa.string())
    return pa.table(arrays)


def write_register_parquet(table: pd.DataFrame, path: Path, metadata: dict[str, Any]) -> Path:
    """Write the register as Parquet; ``metadata`` goes into the schema under ``kantong``."""
    tab = register_arrow(table).replace_schema_metadata(
        {"kantong": json.dumps(metadata, sort_keys=True)})
    with atomic_path(path) as tmp:
        pq.write_table(tab, tmp, compression="zstd")
    return path


def write_facilities_geojson(facilities: gpd.GeoDataFrame, path: Path, *, name: str,
                             description: str, extra: dict[str, Any] | None = None) -> Path:
    """Write points as an RFC 7946 FeatureCollection with a top-level description."""
    if facilities.crs is None or facilities.crs.to_epsg() != 4326:
        raise CRSError(f"{path}: facilities must be in {WGS84}, got {facilities.crs}")
    xs = np.round(facilities.geometry.x.to_numpy(), 6)
    ys = np.round(facilities.geometry.y.to_numpy(), 6)
    feats = [
        {"type": "Feature",
         "properties": {"facility_id": fid, "type": kind, "name": label},
         "geometry": {"type": "Point", "coordinates": [float(x), float(y)]}}
        for fid, kind, label, x, y in zip(facilities["facility_id"], facilities["type"],
                                         facilities["name"], xs, ys, strict=True)
    ]
    doc = {"type": "FeatureCollection", "name": name, "description": description,
           **(extra or {}), "features": feats}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n",
                       encoding="utf-8")
    return path


def write_geotiff(array: np.ndarray, path: Path, *, transform: Affine, nodata: float | None,
                  tags: dict[str, str], description: str) -> Path:
    """Write a single-band float32 GeoTIFF (EPSG:4326, DEFLATE, tiled) with tags."""
    rows, cols = array.shape
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "width": cols, "height": rows,
        "crs": WGS84, "transform": transform, "nodata": nodata, "compress": "deflate",
        "predictor": 3, "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array.astype(np.float32), 1)
            dst.update_tags(**tags)
            dst.set_band_description(1, description)
    return path


def read_register(path: Path) -> pd.DataFrame:
    """Read a demo register back as written (CSV: every code and coordinate as text)."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={"household_id": str, "village_code": str, "lon": str,
                                    "lat": str})
