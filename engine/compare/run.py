"""Compare two runs (for example two years): cell changes, pocket changes, regency targets.

Everything here is computed from the two **published** views
(:class:`~kantong.engine.publish.published.PublishedRun`), never from the sensitive run directories
directly, so every output is a function of what each run already publishes:

* a cell is compared only where it is published in both runs; a cell published in one run
  only keeps that run's values and has its change withheld (``presence`` says which);
* pockets are the published pockets, matched by the overlap of their published H3 cells;
* regency totals are sums of released atoms
  (:func:`kantong.engine.compare.targets.regency_target_counts`).

:func:`compare_runs` does the analysis and :func:`write_comparison` writes the outputs of
``kantong compare`` atomically. The method, thresholds and privacy rules are in
docs/compare.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import h3ronpy
import numpy as np
import pandas as pd

from kantong.engine import __version__
from kantong.engine.atomic import atomic_dir, claim_dir, write_json
from kantong.engine.build.sums import nullable_counts
from kantong.engine.compare.pockets import (
    CHANGE_THRESHOLD,
    MIN_OVERLAP,
    STATUS_COLORS,
    STATUSES,
    match_pockets,
    pocket_changes,
    pocket_members,
)
from kantong.engine.compare.targets import regency_target_counts, target_table, targets_record
from kantong.engine.constants import DEPRIVATIONS, WGS84
from kantong.engine.errors import InputError
from kantong.engine.publish.provenance import public_run_record
from kantong.engine.publish.published import PublishedRun

logger = logging.getLogger(__name__)

#: Values of the ``presence`` column of the cell changes.
PRESENCE: Final = ("both", "old_only", "new_only")
#: Count columns compared cell by cell (nullable integers).
COUNT_COLUMNS: Final = ("households", "persons", "extreme_households", "extreme_persons")
#: Ratio columns compared cell by cell (fractions).
RATE_COLUMNS: Final = ("extreme_rate", *(share for _, _, share in DEPRIVATIONS.values()))
#: Other indicators compared when both runs publish them.
_EXTRA_PREFIXES: Final = ("travel_min_",)
_EXTRA_COLUMNS: Final = ("priority",)
#: Output files of :func:`write_comparison`.
COMPARE_PARQUET: Final = "compare.parquet"
CELLS_GEOJSON: Final = "cells_change.geojson"
POCKETS_GEOJSON: Final = "pockets_change.geojson"
MATCHES_CSV: Final = "pocket_matches.csv"
REGENCIES_CSV: Final = "regencies.csv"
REGENCIES_PNG: Final = "regencies.png"
CHANGES_PNG: Final = "changes.png"
COMPARE_JSON: Final = "compare.json"
PRIVACY_NOTE: Final = (
    "privacy-safe: computed only from the published views of both runs (cells with fewer "
    "than min_households households withheld, complementary suppression); a cell withheld "
    "in either run has its change withheld; contains no household records")


@dataclasses.dataclass(frozen=True, eq=False)
class Comparison:
    """The outcome of :func:`compare_runs`.

    Attributes
    ----------
    cells
        One row per cell published in either run (:func:`cell_changes`), EPSG:4326.
    pockets
        One row per matched pocket group (:func:`pocket_changes`), EPSG:4326.
    matches
        Every overlapping (old, new) pocket pair (:func:`match_pockets`).
    regencies
        The regency table (:func:`kantong.engine.compare.targets.target_table`).
    summary
        Counts, parameters and provenance (written as ``compare.json``; run directories by
        base name only).
    run_dirs
        The two run directories (never written; ``--out`` may not touch them).
    """

    cells: gpd.GeoDataFrame
    pockets: gpd.GeoDataFrame
    matches: pd.DataFrame
    regencies: pd.DataFrame
    summary: dict[str, Any]
    run_dirs: tuple[Path, ...] = ()

    def status_counts(self) -> dict[str, int]:
        """Return the number of pocket groups per status (every status listed)."""
        counts = self.pockets["status"].value_counts() if len(self.pockets) else pd.Series()
        return {s: int(counts.get(s, 0)) for s in STATUSES}

    def top_improvements(self, n: int = 5) -> pd.DataFrame:
        """Return the ``n`` regencies whose extreme-poverty rate fell the most."""
        table = self.regencies.dropna(subset=["extreme_rate_change"])
        return table.sort_values(["extreme_rate_change", "regency_code"]).head(n)


def change_columns(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """Return the indicator columns compared cell by cell (those present in both tables)."""
    both = [c for c in old.columns if c in new.columns]
    wanted = [*COUNT_COLUMNS, *RATE_COLUMNS, *_EXTRA_COLUMNS]
    extra = [c for c in both if c.startswith(_EXTRA_PREFIXES)]
    return [c for c in wanted if c in both] + sorted(extra)


def cell_changes(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame, *,
                 columns: Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Join two cell tables of one H3 resolution into old / new / delta columns.

    Parameters
    ----------
    old, new
        Cell tables with ``h3`` and ``geometry`` (EPSG:4326) at the same resolution,
        normally the published cells of each run.
    columns
        Indicators to compare (default: :func:`change_columns`).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per cell in either table, sorted by ``h3``: ``h3``, ``resolution``,
        ``presence`` (``both`` | ``old_only`` | ``new_only``), ``regency_code``,
        ``regency_name``, ``lon``, ``lat``, ``pocket_id_old``, ``pocket_id_new``, then
        ``<col>_old``, ``<col>_new`` and ``<col>_delta`` (new - old) per indicator. Counts
        are nullable integers; a cell in one table only has its other side and its delta
        null (its change is unknown, not zero).

    Raises
    ------
    InputError
        If the two tables hold different H3 resolutions or a table has no CRS.

    Examples
    --------
    >>> changes = cell_changes(PublishedRun("y1").cells(), PublishedRun("y2").cells())
    ... # doctest: +SKIP
    >>> changes.loc[changes["presence"] == "both", "extreme_households_delta"].sum()
    ... # doctest: +SKIP
    """
    res_o, res_n = _resolution_of(old, "old"), _resolution_of(new, "new")
    if None not in (res_o, res_n) and res_o != res_n:
        raise InputError(f"cannot compare cells of different H3 resolutions (old r{res_o}, "
                         f"new r{res_n})")
    cols = list(columns) if columns is not None else change_columns(old, new)
    o = _indexed(old)
    n = _indexed(new)
    ids = o.index.union(n.index).sort_values()
    in_o, in_n = o.index.get_indexer(ids) >= 0, n.index.get_indexer(ids) >= 0
    o, n = o.reindex(ids), n.reindex(ids)
    out = pd.DataFrame({"h3": pd.array(ids, dtype="string")})
    out["resolution"] = np.int8(res_o if res_o is not None else (res_n or 0))
    out["presence"] = pd.Categorical(np.select([in_o & in_n, in_o], PRESENCE[:2], PRESENCE[2]),
                                     categories=list(PRESENCE))
    for col in ("regency_code", "regency_name"):
        if col in o.columns or col in n.columns:
            a = n[col] if col in n.columns else pd.Series(pd.NA, index=ids)
            b = o[col] if col in o.columns else pd.Series(pd.NA, index=ids)
            out[col] = a.astype("string").fillna(b.astype("string")).to_numpy()
    for col in ("lon", "lat"):
        if col in o.columns and col in n.columns:
            out[col] = n[col].astype("float64").fillna(o[col].astype("float64")).to_numpy()
    for side, frame in (("old", o), ("new", n)):
        if "pocket_id" in frame.columns:
            out[f"pocket_id_{side}"] = frame["pocket_id"].astype("Int64").array
    for col in cols:
        if col in COUNT_COLUMNS or col.startswith("households_") or col.startswith("n_"):
            a, b = nullable_counts(o[col]), nullable_counts(n[col])  # expected counts: Float64
        else:
            a, b = o[col].astype("float64"), n[col].astype("float64")
        out[f"{col}_old"] = a.array
        out[f"{col}_new"] = b.array
        out[f"{col}_delta"] = (b - a).array
    geom = np.where(in_n, n["geometry"].to_numpy(), o["geometry"].to_numpy())
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geom, crs=WGS84), crs=WGS84)


def compare_runs(old: str | Path | PublishedRun, new: str | Path | PublishedRun, *,
                 resolution: int | None = None, min_households: int | None = None,
                 change_threshold: float = CHANGE_THRESHOLD,
                 min_overlap: float = MIN_OVERLAP, allow_lower_k: bool = False,
                 trust_run: bool = False) -> Comparison:
    """Compare two runs through their published views.

    Parameters
    ----------
    old, new
        Run directories (or their :class:`PublishedRun`) of the earlier and later year.
    resolution
        H3 resolution of the cell comparison; it must be available in both runs (base or
        rollup). Default: the common base resolution (``InputError`` if they differ).
    min_households
        Privacy threshold ``K`` for both runs (default: each run's own setting).
    change_threshold
        Pocket growth / shrinkage threshold (see :func:`pocket_changes`).
    min_overlap
        Pocket matching threshold (see :func:`match_pockets`).

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        Same directory twice, different base resolutions without ``resolution``, or a
        resolution missing in a run.
    RunError
        If a directory is not a run.

    Examples
    --------
    >>> cmp = compare_runs("runs/2024", "runs/2025")  # doctest: +SKIP
    >>> cmp.status_counts()  # doctest: +SKIP
    {'persisting': 3, 'shrinking': 2, 'growing': 0, 'new': 1, 'resolved': 1}
    """
    gate = {"min_households": min_households, "allow_lower_k": allow_lower_k,
            "trust_run": trust_run}
    po = old if isinstance(old, PublishedRun) else PublishedRun(old, **gate)
    pn = new if isinstance(new, PublishedRun) else PublishedRun(new, **gate)
    if po.run_dir.resolve() == pn.run_dir.resolve():
        raise InputError(f"{po.run_dir}: the old and the new run are the same directory")
    if po.run_id == pn.run_id:
        raise InputError(f"{po.run_dir} and {pn.run_dir} are copies of the same run "
                         f"({po.run_id}): nothing to compare")
    res = _common_resolution(po, pn, resolution)
    cells = cell_changes(po.cells(res), pn.cells(res))
    match_res = min(po.base_resolution, pn.base_resolution)
    matches = match_pockets(_pocket_cells(po, match_res), _pocket_cells(pn, match_res),
                            min_overlap=min_overlap)
    pockets = pocket_changes(po.pockets(), pn.pockets(), matches, threshold=change_threshold)
    totals_o, totals_n = regency_target_counts(po), regency_target_counts(pn)
    regencies = target_table(totals_o, totals_n)
    presence = cells["presence"].value_counts()
    summary: dict[str, Any] = {
        "engine_version": __version__,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": {"old": _run_record(po), "new": _run_record(pn)},
        "resolution": res,
        "pocket_match_resolution": match_res,
        "parameters": {"change_threshold": change_threshold, "min_overlap": min_overlap},
        "cells": {p: int(presence.get(p, 0)) for p in PRESENCE},
        "pockets": {"published_old": int(len(po.pockets())),
                    "published_new": int(len(pn.pockets())),
                    "withheld_old": po.pockets_withheld(), "withheld_new": pn.pockets_withheld(),
                    "matched_pairs": int(matches["matched"].sum()) if len(matches) else 0,
                    "status": {s: int((pockets["status"] == s).sum()) for s in STATUSES}},
        "totals": {side: {c: int(t[c].sum()) for c in ("households", "extreme_households",
                                                         "persons", "extreme_persons")
                          if c in t.columns}
                   for side, t in (("old", totals_o), ("new", totals_n))},
        "targets": targets_record(),
        "privacy": PRIVACY_NOTE,
    }
    logger.info("compare r%d: %s cells, pocket groups %s", res, summary["cells"],
                summary["pockets"]["status"])
    return Comparison(cells, pockets, matches, regencies, summary,
                      run_dirs=(po.run_dir, pn.run_dir))


def write_comparison(comparison: Comparison, out_dir: str | Path, *, plot: bool = True
                     ) -> dict[str, Path]:
    """Write the outputs of ``kantong compare`` into ``out_dir``, atomically as a whole.

    Files: ``compare.parquet`` (cells, GeoParquet), ``cells_change.geojson``,
    ``pockets_change.geojson``, ``pocket_matches.csv``, ``regencies.csv``, ``compare.json``
    and with ``plot`` ``regencies.png`` and ``changes.png``. All are privacy-safe (see the
    module docstring). An existing ``out_dir`` is replaced only if it is empty or holds a
    previous comparison (a ``compare.json``).

    Parameters
    ----------
    comparison
        Output of :func:`compare_runs`.
    out_dir
        Output directory (must not be or contain either run directory).
    plot
        Also write the PNG charts.

    Returns
    -------
    dict of str to Path
        Output name -> final path.

    Raises
    ------
    InputError
        If ``out_dir`` is a run directory, contains one, or holds other files.
    """
    from kantong.engine import plots
    from kantong.engine.publish.export import round_and_orient, write_geojson, write_geoparquet

    out = Path(out_dir)
    _check_out_dir(out, comparison)
    meta = {k: comparison.summary[k] for k in ("engine_version", "created", "resolution",
                                               "privacy")}
    meta["runs"] = {side: {k: r[k] for k in ("run_id", "min_households")}
                    for side, r in comparison.summary["runs"].items()}
    names = {"parquet": COMPARE_PARQUET, "cells": CELLS_GEOJSON, "pockets": POCKETS_GEOJSON,
             "matches": MATCHES_CSV, "regencies": REGENCIES_CSV, "json": COMPARE_JSON}
    if plot:
        names.update(regencies_png=REGENCIES_PNG, changes_png=CHANGES_PNG)
    cells = round_and_orient(comparison.cells)
    pockets = round_and_orient(comparison.pockets)
    with atomic_dir(out) as tmp:
        write_geoparquet(cells, tmp / COMPARE_PARQUET, metadata=meta)
        write_geojson(cells, tmp / CELLS_GEOJSON, metadata={**meta, "layer": "cells_change"},
                      id_column="h3")
        write_geojson(pockets, tmp / POCKETS_GEOJSON,
                      metadata={**meta, "layer": "pockets_change"}, id_column="change_id")
        comparison.matches.to_csv(tmp / MATCHES_CSV, index=False, lineterminator="\n",
                                  float_format="%.6g")
        comparison.regencies.to_csv(tmp / REGENCIES_CSV, index=False, lineterminator="\n",
                                    float_format="%.6g")
        if plot:
            plots.plot_regency_targets(comparison.regencies, tmp / REGENCIES_PNG)
            plots.plot_change_map(comparison.cells, comparison.pockets, tmp / CHANGES_PNG)
        record = {**comparison.summary, "outputs": sorted(names.values())}
        write_json(tmp / COMPARE_JSON, record)
    paths = {k: out / v for k, v in names.items()}
    logger.info("wrote comparison to %s (%d files)", out, len(paths))
    return paths


# ---- helpers -------------------------------------------------------------------------------

def _resolution_of(cells: pd.DataFrame, side: str) -> int | None:
    if isinstance(cells, gpd.GeoDataFrame) and cells.crs is None:
        raise InputError(f"{side} cells have no CRS")
    if isinstance(cells, gpd.GeoDataFrame) and cells.crs.to_epsg() != 4326:
        raise InputError(f"{side} cells must be EPSG:4326, got {cells.crs}")
    if len(cells) == 0:
        return None
    if "resolution" in cells.columns:
        values = pd.unique(cells["resolution"].astype("int64"))
    else:
        values = pd.unique(np.asarray(h3ronpy.cells_resolution(
            h3ronpy.cells_parse(cells["h3"].astype(str).tolist()))))
    if len(values) != 1:
        raise InputError(f"{side} cells mix H3 resolutions {sorted(int(v) for v in values)}")
    return int(values[0])


def _indexed(cells: gpd.GeoDataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(cells).copy()
    frame["geometry"] = cells.geometry.to_numpy()
    frame["h3"] = frame["h3"].astype(str)
    if frame["h3"].duplicated().any():
        raise InputError("cell table holds duplicate h3 ids")
    return frame.set_index("h3")


def _pocket_cells(run: PublishedRun, resolution: int) -> pd.DataFrame:
    """Return the published pocket cells of ``run`` as ids at ``resolution`` (coarser or equal)."""
    cells = run.cells(run.base_resolution)
    if "pocket_id" not in cells.columns:
        return pd.DataFrame({"h3": pd.Series(dtype=str), "pocket_id": pd.Series(dtype="int64")})
    cells = pd.DataFrame(cells.loc[cells["pocket_id"].notna(), ["h3", "pocket_id"]])
    if resolution != run.base_resolution and len(cells):
        ids = h3ronpy.cells_parse(cells["h3"].astype(str).tolist())
        parents = h3ronpy.change_resolution(ids, resolution)
        cells["h3"] = h3ronpy.cells_to_string(parents).to_pylist()
    return pocket_members(cells)


def _common_resolution(old: PublishedRun, new: PublishedRun, resolution: int | None) -> int:
    if resolution is None:
        if old.base_resolution != new.base_resolution:
            raise InputError(
                f"runs have different H3 resolutions ({old.run_dir}: r{old.base_resolution}, "
                f"{new.run_dir}: r{new.base_resolution}); pass --resolution "
                f"{min(old.base_resolution, new.base_resolution)} or coarser")
        return old.base_resolution
    for run in (old, new):
        if resolution not in run.resolutions:
            raise InputError(f"{run.run_dir}: resolution {resolution} not in this run "
                             f"(available: {', '.join(map(str, run.resolutions))})")
    return int(resolution)


def _run_record(run: PublishedRun) -> dict[str, Any]:
    """Describe a run for compare.json: its base name, never its server path."""
    public = public_run_record(run.manifest)
    return {
        "name": run.run_dir.name, "run_id": run.run_id,
        "created": public["created"], "engine_version": public["engine_version"],
        "base_resolution": run.base_resolution, "min_households": run.min_households,
        "inputs": {k: v["sha256"] for k, v in public["inputs"].items()},
    }


_OUTPUT_NAMES = frozenset({COMPARE_PARQUET, CELLS_GEOJSON, POCKETS_GEOJSON, MATCHES_CSV,
                           REGENCIES_CSV, COMPARE_JSON, REGENCIES_PNG, CHANGES_PNG})


def _previous_comparison(out: Path) -> bool:
    """Whether ``out`` holds a previous ``kantong compare`` output and nothing else."""
    try:
        record = json.loads((out / COMPARE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = {p.name for p in out.iterdir() if not p.name.startswith(".kantong-")}
    return isinstance(record, dict) and "runs" in record and names <= _OUTPUT_NAMES


def _check_out_dir(out: Path, comparison: Comparison) -> None:
    claim_dir(out, command="compare", marker=COMPARE_JSON, recognise=_previous_comparison,
              inputs=comparison.run_dirs, what="run directory")


__all__ = ["CHANGE_THRESHOLD", "MIN_OVERLAP", "PRESENCE", "STATUSES", "STATUS_COLORS", "Comparison",
           "cell_changes", "change_columns", "compare_runs", "match_pockets", "pocket_changes",
           "write_comparison"]
