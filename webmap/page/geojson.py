"""Compact GeoJSON of the layers embedded in the viewer page (outlines, pockets, sites).

Coordinates are reprojected to EPSG:4326 when needed, optionally simplified, rounded to
:data:`COORD_DECIMALS` decimals, and only the properties the map needs are kept.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kantong.engine.constants import WGS84
from kantong.engine.errors import RunError

logger = logging.getLogger(__name__)

#: Decimals kept in embedded coordinates (1e-5 degree is about 1 m).
COORD_DECIMALS = 5


def _round_geometry(geoms: gpd.GeoSeries, tolerance: float | None) -> np.ndarray:
    values = geoms.to_numpy()
    if tolerance:
        values = shapely.simplify(values, tolerance, preserve_topology=True)
    return shapely.transform(values, lambda xy: np.round(xy, COORD_DECIMALS))


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_json_value(v) for v in value]
    return value


def to_feature_collection(gdf: gpd.GeoDataFrame, *, columns: Sequence[str] = (),
                          tolerance: float | None = None,
                          extra: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """Return a compact GeoJSON FeatureCollection of ``gdf`` for embedding in the page.

    Parameters
    ----------
    gdf
        Layer with a CRS; reprojected to EPSG:4326 when needed.
    columns
        Property columns to keep (others are dropped to keep the page small).
    tolerance
        Optional simplification tolerance in degrees (topology preserved).
    extra
        Further per-feature properties, one sequence per name, aligned with ``gdf`` rows.

    Returns
    -------
    dict
        A FeatureCollection with coordinates rounded to ``COORD_DECIMALS`` decimals.
    """
    if gdf.crs is None:
        raise RunError("viewer: a layer to embed has no CRS")
    if gdf.crs.to_epsg() != 4326:
        logger.info("reprojecting an embedded layer from %s to %s", gdf.crs, WGS84)
        gdf = gdf.to_crs(WGS84)
    geoms = _round_geometry(gdf.geometry, tolerance)
    keep = [c for c in columns if c in gdf.columns]
    records = gdf[keep].to_dict("records") if keep else [{} for _ in range(len(gdf))]
    extra = extra or {}
    features = []
    for i, (geom, props) in enumerate(zip(geoms, records, strict=True)):
        if geom is None or geom.is_empty:
            continue
        props = {k: _json_value(v) for k, v in props.items()}
        props.update({k: vals[i] for k, vals in extra.items()})
        features.append({"type": "Feature", "properties": props,
                         "geometry": json.loads(shapely.to_geojson(geom))})
    return {"type": "FeatureCollection", "features": features}


__all__ = ["COORD_DECIMALS", "to_feature_collection"]
