"""Server-side rendering of H3 hexagons into 256 px Web Mercator PNG tiles.

The hexagons of one resolution are projected once to Web Mercator metres
(:class:`CellGeometry`: flat vertex arrays with offsets, bounding boxes and an STRtree);
a tile then costs one index query, one vectorised projection of the selected vertices
to pixels and one PIL ``ImageDraw.polygon`` call per hexagon in the tile.

Cells without a value ("no data") get a light fill plus a diagonal hatch
(:data:`HATCH_RGBA`, period :data:`HATCH_PERIOD` px): the cartographic sign of "nothing
to show here", which does not read as a low value. The hatch is aligned on the global
pixel grid (the period divides the tile size), so its lines continue across tiles.
"""

from __future__ import annotations

import io
import logging
import math
from typing import Final

import numpy as np
import shapely
from PIL import Image, ImageDraw

from kantong.webmap.config import TILE_SIZE

logger = logging.getLogger(__name__)

#: Web Mercator sphere radius and half the world width (metres).
EARTH_RADIUS: Final = 6378137.0
ORIGIN_SHIFT: Final = math.pi * EARTH_RADIUS
_MAX_LAT: Final = 85.0511287798066
#: Outline colour of hexagons at high zoom (white, translucent).
OUTLINE_RGBA: Final = (255, 255, 255, 170)
#: Colour and period (pixels; divides the tile size) of the no-data hatch lines.
HATCH_RGBA: Final = (110, 110, 110, 150)
HATCH_PERIOD: Final = 8


def lonlat_to_mercator(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 degrees to Web Mercator (EPSG:3857) metres, vectorised.

    Examples
    --------
    >>> x, y = lonlat_to_mercator(np.array([180.0]), np.array([0.0]))
    >>> round(float(x[0])), round(float(y[0]))
    (20037508, 0)
    """
    lon = np.asarray(lon, dtype="float64")
    lat = np.clip(np.asarray(lat, dtype="float64"), -_MAX_LAT, _MAX_LAT)
    x = np.radians(lon) * EARTH_RADIUS
    y = np.log(np.tan(np.pi / 4.0 + np.radians(lat) / 2.0)) * EARTH_RADIUS
    return x, y


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Return the Web Mercator bounds ``(minx, miny, maxx, maxy)`` of XYZ tile ``z/x/y``.

    Examples
    --------
    >>> tile_bounds(0, 0, 0)[2] == ORIGIN_SHIFT
    True
    """
    size = 2.0 * ORIGIN_SHIFT / (1 << z)
    minx = -ORIGIN_SHIFT + x * size
    maxy = ORIGIN_SHIFT - y * size
    return minx, maxy - size, minx + size, maxy


class CellGeometry:
    """Hexagons of one resolution in Web Mercator, indexed for tile queries.

    Parameters
    ----------
    geometries
        Polygon cells in EPSG:4326 (a GeoSeries or array of shapely polygons; the exterior
        ring is used - H3 cells have no holes).

    Attributes
    ----------
    xy
        ``(m, 2)`` float64 vertex coordinates of every exterior ring (closing vertex dropped).
    offsets
        ``(n + 1,)`` int64: the vertices of cell ``i`` are ``xy[offsets[i]:offsets[i + 1]]``.
    bounds
        ``(n, 4)`` float64 Mercator bounding boxes.
    """

    def __init__(self, geometries: np.ndarray) -> None:
        rings = shapely.get_exterior_ring(np.asarray(geometries, dtype=object))
        coords, index = shapely.get_coordinates(rings, return_index=True)
        n = len(rings)
        counts = np.bincount(index, minlength=n)
        ends = np.cumsum(counts)
        keep = np.ones(len(coords), dtype=bool)
        keep[ends[counts > 0] - 1] = False  # drop the closing vertex of each ring
        if n and (counts < 4).any():
            raise ValueError("every cell needs a polygon with at least 3 distinct vertices")
        mx, my = lonlat_to_mercator(coords[keep, 0], coords[keep, 1])
        self.xy = np.column_stack([mx, my])
        self.offsets = np.concatenate([[0], np.cumsum(counts - 1)]).astype("int64")
        self.bounds = np.empty((n, 4))
        if n:
            starts = self.offsets[:-1]
            self.bounds[:, 0] = np.minimum.reduceat(mx, starts)
            self.bounds[:, 1] = np.minimum.reduceat(my, starts)
            self.bounds[:, 2] = np.maximum.reduceat(mx, starts)
            self.bounds[:, 3] = np.maximum.reduceat(my, starts)
        self._tree = shapely.STRtree(shapely.box(*self.bounds.T)) if n else None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the arrays (bytes)."""
        return self.xy.nbytes + self.offsets.nbytes + self.bounds.nbytes

    def total_bounds(self) -> tuple[float, float, float, float]:
        """Return the Mercator bounds of all cells."""
        b = self.bounds
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()),
                float(b[:, 3].max()))

    def query(self, bounds: tuple[float, float, float, float]) -> np.ndarray:
        """Return the sorted indices of cells whose bounding box meets ``bounds``."""
        if self._tree is None:
            return np.empty(0, dtype="int64")
        return np.sort(self._tree.query(shapely.box(*bounds)))

    def pixel_rings(self, idx: np.ndarray, bounds: tuple[float, float, float, float], *,
                    scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Return the vertices of cells ``idx`` in tile pixel space (y down).

        Parameters
        ----------
        idx
            Cell indices (from :meth:`query`).
        bounds
            Mercator bounds of the tile.
        scale
            Pixels per tile side (256 for PNG, 4096 for MVT).

        Returns
        -------
        tuple of numpy.ndarray
            ``(k, 2)`` float vertices and ``(len(idx) + 1,)`` offsets into them.
        """
        starts, stops = self.offsets[idx], self.offsets[idx + 1]
        lengths = stops - starts
        sel_off = np.concatenate([[0], np.cumsum(lengths)])
        take = np.repeat(starts - sel_off[:-1], lengths) + np.arange(sel_off[-1])
        minx, _, maxx, maxy = bounds
        f = scale / (maxx - minx)
        pts = np.empty((len(take), 2))
        pts[:, 0] = (self.xy[take, 0] - minx) * f
        pts[:, 1] = (maxy - self.xy[take, 1]) * f
        return pts, sel_off


def _empty_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (TILE_SIZE, TILE_SIZE), (0, 0, 0, 0)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


#: A fully transparent 256 x 256 PNG (served for tiles outside the data).
EMPTY_PNG: Final = _empty_png()


def _hatch_alpha() -> np.ndarray:
    """Alpha of the hatch lines on one tile: 1 px diagonals, ``x + y = 0 mod period``."""
    i = np.arange(TILE_SIZE)
    on = (i[:, None] + i[None, :]) % HATCH_PERIOD == 0
    return np.where(on, HATCH_RGBA[3], 0).astype("uint8")


_HATCH_ALPHA: Final = _hatch_alpha()


def render_png(geometry: CellGeometry, rgba: np.ndarray, z: int, x: int, y: int, *,
               outline: bool = False, hatch: np.ndarray | None = None) -> bytes | None:
    """Render the cells of tile ``z/x/y`` as filled hexagons; ``None`` if nothing is drawn.

    Parameters
    ----------
    geometry
        The hexagons of the resolution drawn at this zoom.
    rgba
        ``(n, 4)`` uint8 colour per cell of ``geometry``; cells with alpha 0 are skipped.
    z, x, y
        XYZ tile address.
    outline
        Draw a thin translucent white outline around each hexagon (high zoom).
    hatch
        Optional ``(n,)`` bool per cell: draw diagonal hatch lines over these cells (the
        no-data cells), on top of their fill colour.

    Returns
    -------
    bytes or None
        The PNG (RGBA, 256 x 256), or ``None`` when no cell touches the tile.
    """
    bounds = tile_bounds(z, x, y)
    pad = (bounds[2] - bounds[0]) / TILE_SIZE  # one pixel: outlines of cells just outside
    idx = geometry.query((bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad))
    if idx.size:
        idx = idx[rgba[idx, 3] > 0]
    if idx.size == 0:
        return None
    pts, off = geometry.pixel_rings(idx, bounds, scale=TILE_SIZE)
    flat = pts.ravel().tolist()
    colours = [tuple(c) for c in rgba[idx].tolist()]
    img = Image.new("RGBA", (TILE_SIZE, TILE_SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    o2 = (2 * off).tolist()
    line = OUTLINE_RGBA if outline else None
    for i, colour in enumerate(colours):
        draw.polygon(flat[o2[i]:o2[i + 1]], fill=colour, outline=line)
    hatched = np.flatnonzero(np.asarray(hatch)[idx]) if hatch is not None else ()
    if len(hatched):
        mask = Image.new("L", (TILE_SIZE, TILE_SIZE), 0)
        mdraw = ImageDraw.Draw(mask)
        for i in hatched.tolist():
            mdraw.polygon(flat[o2[i]:o2[i + 1]], fill=255)
        alpha = np.minimum(np.asarray(mask), _HATCH_ALPHA)
        lines = np.empty((TILE_SIZE, TILE_SIZE, 4), dtype="uint8")
        lines[..., :3] = HATCH_RGBA[:3]
        lines[..., 3] = alpha
        img.alpha_composite(Image.fromarray(lines, "RGBA"))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
