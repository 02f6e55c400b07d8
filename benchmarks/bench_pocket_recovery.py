"""Benchmark: recovery of planted poverty pockets by Kantong's methods and by peers.

Run: ``python benchmarks/bench_pocket_recovery.py [--seeds 3] [--null-runs 20]
[--levels low,mid,high] [--methods ...] [--json out.json]``

Data: :func:`kantong.engine.pockets.recovery.planted_cells` (issue 15): an H3 r8 disk of
3,997 cells, background extreme rate 0.03, six planted pockets of radius 3-5 at 0.15,
isolated spike cells at 0.40; three noise levels (about 30 / 12 / 5 households per cell
with 1 / 3 / 6 % spikes). Null data: the same without pockets. Every method reports
pockets of at least ``min_extreme_households`` (20) extreme-poor households, grouped into
edge-connected components, searched at r8 (the generator's resolution).

Methods:

- ``kantong-scan`` (default), ``kantong-gistar`` (k-ring 1), ``kantong-gistar-k2``;
- ``esda-gistar``: esda Empirical-Bayes rate, ``esda.G_Local(star=True)`` on the H3 edge
  adjacency, one-sided normal p, Benjamini-Hochberg at 0.05, connected components;
- ``spopt-ward``: spopt ``WardSpatial`` regions (one per 25 cells) of the EB rate, a
  one-sided binomial test per region against the overall rate, Benjamini-Hochberg at 0.05,
  connected components of the significant regions.

Agreement asserted (``benchmarks/agreement.py``): ``kantong-gistar`` and ``esda-gistar``
report identical pockets in every run. Results: docs/pockets.md, "Evidence".
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from agreement import check
from scipy import stats
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import adjusted_rand_score

from kantong.engine.config import PocketConfig
from kantong.engine.pockets.detect import detect_pockets
from kantong.engine.pockets.hotspots import neighbour_weights
from kantong.engine.pockets.recovery import planted_cells, recovery_scores

MIN_EXTREME = 20
FDR = 0.05


def _components(mask: np.ndarray, adjacency: sp.csr_matrix, extreme: np.ndarray) -> np.ndarray:
    labels = np.zeros(len(mask), dtype="int64")
    idx = np.flatnonzero(mask)
    if len(idx):
        _, comp = connected_components(adjacency[idx][:, idx], directed=False)
        keep = np.bincount(comp, weights=extreme[idx])[comp] >= MIN_EXTREME
        labels[idx[keep]] = comp[keep] + 1
    return labels


def _kantong(**options: object) -> Callable[[pd.DataFrame, sp.csr_matrix], np.ndarray]:
    config = PocketConfig(min_extreme_households=MIN_EXTREME, **options)

    def run(cells: pd.DataFrame, _adjacency: sp.csr_matrix) -> np.ndarray:
        return detect_pockets(cells, config=config).pocket_id.fillna(0).to_numpy("int64")
    return run


def _eb(cells: pd.DataFrame) -> np.ndarray:
    from esda.smoothing import Empirical_Bayes

    e = cells["extreme_households"].to_numpy("float64").reshape(-1, 1)
    b = cells["households"].to_numpy("float64").reshape(-1, 1)
    return Empirical_Bayes(e, b).r.ravel()


def _weights(adjacency: sp.csr_matrix):  # noqa: ANN202 (libpysal W)
    from libpysal.weights import WSP

    return WSP(adjacency).to_W(silence_warnings=True)


def esda_gistar(cells: pd.DataFrame, adjacency: sp.csr_matrix) -> np.ndarray:
    """esda EB rate + G_Local(star) + BH + connected components."""
    from esda import G_Local

    g = G_Local(_eb(cells), _weights(adjacency), transform="B", star=True, permutations=0)
    q = stats.false_discovery_control(stats.norm.sf(g.Zs))
    return _components((q <= FDR) & (g.Zs > 0), adjacency,
                       cells["extreme_households"].to_numpy("float64"))


def spopt_ward(cells: pd.DataFrame, adjacency: sp.csr_matrix) -> np.ndarray:
    """spopt WardSpatial regions + one-sided binomial test + BH + components."""
    from spopt.region import WardSpatial

    frame = cells.assign(rate=_eb(cells))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = WardSpatial(frame, _weights(adjacency), ["rate"],
                            n_clusters=max(len(cells) // 25, 2))
        model.solve()
    region = np.asarray(model.labels_)
    hh = np.bincount(region, weights=cells["households"].to_numpy("float64")).astype("int64")
    ex = np.bincount(region, weights=cells["extreme_households"].to_numpy("float64"))
    rate = ex.sum() / hh.sum()
    p = stats.binom.sf(ex.astype("int64") - 1, hh, rate)
    q = stats.false_discovery_control(p)
    hot = ((q <= FDR) & (ex > hh * rate))[region]
    return _components(hot, adjacency, cells["extreme_households"].to_numpy("float64"))


METHODS: dict[str, Callable[[pd.DataFrame, sp.csr_matrix], np.ndarray]] = {
    "kantong-scan": _kantong(method="scan"),
    "kantong-gistar": _kantong(method="gistar", k_ring=1),
    "kantong-gistar-k2": _kantong(method="gistar", k_ring=2),
    "esda-gistar": esda_gistar,
    "spopt-ward": spopt_ward,
}


def evaluate(methods: list[str], levels: list[str], seeds: int, null_runs: int,
             first_seed: int = 1000) -> pd.DataFrame:
    """Run every method on planted and null data; one row per (method, level, seed)."""
    rows = []
    same_as_esda: list[bool] = []  # kantong-gistar and esda-gistar: the same pockets
    plan = [(level, s, 6) for level in levels for s in range(first_seed, first_seed + seeds)]
    plan += [(level, s, 0) for level in levels
             for s in range(first_seed + 500, first_seed + 500 + null_runs)]
    for level, seed, pockets in plan:
        cells = planted_cells(seed, level, pockets=pockets)
        adjacency = neighbour_weights(cells["h3"].to_numpy(), k_ring=1, include_self=False)
        found = {}
        for name in methods:
            t0 = time.perf_counter()
            labels = found[name] = METHODS[name](cells, adjacency)
            row = recovery_scores(cells["truth"], labels)
            row.update(method=name, level=level if pockets else f"null-{level}", seed=seed,
                       seconds=time.perf_counter() - t0)
            rows.append(row)
        if {"kantong-gistar", "esda-gistar"} <= set(found):
            same_as_esda.append(adjusted_rand_score(found["kantong-gistar"],
                                                    found["esda-gistar"]) == 1.0)
    if same_as_esda:
        check("kantong-gistar pockets = esda G_Local pockets", all(same_as_esda),
              f"identical partitions in {sum(same_as_esda)} of {len(same_as_esda)} runs")
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Aggregate the runs per (method, level): found, precision, recall, ARI, false runs."""
    out = []
    for (method, level), g in runs.groupby(["method", "level"], sort=False):
        reported = g["reported_cells"].sum()
        out.append({
            "method": method, "level": level,
            "found": f"{g['found'].sum()}/{g['planted'].sum()}",
            "precision": g["true_cells"].sum() / reported if reported else float("nan"),
            "recall": (g["true_cells"].sum() / g["planted_cells"].sum()
                       if g["planted_cells"].sum() else float("nan")),
            "ari": g["ari"].mean(),
            "runs_with_pockets": f"{int((g['pockets'] > 0).sum())}/{len(g)}",
            "seconds": g["seconds"].mean(),
        })
    return pd.DataFrame(out)


def _markdown(table: pd.DataFrame) -> str:
    cells = table.map(lambda v: f"{v:.2f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.to_numpy().tolist()]
    return "\n".join(lines)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="planted runs per level")
    parser.add_argument("--null-runs", type=int, default=20, help="null runs per level")
    parser.add_argument("--levels", default="low,mid,high")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--json", help="write the per-run rows here")
    args = parser.parse_args()
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s) {sorted(unknown)}; known: {', '.join(METHODS)}")
    runs = evaluate(methods, args.levels.split(","), args.seeds, args.null_runs,
                    args.first_seed)
    table = summarise(runs)
    print(_markdown(table))  # noqa: T201 (a script)
    if args.json:
        runs.to_json(args.json, orient="records", indent=1)


if __name__ == "__main__":
    main()
