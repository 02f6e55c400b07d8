"""gzip compression of the web map's text responses (HTML, JSON, GeoJSON, CSS, JS).

Registered by :func:`kantong.webmap.create_app` as an ``after_request`` hook: a ``200``
response whose media type is compressible, of at least :data:`MIN_BYTES`, is gzip-encoded
when the request's ``Accept-Encoding`` allows gzip; ``Vary: Accept-Encoding`` is set on
every compressible response so caches keep the two forms apart. Byte-range answers
(``206``, or a request with ``Range``) and ``HEAD`` requests (which show the size of the
data itself) are left as they are; static files (the viewer's script, styles and Leaflet)
are read and compressed like the rest. A strong ``ETag`` becomes weak on the
compressed form (the same content, another encoding), so ``If-None-Match`` still gives
``304``. Tiles (PNG, MVT) are already compressed and are not touched. Large answers with a
strong ETag (downloads) keep their gzip form in a bounded memory cache, keyed by path and
ETag.
"""

from __future__ import annotations

import gzip
import logging
from typing import Final

from flask import Flask, Response, current_app, request

from kantong.webmap.tiling.cache import TileCache

logger = logging.getLogger(__name__)

#: Media types worth compressing.
COMPRESSIBLE: Final = frozenset({
    "text/html", "application/json", "application/geo+json", "text/css", "text/csv",
    "text/javascript", "application/javascript", "image/svg+xml",
})
#: Smallest body compressed (smaller ones gain nothing).
MIN_BYTES: Final = 1024
#: gzip level: 6 is zlib's default balance of speed and size.
LEVEL: Final = 6
#: Answers at least this large with a strong ETag keep their gzip form in memory (a 12.6 MB
#: province GeoJSON takes about 0.7 s to compress), up to :data:`CACHE_BYTES` in all.
CACHE_MIN_BYTES: Final = 256 * 1024
CACHE_BYTES: Final = 64 * 1024 * 1024
_EXTENSION: Final = "kantong_gzip"


def accepts_gzip(header: str | None) -> bool:
    """Return whether an ``Accept-Encoding`` value allows gzip (``q=0`` refuses it).

    Examples
    --------
    >>> accepts_gzip("gzip, deflate, br"), accepts_gzip("gzip;q=0"), accepts_gzip(None)
    (True, False, False)
    """
    for part in (header or "").lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params.strip() or float(q) > 0
            except ValueError:
                return False
    return False


def compress_response(response: Response) -> Response:
    """Gzip ``response`` in place when the current request allows it; return it."""
    if response.mimetype not in COMPRESSIBLE:
        return response
    response.vary.add("Accept-Encoding")
    if (response.status_code != 200 or request.method == "HEAD"
            or "Content-Encoding" in response.headers or "Range" in request.headers
            or not accepts_gzip(request.headers.get("Accept-Encoding"))):
        return response
    source = response.response
    response.direct_passthrough = False  # static files (send_file): read them to compress
    data = response.get_data()
    close = getattr(source, "close", None)
    if close is not None:  # a file wrapper: read now, close it
        close()
    if len(data) < MIN_BYTES:
        return response
    etag, weak = response.get_etag()
    key = (request.path, etag) if etag and not weak and len(data) >= CACHE_MIN_BYTES else None
    cache = current_app.extensions.get(_EXTENSION)
    packed = cache.get(key, None) if key is not None and cache is not None else None
    if packed is None:
        packed = gzip.compress(data, compresslevel=LEVEL, mtime=0)
        if key is not None and cache is not None:
            cache.put(key, packed)
    response.set_data(packed)
    response.headers["Content-Encoding"] = "gzip"
    response.headers.pop("Accept-Ranges", None)
    if etag and not weak:
        response.set_etag(etag, weak=True)
    logger.debug("gzip %s: %d -> %d bytes", request.path, len(data), len(packed))
    return response


def register_compression(app: Flask) -> None:
    """Compress the text responses of ``app`` (an ``after_request`` hook)."""
    app.extensions[_EXTENSION] = TileCache(CACHE_BYTES)
    app.after_request(compress_response)


__all__ = ["COMPRESSIBLE", "MIN_BYTES", "accepts_gzip", "compress_response",
           "register_compression"]
