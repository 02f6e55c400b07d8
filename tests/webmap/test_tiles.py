"""Raster and vector tiles, legends, TileJSON, ETags and the tile cache
(kantong.webmap.views.tiles)."""

from __future__ import annotations

import io
import json

import h3
import mapbox_vector_tile
import mercantile
import numpy as np
import pandas as pd
import pytest
import shapely
from PIL import Image

from kantong.webmap import create_app
from kantong.webmap.config import resolution_for_zoom
from kantong.webmap.tiling.cache import TileCache
from kantong.webmap.tiling.colors import NODATA_RGBA, make_scale, nice_ticks
from kantong.webmap.tiling.render import (
    HATCH_PERIOD,
    HATCH_RGBA,
    CellGeometry,
    render_png,
)
from kantong.webmap.tiling.service import DERIVED_NODATA_LABEL


def _png(resp) -> np.ndarray:
    assert resp.status_code == 200, resp.get_data()
    assert resp.mimetype == "image/png"
    img = Image.open(io.BytesIO(resp.data))
    assert img.size == (256, 256)
    assert img.mode == "RGBA"
    return np.asarray(img)


def _pixel(lon: float, lat: float, z: int, x: int, y: int) -> tuple[int, int]:
    """Row and column of a lon/lat inside tile z/x/y (mercantile: independent of webmap)."""
    b = mercantile.xy_bounds(x, y, z)
    mx, my = mercantile.xy(lon, lat)
    f = 256 / (b.right - b.left)
    return int((b.top - my) * f), int((mx - b.left) * f)


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    t = mercantile.tile(lon, lat, z)
    return z, t.x, t.y


@pytest.fixture
def run(app):
    return app.extensions["kantong"]


@pytest.fixture
def svc(app):
    return app.extensions["kantong_tiles"]


def test_zoom_to_resolution_table():
    avail = [5, 6, 7, 8]
    assert [resolution_for_zoom(z, avail) for z in (0, 5, 6, 7, 8, 9, 10, 14, 22)] == \
        [5, 5, 5, 6, 7, 7, 8, 8, 8]
    assert resolution_for_zoom(13, [5, 6, 7, 8, 9, 10]) == 10
    assert resolution_for_zoom(11, [5, 6, 7, 8, 9, 10]) == 9
    assert resolution_for_zoom(3, [8]) == 8  # only the base: coarsest available


def test_png_tile_colours_cells_by_indicator(client, run, svc):
    cells = run.cells()
    row = cells.sort_values("priority").iloc[len(cells) // 2]
    z, x, y = _tile_of(row["lon"], row["lat"], 13)
    img = _png(client.get(f"/tiles/priority/{z}/{x}/{y}.png"))
    r, c = _pixel(row["lon"], row["lat"], z, x, y)
    scale, _ = svc.scale("priority", 8)
    expected = scale.rgba(np.array([row["priority"]]))[0]
    assert tuple(img[r, c]) == tuple(expected)
    assert (img[..., 3] > 0).mean() > 0.05


def test_png_outside_data_is_transparent(client):
    img = _png(client.get("/tiles/priority/10/100/100.png"))  # North Atlantic
    assert img[..., 3].max() == 0


def test_png_zoom_switches_resolution(client, run, svc):
    assert svc.resolution_for_zoom(6) == 5 and svc.resolution_for_zoom(8) == 7
    for z, res in ((6, 5), (8, 7), (12, 8)):
        cells = run.cells(res)
        row = cells.sort_values("extreme_households").iloc[-1]
        zz, x, y = _tile_of(row["lon"], row["lat"], z)
        img = _png(client.get(f"/tiles/extreme_households/{zz}/{x}/{y}.png"))
        r, c = _pixel(row["lon"], row["lat"], zz, x, y)
        scale, _ = svc.scale("extreme_households", res)
        assert tuple(img[r, c]) == tuple(scale.rgba(np.array([row["extreme_households"]]))[0])
    # rollups carry no priority column: it is derived (max of the published children)
    r5 = svc.level(5).attributes
    base = run.cells()
    parent = base["h3"].map(lambda c: h3.cell_to_parent(c, 5))
    expected = base.groupby(parent)["priority"].max()
    got = r5.set_index("h3")["priority"]
    assert np.allclose(got.loc[expected.index].to_numpy(), expected.to_numpy())


def test_pocket_layer_is_categorical(client, run, svc):
    cells = run.cells()
    inside = cells[cells["pocket_id"].notna()].iloc[0]
    outside = cells[cells["pocket_id"].isna()].iloc[0]
    for row, drawn in ((inside, True), (outside, False)):
        z, x, y = _tile_of(row["lon"], row["lat"], 13)
        img = _png(client.get(f"/tiles/pocket/{z}/{x}/{y}.png"))
        r, c = _pixel(row["lon"], row["lat"], z, x, y)
        if drawn:
            scale, _ = svc.scale("pocket", 8)
            assert tuple(img[r, c]) == tuple(scale.rgba(np.array([inside["pocket_id"]]))[0])
        else:
            assert img[r, c, 3] == 0
    legend = client.get("/tiles/pocket/legend.json").json
    assert legend["kind"] == "categorical"
    assert [s["value"] for s in legend["stops"]] == sorted(cells["pocket_id"].dropna().unique())


def test_mvt_tile_decodes_with_public_attributes(client, run):
    cells = run.cells()
    lon, lat = cells["lon"].mean(), cells["lat"].mean()
    z, x, y = _tile_of(lon, lat, 12)
    resp = client.get(f"/tiles/cells/{z}/{x}/{y}.pbf")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/vnd.mapbox-vector-tile"
    tile = mapbox_vector_tile.decode(resp.data, default_options={"y_coord_down": True})
    layer = tile["cells"]
    assert layer["extent"] == 4096 and layer["version"] == 2
    feats = layer["features"]
    by_id = {f["properties"]["h3"]: f for f in feats}
    assert set(by_id) <= set(cells["h3"])
    # every published cell whose centre is inside the tile is there, with its geometry
    minx, miny, maxx, maxy = mercantile.xy_bounds(x, y, z)
    mx, my = (np.array(v) for v in zip(*[mercantile.xy(a, b) for a, b in
                                          zip(cells["lon"], cells["lat"], strict=True)],
                                        strict=True))
    inside = cells[(mx > minx) & (mx < maxx) & (my > miny) & (my < maxy)]
    assert len(inside) > 10 and set(inside["h3"]) <= set(by_id)
    row = inside.iloc[0]
    f = by_id[row["h3"]]
    assert f["id"] == int(row["h3"], 16)
    assert f["properties"]["households"] == row["households"]
    assert f["properties"]["priority"] == pytest.approx(row["priority"])
    r, c = _pixel(row["lon"], row["lat"], z, x, y)
    poly = shapely.geometry.shape(f["geometry"])
    assert poly.is_valid and poly.contains(shapely.Point(c * 16 + 8, r * 16 + 8))
    assert shapely.Polygon(poly.exterior).exterior.is_ccw  # positive area in y-down coords
    assert "geometry" not in f["properties"] and "lon" not in f["properties"]


def test_mvt_rollup_and_empty(client, run):
    r5 = run.cells(5)
    row = r5.iloc[0]
    z, x, y = _tile_of(row["lon"], row["lat"], 6)
    feats = mapbox_vector_tile.decode(client.get(f"/tiles/cells/{z}/{x}/{y}.pbf").data)
    props = [f["properties"] for f in feats["cells"]["features"]]
    assert {h3.get_resolution(p["h3"]) for p in props} == {5}
    assert all("priority" in p for p in props)
    empty = client.get("/tiles/cells/10/100/100.pbf")
    assert empty.status_code == 204 and empty.data == b""


def test_tilejson(client, run):
    doc = client.get("/tiles/cells.json").json
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["/tiles/cells/{z}/{x}/{y}.pbf"]  # root-relative, no Host
    assert 0 <= doc["minzoom"] <= doc["maxzoom"] <= 22
    w, s, e, n = doc["bounds"]
    cells = run.cells()
    assert w <= cells["lon"].min() and e >= cells["lon"].max()
    assert s <= cells["lat"].min() and n >= cells["lat"].max()
    lon, lat, zoom = doc["center"]
    assert w <= lon <= e and s <= lat <= n and doc["minzoom"] <= zoom <= doc["maxzoom"]
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "cells"
    assert layer["fields"]["h3"] == "String" and layer["fields"]["priority"] == "Number"
    # a forged Host never reaches the (publicly cached) document
    raster = client.get("/tiles/priority.json", base_url="http://evil.example:8080").json
    assert raster["tiles"] == ["/tiles/priority/{z}/{x}/{y}.png"]
    assert "evil.example" not in json.dumps(
        client.get("/api/indicators", base_url="http://evil.example").json)
    assert raster["tileSize"] == 256 and "vector_layers" not in raster
    assert client.get("/tiles/nothing.json").status_code == 404
    meta = client.get("/tiles/cells/metadata.json").json  # for GDAL's MVT driver
    assert meta["format"] == "pbf" and len(meta["bounds"].split(",")) == 4
    assert json.loads(meta["json"])["vector_layers"] == doc["vector_layers"]


@pytest.mark.parametrize("path", [
    "/tiles/priority/-1/0/0.png", "/tiles/priority/1/2/0.png", "/tiles/priority/1/0/2.png",
    "/tiles/priority/23/0/0.png", "/tiles/priority/a/0/0.png", "/tiles/priority/1.5/0/0.png",
    "/tiles/priority/3/0/0x1.png", "/tiles/cells/3/8/0.pbf", "/tiles/cells/99999999999/0/0.pbf",
])
def test_invalid_tile_address_is_400_json(client, path):
    resp = client.get(path)
    assert resp.status_code == 400
    assert resp.mimetype == "application/json" and resp.json["error"]


@pytest.mark.parametrize("path", [
    "/tiles/nope/1/0/0.png", "/tiles/geometry/1/0/0.png", "/tiles/h3/1/0/0.png",
    "/tiles/household_id/1/0/0.png", "/tiles/..%2F..%2Fetc%2Fpasswd/1/0/0.png",
    "/tiles/nope/legend.json", "/api/legend/regency_name",
])
def test_unknown_indicator_is_404_json(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp.mimetype == "application/json" and resp.json["error"]


def test_served_indicators(client):
    names = {i["id"] for i in client.get("/api/indicators").json}
    assert {"priority", "extreme_households", "extreme_rate", "pocket"} <= names
    assert {f"travel_min_{t}" for t in ("puskesmas", "posyandu", "school", "water_point")} <= names
    for name in names:
        assert client.get(f"/tiles/{name}/0/0/0.png").status_code == 200


def test_etag_and_conditional_get(client, run):
    cells = run.cells()
    z, x, y = _tile_of(cells["lon"].mean(), cells["lat"].mean(), 11)
    url = f"/tiles/priority/{z}/{x}/{y}.png"
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"].startswith("public, max-age=")
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    other = client.get(f"/tiles/extreme_rate/{z}/{x}/{y}.png").headers["ETag"]
    mvt = client.get(f"/tiles/cells/{z}/{x}/{y}.pbf").headers["ETag"]
    assert len({etag, other, mvt}) == 3
    assert client.get(f"/tiles/cells/{z}/{x}/{y}.pbf",
                      headers={"If-None-Match": mvt}).status_code == 304


def test_etag_depends_on_privacy_threshold(web_run, run):
    cells = run.cells()
    z, x, y = _tile_of(cells["lon"].mean(), cells["lat"].mean(), 11)
    tags = set()
    for k in (10, 30):
        app = create_app({"TESTING": True, "RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": k})
        tags.add(app.test_client().get(f"/tiles/priority/{z}/{x}/{y}.png").headers["ETag"])
    assert len(tags) == 2


def test_cache_is_bounded_and_hit(web_run, run):
    app = create_app({"TESTING": True, "RUN_DIR": str(web_run), "TILE_CACHE_BYTES": 12_000})
    client, svc = app.test_client(), app.extensions["kantong_tiles"]
    cells = run.cells()
    t = mercantile.tile(cells["lon"].mean(), cells["lat"].mean(), 13)
    urls = [f"/tiles/priority/13/{t.x + dx}/{t.y + dy}.png"
            for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    for url in urls:
        assert client.get(url).status_code == 200
        assert svc.cache.nbytes <= 12_000
    assert svc.cache.evictions > 0
    hits = svc.cache.hits
    client.get(urls[-1])
    assert svc.cache.hits == hits + 1


def test_tile_cache_lru_unit():
    cache = TileCache(3 * 300)
    for i in range(3):
        cache.put(i, b"x" * 100)
    cache.get(0)
    cache.put(3, b"y" * 100)  # evicts 1, the least recently used
    assert 1 not in [k for k in range(4) if cache.get(k, None) is not None]
    assert cache.get(0) == b"x" * 100
    cache.put("empty", None)  # empty tiles are cached too
    assert cache.get("empty", "miss") is None
    cache.put("big", b"z" * 5000)  # larger than the bound: not stored
    assert cache.get("big", "miss") == "miss"
    assert cache.nbytes <= cache.max_bytes
    with pytest.raises(ValueError):
        TileCache(-1)


def test_legend_and_alias(client, svc, run):
    legend = client.get("/tiles/priority/legend.json").json
    assert legend == client.get("/api/legend/priority").json
    # priority: 0 .. its 99.9th percentile rounded up to 0.1 (not a fixed 0..1)
    top = np.ceil(np.quantile(run.cells()["priority"], 0.999) * 10 - 1e-9) / 10
    assert legend["indicator"] == "priority" and legend["domain"] == [0.0, pytest.approx(top)]
    assert legend["label"] and legend["unit"]
    values = [s["value"] for s in legend["stops"]]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == pytest.approx(top)
    assert legend["nodata_label"] == "No data"
    assert legend["open_high"] == bool(run.cells()["priority"].max() > top)
    assert legend["ticks"][0] == 0.0 and legend["ticks"][-1] == pytest.approx(top)
    assert legend["ticks"] == sorted(legend["ticks"])
    assert client.get("/tiles/pocket/legend.json").json["ticks"] is None
    scale, _ = svc.scale("priority", 8)
    lut0 = "#{:02x}{:02x}{:02x}".format(*scale.lut[0][:3])
    assert legend["stops"][0]["color"] == lut0
    z6 = client.get("/tiles/extreme_households/legend.json?z=6").json
    assert z6["resolution"] == 5
    assert client.get("/tiles/extreme_households/legend.json?resolution=7").json["resolution"] == 7
    assert client.get("/tiles/priority/legend.json?resolution=99").status_code == 400
    assert client.get("/tiles/priority/legend.json?z=x").status_code == 400


def test_colour_scales():
    travel = make_scale("travel_min_puskesmas", np.array([5.0, 30.0, 400.0, 1000.0, np.nan]))
    lo, hi = travel.domain
    assert lo == 0.0 and hi <= 240.0 and hi % 15 == 0
    rgba = travel.rgba(np.array([np.nan, 0.0, 5000.0]))
    assert tuple(rgba[0]) == NODATA_RGBA
    assert tuple(rgba[2]) == tuple(travel.lut[-1])  # capped
    counts = make_scale("extreme_households", np.arange(1000.0))
    assert counts.domain[0] == 0.0 and counts.domain[1] >= np.quantile(np.arange(1000.0), 0.98)
    # scores and rates: data-driven tops (the fixed 0..1 left Kalbar's map pale)
    assert make_scale("extreme_rate", np.array([0.1])).domain == (0.0, 0.1)
    rate = make_scale("extreme_rate", np.r_[np.zeros(90), np.full(10, 0.184)])
    assert rate.domain == (0.0, 0.2) and not rate.open_high
    assert make_scale("extreme_rate", np.array([0.0, 0.9, 1.0])).domain == (0.0, 1.0)
    assert make_scale("share_no_improved_water", np.array([0.1])).domain == (0.0, 1.0)
    assert make_scale("priority", np.array([0.05, 0.3, 0.62])).domain == (0.0, 0.7)
    assert make_scale("priority", np.array([0.0, 0.0])).domain == (0.0, 0.1)
    wide = make_scale("priority", np.r_[np.full(5000, 0.1), 0.9])  # one outlier: clipped
    assert wide.domain == (0.0, 0.1) and wide.open_high
    assert wide.legend()["open_high"] and wide.legend()["stops"][-1]["value"] == 0.1
    # the reference values (base resolution) set the domain, the values only open_high
    ref = make_scale("priority", np.array([0.9]), reference=np.array([0.2, 0.35]))
    assert ref.domain == (0.0, 0.4) and ref.open_high
    assert make_scale("households", np.array([1.0, 2.0]), reference=None).legend()[
        "nodata_label"] == "No data"
    # tick labels at round values; the gradient keeps its 6 even stops
    assert nice_ticks(0.0, 0.5) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert nice_ticks(0.0, 0.7) == [0.0, 0.2, 0.4, 0.6, 0.7]
    assert nice_ticks(0.0, 135.0, minutes=True) == [0.0, 30.0, 60.0, 90.0, 120.0, 135.0]
    assert nice_ticks(12.3, 87.9) == [12.3, 20.0, 40.0, 60.0, 80.0, 87.9]
    assert nice_ticks(1.0, 1.0) == [1.0, 1.0]
    minutes = make_scale("travel_min_school", np.linspace(0, 240, 50)).legend()
    assert minutes["ticks"] == [0.0, 60.0, 120.0, 180.0, 240.0] and len(minutes["stops"]) == 6
    # open ends on both sides: a 2nd..98th percentile domain leaves values on either side
    spread = make_scale("elevation_mean", np.linspace(0.0, 100.0, 101)).legend()
    assert spread["open_low"] and spread["open_high"]
    assert not make_scale("extreme_rate", np.array([0.0, 0.1])).legend()["open_low"]
    # zero is drawn visibly: the first colour is not the background's near-white
    for name in ("extreme_rate", "priority", "extreme_households", "travel_min_school"):
        first = make_scale(name, np.array([0.0, 1.0])).rgba(np.array([0.0]))[0, :3].astype(int)
        assert np.abs(first - np.array([0xF7, 0xF5, 0xF0])).sum() > 60, (name, first)
        assert tuple(first) != NODATA_RGBA[:3]
    pocket = make_scale("pocket", np.array([1.0]))
    assert pocket.rgba(np.array([np.nan]))[0, 3] == 0
    assert tuple(pocket.rgba(np.array([1.0]))[0]) != tuple(pocket.rgba(np.array([2.0]))[0])


def test_tiles_allow_cross_origin_use(client):
    assert client.get("/tiles/cells.json").headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in client.get("/api/run").headers


def test_mvt_matches_the_reference_encoder(app, run):
    """Our vectorised encoder and mapbox_vector_tile.encode give the same decoded tile."""
    svc = app.extensions["kantong_tiles"]
    cells = run.cells()
    z, x, y = _tile_of(cells["lon"].mean(), cells["lat"].mean(), 12)
    level = svc.level(svc.resolution_for_zoom(z))
    ours = mapbox_vector_tile.decode(svc.mvt(z, x, y))["cells"]
    bounds = tuple(mercantile.xy_bounds(x, y, z))
    idx = level.geometry.query(bounds)
    pts, off = level.geometry.pixel_rings(idx, bounds, scale=4096)
    feats = []
    for i, rec in enumerate(level.attributes.iloc[idx].to_dict("records")):
        props = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()
                 if v is not None and v is not pd.NA and v == v}
        feats.append({"geometry": shapely.Polygon(pts[off[i]:off[i + 1]]), "properties": props,
                      "id": int(level.ids[idx[i]])})
    ref = mapbox_vector_tile.decode(mapbox_vector_tile.encode(
        {"name": "cells", "features": feats}, default_options={"y_coord_down": True}))["cells"]
    assert ours["extent"] == ref["extent"] == 4096
    assert len(ours["features"]) == len(ref["features"]) > 10
    for a, b in zip(sorted(ours["features"], key=lambda f: f["id"]),
                    sorted(ref["features"], key=lambda f: f["id"]), strict=True):
        assert a["id"] == b["id"] and a["type"] == b["type"]
        assert a["properties"] == b["properties"]
        ga, gb = shapely.geometry.shape(a["geometry"]), shapely.geometry.shape(b["geometry"])
        assert ga.equals(gb)  # same ring (possibly starting at another vertex)


def test_cell_encoder_value_types_and_nulls():
    """Nulls are omitted (even every attribute of a feature), negatives and text survive."""
    from kantong.webmap.tiling.mvt import CellEncoder
    from kantong.webmap.tiling.render import CellGeometry

    ids = [h3.latlng_to_cell(0.05, 110.75 + 0.01 * i, 8) for i in range(4)]
    geoms = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in ids]
    attrs = pd.DataFrame({
        "name": pd.array(["Sanggau", "Kubu Raya ñ", None, None], dtype="string"),
        "delta": pd.array([-300, 2**40, 0, None], dtype="Int64"),
        "hot": pd.array([True, False, True, None], dtype="boolean"),
        "share": [0.25, np.nan, 1e-12, np.nan],
    })
    enc = CellEncoder(attrs, np.array([int(c, 16) for c in ids], dtype="uint64"))
    geometry = CellGeometry(np.array(geoms, dtype=object))
    z, x, y = _tile_of(110.765, 0.05, 11)
    feats = mapbox_vector_tile.decode(enc.encode(geometry, z, x, y))["cells"]["features"]
    got = {f["id"]: f["properties"] for f in feats}
    assert got == {
        int(ids[0], 16): {"name": "Sanggau", "delta": -300, "hot": True, "share": 0.25},
        int(ids[1], 16): {"name": "Kubu Raya ñ", "delta": 2**40, "hot": False},
        int(ids[2], 16): {"delta": 0, "hot": True, "share": 1e-12},
        int(ids[3], 16): {},
    }
    assert enc.encode(geometry, 11, 0, 0) is None


def test_score_and_rate_colours_keep_their_meaning_across_zooms(client, svc, run):
    """Priority and the extreme rate use the base-resolution domain at every zoom."""
    for name in ("priority", "extreme_rate"):
        base = client.get(f"/tiles/{name}/legend.json").json
        for z in (5, 7, 8, 9):
            legend = client.get(f"/tiles/{name}/legend.json?z={z}").json
            assert legend["resolution"] == svc.resolution_for_zoom(z)
            assert legend["domain"] == base["domain"] and legend["stops"] == base["stops"]
    # counts still follow the resolution (rollup cells sum their children)
    r5 = client.get("/tiles/extreme_households/legend.json?resolution=5").json
    r8 = client.get("/tiles/extreme_households/legend.json?resolution=8").json
    assert r5["domain"][1] > r8["domain"][1]


def test_nodata_legend_label_at_derived_rollups(web_run):
    """A rollup cell whose published children carry no priority says why it has none."""
    app = create_app({"TESTING": True, "RUN_DIR": str(web_run), "MIN_HOUSEHOLDS": 30})
    client, svc = app.test_client(), app.extensions["kantong_tiles"]
    missing = 0
    for res in (5, 6, 7):
        attrs = svc.level(res).attributes
        legend = client.get(f"/tiles/priority/legend.json?resolution={res}").json
        assert legend["nodata_label"] == DERIVED_NODATA_LABEL
        # the hatch mask is exactly the cells without a derived value
        assert (svc.nodata("priority", res) == attrs["priority"].isna().to_numpy()).all()
        missing += int(attrs["priority"].isna().sum())
    assert missing > 0  # K = 30 withholds every child of some published rollup cells
    # a column the rollups carry themselves keeps the plain label
    assert client.get("/tiles/households/legend.json?resolution=5").json["nodata_label"] \
        == "No data"
    assert not svc.nodata("pocket", 8).any()  # cells outside pockets are not drawn at all


def _one_hexagon() -> tuple[CellGeometry, str]:
    cell = h3.latlng_to_cell(0.05, 110.75, 8)
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    return CellGeometry(np.array([shapely.Polygon(ring)], dtype=object)), cell


def test_nodata_cells_are_hatched_across_tiles():
    geometry, cell = _one_hexagon()
    lat, lon = h3.cell_to_latlng(cell)
    rgba = np.array([NODATA_RGBA], dtype="uint8")
    z = 14
    z, x, y = _tile_of(lon, lat, z)
    plain = np.asarray(Image.open(io.BytesIO(render_png(geometry, rgba, z, x, y))))
    hatched = np.asarray(Image.open(io.BytesIO(
        render_png(geometry, rgba, z, x, y, hatch=np.array([True])))))
    inside = plain[..., 3] > 0
    assert inside.sum() > 500
    assert (hatched[~inside] == 0).all()  # nothing drawn outside the cell
    i, j = np.nonzero(inside)
    on_line = (i + j) % HATCH_PERIOD == 0  # global grid: tile size is a multiple of the period
    # lines darker than the fill, the fill between them unchanged
    assert (hatched[i[on_line], j[on_line], 0] < plain[i[on_line], j[on_line], 0]).mean() > 0.95
    assert (hatched[i[~on_line], j[~on_line]] == plain[i[~on_line], j[~on_line]]).all()
    assert HATCH_RGBA[0] < NODATA_RGBA[0] and 256 % HATCH_PERIOD == 0
    # a valued cell is not hatched even when a mask is given for it as False
    valued = np.asarray(Image.open(io.BytesIO(
        render_png(geometry, rgba, z, x, y, hatch=np.array([False])))))
    assert (valued == plain).all()
