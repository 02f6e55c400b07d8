"""Response helpers shared by the web map's blueprints (tiles, API, compare, find).

One place for the caching headers of API answers, for tile answers (``ETag``, ``304``,
empty tiles) and for reading the ``?resolution=`` / ``?z=`` of a legend request, so that
each blueprint only says *what* it serves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from flask import Response, abort, current_app, request

from kantong.webmap.config import MAX_ZOOM

_INT: Final = re.compile(r"[0-9]{1,8}")


def cached(response: Response) -> Response:
    """Return an API ``response`` with ``Cache-Control``, an ``ETag`` and ``304`` handling."""
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['API_MAX_AGE']}"
    response.add_etag()
    return response.make_conditional(request)


def tile_response(etag: str, produce: Callable[[], bytes | None], mimetype: str,
                  empty: bytes | None) -> Response:
    """Return a tile answer: ``304`` if the client has ``etag``, else the tile bytes.

    Parameters
    ----------
    etag
        Strong ETag of the tile.
    produce
        Makes the tile (``None``: no published cell in it).
    mimetype
        Media type of the tile.
    empty
        Body of a tile without cells (``None``: answer ``204 No Content``).
    """
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
        del response.headers["Content-Type"]
    else:
        data = produce()
        if data is None and empty is None:
            response = Response(status=204)
            del response.headers["Content-Type"]
        else:
            response = Response(data if data is not None else empty, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['TILE_MAX_AGE']}"
    return response


def requested_resolution(resolutions: Sequence[int], for_zoom: Callable[[int], int]
                         ) -> int | None:
    """Return the H3 resolution a legend request asks for, or ``None`` (the default).

    ``?resolution=R`` must be one of ``resolutions``; ``?z=Z`` (0..MAX_ZOOM) gives the
    resolution drawn at that zoom (``for_zoom``). Invalid values abort with ``400``.
    """
    if "resolution" in request.args:
        text = request.args["resolution"]
        if not _INT.fullmatch(text) or int(text) not in resolutions:
            abort(400, description=f"resolution must be one of {list(resolutions)}, "
                                   f"got {text[:16]!r}")
        return int(text)
    if "z" in request.args:
        text = request.args["z"]
        if not _INT.fullmatch(text) or int(text) > MAX_ZOOM:
            abort(400, description=f"z must be an integer in 0..{MAX_ZOOM}, got {text[:16]!r}")
        return for_zoom(int(text))
    return None


__all__ = ["cached", "requested_resolution", "tile_response"]
