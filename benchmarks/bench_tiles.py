"""Tile server benchmark: latency of a pan/zoom session, throughput, memory, naive/peer ratios.

Usage::

    python benchmarks/bench_tiles.py [--run RUNDIR] [--clients 8] [--seconds 10]

RUNDIR defaults to /tmp/run61 (the Kalimantan Barat demo run), else /tmp/run61b, else
the demo cache of ``kantong serve`` ($KANTONG_CACHE_DIR/demo-61/run).

1. Rendering in-process, per tile: ours (STRtree + vectorised projection + PIL) vs a naive
   renderer (shapely intersects over every cell, then drawing) vs matplotlib (the peer:
   PolyCollection + Agg); MVT: ours (vectorised encoder) vs ``mapbox_vector_tile.encode``.
2. A realistic session against ``kantong serve`` (waitress, 127.0.0.1) over HTTP keep-alive:
   zoom 6 -> 14 on a 5 x 4 tile viewport with pans at each zoom, PNG tiles of three layers
   and the vector tiles; cold (empty tile cache) then warm. p50/p95/p99 per phase.
3. Throughput with N concurrent clients (threads, http.client keep-alive) on a warm cache.
4. Memory: server RSS, and an in-process cache bounded at 8 MiB under 4,000 distinct tiles.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import mercantile
import numpy as np
import shapely
from agreement import check

# ---- helpers ---------------------------------------------------------------------------------


def pick_run(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    cache = Path(os.environ.get("KANTONG_CACHE_DIR", Path.home() / ".cache" / "kantong"))
    for cand in (Path("/tmp/run61"), Path("/tmp/run61b"), cache / "demo-61" / "run"):
        if (cand / "cells.parquet").is_file():
            return cand
    sys.exit("no run found: pass --run RUNDIR")


def pct(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return (f"n={len(a):5d}  p50 {np.percentile(a, 50):7.2f} ms  p95 {np.percentile(a, 95):7.2f} ms"
            f"  p99 {np.percentile(a, 99):7.2f} ms  max {a.max():7.1f} ms")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def session(lon: float, lat: float, *, zooms=range(6, 15), vw: int = 5, vh: int = 4,
            pans: int = 3) -> list[tuple[int, int, int]]:
    """Tiles a map client fetches: a vw x vh viewport at each zoom, panned east `pans` times."""
    seen, out = set(), []
    for z in zooms:
        t = mercantile.tile(lon, lat, z)
        for p in range(pans):
            for dx in range(-(vw // 2), vw - vw // 2):
                for dy in range(-(vh // 2), vh - vh // 2):
                    key = (z, t.x + 2 * p + dx, t.y + dy)
                    if key not in seen:
                        seen.add(key)
                        out.append(key)
    return out


# ---- 1. in-process rendering: ours vs naive vs matplotlib ------------------------------------


def naive_png(cells, values_rgba, z, x, y) -> bytes:
    """Per tile: test every cell against the tile box, then project and draw (no index)."""
    from PIL import Image, ImageDraw

    from kantong.webmap.tiling.render import lonlat_to_mercator, tile_bounds

    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    w, s = mercantile.lnglat(minx, miny)
    e, n = mercantile.lnglat(maxx, maxy)
    hit = np.flatnonzero(shapely.intersects(cells.geometry.to_numpy(), shapely.box(w, s, e, n)))
    img = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    f = 256 / (maxx - minx)
    for i in hit:
        xy = np.asarray(cells.geometry.iloc[i].exterior.coords)
        mx, my = lonlat_to_mercator(xy[:, 0], xy[:, 1])
        ring = list(zip((mx - minx) * f, (maxy - my) * f, strict=True))
        draw.polygon(ring, fill=tuple(values_rgba[i]))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def matplotlib_png(level, values_rgba, z, x, y) -> bytes:
    """The peer: a 256 px Agg figure with a PolyCollection of the (indexed) cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    from kantong.webmap.tiling.render import tile_bounds

    b = tile_bounds(z, x, y)
    idx = level.geometry.query(b)
    pts, off = level.geometry.pixel_rings(idx, b, scale=256)
    fig = Figure(figsize=(2.56, 2.56), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 256)
    ax.set_ylim(256, 0)
    ax.axis("off")
    polys = [pts[off[i]:off[i + 1]] for i in range(len(idx))]
    ax.add_collection(PolyCollection(polys, facecolors=values_rgba[idx] / 255.0, linewidths=0))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", transparent=True)
    return buf.getvalue()


def lib_mvt(level, z, x, y) -> bytes:
    """The peer: mapbox_vector_tile.encode with shapely polygons in tile coordinates."""
    import mapbox_vector_tile

    from kantong.webmap.tiling.render import tile_bounds

    b = tile_bounds(z, x, y)
    idx = level.geometry.query(b)
    pts, off = level.geometry.pixel_rings(idx, b, scale=4096)
    attrs = level.attributes.iloc[idx]
    records = attrs.to_dict("records")
    feats = []
    for i, rec in enumerate(records):
        props = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()
                 if v is not None and v == v}
        feats.append({"geometry": shapely.Polygon(pts[off[i]:off[i + 1]]), "properties": props})
    return mapbox_vector_tile.encode({"name": "cells", "features": feats},
                                     default_options={"y_coord_down": True})


def bench_inprocess(run_dir: Path, tiles: list[tuple[int, int, int]], k: int | None) -> None:
    from kantong.webmap import create_app
    from kantong.webmap.tiling.render import tile_bounds

    print("\n## 1. In-process rendering (one thread), tiles holding published cells only")
    t0 = time.perf_counter()
    app = create_app({"RUN_DIR": str(run_dir), "TILE_CACHE_BYTES": 0, "MIN_HOUSEHOLDS": k})
    svc = app.extensions["kantong_tiles"]
    run = app.extensions["kantong"]
    for res in run.resolutions:
        t = time.perf_counter()
        lv = svc.level(res)
        print(f"index r{res}: {len(lv.geometry):7d} published cells in "
              f"{time.perf_counter() - t:6.2f} s ({lv.nbytes / 1e6:.1f} MB)")
    print(f"app + all indexes: {time.perf_counter() - t0:.2f} s")
    sample = [t for t in tiles if t[0] in (8, 10, 12)
              and len(svc.level(svc.resolution_for_zoom(t[0])).geometry.query(tile_bounds(*t)))]
    from kantong.webmap.config import OUTLINE_MIN_ZOOM
    from kantong.webmap.tiling.render import render_png

    ours, naive, mpl, mvt_ours, mvt_lib, nfeat = [], [], [], [], [], []
    cells_by_res = {}
    for z, x, y in sample:
        res = svc.resolution_for_zoom(z)
        lv = svc.level(res)
        _, rgba = svc.scale("priority", res)
        t = time.perf_counter()
        render_png(lv.geometry, rgba, z, x, y, outline=z >= OUTLINE_MIN_ZOOM)
        ours.append(time.perf_counter() - t)
        if res not in cells_by_res:
            cells_by_res[res] = run.cells(res)
        t = time.perf_counter()
        naive_png(cells_by_res[res], rgba, z, x, y)
        naive.append(time.perf_counter() - t)
        t = time.perf_counter()
        matplotlib_png(lv, rgba, z, x, y)
        mpl.append(time.perf_counter() - t)
        t = time.perf_counter()
        svc.mvt(z, x, y)
        mvt_ours.append(time.perf_counter() - t)
        nfeat.append(len(lv.geometry.query(tile_bounds(z, x, y))))
        t = time.perf_counter()
        lib_mvt(lv, z, x, y)
        mvt_lib.append(time.perf_counter() - t)
    check_agreement(svc, cells_by_res, sample)
    print(f"{len(sample)} tiles at z8/z10/z12, mean {np.mean(nfeat):.0f} cells per tile "
          f"(max {max(nfeat)})")
    print(f"PNG ours        {pct(ours)}")
    print(f"PNG naive       {pct(naive)}   ratio {np.median(naive) / np.median(ours):5.1f}x")
    print(f"PNG matplotlib  {pct(mpl)}   ratio {np.median(mpl) / np.median(ours):5.1f}x")
    print(f"MVT ours        {pct(mvt_ours)}")
    ratio = np.median(mvt_lib) / np.median(mvt_ours)
    print(f"MVT mapbox-vt   {pct(mvt_lib)}   ratio {ratio:5.1f}x")


# ---- 2./3. over HTTP against kantong serve ----------------------------------------------------


def start_server(run_dir: Path, threads: int, cache_mb: int,
                 k: int | None) -> tuple[subprocess.Popen, str, int]:
    cmd = [sys.executable, "-m", "kantong.engine.cli.group", "serve", "--run", str(run_dir),
    "--port", "0",
           "--threads", str(threads), "--cache-mb", str(cache_mb)]
    if k is not None:
        cmd += ["--min-households", str(k)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        if line.startswith("serving http://"):
            url = line.split()[1]
            hostport = url.split("//")[1].strip("/")
            host, port = hostport.rsplit(":", 1)
            return proc, host, int(port)
        if time.monotonic() > deadline:
            break
    proc.kill()
    sys.exit("server did not start")


def fetch_all(host: str, port: int, paths: list[str]) -> list[float]:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    times = []
    for p in paths:
        t = time.perf_counter()
        conn.request("GET", p)
        resp = conn.getresponse()
        resp.read()
        times.append(time.perf_counter() - t)
        if resp.status not in (200, 204):
            raise RuntimeError(f"{p}: HTTP {resp.status}")
    conn.close()
    return times


def throughput(host: str, port: int, paths: list[str], clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * clients
    errors: list[str] = []

    def worker(k: int) -> None:
        rng = random.Random(k)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while time.monotonic() < stop:
            p = rng.choice(paths)
            conn.request("GET", p)
            resp = conn.getresponse()
            resp.read()
            if resp.status not in (200, 204):
                errors.append(p)
            counts[k] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return sum(counts) / elapsed


def bench_http(run_dir: Path, tiles: list[tuple[int, int, int]], clients: int,
               seconds: float, k: int | None) -> None:
    print("\n## 2. Pan/zoom session over HTTP (kantong serve, waitress, 127.0.0.1)")
    proc, host, port = start_server(run_dir, threads=8, cache_mb=256, k=k)
    try:
        rss0 = rss_mb(proc.pid)
        # build every resolution's index first (a start-up cost, reported in part 1)
        fetch_all(host, port, [f"/tiles/priority/{z}/0/0.png" for z in range(6, 15)]
                  + ["/tiles/cells/10/0/0.pbf"])
        layers = ("priority", "extreme_households", "pocket")
        png = [f"/tiles/{name}/{z}/{x}/{y}.png" for name in layers for z, x, y in tiles]
        pbf = [f"/tiles/cells/{z}/{x}/{y}.pbf" for z, x, y in tiles]
        cold = fetch_all(host, port, png)
        cold_mvt = fetch_all(host, port, pbf)
        warm = fetch_all(host, port, png)
        warm_mvt = fetch_all(host, port, pbf)
        print(f"session: {len(tiles)} tiles per layer, z6-z14, layers {', '.join(layers)}")
        print(f"PNG cold  {pct(cold)}")
        print(f"PNG warm  {pct(warm)}")
        print(f"MVT cold  {pct(cold_mvt)}")
        print(f"MVT warm  {pct(warm_mvt)}")
        zs = [z for _ in layers for z, _, _ in tiles]
        for lo, hi in ((6, 8), (9, 11), (12, 14)):
            sel = [t for t, z in zip(cold, zs, strict=True) if lo <= z <= hi]
            print(f"  PNG cold z{lo}-z{hi}: {pct(sel)}")
        print(f"\n## 3. Throughput, {clients} concurrent clients, warm cache, {seconds:.0f} s")
        rate = throughput(host, port, png, clients, seconds)
        print(f"PNG warm: {rate:8.0f} tiles/s")
        rate = throughput(host, port, pbf, clients, seconds)
        print(f"MVT warm: {rate:8.0f} tiles/s")
        print(f"\nserver RSS: {rss0:.0f} MB at start, {rss_mb(proc.pid):.0f} MB after the session "
              f"(tile cache bound 256 MiB)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stdout.close()


def bench_cache_bound(run_dir: Path, bounds: tuple[float, float, float, float],
                      k: int | None) -> None:
    from kantong.webmap import create_app

    bound = 1024 * 1024
    app = create_app({"RUN_DIR": str(run_dir), "TILE_CACHE_BYTES": bound, "MIN_HOUSEHOLDS": k})
    svc = app.extensions["kantong_tiles"]
    client = app.test_client()
    client.get("/tiles/priority/11/0/0.png")
    tiles = [t for z in (10, 11) for t in mercantile.tiles(*bounds, zooms=z)]
    print(f"\n## 4. Cache bound (in-process, 1 MiB cache, all {len(tiles)} z10-z11 tiles "
          "of the run's bounds)")
    rss0 = rss_mb(os.getpid())
    peak, payload = 0, 0
    for t in tiles:
        resp = client.get(f"/tiles/priority/{t.z}/{t.x}/{t.y}.png")
        payload += len(resp.data)
        peak = max(peak, svc.cache.nbytes)
    s = svc.cache.stats()
    print(f"served {payload / 2**20:.1f} MiB of tiles; cache peak {peak / 2**20:.2f} MiB "
          f"(bound {bound / 2**20:.0f} MiB), {s['entries']} entries, {s['evictions']} evictions; "
          f"process RSS {rss0:.0f} -> {rss_mb(os.getpid()):.0f} MB")


def check_agreement(svc, cells_by_res: dict, sample: list[tuple[int, int, int]]) -> None:
    """Assert that ours, the naive renderer and mapbox_vector_tile draw/encode the same cells."""
    import mapbox_vector_tile
    from PIL import Image

    from kantong.webmap.tiling.render import render_png

    differ = total = n_feat = 0
    mvt_bad: list[str] = []
    for z, x, y in sample:
        res = svc.resolution_for_zoom(z)
        lv = svc.level(res)
        _, rgba = svc.scale("priority", res)
        ours = render_png(lv.geometry, rgba, z, x, y)  # no outline: the naive one has none
        a = np.asarray(Image.open(io.BytesIO(ours)))[..., 3] > 0 if ours else np.zeros((256, 256))
        b = np.asarray(Image.open(io.BytesIO(naive_png(cells_by_res[res], rgba, z, x, y))))
        differ += int(((b[..., 3] > 0) != a).sum())
        total += a.size
        mine = mapbox_vector_tile.decode(svc.mvt(z, x, y))["cells"]["features"]
        ref = mapbox_vector_tile.decode(lib_mvt(lv, z, x, y))["cells"]["features"]
        props = sorted((f["properties"] for f in mine), key=lambda p: p["h3"])
        ref_props = sorted((f["properties"] for f in ref), key=lambda p: p["h3"])
        if props != ref_props:
            mvt_bad.append(f"{z}/{x}/{y}")
        n_feat += len(props)
    check("MVT, ours vs mapbox_vector_tile.encode (decoded features)", not mvt_bad,
          f"{len(sample)} tiles, {n_feat} features; different: {mvt_bad[:5]}")
    # edge pixels may round differently; anything more is a misplaced or missing cell
    check("PNG coverage, ours vs the naive renderer", differ <= 0.005 * total,
          f"{differ} of {total:,} pixels differ, at most 0.5 % allowed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--min-households", type=int, default=None,
                    help="privacy threshold K (default: the run's)")
    args = ap.parse_args()
    run_dir = pick_run(args.run)
    from kantong.engine.publish.published import PublishedRun

    k = args.min_households
    run = PublishedRun(run_dir, min_households=k)
    cells = run.cells()
    print(f"run {run_dir} ({run.run_id}), K={run.min_households}: {len(cells):,} published "
          f"r{run.base_resolution} cells holding {int(cells['households'].sum()):,} households; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    top = cells.sort_values("households", ascending=False).iloc[0]
    lon, lat = float(top["lon"]), float(top["lat"])
    tiles = session(lon, lat)
    bench_inprocess(run_dir, tiles, k)
    bench_http(run_dir, tiles, args.clients, args.seconds, k)
    bench_cache_bound(run_dir, tuple(cells.total_bounds), k)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
