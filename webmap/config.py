"""Configuration of the web map: defaults, environment overrides and the zoom table.

``create_app`` starts from :data:`DEFAULTS`, then applies environment variables with
the ``KANTONG_`` prefix (``KANTONG_RUN_DIR=/srv/run`` sets ``RUN_DIR``;
``KANTONG_TILE_CACHE_BYTES=268435456`` sets ``TILE_CACHE_BYTES``; values are parsed as
JSON when possible), then the ``test_config`` mapping.

The H3 resolution drawn in a tile follows the zoom (:data:`FINEST_RESOLUTION_BY_ZOOM`):
the finest resolution whose average hexagon is at least about 4 pixels across at that
zoom (at the equator, where Kalimantan lies), so that tiles stay readable and fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

#: Defaults of every configuration key the web map reads.
DEFAULTS: Final[Mapping[str, Any]] = {
    # the run directory to serve (fixed at app creation; nothing else is reachable)
    "RUN_DIR": None,
    # privacy threshold of published cells; None = the PublishedRun default (manifest/config)
    "MIN_HOUSEHOLDS": None,
    # in-memory LRU tile cache bound, in bytes of encoded tiles
    "TILE_CACHE_BYTES": 64 * 1024 * 1024,
    # in-memory LRU cache of generated GeoJSON downloads, in bytes
    "DOWNLOAD_CACHE_BYTES": 256 * 1024 * 1024,
    # Cache-Control max-age of tiles and of API responses (seconds)
    "TILE_MAX_AGE": 3600,
    "API_MAX_AGE": 300,
    # tolerance (degrees) used to simplify regency outlines of the offline background
    "BOUNDARY_SIMPLIFY_DEG": 0.002,
    # allowed frame ancestors of the viewer page (CSP frame-ancestors); 'self' by default
    "FRAME_ANCESTORS": "'self'",
    # Access-Control-Allow-Origin of /tiles/... (published tiles for QGIS/MapLibre); "" = none
    "TILES_CORS_ORIGIN": "*",
    "JSON_SORT_KEYS": False,
    # base of URLs in TileJSON and /api/indicators ("" = root-relative; never the Host header)
    "PUBLIC_URL": "",
    # publish below the run's own K / skip the run's SHA-256 check (serve flags; logged)
    "ALLOW_LOWER_K": False,
    "TRUST_RUN": False,
    # trust one reverse-proxy hop for the client address and scheme (werkzeug ProxyFix)
    "BEHIND_PROXY": False,
    # staff accounts (kantong users); None = no login, the public map only (docs/security.md)
    "USERS_FILE": None,
    "STAFF_MIN_HOUSEHOLDS": 5,
    "STAFF_SESSION_MINUTES": 480,
    "LOGIN_MAX_FAILURES": 5,
    # append-only audit log of staff logins, views and downloads (default <USERS_FILE>.audit.log)
    "AUDIT_LOG": None,
}

#: Tile size in pixels of the raster tiles.
TILE_SIZE: Final = 256
#: Extent of the vector tiles (MVT 2.1 default).
MVT_EXTENT: Final = 4096
#: Highest zoom accepted in tile URLs; lowest and highest zoom advertised in TileJSON.
MAX_ZOOM: Final = 22
TILEJSON_MINZOOM: Final = 4
TILEJSON_MAXZOOM: Final = 16
#: From this zoom on, raster hexagons get a thin outline.
OUTLINE_MIN_ZOOM: Final = 10

#: Zoom -> finest H3 resolution drawn at that zoom (zooms above the last key use its value).
#: Chosen so that an average hexagon (flat-to-flat width sqrt(3) x edge) is >= ~4 px wide:
#: r5 is 7 px at z6, r6 5.3 px at z7, r7 4.0 px at z8 and 8 px at z9, r8 6 px at z10,
#: r9 4.6 px at z11, r10 6.9 px at z13.
FINEST_RESOLUTION_BY_ZOOM: Final[Mapping[int, int]] = {
    0: 5, 1: 5, 2: 5, 3: 5, 4: 5, 5: 5, 6: 5, 7: 6, 8: 7, 9: 7, 10: 8, 11: 9, 12: 9, 13: 10,
}


def resolution_for_zoom(zoom: int, available: Sequence[int]) -> int:
    """Return the H3 resolution to draw at ``zoom`` among the ``available`` resolutions.

    Parameters
    ----------
    zoom
        Web Mercator zoom level (0..22).
    available
        Resolutions the run publishes (rollups and base), in any order.

    Returns
    -------
    int
        The finest available resolution not finer than the table's target for ``zoom``;
        the coarsest available one when all are finer than the target.

    Examples
    --------
    >>> resolution_for_zoom(6, [5, 6, 7, 8]), resolution_for_zoom(9, [5, 6, 7, 8])
    (5, 7)
    >>> resolution_for_zoom(14, [5, 6, 7, 8])
    8
    """
    if not available:
        raise ValueError("no resolutions available")
    target = FINEST_RESOLUTION_BY_ZOOM[min(zoom, max(FINEST_RESOLUTION_BY_ZOOM))]
    coarser = [r for r in available if r <= target]
    return max(coarser) if coarser else min(available)


def zoom_table(available: Sequence[int]) -> list[dict[str, int]]:
    """Return the zoom -> resolution table of a run as ``[{"zoom", "resolution"}]`` rows."""
    return [{"zoom": z, "resolution": resolution_for_zoom(z, available)}
            for z in range(0, MAX_ZOOM + 1)]
