"""Security headers set on every response of the web map.

The Content-Security-Policy allows exactly what the offline viewer page needs: its own
scripts, styles, images and tiles (``'self'``), Folium's inline scripts and Leaflet's
inline styles (``'unsafe-inline'``), ``data:``/``blob:`` images (marker icons, canvas
exports) - and nothing from any other origin. Published tile endpoints (``/tiles/...``)
also send ``Access-Control-Allow-Origin`` (configurable, ``*`` by default) so that QGIS
and MapLibre pages on other origins can use them; the API and downloads do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from flask import Flask, Response, request

#: Directives of the Content-Security-Policy (``frame-ancestors`` comes from the config).
CSP_DIRECTIVES: Final[Mapping[str, str]] = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-inline'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "worker-src": "'self' blob:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def content_security_policy(*, frame_ancestors: str = "'self'") -> str:
    """Return the Content-Security-Policy header value.

    Examples
    --------
    >>> "default-src 'self'" in content_security_policy()
    True
    """
    parts = [f"{k} {v}" for k, v in CSP_DIRECTIVES.items()]
    parts.append(f"frame-ancestors {frame_ancestors}")
    return "; ".join(parts)


def register_security_headers(app: Flask) -> None:
    """Add the security headers to every response of ``app`` (an ``after_request`` hook)."""
    ancestors = str(app.config.get("FRAME_ANCESTORS") or "'self'")
    csp = content_security_policy(frame_ancestors=ancestors)
    frame = "DENY" if ancestors.strip() == "'none'" else "SAMEORIGIN"
    cors = app.config.get("TILES_CORS_ORIGIN", "*")

    @app.after_request
    def _headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("Content-Security-Policy", csp)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", frame)
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if cors and request.path.startswith("/tiles/"):
            h.setdefault("Access-Control-Allow-Origin", cors)
        return response
