"""gzip of HTML, JSON and GeoJSON responses when the client accepts it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from kantong.webmap import create_app
from kantong.webmap.compress import accepts_gzip


@pytest.fixture(scope="module")
def client(pipeline_run: Path):
    return create_app({"RUN_DIR": str(pipeline_run), "TESTING": True}).test_client()


@pytest.mark.parametrize("url", ["/", "/?lang=en", "/download/cells.geojson", "/api/pockets",
                                 "/api/context/districts.geojson", "/download/cells.csv",
                                 "/static/viewer.js", "/static/vendor/leaflet/leaflet.js"])
def test_text_responses_are_gzipped_when_accepted(client, url: str) -> None:
    with client.get(url) as plain:  # static files: close the file handle
        plain.get_data()
    packed = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert "Accept-Encoding" in plain.headers["Vary"]
    assert gzip.decompress(packed.data) == plain.data
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data) / 2


def test_conditional_and_range_requests_still_work(client) -> None:
    packed = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["ETag"].startswith('W/"')  # same content, another encoding
    again = client.get("/", headers={"Accept-Encoding": "gzip",
                                     "If-None-Match": packed.headers["ETag"]})
    assert again.status_code == 304
    part = client.get("/download/cells.geojson",
                      headers={"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert part.status_code == 206 and "Content-Encoding" not in part.headers
    assert part.data == b'{"type":"F'
    tile = client.get("/tiles/priority/0/0/0.png", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in tile.headers  # PNG is compressed already


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, GZIP;q=0.5") and accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("br") and not accepts_gzip("")
    assert not accepts_gzip("gzip;q=x")


def test_large_downloads_keep_their_gzip_form(client, monkeypatch) -> None:
    from kantong.webmap import compress

    monkeypatch.setattr(compress, "CACHE_MIN_BYTES", 1024)
    calls = []
    real = compress.gzip.compress
    monkeypatch.setattr(compress.gzip, "compress", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = client.get("/download/cells.csv?resolution=7", headers={"Accept-Encoding": "gzip"})
    again = client.get("/download/cells.csv?resolution=7", headers={"Accept-Encoding": "gzip"})
    assert first.data == again.data and gzip.decompress(again.data).startswith(b"h3,")
    assert len(calls) == 1  # compressed once, then served from the bounded cache
