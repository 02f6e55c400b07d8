"""Benchmark `kantong sites`: selection, coverage and the whole command.

    python benchmarks/bench_sites.py [--run /tmp/run61] [--skip-spopt] [--repeat 3]

1. Selection on synthetic radius coverage (demand and candidates uniform in a 100 km
   square, 5 km radius, p = 25): kantong's lazy greedy (alone, and with its bounds) and
   exact HiGHS MILP vs a naive greedy (all gains recomputed every step) and spopt's MCLP
   (PuLP + CBC) on the same coverage; objective and time ratios. 1b: the same on the
   run's travel-time coverage (section 2).
2. Least-cost coverage of 1,000 candidates on the run's friction surface (60 min): the
   bounded block search vs one full-raster MCP_Geometric per candidate (the naive way; timed
   on 10 candidates and extrapolated).
3. The whole `kantong sites --method greedy|exact` on the run (1,000 shortlisted default
   candidates, --max-minutes 60, puskesmas, K = 25), as a subprocess (start-up included).
4. The other objectives against spopt (PuLP + CBC) on identical cost matrices (uniform
   points, 10 km square): LSCP (fewest sites), p-median (least total travel, K = 5) and
   p-center (shortest longest trip, K = 5): kantong's exact HiGHS models and heuristics;
   the objectives must agree with spopt's (asserted) and the times are compared.
5. `kantong sites --objective min-travel --count 10` (and min-sites, min-max-travel,
   capacity) on the run as subprocesses; min-travel must finish within 30 s (asserted).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from kantong.engine.sites import lscp, pcenter, pmedian
from kantong.engine.sites.coverage import FrictionSurface, travel_coverage
from kantong.engine.sites.solvers import exact_cover, greedy_cover


def _best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def radius_instance(n_demand: int, n_cand: int, *, seed: int = 0, radius_km: float = 5.0):
    """Uniform points in a 100 km square; coverage within ``radius_km``; Poisson weights.

    Returns the boolean coverage (candidates x demand), the weights and the dense distance
    matrix (demand x candidates, what spopt takes) from which the coverage is derived.
    """
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 100, (n_demand, 2))
    c = rng.uniform(0, 100, (n_cand, 2))
    w = rng.poisson(3.0, n_demand).astype(float)
    dist = np.sqrt(((d[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    return sparse.csr_matrix(dist.T <= radius_km), w, dist


def naive_greedy(a: sparse.csr_matrix, w: np.ndarray, k: int) -> float:
    """Greedy recomputing every candidate's gain at every step (one sparse mat-vec each)."""
    remaining = w.copy()
    total = 0.0
    for _ in range(k):
        gains = a @ remaining
        j = int(np.argmax(gains))
        if gains[j] <= 0:
            break
        total += gains[j]
        remaining[a.indices[a.indptr[j]:a.indptr[j + 1]]] = 0.0
    return total


def spopt_mclp(dist: np.ndarray, w: np.ndarray, radius: float, p: int, time_limit: float):
    """Solve with spopt's MCLP (PuLP + CBC); return (build s, solve s, objective, status)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pulp
        from spopt.locate import MCLP
        t = time.perf_counter()
        model = MCLP.from_cost_matrix(dist, w, radius, p_facilities=p, name="bench")
        build = time.perf_counter() - t
        t = time.perf_counter()
        model = model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
        solve = time.perf_counter() - t
    return build, solve, float(pulp.value(model.problem.objective)), \
        pulp.LpStatus[model.problem.status]


def _row(label, a, w, dist, radius, repeat, skip_spopt, time_limit) -> None:
    tg, g = _best(lambda: greedy_cover(a, w, k=25, bound=False), repeat)
    tb, gb = _best(lambda: greedy_cover(a, w, k=25, lp_time_limit=2.0), 1)
    tn, _ = _best(lambda: naive_greedy(a, w, 25), repeat)
    te, e = _best(lambda: exact_cover(a, w, k=25, time_limit=time_limit), 1)
    sp, ratio = f"{'-':>26}", ""
    if not skip_spopt and dist is not None:
        build, solve, obj, status = spopt_mclp(dist, w, radius, 25, time_limit)
        sp = f"{build + solve:8.2f} ({build:6.2f}) {obj:9.0f}"
        ratio = (f"spopt/exact time {(build + solve) / te:6.1f}x, "
                 f"objective {obj / e.objective:.4f} ({status})")
    print(f"{label:>18} {a.nnz:>9,} | {tg:8.4f} {tb:7.3f} {g.objective:9.0f} {gb.bound:9.0f} | "
          f"{tn:8.4f} | {te:7.2f} {e.objective:9.0f} {e.status[:9]:>9} | {sp} | "
          f"greedy/exact {g.objective / e.objective:.4f}, naive/lazy {tn / tg:5.1f}x {ratio}",
          flush=True)


_HEADER = (f"{'instance':>18} {'nnz':>9} | {'greedy s':>8} {'+bound':>7} {'obj':>9} "
           f"{'bound':>9} | {'naive s':>8} | {'exact s':>7} {'obj':>9} {'status':>9} | "
           f"{'spopt s':>8} {'(build)':>8} {'obj':>9} | ratios")


def bench_selection(repeat: int, skip_spopt: bool, time_limit: float) -> None:
    print("\n== 1. selection given the coverage: uniform points, 5 km radius, p = 25 ==")
    print(_HEADER)
    for n_d, n_c in ((500, 100), (2_000, 1_000), (20_000, 1_000)):
        a, w, dist = radius_instance(n_d, n_c)
        _row(f"{n_d}x{n_c}", a, w, dist if n_d <= 2_000 else None, 5.0, repeat, skip_spopt,
             time_limit)


def bench_coverage(run: Path):
    print(f"\n== 2. least-cost coverage on {run / 'friction.tif'} (60 min) ==")
    surface = FrictionSurface.from_file(run / "friction.tif")
    cells = pd.read_parquet(run / "cells.parquet",
                            columns=["lon", "lat", "households", "extreme_households"])
    rng = np.random.default_rng(0)
    idx = rng.choice(len(cells), min(1000, len(cells)), replace=False)
    src = cells.iloc[idx]
    t = time.perf_counter()
    cov = travel_coverage(surface, src["lon"], src["lat"], cells["lon"], cells["lat"],
                          max_minutes=60)
    tb = time.perf_counter() - t
    print(f"raster {surface.shape[1]} x {surface.shape[0]} px, {len(cells):,} cells, "
          f"{len(src)} candidates: bounded block search {tb:.2f} s, nnz {cov.matrix.nnz:,}",
          flush=True)
    from skimage.graph import MCP_Geometric

    from kantong.engine.build.travel import pixel_size_m
    pixel = pixel_size_m(surface.transform, surface.crs, surface.shape)
    costs = np.where(np.isfinite(surface.friction), surface.friction, np.inf)
    pix = surface.pixels_of(src["lon"].to_numpy()[:10], src["lat"].to_numpy()[:10])
    t = time.perf_counter()
    for p in pix[pix >= 0]:  # the naive way: one unbounded MCP per candidate
        MCP_Geometric(costs, sampling=(pixel.dy, pixel.dx)).find_costs([divmod(int(p),
                                                                               costs.shape[1])])
    per = (time.perf_counter() - t) / max(int((pix >= 0).sum()), 1)
    print(f"naive full-raster MCP_Geometric: {per:.3f} s per candidate -> "
          f"{per * len(src):.0f} s for {len(src)} (extrapolated); speed-up "
          f"{per * len(src) / tb:.0f}x", flush=True)
    return cov, cells


def bench_real_selection(cov, cells, repeat: int, skip_spopt: bool, time_limit: float) -> None:
    print("\n== 1b. selection on the run's travel-time coverage (1,000 random candidates, "
          "60 min, cells with extreme-poor households) ==")
    print(_HEADER)
    w_all = cells["extreme_households"].to_numpy(float)
    keep = w_all > 0
    a = cov.matrix[:, keep].tocsr()
    w = w_all[keep]
    minutes = cov.minutes[:, keep].toarray().T  # demand x candidates, 0 = not covered
    dist = np.where(cov.matrix[:, keep].toarray().T, minutes, 1e6)
    _row(f"{keep.sum()}x{a.shape[0]}", a, w, dist, 60.0, repeat, skip_spopt, time_limit)


def bench_command(run: Path, time_limit: float) -> None:
    print(f"\n== 3. kantong sites on {run} (puskesmas, K = 25, 60 min) ==")
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("greedy", "exact"):
            out = Path(tmp) / f"{method}.geojson"
            cmd = ["kantong", "sites", "--run", str(run), "--type", "puskesmas", "--count",
                   "25", "--max-minutes", "60", "--method", method, "--out", str(out),
                   "--time-limit", str(time_limit)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t
            if proc.returncode:
                print(proc.stdout, proc.stderr)
                continue
            meta = json.loads(out.with_suffix(".json").read_text())
            r = meta["result"]
            gap = "n/a" if r["gap"] is None else f"{100 * r['gap']:.2f}%"
            print(f"{method:>6}: wall {wall:5.1f} s (in-process {meta['timings_s']['total']:.1f} s"
                  f"; stages {meta['timings_s']}) objective {r['objective']:,.0f} "
                  f"bound {r['bound'] if r['bound'] is None else round(r['bound'])} "
                  f"gap {gap} status {r['status']}; candidates "
                  f"{meta['parameters']['candidates_scored']} of "
                  f"{meta['parameters']['candidates_considered']}")


def _spopt_objective(build, time_limit: float) -> tuple[float, float]:
    """Build and solve a spopt model with CBC; return (seconds, objective)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pulp
        t = time.perf_counter()
        try:
            model = build().solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
        except RuntimeError:  # spopt raises when CBC stops at its time limit
            return time.perf_counter() - t, float("nan")
        return time.perf_counter() - t, float(pulp.value(model.problem.objective))


def bench_objectives(skip_spopt: bool, time_limit: float) -> None:
    print("\n== 4. min-sites (LSCP), min-travel (p-median), min-max-travel (p-center) vs spopt ==")
    print(f"{'model':>10} {'size':>9} | {'exact s':>8} {'objective':>12} | {'heur s':>7} "
          f"{'objective':>12} {'bound':>12} | {'spopt s':>8} {'objective':>12} | agree")
    for n_d, n_c in ((200, 50), (400, 100)):
        _objective_instance(n_d, n_c, skip_spopt, time_limit)


def _objective_instance(n_d: int, n_c: int, skip_spopt: bool, time_limit: float) -> None:
    """Compare the three models with spopt on one uniform instance (asserting agreement)."""
    from spopt.locate import LSCP, PCenter, PMedian

    rng = np.random.default_rng(n_d)
    d, c = rng.uniform(0, 10, (n_d, 2)), rng.uniform(0, 10, (n_c, 2))
    dist = np.sqrt(((d[:, None] - c[None]) ** 2).sum(-1))
    w = rng.integers(1, 9, n_d).astype(float)
    radius = max(1.5, float(dist.min(axis=1).max()))
    cover = sparse.csr_matrix(dist.T <= radius)
    times = sparse.csr_matrix(dist.T)
    base = np.full(n_d, dist.max() + 1.0)
    rows = (
        ("LSCP", lambda: lscp.exact_min_sites(cover, w),
         lambda: lscp.greedy_min_sites(cover, w),
         lambda: LSCP.from_cost_matrix(dist, radius)),
        ("p-median", lambda: pmedian.exact_min_travel(times, w, base, k=5),
         lambda: pmedian.greedy_min_travel(times, w, base, k=5, lp_time_limit=10),
         lambda: PMedian.from_cost_matrix(dist, w, 5)),
        ("p-center", lambda: pcenter.exact_min_max_travel(times, w, base, k=5),
         lambda: pcenter.greedy_min_max_travel(times, w, base, k=5),
         lambda: PCenter.from_cost_matrix(dist, 5)),
    )
    for name, exact, heur, build in rows:
        te, e = _best(exact, 1)
        th, h = _best(heur, 1)
        sp = f"{'-':>8} {'-':>12} | -"
        if not skip_spopt:
            ts, obj = _spopt_objective(build, time_limit)
            if obj != obj:
                sp = f"{ts:8.2f} {'unsolved':>12} | spopt/CBC not solved in {time_limit:g} s"
            else:
                agree = abs(obj - e.objective) <= 1e-6 * max(1.0, abs(obj))
                assert agree, f"{name} {n_d}x{n_c}: kantong {e.objective} != spopt {obj}"
                sp = f"{ts:8.2f} {obj:12.3f} | yes (spopt/exact time {ts / te:.1f}x)"
        print(f"{name:>10} {n_d:>4}x{n_c:<4} | {te:8.3f} {e.objective:12.3f} | {th:7.3f} "
              f"{h.objective:12.3f} {h.bound:12.3f} | {sp}", flush=True)


def bench_objective_commands(run: Path) -> None:
    print(f"\n== 5. kantong sites objectives on {run} (puskesmas) ==")
    cases = (("min-travel", ["--objective", "min-travel", "--count", "10"], 30.0),
             ("min-max-travel", ["--objective", "min-max-travel", "--count", "10"], None),
             ("min-sites", ["--objective", "min-sites", "--max-minutes", "60",
                            "--regency", "6111"], None),
             ("capacity", ["--count", "10", "--max-minutes", "60", "--capacity", "15000"],
              None))
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra, limit in cases:
            out = Path(tmp) / f"{label}.geojson"
            cmd = ["kantong", "sites", "--run", str(run), "--type", "puskesmas", *extra,
                   "--out", str(out)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t
            if proc.returncode:
                print(proc.stdout, proc.stderr)
                raise SystemExit(f"{label}: kantong sites failed")
            meta = json.loads(out.with_suffix(".json").read_text())
            r, tot = meta["result"], meta["totals"]
            gap = "n/a" if r["gap"] is None else f"{100 * r['gap']:.2f}%"
            facts = {k: round(v, 1) for k, v in tot.items() if isinstance(v, float)}
            print(f"{label:>15}: wall {wall:5.1f} s (in-process {meta['timings_s']['total']:.1f}"
                  f" s; stages {meta['timings_s']}) {r['method']} {r['status']} objective "
                  f"{r['objective']:,.1f} gap {gap}; {len(json.loads(out.read_text())['features'])}"
                  f" sites; {facts}", flush=True)
            if limit is not None:
                assert wall <= limit, f"{label} took {wall:.1f} s (limit {limit:.0f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("/tmp/run61"))
    ap.add_argument("--skip-spopt", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=60.0,
                    help="seconds for HiGHS and for CBC (spopt)")
    ap.add_argument("--only-objectives", action="store_true",
                    help="run sections 4 and 5 only")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}", flush=True)
    if not args.only_objectives:
        bench_selection(args.repeat, args.skip_spopt, args.time_limit)
    bench_objectives(args.skip_spopt, args.time_limit)
    if (args.run / "cells.parquet").exists() and (args.run / "friction.tif").exists():
        if not args.only_objectives:
            cov, cells = bench_coverage(args.run)
            bench_real_selection(cov, cells, args.repeat, args.skip_spopt, args.time_limit)
            bench_command(args.run, args.time_limit)
        bench_objective_commands(args.run)
    else:
        print(f"\n(no run with a friction surface at {args.run}: sections 2, 3, 5 skipped)")


if __name__ == "__main__":
    main()
