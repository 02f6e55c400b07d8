"""The pockets stage on a run directory: hot spots, pockets, strategies and priorities.

:func:`find_pockets` is the pure analysis (a cell table in, cells and pockets out);
:func:`write_pockets` runs it on ``RUNDIR/cells.parquet`` and writes the outputs
atomically. Re-running replaces the previous pocket outputs (idempotent). The method
and every parameter are described in docs/pockets.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3ronpy.vector as h3v
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from kantong.engine import __version__
from kantong.engine.atomic import atomic_path
from kantong.engine.config import Config
from kantong.engine.constants import CELLS_FILE, POCKETS_FILE, POCKETS_GEOJSON, WGS84
from kantong.engine.errors import RunError
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.pockets.contiguity import dissolve_pockets
from kantong.engine.pockets.detect import Detection, detect_pockets
from kantong.engine.pockets.hotspots import (
    HOTSPOT_COLUMNS,
    cells_resolution,
    choose_resolution,
    coarsen,
    eb_rate,
)
from kantong.engine.pockets.score import (
    INDICATORS,
    assistance_gap_share,
    counted_travel,
    infrastructure_deprivation,
    mean_travel_minutes,
    rank_frame,
    score_cells,
)
from kantong.engine.pockets.strategy import explain_strategy
from kantong.engine.pockets.villages import (
    pocket_members,
    read_villages,
    use_village_units,
    village_detection,
    village_located_share,
)
from kantong.engine.rundir import Timer, merge_manifest

logger = logging.getLogger(__name__)

#: Columns the pockets stage adds to cells.parquet (dropped first on a re-run).
CELL_COLUMNS = (*HOTSPOT_COLUMNS, "scan_p", "pocket_id", "priority",
                *(f"contrib_{name}" for name in INDICATORS), "rank_province", "rank_regency")

_REQUIRED = ("h3", "households", "persons", "extreme_households", "extreme_persons", "geometry")

#: Leading columns of the pocket table, in order (the rest follow).
_POCKET_ORDER = (
    "pocket_id", "strategy", "strategy_label", "priority", "rank_province", "rank_regency",
    "pocket_p", "confidence", "cells", "analysis_resolution", "households",
    "extreme_households", "persons", "extreme_persons", "extreme_rate",
    "assistance_gap", "assistance_gap_share", "travel_min_mean", "infrastructure_deprivation",
    "dominant_deprivations", "province_code", "province_name", "regency_code", "regency_name",
    "regencies", "strategy_reason",
)

METHOD = {
    "resolution": "finest H3 resolution (<= the run's) whose median cell holds >= "
                  "auto_median_households households, unless analysis_resolution is set",
    "variable": "Empirical-Bayes-smoothed share of extreme-poor (desil 1) households per cell",
    "statistic": "Getis-Ord Gi* with binary H3 k-ring weights including the cell itself; "
                 "analytical z, one-sided normal p, Benjamini-Hochberg q",
    "clustering": "DBSCAN (scikit-learn) on the H3 edge adjacency of hot cells, min_samples=1",
    "pocket_ids": "1..P by extreme-poor households desc, households desc, smallest H3 id",
    "score": "weighted sum of indicators normalised to 0-1 (docs/pockets.md)",
}
#: How the default ``scan`` method decides hot cells (replaces ``statistic`` in the record).
SCAN_METHOD = (
    "Kulldorff scan, Poisson model, over the H3 disks of radius 1..scan_max_k around every "
    "cell; counts capped per cell at the scan_cap_quantile binomial quantile; p-values from "
    "a Gumbel fit to the maximum LLR over scan_permutations permutations of the cells; "
    "significant windows (p <= scan_alpha) chosen by LLR without overlap")
#: How each pocket's ``pocket_p`` and ``confidence`` are computed.
POCKET_SIGNIFICANCE = (
    "the pocket's Poisson LLR (capped counts) against the scan's permutation distribution of "
    "the maximum window LLR (Gumbel fit); confidence high p <= 0.001, medium p <= 0.01, "
    "else low")


def _method_record(method: str) -> dict[str, str]:
    """Describe the method actually used, for the manifest."""
    record = dict(METHOD)
    record["method"] = method
    if method == "scan":
        record["statistic"] = SCAN_METHOD
        record["cell_statistics"] = "gi_z/gi_p/gi_q as for gistar, descriptive only"
    record["pocket_significance"] = POCKET_SIGNIFICANCE
    return record


@dataclasses.dataclass(frozen=True)
class PocketSummary:
    """What :func:`write_pockets` found, for logs, the CLI and the build summary."""

    run_dir: Path
    n_cells: int
    n_tested: int
    n_hot: int
    n_pockets: int
    households: int
    extreme_households: int
    households_in_pockets: int
    extreme_households_in_pockets: int
    strategies: dict[int, int]
    timings: dict[str, float]
    run_resolution: int
    analysis_resolution: int
    pockets: gpd.GeoDataFrame = dataclasses.field(repr=False, compare=False)

    def top(self, n: int = 10) -> pd.DataFrame:
        """Return the ``n`` pockets of highest priority (province rank, then id)."""
        cols = ["pocket_id", "priority", "rank_province", "confidence", "pocket_p",
                "extreme_households", "households", "regencies", "strategy", "strategy_label"]
        table = self.pockets.sort_values(["priority", "pocket_id"], ascending=[False, True])
        return pd.DataFrame(table[[c for c in cols if c in table.columns]].head(n))

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as plain JSON-serialisable data (for the manifest)."""
        return {
            "cells": self.n_cells, "cells_tested": self.n_tested, "cells_hot": self.n_hot,
            "run_resolution": self.run_resolution,
            "analysis_resolution": self.analysis_resolution,
            "pockets": self.n_pockets, "households": self.households,
            "extreme_households": self.extreme_households,
            "households_in_pockets": self.households_in_pockets,
            "extreme_households_in_pockets": self.extreme_households_in_pockets,
            "strategies": {str(k): v for k, v in sorted(self.strategies.items())},
        }


def _clean(cells: pd.DataFrame) -> pd.DataFrame:
    """Drop the columns a previous pockets run added."""
    added = [c for c in cells.columns if c in CELL_COLUMNS or c.startswith("contrib_")]
    return cells.drop(columns=added)


def _analyse(cells: gpd.GeoDataFrame, config: Config, *, source: str = "cells table",
             villages: pd.DataFrame | None = None
             ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]:
    missing = [c for c in _REQUIRED if c not in cells.columns]
    if missing:
        raise RunError(f"{source}: lacks column(s) {missing}")
    if cells.crs is None or cells.crs.to_epsg() != 4326:
        raise RunError(f"{source}: must be EPSG:4326, got {cells.crs}")
    if len(cells) == 0:
        raise RunError(f"{source}: no cells, so no households to analyse")
    pc, sc = config.pockets, config.score
    cells = _clean(cells).reset_index(drop=True)
    timer = Timer()
    with timer("hotspots"):
        own, res, analysis, parent_of, found, members = _detect(cells, config, villages)
    with timer("pockets"):
        out, pockets = _pocket_cells(cells, analysis, parent_of, own, res, found)
    with timer("score_strategy"):
        cell_score = score_cells(counted_travel(out, sc), weights=dict(sc.weights),
                                 travel_cap_min=sc.travel_cap_min)
        for col in cell_score.columns:
            out[col] = cell_score[col]
        ranks = rank_frame(out, out["priority"], tiebreak="h3")
        out["rank_province"], out["rank_regency"] = ranks["rank_province"], ranks["rank_regency"]
        pockets = _finish_pockets(pockets, config)
        pockets = _with_villages(pockets, out, members, villages)
    info = {"run_resolution": own, "analysis_resolution": res,
            "units": "villages" if members is not None else "cells",
            "village_located_share": (None if villages is None
                                      else round(village_located_share(villages), 4)),
            "analysis_cells": len(analysis), "weights": cell_score.attrs["weights"],
            "timings": dict(timer.seconds), "method": pc.method,
            "scan_windows": len(found.scan.windows)}
    return out, pockets, info


def _detect(cells: gpd.GeoDataFrame, config: Config, villages: pd.DataFrame | None = None
            ) -> tuple[int, int, pd.DataFrame, Any, Detection, pd.DataFrame | None]:
    """Choose the analysis units (cells at a resolution, or villages) and find the pockets.

    Village units (docs/pockets.md, registers located by village code): every cell takes
    the result of the village holding its centre, and the village sets are returned too.
    """
    pc = config.pockets
    own = cells_resolution(cells["h3"].to_numpy())
    if use_village_units(villages, config=pc):
        found, members = village_detection(cells, villages, config=pc)
        analysis = cells[["h3", "households", "extreme_households"]]
        return own, own, analysis, cells["h3"], found, members
    res = choose_resolution(cells, config=pc)
    if res == own:
        analysis, parent_of = cells[["h3", "households", "extreme_households"]], cells["h3"]
    else:
        analysis, parent_of = coarsen(cells, res)
    return own, res, analysis, parent_of, detect_pockets(analysis, config=pc), None


def _with_villages(pockets: gpd.GeoDataFrame, cells: pd.DataFrame,
                   members: pd.DataFrame | None, villages: pd.DataFrame | None
                   ) -> gpd.GeoDataFrame:
    """Add ``villages`` ("code name; ...") and ``n_villages`` to the pockets (when known)."""
    if members is None:
        members = pocket_members(cells, villages=villages)
    if villages is None and members.empty:
        return pockets
    joined = members.reindex(pockets["pocket_id"].to_numpy())
    pockets["villages"] = pd.array(joined["villages"].to_numpy(), dtype="string")
    pockets["n_villages"] = joined["n_villages"].fillna(0).to_numpy(dtype="int64")
    return pockets


def _pocket_cells(cells: gpd.GeoDataFrame, analysis: pd.DataFrame, parent_of: Any, own: int,
                  res: int, found: Detection) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Give every run cell its analysis cell's statistics and pocket; dissolve the pockets."""
    hot, pocket_id = found.cells, found.pocket_id
    # every cell inherits the statistics and the pocket of its analysis cell
    pos = pd.Index(analysis["h3"]).get_indexer(np.asarray(parent_of, dtype=object))
    out = cells.copy()
    out["extreme_rate_eb"] = eb_rate(cells["extreme_households"].to_numpy(),
                                     cells["households"].to_numpy())
    for col in ("gi_z", "gi_p", "gi_q", "scan_p", "hot"):
        out[col] = hot[col].to_numpy()[pos]
    out["pocket_id"] = pd.array(pocket_id.to_numpy()[pos], dtype="Int64")
    if res == own:
        hexagons = None
    else:
        in_pocket = pocket_id.notna().to_numpy()
        ids = cells_to_uint64(analysis["h3"].to_numpy()[in_pocket])
        hexagons = gpd.GeoDataFrame(
            {"pocket_id": pocket_id[in_pocket].to_numpy()},
            geometry=shapely.from_wkb(np.asarray(pa.array(h3v.cells_to_wkb_polygons(ids)))),
            crs=WGS84)
    pockets = dissolve_pockets(out, hexagons=hexagons)
    pockets.insert(pockets.columns.get_loc("cells") + 1, "analysis_resolution", np.int8(res))
    sig = found.significance.reindex(pockets["pocket_id"].to_numpy())
    pockets["pocket_p"] = sig["pocket_p"].to_numpy(dtype="float64")
    pockets["confidence"] = pd.array(sig["confidence"].to_numpy(), dtype="string")
    return out, pockets


def _finish_pockets(pockets: gpd.GeoDataFrame, config: Config) -> gpd.GeoDataFrame:
    """Add indicators, strategy, score and ranks to the dissolved pockets."""
    sc = config.score
    n = len(pockets)
    counted = counted_travel(pockets, sc)  # travel types that feed strategy and score
    travel = mean_travel_minutes(counted) if n else None
    infra = infrastructure_deprivation(pockets) if n else None
    gap = assistance_gap_share(pockets) if "assistance_gap" in pockets.columns else None
    pockets["travel_min_mean"] = travel if travel is not None else np.full(n, np.nan)
    pockets["infrastructure_deprivation"] = infra if infra is not None else np.full(n, np.nan)
    pockets["assistance_gap_share"] = gap if gap is not None else np.full(n, np.nan)
    strat = explain_strategy(counted, config=config.pockets)
    if n:
        score = score_cells(counted, weights=dict(sc.weights), travel_cap_min=sc.travel_cap_min,
                            smooth_rate=False)
    else:
        score = pd.DataFrame({c: pd.Series(dtype="float64") for c in
                              ["priority", *(f"contrib_{i}" for i in INDICATORS)]})
    for frame in (strat, score):
        for col in frame.columns:
            pockets[col] = frame[col].to_numpy()
    ranks = rank_frame(pockets, pockets["priority"], tiebreak="pocket_id")
    pockets["rank_province"] = ranks["rank_province"].to_numpy()
    pockets["rank_regency"] = ranks["rank_regency"].to_numpy()
    lead = [c for c in _POCKET_ORDER if c in pockets.columns]
    rest = [c for c in pockets.columns if c not in lead and c != "geometry"]
    return gpd.GeoDataFrame(pockets[[*lead, *rest, "geometry"]], geometry="geometry",
                            crs=pockets.crs)


def find_pockets(cells: gpd.GeoDataFrame, *, config: Config | None = None,
                 villages: pd.DataFrame | None = None
                 ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Find poverty pockets and score cells and pockets (no I/O).

    Hot spots and pockets are searched at the analysis resolution (``config.pockets``,
    automatic by default: see :func:`kantong.engine.pockets.hotspots.choose_resolution`); each cell
    inherits
    the statistics and pocket of its parent at that resolution. Scores are per cell.

    Parameters
    ----------
    cells
        A run's cell table (``cells.parquet`` columns, EPSG:4326). Columns of a previous
        pockets run are replaced.
    config
        The run configuration (``pockets`` and ``score`` sections); defaults if ``None``.
    villages
        The run's per-village table (``villages.parquet``): villages become the analysis
        units when most households are located by village code only (``pockets.units``), and
        pockets list their villages (``villages``, ``n_villages``).

    Returns
    -------
    tuple of geopandas.GeoDataFrame
        ``(cells, pockets)``: cells with ``extreme_rate_eb``, ``gi_z``, ``gi_p``, ``gi_q``,
        ``hot``, ``pocket_id``, ``priority``, ``contrib_<indicator>``, ``rank_province``,
        ``rank_regency``; and one row per pocket (dissolved polygon, aggregates, strategy,
        priority, contributions and ranks), sorted by ``pocket_id``.

    Examples
    --------
    >>> cells, pockets = find_pockets(gpd.read_parquet("run/cells.parquet"))  # doctest: +SKIP
    >>> pockets[["pocket_id", "regencies", "strategy", "priority"]]  # doctest: +SKIP
    """
    cells_out, pockets, _ = _analyse(cells, config or Config(), villages=villages)
    return cells_out, pockets


def _read_cells(run_dir: Path) -> gpd.GeoDataFrame:
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    path = run_dir / CELLS_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing; is {run_dir} a run directory made by `kantong build`?")
    try:
        return gpd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise RunError(f"{path}: not a readable GeoParquet file ({exc})") from None




def write_pockets(run_dir: Path, config: Config) -> PocketSummary:
    """Run the pockets stage on a run directory and write its outputs atomically.

    Reads ``run_dir/cells.parquet``; rewrites it with the pocket and score columns;
    writes ``pockets.parquet`` and ``pockets.geojson`` (EPSG:4326); records the method,
    parameters, counts and timings under ``"pockets"`` in ``manifest.json``.

    Parameters
    ----------
    run_dir
        A run directory written by ``kantong build``.
    config
        The run configuration (``pockets`` and ``score`` sections are used).

    Returns
    -------
    PocketSummary
        Counts, timings and the pocket table.

    Raises
    ------
    RunError
        When the directory, ``cells.parquet`` or a required column is missing.
    """
    run_dir = Path(run_dir)
    timer = Timer()
    with timer("read"):
        cells = _read_cells(run_dir)
        villages = read_villages(run_dir)
    cells_out, pockets, info = _analyse(cells, config, source=str(run_dir / CELLS_FILE),
                                        villages=villages)
    timer.seconds.update(info["timings"])
    with timer("write"):
        with atomic_path(run_dir / POCKETS_FILE) as tmp:
            pockets.to_parquet(tmp, index=False)
        with atomic_path(run_dir / POCKETS_GEOJSON) as tmp:
            # a fixed layer name: the temporary file's name must not leak into the output
            pockets.to_file(tmp, driver="GeoJSON", engine="pyogrio", layer="pockets")
        with atomic_path(run_dir / CELLS_FILE) as tmp:
            cells_out.to_parquet(tmp, index=False)
    timings = {**timer.seconds, "total": timer.total()}
    in_pocket = cells_out["pocket_id"].notna()
    summary = PocketSummary(
        run_dir=run_dir, n_cells=len(cells_out),
        n_tested=int(cells_out["gi_z"].notna().sum()), n_hot=int(cells_out["hot"].sum()),
        # counts may be expected (fractional) values: rounded, never truncated (issue 19)
        n_pockets=len(pockets), households=round(float(cells_out["households"].sum())),
        extreme_households=round(float(cells_out["extreme_households"].sum())),
        households_in_pockets=round(float(cells_out.loc[in_pocket, "households"].sum())),
        extreme_households_in_pockets=round(float(
            cells_out.loc[in_pocket, "extreme_households"].sum())),
        strategies={int(k): int(v) for k, v in pockets["strategy"].value_counts().items()},
        timings={k: round(float(v), 4) for k, v in timings.items()}, pockets=pockets,
        run_resolution=info["run_resolution"], analysis_resolution=info["analysis_resolution"],
    )
    record = {
        "engine_version": __version__,
        "updated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": _method_record(info["method"]),
        "scan_windows": info["scan_windows"],
        "parameters": dataclasses.asdict(config.pockets),
        "run_resolution": info["run_resolution"],
        "analysis_resolution": info["analysis_resolution"],
        "analysis_cells": info["analysis_cells"],
        "units": info["units"], "village_located_share": info["village_located_share"],
        "score": {"weights": info["weights"], "travel_cap_min": config.score.travel_cap_min},
        "counts": summary.to_dict(),
        "timings_s": summary.timings,
        "outputs": [CELLS_FILE, POCKETS_FILE, POCKETS_GEOJSON],
    }
    merge_manifest(run_dir, {"pockets": record})
    logger.info("pockets: %d pockets with %d of %d extreme-poor households in %.2f s",
                summary.n_pockets, summary.extreme_households_in_pockets,
                summary.extreme_households, timings["total"])
    return summary


def plot_pockets(cells: gpd.GeoDataFrame, pockets: gpd.GeoDataFrame, path: Path, *,
                 title: str | None = None, label_top: int = 10) -> Path:
    """Write a static PNG map: cells by priority, pocket outlines, regency boundaries.

    Parameters
    ----------
    cells
        Scored cells (with ``priority``), EPSG:4326.
    pockets
        Pocket table (EPSG:4326); the ``label_top`` highest-priority pockets are labelled.
    path
        Output PNG path (written atomically).
    title
        Map title; a default names the counts.
    label_top
        How many pocket ids to print on the map.

    Returns
    -------
    Path
        ``path``.
    """
    from kantong.engine.plots import draw_regencies, frame_map, map_pad, new_figure, save_png

    fig = new_figure(10, 10, dpi=120)
    ax = fig.add_subplot()
    west, south, east, north = bounds = tuple(cells.total_bounds)
    pad = map_pad(bounds)
    if max(east - west, north - south) > 0.5:  # province scale: hexagons are sub-pixel
        order = np.argsort(cells["priority"].to_numpy(), kind="stable")
        centres = cells.geometry.representative_point().iloc[order]
        dots = ax.scatter(centres.x, centres.y, c=cells["priority"].to_numpy()[order], s=2,
                          marker="s", linewidths=0, cmap="YlOrRd", vmin=0.0, vmax=1.0)
        fig.colorbar(dots, ax=ax, label="priority (0-1)", shrink=0.6)
    else:
        cells.plot(ax=ax, column="priority", cmap="YlOrRd", vmin=0.0, vmax=1.0, linewidth=0,
                   legend=True, legend_kwds={"label": "priority (0-1)", "shrink": 0.6})
    covered = (set(cells["regency_code"].dropna()) if "regency_code" in cells.columns
               else None)  # name only the regencies the run covers
    draw_regencies(ax, bounds, pad, color="0.35", linewidth=0.6, label_color="0.25",
                   only=covered, with_codes=True)
    if len(pockets):
        pockets.plot(ax=ax, color="navy", alpha=0.15, linewidth=0)
        pockets.boundary.plot(ax=ax, color="navy", linewidth=1.0)
        top = pockets.sort_values(["priority", "pocket_id"], ascending=[False, True])
        for _, p in top.head(label_top).iterrows():
            ax.annotate(str(p["pocket_id"]), (p["lon"], p["lat"]), fontsize=8, color="navy",
                        weight="bold", ha="center", va="center")
    frame_map(ax, bounds, pad)
    ax.set_title(title or f"Poverty pockets: {len(pockets)} pockets (outlined), "
                 f"{len(cells)} cells coloured by priority", fontsize=10)
    return save_png(fig, path)
