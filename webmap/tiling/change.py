"""Change tiles of ``kantong serve --run NEW --compare OLD``: the :class:`CompareService`.

Both runs are read only through :class:`kantong.engine.publish.published.PublishedRun` and
compared with :mod:`kantong.engine.compare`, so a cell withheld in either run has its change
withheld (drawn in the no-data grey when it is published in one run only, not drawn at all
otherwise). Change rasters use a diverging colormap (blue = fewer / lower, red = more /
higher), one H3 resolution per zoom among those both runs publish. The URLs are in
:mod:`kantong.webmap.views.compare`; the page layers in :mod:`kantong.webmap.page.compare_layers`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any, Final

import geopandas as gpd
import numpy as np
from matplotlib import colormaps

from kantong.engine.compare.run import Comparison, cell_changes, compare_runs
from kantong.engine.errors import ConfigError
from kantong.engine.publish.export import geojson_text, round_and_orient
from kantong.engine.publish.published import PublishedRun
from kantong.webmap.config import OUTLINE_MIN_ZOOM, resolution_for_zoom
from kantong.webmap.tiling import colors
from kantong.webmap.tiling.cache import TileCache, etag_for
from kantong.webmap.tiling.render import CellGeometry, render_png

logger = logging.getLogger(__name__)

#: Change layer -> (compared cell column, legend label, legend unit, smallest domain).
CHANGE_LAYERS: Final[dict[str, tuple[str, str, str, float]]] = {
    "change_extreme_households": ("extreme_households",
                                  "Change in extreme-poor households (later - earlier run)",
                                  "households", 2.0),
    "change_extreme_rate": ("extreme_rate",
                            "Change in the extreme-poverty rate (later - earlier run)",
                            "share of persons (percentage points)", 0.01),
}
#: Diverging colormap of the change layers (blue = decrease, red = increase).
CHANGE_CMAP: Final = "RdBu_r"
#: Legend text of the no-data colour of the change layers.
NODATA_LABEL: Final = "Published in one run only (change withheld)"
_MISS: Final = object()
_RENDER_VERSION: Final = "2"


class CompareService:
    """Change tiles, legends and tables of an (old, new) pair of published runs.

    Parameters
    ----------
    old, new
        Privacy-safe views of the earlier (compare) run and the later (served) run.
    cache_bytes
        Bound of the in-memory tile cache of the change layers.

    Raises
    ------
    ConfigError
        If the runs share no H3 resolution.
    """

    def __init__(self, old: PublishedRun, new: PublishedRun, *, cache_bytes: int) -> None:
        self.old, self.new = old, new
        self.resolutions = sorted(set(old.resolutions) & set(new.resolutions))
        if not self.resolutions:
            raise ConfigError(f"{old.run_dir} and {new.run_dir} share no H3 resolution "
                              f"({old.resolutions} vs {new.resolutions})")
        self.cache = TileCache(cache_bytes)
        self._lock = threading.RLock()
        self._comparison: Comparison | None = None
        self._levels: dict[int, tuple[CellGeometry, gpd.GeoDataFrame]] = {}
        self._scales: dict[tuple[str, int], tuple[colors.Scale, np.ndarray, np.ndarray]] = {}
        text = "|".join([old.run_id, str(old.min_households), new.run_id,
                         str(new.min_households), _RENDER_VERSION])
        self.fingerprint = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    # ---- analysis -------------------------------------------------------------------------
    def comparison(self) -> Comparison:
        """Return the comparison at the finest common resolution (computed once)."""
        with self._lock:
            if self._comparison is None:
                self._comparison = compare_runs(self.old, self.new,
                                                resolution=max(self.resolutions))
            return self._comparison

    def changes(self, resolution: int) -> gpd.GeoDataFrame:
        """Return the cell changes at ``resolution`` (one of :attr:`resolutions`)."""
        if resolution == max(self.resolutions):
            return self.comparison().cells
        return cell_changes(self.old.cells(resolution), self.new.cells(resolution))

    def level(self, resolution: int) -> tuple[CellGeometry, gpd.GeoDataFrame]:
        """Return the indexed hexagons and cell changes of one resolution (built once)."""
        with self._lock:
            if resolution not in self._levels:
                cells = self.changes(resolution)
                self._levels[resolution] = (CellGeometry(cells.geometry.to_numpy()), cells)
                logger.info("compare: indexed %d changed cells at r%d", len(cells), resolution)
            return self._levels[resolution]

    def resolution_for_zoom(self, zoom: int) -> int:
        """Return the H3 resolution drawn at ``zoom`` (among the common resolutions)."""
        return resolution_for_zoom(zoom, self.resolutions)

    # ---- colours and tiles ----------------------------------------------------------------
    def scale(self, layer: str, resolution: int) -> tuple[colors.Scale, np.ndarray]:
        """Return the diverging colour scale of ``layer`` and the RGBA of every cell."""
        scale, rgba, _ = self._scale_entry(layer, resolution)
        return scale, rgba

    def nodata(self, layer: str, resolution: int) -> np.ndarray:
        """Return the bool mask of the cells drawn as "no data" (published in one run only)."""
        return self._scale_entry(layer, resolution)[2]

    def _scale_entry(self, layer: str, resolution: int
                     ) -> tuple[colors.Scale, np.ndarray, np.ndarray]:
        key = (layer, resolution)
        with self._lock:
            if key not in self._scales:
                column, label, unit, smallest = CHANGE_LAYERS[layer]
                _, cells = self.level(resolution)
                values = cells[f"{column}_delta"].to_numpy(dtype="float64", na_value=np.nan)
                finite = np.abs(values[np.isfinite(values)])
                top = float(np.quantile(finite, 0.98)) if finite.size else smallest
                bound = _nice(max(top, smallest))
                lut = colormaps[CHANGE_CMAP](np.linspace(0.0, 1.0, 256), bytes=True)
                lut[:, 3] = colors.FILL_ALPHA
                scale = colors.Scale(layer, label, unit, "continuous", CHANGE_CMAP,
                                     (-bound, bound), lut,
                                     open_high=bool(finite.size and finite.max() > bound))
                self._scales[key] = (scale, scale.rgba(values), ~np.isfinite(values))
            return self._scales[key]

    def legend(self, layer: str, *, resolution: int | None = None) -> dict[str, Any]:
        """Return the legend of a change layer (the viewer's legend format)."""
        res = max(self.resolutions) if resolution is None else resolution
        scale, _ = self.scale(layer, res)
        out = scale.legend(n_stops=5, nodata_label=NODATA_LABEL)
        out["resolution"] = res
        return out

    def png(self, layer: str, z: int, x: int, y: int) -> bytes | None:
        """Return the PNG tile of a change layer (``None``: no cell in the tile), cached."""
        key = (layer, z, x, y)
        hit = self.cache.get(key, _MISS)
        if hit is not _MISS:
            return hit
        res = self.resolution_for_zoom(z)
        geometry, _ = self.level(res)
        _, rgba, nodata = self._scale_entry(layer, res)
        data = render_png(geometry, rgba, z, x, y, outline=z >= OUTLINE_MIN_ZOOM, hatch=nodata)
        self.cache.put(key, data)
        return data

    def etag(self, layer: str, z: int, x: int, y: int) -> str:
        """Return the ETag of a change tile."""
        return etag_for("compare", self.fingerprint, layer, z, x, y)

    # ---- tables ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Return the comparison summary safe to publish (no server paths)."""
        s = self.comparison().summary
        runs = {side: {k: v for k, v in r.items() if k not in ("path", "inputs")}
                for side, r in s["runs"].items()}
        return {"runs": runs, "resolution": s["resolution"], "resolutions": self.resolutions,
                "parameters": s["parameters"], "cells": s["cells"], "pockets": s["pockets"],
                "totals": s["totals"], "layers": list(CHANGE_LAYERS), "privacy": s["privacy"]}

    def regencies(self) -> list[dict[str, Any]]:
        """Return the regency table as JSON-ready records (NaN as null)."""
        return json.loads(self.comparison().regencies.to_json(orient="records",
                                                              force_ascii=False))

    def pockets_geojson(self) -> str:
        """Return the pocket groups with their status as RFC 7946 GeoJSON text."""
        pockets = round_and_orient(self.comparison().pockets)
        return geojson_text(pockets, id_column="change_id",
                            metadata={"layer": "pockets_change", "privacy":
                                      self.comparison().summary["privacy"]})


def _nice(x: float) -> float:
    exp = 10.0 ** np.floor(np.log10(x))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if x <= step * exp * (1 + 1e-12):
            return float(step * exp)
    return float(10.0 * exp)  # pragma: no cover


__all__ = ["CHANGE_CMAP", "CHANGE_LAYERS", "NODATA_LABEL", "CompareService"]
