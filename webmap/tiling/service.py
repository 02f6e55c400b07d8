"""The tile service of a served run: per-resolution cell indexes, colour scales, tile caches.

One :class:`TileService` lives in ``app.extensions["kantong_tiles"]``. It reads the run only
through :class:`kantong.engine.publish.published.PublishedRun` (the privacy gate): withheld cells
are never
indexed, so they can never be drawn or encoded.

Rollup resolutions lack the columns the pockets stage adds to the base cells. For those,
each published rollup cell gets a value derived from its published base-resolution children
(every published child has a published parent, see :mod:`kantong.engine.publish.privacy`):

* ``priority`` and ``contrib_*``: the maximum of the children (pockets stay visible when
  zoomed out);
* ``pocket_id``: the pocket holding most of the children's households that are in a pocket
  (the cell is drawn as soon as one published child is in a published pocket);
* any other missing indicator: the household-weighted mean of the children.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import threading
from typing import Any, Final

import numpy as np
import pandas as pd

from kantong.engine.h3ids import cells_to_uint64, parent_cells
from kantong.engine.publish.published import PublishedRun
from kantong.webmap.config import OUTLINE_MIN_ZOOM, resolution_for_zoom
from kantong.webmap.tiling import colors
from kantong.webmap.tiling.cache import TileCache, etag_for
from kantong.webmap.tiling.mvt import CellEncoder
from kantong.webmap.tiling.render import CellGeometry, render_png

logger = logging.getLogger(__name__)

#: Bumped whenever rendering or encoding changes (part of every tile ETag).
RENDER_VERSION: Final = "2"
#: Legend text of the no-data colour where a rollup cell's value is derived from its
#: published children and none of them has one (they are all withheld or empty).
DERIVED_NODATA_LABEL: Final = "No value: finer cells withheld (privacy) or without data"
#: Indicators derived at rollup resolutions by the maximum of the children.
_MAX_DERIVED = ("priority",)
_MAX_PREFIXES = ("contrib_",)
#: Public columns left out of vector tile attributes (the geometry says it all).
_NOT_ATTRIBUTES = ("geometry", "lon", "lat")
_MISS: Final = object()


@dataclasses.dataclass
class Level:
    """The published cells of one resolution, ready for tiling."""

    resolution: int
    geometry: CellGeometry
    attributes: pd.DataFrame
    ids: np.ndarray
    encoder: CellEncoder

    @property
    def nbytes(self) -> int:
        """Approximate memory of the level (bytes)."""
        return (self.geometry.nbytes + self.encoder.nbytes
                + int(self.attributes.memory_usage(deep=True).sum()))


class TileService:
    """Raster and vector tiles, legends and bounds of one published run.

    Parameters
    ----------
    run
        The privacy-safe view of the served run.
    cache_bytes
        Bound of the in-memory LRU tile cache (bytes of encoded tiles).
    """

    def __init__(self, run: PublishedRun, *, cache_bytes: int) -> None:
        self.run = run
        self.cache = TileCache(cache_bytes)
        self._lock = threading.RLock()
        self._levels: dict[int, Level] = {}
        self._scales: dict[tuple[str, int], tuple[colors.Scale, np.ndarray, np.ndarray]] = {}
        self._derived: dict[int, frozenset[str]] = {}
        self._indicators: list[str] | None = None
        text = json.dumps(run.manifest, sort_keys=True, default=str)
        self.fingerprint = hashlib.blake2b(
            f"{text}|{run.min_households}|{RENDER_VERSION}".encode(), digest_size=8).hexdigest()

    # ---- catalogue ------------------------------------------------------------------------
    def indicators(self) -> list[str]:
        """Return the layer names of raster tiles: the run's indicators, then ``pocket``."""
        with self._lock:
            if self._indicators is None:
                names = list(self.run.indicators())
                if "pocket_id" in self.level(self.run.base_resolution).attributes.columns:
                    names.append(colors.POCKET)
                self._indicators = names
            return list(self._indicators)

    def has_indicator(self, name: str) -> bool:
        """Return whether ``name`` is a served raster layer (an allow-list check)."""
        return name in self.indicators()

    def resolution_for_zoom(self, zoom: int) -> int:
        """Return the H3 resolution drawn at ``zoom`` (see :mod:`kantong.webmap.config`)."""
        return resolution_for_zoom(zoom, self.run.resolutions)

    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(west, south, east, north)`` of the published base cells (degrees)."""
        lv = self.level(self.run.base_resolution)
        if len(lv.geometry) == 0:
            return (108.0, -3.5, 119.5, 4.5)  # Kalimantan, for a run that publishes nothing
        w, s, e, n = lv.geometry.total_bounds()
        k = 180.0 / math.pi / 6378137.0
        return (w * k, math.degrees(2 * math.atan(math.exp(s / 6378137.0)) - math.pi / 2),
                e * k, math.degrees(2 * math.atan(math.exp(n / 6378137.0)) - math.pi / 2))

    def center(self) -> tuple[float, float, int]:
        """Return ``(lon, lat, zoom)`` showing the whole run on a ~1000 px wide map."""
        w, s, e, n = self.bounds()
        span = max(e - w, (n - s) * 1.2, 1e-3)
        zoom = int(max(4, min(12, math.floor(math.log2(4 * 360.0 / span)))))
        return ((w + e) / 2, (s + n) / 2, zoom)

    # ---- levels ---------------------------------------------------------------------------
    def level(self, resolution: int) -> Level:
        """Return (building once) the tiling structures of one resolution."""
        with self._lock:
            if resolution not in self._levels:
                self._levels[resolution] = self._build_level(resolution)
            return self._levels[resolution]

    def _build_level(self, res: int) -> Level:
        cells = self.run.cells(res)
        attrs = pd.DataFrame(cells.drop(columns=[c for c in _NOT_ATTRIBUTES if c in cells]))
        attrs = attrs.reset_index(drop=True)
        if res != self.run.base_resolution:
            before = set(attrs.columns)
            attrs = self._derive(attrs, res)
            self._derived[res] = frozenset(set(attrs.columns) - before)
        ids = cells_to_uint64(attrs["h3"].astype(str)) \
            if len(attrs) else np.zeros(0, dtype="uint64")
        level = Level(res, CellGeometry(cells.geometry.to_numpy()), attrs, ids,
                      CellEncoder(attrs, ids))
        logger.info("tiles: indexed %d published cells at r%d (%.1f MB)", len(attrs), res,
                    level.nbytes / 1e6)
        return level

    def _derive(self, attrs: pd.DataFrame, res: int) -> pd.DataFrame:
        base = self.level(self.run.base_resolution).attributes
        wanted = [c for c in self.run.indicators() if c not in attrs.columns]
        if "pocket_id" in base.columns and "pocket_id" not in attrs.columns:
            wanted.append("pocket_id")
        if not wanted or base.empty or attrs.empty:
            return attrs
        child = cells_to_uint64(base["h3"].astype(str))
        parent = parent_cells(child, res)
        mine = cells_to_uint64(attrs["h3"].astype(str))
        hh = base["households"].to_numpy(dtype="float64")
        out = attrs.copy()
        for col in wanted:
            if col == "pocket_id":
                out[col] = _dominant_pocket(parent, base[col], hh).reindex(mine).to_numpy()
                out[col] = out[col].astype("Int64")
                continue
            v = base[col].to_numpy(dtype="float64", na_value=np.nan)
            if col in _MAX_DERIVED or col.startswith(_MAX_PREFIXES):
                agg = pd.Series(v).groupby(parent).max()
            else:
                ok = np.isfinite(v)
                num = pd.Series(np.where(ok, v * hh, 0.0)).groupby(parent).sum()
                den = pd.Series(np.where(ok, hh, 0.0)).groupby(parent).sum()
                agg = num / den.where(den > 0)
            out[col] = agg.reindex(mine).to_numpy(dtype="float64")
        logger.debug("r%d: derived %s from published r%d cells", res, wanted,
                     self.run.base_resolution)
        return out

    # ---- colours --------------------------------------------------------------------------
    def _values(self, indicator: str, res: int) -> np.ndarray:
        col = "pocket_id" if indicator == colors.POCKET else indicator
        attrs = self.level(res).attributes
        if col not in attrs.columns:
            return np.full(len(attrs), np.nan)
        return attrs[col].to_numpy(dtype="float64", na_value=np.nan)

    def _scale_entry(self, indicator: str, res: int
                     ) -> tuple[colors.Scale, np.ndarray, np.ndarray]:
        key = (indicator, res)
        with self._lock:
            if key not in self._scales:
                values = self._values(indicator, res)
                reference = None
                if res != self.run.base_resolution and colors.domain_from_base(indicator):
                    reference = self._values(indicator, self.run.base_resolution)
                scale = colors.make_scale(indicator, values, reference=reference)
                nodata = ~np.isfinite(values) if scale.kind == "continuous" \
                    else np.zeros(len(values), dtype=bool)
                self._scales[key] = (scale, scale.rgba(values), nodata)
            return self._scales[key]

    def scale(self, indicator: str, res: int) -> tuple[colors.Scale, np.ndarray]:
        """Return the colour scale of ``indicator`` at ``res`` and the RGBA of every cell.

        Scores and rates (:func:`kantong.webmap.tiling.colors.domain_from_base`) take their domain
        from the
        base-resolution values, so that a colour means the same value at every zoom.
        """
        scale, rgba, _ = self._scale_entry(indicator, res)
        return scale, rgba

    def nodata(self, indicator: str, res: int) -> np.ndarray:
        """Return the ``(n,)`` bool mask of the cells of ``res`` drawn as "no data"."""
        return self._scale_entry(indicator, res)[2]

    def legend(self, indicator: str, *, resolution: int | None = None) -> dict[str, Any]:
        """Return the legend of ``indicator`` at ``resolution`` (default: the base one)."""
        res = self.run.base_resolution if resolution is None else resolution
        scale, _ = self.scale(indicator, res)
        values = self._values(indicator, res) if indicator == colors.POCKET else None
        self.level(res)  # fills self._derived[res]
        derived = indicator in self._derived.get(res, ())
        legend = scale.legend(values=values, nodata_label=DERIVED_NODATA_LABEL if derived
                              else colors.NODATA_LABEL)
        legend["resolution"] = res
        return legend

    # ---- tiles ----------------------------------------------------------------------------
    def etag(self, kind: str, name: str, z: int, x: int, y: int) -> str:
        """Return the ETag of a tile (run fingerprint, K, layer and address)."""
        return etag_for(self.run.run_id, self.fingerprint, kind, name, z, x, y)

    def png(self, indicator: str, z: int, x: int, y: int) -> bytes | None:
        """Return the PNG tile (``None``: no published cell in the tile), cached."""
        key = ("png", indicator, z, x, y)
        hit = self.cache.get(key, _MISS)
        if hit is not _MISS:
            return hit
        res = self.resolution_for_zoom(z)
        level = self.level(res)
        _, rgba, nodata = self._scale_entry(indicator, res)
        data = render_png(level.geometry, rgba, z, x, y, outline=z >= OUTLINE_MIN_ZOOM,
                          hatch=nodata)
        self.cache.put(key, data)
        return data

    def mvt(self, z: int, x: int, y: int) -> bytes | None:
        """Return the vector tile of the cells (``None``: no published cell), cached."""
        key = ("mvt", "cells", z, x, y)
        hit = self.cache.get(key, _MISS)
        if hit is not _MISS:
            return hit
        level = self.level(self.resolution_for_zoom(z))
        data = level.encoder.encode(level.geometry, z, x, y)
        self.cache.put(key, data)
        return data


def _dominant_pocket(parent: np.ndarray, pocket: pd.Series, households: np.ndarray) -> pd.Series:
    """Return, per parent id, the pocket holding most of its in-pocket child households."""
    ok = pocket.notna().to_numpy()
    if not ok.any():
        return pd.Series(dtype="Int64")
    frame = pd.DataFrame({"parent": parent[ok], "pocket": pocket[ok].astype("int64").to_numpy(),
                          "hh": households[ok]})
    sums = frame.groupby(["parent", "pocket"], as_index=False)["hh"].sum()
    sums = sums.sort_values(["parent", "hh", "pocket"], ascending=[True, False, True],
                            kind="stable").drop_duplicates("parent")
    return sums.set_index("parent")["pocket"]
