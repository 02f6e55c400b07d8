"""Low-zoom markers of pockets: one ring per pocket, for the viewer page.

At province zoom a poverty pocket is a few pixels wide and its outline is easy to miss.
The viewer (``static/viewer.js``) therefore shows a ring at each pocket while zoomed out
(up to :data:`POCKET_MARKER_MAX_ZOOM`) and the outlines alone when zoomed in. The rings are
sized by the square root of the pocket's extreme-poor households and carry the popup of the
pocket. Built from published pockets only (:class:`kantong.engine.publish.published.PublishedRun`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kantong.engine.constants import WGS84

#: Rings are shown up to this zoom (outlines alone from the next one).
POCKET_MARKER_MAX_ZOOM: Final = 9
#: Radius range of the rings (pixels).
POCKET_MARKER_RADIUS: Final = (7.0, 16.0)
_DECIMALS: Final = 5


def marker_radius(counts: np.ndarray) -> np.ndarray:
    """Return ring radii (pixels) growing with the square root of ``counts``.

    Missing or non-positive counts get the smallest radius; the largest count the largest.

    Examples
    --------
    >>> marker_radius(np.array([0.0, 25.0, 100.0, np.nan])).tolist()
    [7.0, 11.5, 16.0, 7.0]
    """
    lo, hi = POCKET_MARKER_RADIUS
    n = np.asarray(counts, dtype="float64")
    root = np.sqrt(np.where(np.isfinite(n) & (n > 0), n, 0.0))
    top = float(root.max()) if root.size and root.max() > 0 else 1.0
    return np.round(lo + (hi - lo) * root / top, 1)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64",
                                                                   na_value=np.nan)


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _points(frame: gpd.GeoDataFrame) -> list[list[float]]:
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(WGS84)
    points = shapely.point_on_surface(frame.geometry.to_numpy())
    return [[round(float(p.x), _DECIMALS), round(float(p.y), _DECIMALS)] for p in points]


def _collection(coords: list[list[float]], props: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": xy}, "properties": p}
        for xy, p in zip(coords, props, strict=True)]}


def pocket_markers(pockets: gpd.GeoDataFrame, popups: Sequence[str]) -> dict[str, Any]:
    """Return one ring point per published pocket as a GeoJSON FeatureCollection.

    Parameters
    ----------
    pockets
        Published pockets (polygons) with ``pocket_id`` and optionally
        ``extreme_households``.
    popups
        Popup HTML of each pocket (aligned with ``pockets`` rows).

    Returns
    -------
    dict
        A point inside each pocket with ``pocket_id``, ``radius`` and ``popup_html``.
    """
    radius = marker_radius(_numbers(pockets, "extreme_households"))
    props = [{"pocket_id": _plain(pid), "radius": float(r), "popup_html": html}
             for pid, r, html in zip(pockets["pocket_id"], radius, popups, strict=True)]
    return _collection(_points(pockets), props)


def status_markers(groups: gpd.GeoDataFrame, popups: Sequence[str], *,
                   colors: dict[str, str], default: str) -> dict[str, Any]:
    """Return one ring point per pocket group of a comparison (coloured by its status).

    Parameters
    ----------
    groups
        Pocket groups (``change_id``, ``status``, ``extreme_households_old`` /
        ``_new``, polygons), as :func:`kantong.engine.compare.run.compare_runs` publishes them.
    popups
        Popup HTML of each group.
    colors
        Status -> ring colour.
    default
        Colour of a status missing from ``colors``.

    Returns
    -------
    dict
        Points with ``change_id``, ``status``, ``color``, ``radius`` (by the larger of the
        two years' extreme-poor households) and ``popup_html``.
    """
    size = np.fmax(np.nan_to_num(_numbers(groups, "extreme_households_old")),
                   np.nan_to_num(_numbers(groups, "extreme_households_new")))
    radius = marker_radius(size)
    props = [{"change_id": _plain(cid), "status": str(status), "radius": float(r),
              "color": colors.get(str(status), default), "popup_html": html}
             for cid, status, r, html in zip(groups["change_id"], groups["status"], radius,
                                             popups, strict=True)]
    return _collection(_points(groups), props)


__all__ = ["POCKET_MARKER_MAX_ZOOM", "POCKET_MARKER_RADIUS", "marker_radius", "pocket_markers",
           "status_markers"]
