"""Outputs of ``kantong sites``: the per-site table, the files and the curve PNG.

Every objective writes the same files - GeoJSON + GeoParquet of the chosen sites in rank
order, a JSON sidecar (parameters, solver facts, totals, timings), a curve PNG and
``RUNDIR/sites/sites_<type>.parquet`` for the web map - with site points and aggregate
counts only, never household rows. ``new_extreme_households`` and its running total
``cumulative_extreme_households`` are present for every objective (what the web map and
the privacy rules use); their meaning per objective is in docs/sites.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from kantong.engine.atomic import write_json
from kantong.engine.build.travel import type_slug
from kantong.engine.constants import SITES_DIR, WGS84
from kantong.engine.errors import InputError
from kantong.engine.plots import new_figure, save_png
from kantong.engine.rundir import Timer
from kantong.engine.sites.coverage import Coverage
from kantong.engine.sites.ownership import claim_outputs, write_as_units
from kantong.engine.sites.places import PLACE_COLUMNS, name_places

logger = logging.getLogger(__name__)


def check_out(out: str | Path | None) -> None:
    """Fail before any work when the output name cannot be used."""
    if out is not None and Path(out).suffix.lower() not in (".geojson", ".parquet"):
        raise InputError(f"{out}: output must end in .geojson (a .parquet is written beside)")


def coverage_columns(cov: Coverage, cells: pd.DataFrame, w: np.ndarray,
                     order: np.ndarray) -> dict[str, np.ndarray]:
    """Return, per chosen site in order, what it newly covers (cells no earlier site covers).

    Parameters
    ----------
    cov
        Coverage of the candidates over ``cells``.
    cells
        The demand cells (``extreme_households``, ``extreme_persons``, ``households``,
        ``persons``).
    w
        Demand weight per cell.
    order
        Chosen candidate indices in rank order.

    Returns
    -------
    dict
        ``new_extreme_households``, ``new_extreme_persons``, ``new_households``,
        ``new_persons_covered``, ``new_demand``, ``new_cells`` arrays.
    """
    taken = np.zeros(cov.shape[1], dtype=bool)
    src = {"new_extreme_households": cells["extreme_households"].to_numpy(),
           "new_extreme_persons": cells["extreme_persons"].to_numpy(),
           "new_households": cells["households"].to_numpy(),
           "new_persons_covered": cells["persons"].to_numpy(), "new_demand": w}
    cols: dict[str, list[float]] = {k: [] for k in [*src, "new_cells"]}
    m = cov.matrix
    for j in order:  # one step per chosen site
        reach = m.indices[m.indptr[j]:m.indptr[j + 1]]
        newly = reach[~taken[reach]]
        taken[newly] = True
        for key, values in src.items():
            cols[key].append(values[newly].sum())
        cols["new_cells"].append(len(newly))
    # expected households of village-located registers are rounded to whole households
    return {k: np.asarray(v, dtype=float) if k == "new_demand"
            else np.rint(np.asarray(v, dtype=float)).astype(np.int64) for k, v in cols.items()}


def site_frame(cand: pd.DataFrame, order: np.ndarray, columns: dict[str, Any], *,
               costs: np.ndarray, common: dict[str, Any]) -> gpd.GeoDataFrame:
    """Assemble the output rows: rank, id, name, place names, location, then ``columns``.

    Parameters
    ----------
    cand
        Candidates (``candidate_id``, ``name``, ``lon``, ``lat``).
    order
        Chosen candidate indices in rank order.
    columns
        Objective-specific columns (arrays in rank order).
    costs
        Cost per candidate (NaN when unknown): ``cost`` and ``cumulative_cost`` are added
        when every chosen site has one.
    common
        Constant columns (``facility_type``, ``objective``, ``method``, ...).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326 points, one per site.
    """
    c = cand.iloc[order].reset_index(drop=True)
    out = pd.DataFrame({"rank": np.arange(1, len(c) + 1, dtype=np.int64),
                        "candidate_id": c["candidate_id"].astype("string"),
                        "name": c["name"].astype("string")})
    places = name_places(c["lon"].to_numpy(float), c["lat"].to_numpy(float)) if len(c) else \
        pd.DataFrame({k: pd.Series([], dtype="string") for k in PLACE_COLUMNS})
    for col in PLACE_COLUMNS:
        out[col] = places[col].to_numpy()
    if len(c):  # a candidate outside the shipped boundaries keeps the regency it came with
        for col in ("regency_code", "regency_name"):
            if col in c.columns:
                out[col] = out[col].fillna(c[col].astype("string").reset_index(drop=True))
    out["lon"], out["lat"] = c["lon"].to_numpy(float), c["lat"].to_numpy(float)
    for key, vals in columns.items():
        out[key] = vals
    site_costs = costs[order]
    if len(site_costs) and np.isfinite(site_costs).all():
        out["cost"] = site_costs
        out["cumulative_cost"] = np.cumsum(site_costs)
    for key, value in common.items():
        out[key] = value
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out["lon"], out["lat"]), crs=WGS84)


def write_outputs(run_dir: Path, facility_type: str, sites: gpd.GeoDataFrame,
                  metadata: dict[str, Any], *, out: str | Path | None,
                  plot: str | Path | None, timer: Timer) -> dict[str, Path]:
    """Write GeoJSON, GeoParquet, the JSON sidecar, the curve PNG and the web-map copy.

    Returns
    -------
    dict
        Paths by key: ``geojson``, ``parquet``, ``json``, ``plot``, ``web``.
    """
    stem = f"sites_{type_slug(facility_type)}"
    web = run_dir / SITES_DIR / f"{stem}.parquet"
    out_p = Path(out) if out is not None else run_dir / SITES_DIR / f"{stem}.geojson"
    check_out(out_p)
    curve = metadata["curve"]
    paths = {"geojson": out_p.with_suffix(".geojson"), "parquet": out_p.with_suffix(".parquet"),
             "json": out_p.with_suffix(".json"),
             "plot": Path(plot) if plot is not None else
             out_p.with_name(f"{out_p.stem}_{curve['name']}.png"), "web": web}
    claim_outputs(paths, run_dir)  # before anything is written: never destroy (issue 18)
    metadata["outputs"] = {k: str(v) for k, v in paths.items()}
    with timer("write"):
        write_as_units(run_dir, paths, lambda target: _write_files(
            sites, metadata, paths, target, timer))
    logger.info("wrote %d sites to %s", len(sites), paths["geojson"])
    return paths


def _write_files(sites: gpd.GeoDataFrame, metadata: dict[str, Any], paths: dict[str, Path],
                 target: dict[str, Path], timer: Timer) -> None:
    """Write every output to its ``target`` path (temporaries of :func:`write_as_units`)."""
    sites.to_file(target["geojson"], driver="GeoJSON", engine="pyogrio")
    sites.to_parquet(target["parquet"])
    if paths["web"] != paths["parquet"]:
        sites.to_parquet(target["web"])
    plot_curve(metadata, target["plot"])
    metadata["timings_s"] = timer.as_dict()
    write_json(target["json"], metadata)
    if paths["web"] != paths["parquet"]:
        write_json(target["web_json"], metadata)


def plot_curve(metadata: dict[str, Any], path: Path) -> Path:
    """Write the curve PNG described by ``metadata["curve"]`` (value vs number of sites).

    ``curve`` holds ``values`` (for 0, 1, ... sites), ``ylabel``, and optionally a
    ``reference`` line with its ``reference_label``.
    """
    curve, p = metadata["curve"], metadata["parameters"]
    y = np.asarray(curve["values"], dtype=float)
    x = np.arange(len(y))
    fig = new_figure(7, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, y, marker="o", ms=3, color="#b2182b")
    if curve.get("reference") is not None:
        ax.axhline(curve["reference"], color="grey", ls="--", lw=1,
                   label=curve.get("reference_label"))
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("number of new sites")
    ax.set_ylabel(curve["ylabel"])
    ax.set_title(f"{p['facility_type']}: {p['objective']} "
                 f"({metadata['travel']['method']}, {metadata['result']['method']})",
                 fontsize=10)
    ax.set_xlim(0, max(len(y) - 1, 1))
    top = max(float(np.nanmax(y)) if len(y) else 0.0, float(curve.get("reference") or 0.0))
    ax.set_ylim(0, max(top, 1.0) * 1.05)
    ax.grid(alpha=0.3)
    return save_png(fig, path)


__all__ = ["check_out", "coverage_columns", "plot_curve", "site_frame", "write_outputs"]
