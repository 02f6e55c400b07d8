"""Planted-pocket data and recovery scores: how well a detector finds known pockets.

:func:`planted_cells` draws the cell table of issue 15 (an H3 disk, a background rate of
extreme poverty, disks of elevated rate planted at random, isolated spike cells, and
Poisson-distributed households per cell); :func:`recovery_scores` says how much of the
truth a labelling recovers. ``benchmarks/bench_pocket_recovery.py`` and the tests of
``tests/pockets`` use both.
"""

from __future__ import annotations

import dataclasses

import h3
import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.metrics import adjusted_rand_score

from kantong.engine.errors import InputError
from kantong.engine.h3ids import uint64_to_cells

__all__ = ["NOISE_LEVELS", "NoiseLevel", "planted_cells", "recovery_scores"]


@dataclasses.dataclass(frozen=True)
class NoiseLevel:
    """Sampling noise of planted data: mean households per cell and share of spike cells."""

    households: float
    spike_share: float


#: The three noise levels of issue 15.
NOISE_LEVELS = {"low": NoiseLevel(30.0, 0.01), "mid": NoiseLevel(12.0, 0.03),
                "high": NoiseLevel(5.0, 0.06)}


def _disk(centre: int, k: int) -> np.ndarray:
    cells = pa.array(h3ronpy.grid_disk(np.array([centre], dtype=np.uint64), k, flatten=True))
    return np.asarray(cells).astype(np.uint64)


def planted_cells(seed: int, level: str = "mid", *, pockets: int = 6, rings: int = 36,
                  resolution: int = 8, centre: tuple[float, float] = (0.3, 111.6),
                  background_rate: float = 0.03, pocket_rate: float = 0.15,
                  spike_rate: float = 0.40, radii: tuple[int, int] = (3, 5)) -> pd.DataFrame:
    """Draw a cell table with planted poverty pockets.

    The cells are the H3 disk of ``rings`` around ``centre`` (36 rings at r8: 3,997 cells).
    ``pockets`` disks of radius ``radii[0]..radii[1]`` (apart by at least 3 cells, inside
    the disk) get the rate ``pocket_rate``; outside them each cell is a spike (rate
    ``spike_rate``) with probability ``NOISE_LEVELS[level].spike_share``, else it has
    ``background_rate``. Households per cell are Poisson with mean
    ``NOISE_LEVELS[level].households``; extreme-poor households are binomial. Cells without
    households are dropped (a run has none).

    Parameters
    ----------
    seed
        Random seed (the same seed gives the same table).
    level
        ``"low"``, ``"mid"`` or ``"high"`` noise (:data:`NOISE_LEVELS`).
    pockets
        How many pockets to plant (0 gives null data).
    rings, resolution, centre
        The grid: H3 disk of ``rings`` rings at ``resolution`` around ``centre`` (lat, lon).
    background_rate, pocket_rate, spike_rate
        Extreme-poverty rates of ordinary, pocket and spike cells.
    radii
        Smallest and largest pocket radius in rings.

    Returns
    -------
    pandas.DataFrame
        ``h3``, ``households``, ``extreme_households`` and ``truth`` (planted pocket
        1..``pockets``, 0 outside), sorted by H3 id.

    Examples
    --------
    >>> cells = planted_cells(1, "mid")
    >>> int(cells["truth"].max()), bool(cells["households"].gt(0).all())
    (6, True)
    """
    if level not in NOISE_LEVELS:
        raise InputError(f"noise level must be one of {', '.join(NOISE_LEVELS)}, got {level!r}")
    noise = NOISE_LEVELS[level]
    rng = np.random.default_rng(seed)
    origin = h3.str_to_int(h3.latlng_to_cell(*centre, resolution))
    ids = np.sort(_disk(origin, rings))
    truth = np.zeros(len(ids), dtype="int64")
    placed: list[tuple[str, int]] = []
    for _ in range(10_000):  # rejection sampling of a handful of pocket centres
        if len(placed) == pockets:
            break
        c, k = h3.int_to_str(int(rng.choice(ids))), int(rng.integers(radii[0], radii[1] + 1))
        if h3.grid_distance(c, h3.int_to_str(origin)) > rings - k:
            continue
        if all(h3.grid_distance(c, c2) > k + k2 + 2 for c2, k2 in placed):
            placed.append((c, k))
    if len(placed) < pockets:
        raise InputError(f"cannot place {pockets} pockets of radius {radii} in {rings} rings")
    for label, (c, k) in enumerate(placed, start=1):
        truth[np.searchsorted(ids, _disk(h3.str_to_int(c), k))] = label
    households = rng.poisson(noise.households, len(ids))
    rate = np.where(truth > 0, pocket_rate, background_rate)
    rate[(rng.random(len(ids)) < noise.spike_share) & (truth == 0)] = spike_rate
    extreme = rng.binomial(households, rate)
    frame = pd.DataFrame({"h3": uint64_to_cells(ids), "households": households,
                          "extreme_households": extreme, "truth": truth})
    return frame[frame["households"] > 0].reset_index(drop=True)


def recovery_scores(truth: np.ndarray | pd.Series, found: np.ndarray | pd.Series
                    ) -> dict[str, float]:
    """Score a pocket labelling against planted truth.

    A planted pocket is *found* when at least half of its cells lie inside one reported
    pocket. Precision is the share of reported cells that are planted, recall the share of
    planted cells reported; ARI is the adjusted Rand index of the two labellings (0 = none).

    Parameters
    ----------
    truth
        Planted pocket per cell (0 outside).
    found
        Reported pocket per cell (0 or NA outside).

    Returns
    -------
    dict
        ``planted``, ``found``, ``pockets`` (reported), ``reported_cells``,
        ``true_cells`` (reported and planted), ``planted_cells``, ``precision``, ``recall``,
        ``ari``.

    Examples
    --------
    >>> recovery_scores(np.array([1, 1, 0, 0]), np.array([5, 5, 5, 0]))["found"]
    1
    """
    t = np.asarray(truth, dtype="int64")
    f = pd.Series(found).fillna(0).to_numpy(dtype="int64")
    if t.shape != f.shape:
        raise InputError("recovery_scores: truth and found differ in length")
    pairs = pd.DataFrame({"t": t, "f": f})
    planted = pairs[pairs["t"] > 0]
    size = planted.groupby("t").size()
    best = planted[planted["f"] > 0].groupby(["t", "f"]).size().groupby("t").max()
    found_n = int((best.reindex(size.index, fill_value=0) >= 0.5 * size).sum())
    reported = f > 0
    true_cells = int((reported & (t > 0)).sum())
    return {"planted": int(len(size)), "found": found_n,
            "pockets": int(len(np.unique(f[reported]))), "reported_cells": int(reported.sum()),
            "true_cells": true_cells, "planted_cells": int((t > 0).sum()),
            "precision": true_cells / reported.sum() if reported.any() else float("nan"),
            "recall": true_cells / (t > 0).sum() if (t > 0).any() else float("nan"),
            "ari": float(adjusted_rand_score(t, f))}
