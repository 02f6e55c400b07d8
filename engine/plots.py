"""Static PNG charts for people who would rather look than read (matplotlib, Agg canvas).

Figures are built on their own :class:`~matplotlib.figure.Figure` with an Agg canvas, never
through ``pyplot``'s global state, so they are thread-safe and leave no open figures. Every
function returns the figure (notebooks display it) and, given a ``path``, writes it
atomically as PNG.

* :func:`plot_regency_targets` - per regency, each programme target indicator in both years
  with the target line (``kantong compare`` writes it as ``regencies.png``).
* :func:`plot_regency_ranking` - one regency indicator as a ranked bar chart.
* :func:`plot_change_map` - cells coloured by a change, pocket groups outlined by status.

The static map of pockets and priorities is :func:`kantong.engine.pockets.run.plot_pockets`
(``kantong pockets --plot``); it is not duplicated here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from kantong.engine.atomic import atomic_path
from kantong.engine.compare.pockets import STATUS_COLORS, STATUSES
from kantong.engine.compare.targets import TARGETS, Target

logger = logging.getLogger(__name__)

#: Bar colours of the earlier and the later year.
OLD_COLOR = "#9ecae1"
NEW_COLOR = "#08519c"


def new_figure(width: float, height: float, *, dpi: int = 110) -> Figure:
    """Return an empty figure on an Agg canvas (no pyplot state).

    Examples
    --------
    >>> fig = new_figure(4, 3)
    >>> type(fig.canvas).__name__
    'FigureCanvasAgg'
    """
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    logger.info("wrote chart %s", path)
    return path


def _labels(table: pd.DataFrame) -> list[str]:
    names = table["regency_name"].astype("string").fillna("?")
    return [f"{c} {n}" for c, n in zip(table["regency_code"], names, strict=True)]


def plot_regency_targets(table: pd.DataFrame, path: str | Path | None = None, *,
                         targets: tuple[Target, ...] = TARGETS,
                         title: str | None = None) -> Figure:
    """Draw each target indicator per regency in both years, with the target line.

    Parameters
    ----------
    table
        The regency table of :func:`kantong.engine.compare.targets.target_table` (``<key>_old`` and
        ``<key>_new`` columns per target).
    path
        Write the PNG here (atomically) when given.
    targets
        Targets to draw, one panel each.
    title
        Figure title (default names the two years as "earlier" and "later").

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = table.sort_values("regency_code", ascending=False)
    labels = _labels(rows)
    y = np.arange(len(rows))
    fig = new_figure(3.6 * len(targets) + 1.8, 0.32 * max(len(rows), 4) + 1.6)
    axes = fig.subplots(1, len(targets), sharey=True, squeeze=False)[0]
    h = 0.38
    for ax, t in zip(axes, targets, strict=True):
        old = 100 * rows[f"{t.key}_old"].to_numpy(dtype="float64", na_value=np.nan)
        new = 100 * rows[f"{t.key}_new"].to_numpy(dtype="float64", na_value=np.nan)
        ax.barh(y + h / 2, np.nan_to_num(old), height=h, color=OLD_COLOR, label="earlier run")
        ax.barh(y - h / 2, np.nan_to_num(new), height=h, color=NEW_COLOR, label="later run")
        ax.axvline(100 * t.target, color="#b2182b", linestyle="--", linewidth=1.2)
        top = np.nanmax(np.concatenate([old, new, [100 * t.target]])) if len(rows) else 1.0
        ax.set_xlim(0, 100.0 if t.direction == "at_least" else max(top * 1.15, 0.5))
        word = "<=" if t.direction == "at_most" else ">="
        ax.set_title(f"{t.label}\ntarget {word} {100 * t.target:g} %", fontsize=9)
        ax.set_xlabel("%" + (" (proxy)" if t.proxy else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels)
    handles = [Patch(color=OLD_COLOR, label="earlier run"), Patch(color=NEW_COLOR,
                                                                  label="later run"),
               Line2D([], [], color="#b2182b", linestyle="--", label="programme target")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title or "Regencies: programme target indicators, earlier vs later run",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    if path is not None:
        save_png(fig, path)
    return fig


def plot_regency_ranking(regencies: pd.DataFrame, column: str = "extreme_rate",
                         path: str | Path | None = None, *, percent: bool = True,
                         title: str | None = None) -> Figure:
    """Draw one regency indicator as horizontal bars, highest first.

    Parameters
    ----------
    regencies
        A regency table with ``regency_code``, ``regency_name`` and ``column`` (for example
        :meth:`kantong.engine.publish.published.PublishedRun.regencies`).
    column
        The indicator to rank by.
    path
        Write the PNG here (atomically) when given.
    percent
        Show the values as percentages (fractions x 100).
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = regencies.dropna(subset=[column]).sort_values([column, "regency_code"])
    values = rows[column].to_numpy(dtype="float64") * (100.0 if percent else 1.0)
    fig = new_figure(7.5, 0.32 * max(len(rows), 4) + 1.2)
    ax = fig.subplots()
    ax.barh(np.arange(len(rows)), values, color=NEW_COLOR)
    ax.set_yticks(np.arange(len(rows)), _labels(rows), fontsize=8)
    for i, v in enumerate(values):  # one label per regency
        ax.annotate(f"{v:.2f}" if percent else f"{v:,.0f}", (v, i), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)
    ax.set_xlabel(f"{column} (%)" if percent else column)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"Regencies ranked by {column}", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_png(fig, path)
    return fig


def map_pad(bounds: tuple[float, float, float, float]) -> float:
    """Return the margin (degrees) a static map leaves around ``(west, south, east, north)``."""
    west, south, east, north = bounds
    return max(east - west, north - south) * 0.05 + 0.01


def draw_regencies(ax, bounds: tuple[float, float, float, float], pad: float, *,
                   color: str = "0.45", linewidth: float = 0.5, label_color: str = "0.35",
                   only: set[str] | None = None, with_codes: bool = False) -> None:
    """Outline the shipped regencies within the padded ``bounds`` and name them.

    ``only`` restricts the names (not the outlines) to these regency codes; ``with_codes``
    prefixes each name with its BPS code.
    """
    from kantong.engine.inputs import boundaries

    west, south, east, north = bounds
    regs = boundaries.regencies().cx[west - pad:east + pad, south - pad:north + pad]
    if not len(regs):
        return
    view = shapely.box(west - pad, south - pad, east + pad, north + pad)
    regs.boundary.plot(ax=ax, color=color, linewidth=linewidth)
    if only is not None:
        regs = regs[regs["regency_code"].isin(only)]
    inside = regs.geometry.intersection(view).representative_point()
    for code, name, pt in zip(regs["regency_code"], regs["regency_name"], inside, strict=True):
        text = f"{code} {name}" if with_codes else str(name)
        ax.annotate(text, (pt.x, pt.y), fontsize=7, color=label_color, ha="center")


def frame_map(ax, bounds: tuple[float, float, float, float], pad: float) -> None:
    """Set a static map's extent (padded ``bounds``), equal aspect and axis labels."""
    west, south, east, north = bounds
    ax.set_xlim(west - pad, east + pad)
    ax.set_ylim(south - pad, north + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")


def plot_change_map(cells: gpd.GeoDataFrame, pockets: gpd.GeoDataFrame,
                    path: str | Path | None = None, *,
                    column: str = "extreme_households_delta",
                    title: str | None = None) -> Figure:
    """Draw a static change map: cells by a change column, pocket groups by status.

    Parameters
    ----------
    cells
        Cell changes (:func:`kantong.engine.compare.run.cell_changes`), EPSG:4326. Cells without a
        value (published in one run only) are drawn light grey.
    pockets
        Pocket changes (:func:`kantong.engine.compare.pockets.pocket_changes`), outlined in the
        status
        colour (:data:`kantong.engine.compare.pockets.STATUS_COLORS`).
    path
        Write the PNG here (atomically) when given.
    column
        The change column to colour by (diverging scale, symmetric around 0: blue =
        decrease, red = increase).
    title
        Map title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = new_figure(9.5, 9.0, dpi=120)
    ax = fig.subplots()
    if len(cells):
        values = cells[column].to_numpy(dtype="float64", na_value=np.nan)
        known = np.isfinite(values)
        lim = float(np.nanpercentile(np.abs(values[known]), 98)) if known.any() else 1.0
        lim = max(lim, 1e-9)
        if (~known).any():
            cells.loc[~known].plot(ax=ax, color="0.72", edgecolor="0.72", linewidth=0.3)
        if known.any():
            cells.loc[known].assign(_v=values[known]).plot(
                ax=ax, column="_v", cmap="RdBu_r", vmin=-lim, vmax=lim, edgecolor="face",
                linewidth=0.3,
                legend=True, legend_kwds={"label": column.replace("_", " "), "shrink": 0.6})
        west, south, east, north = cells.total_bounds
    elif len(pockets):
        west, south, east, north = pockets.total_bounds
    else:
        west, south, east, north = (108.0, -3.5, 119.5, 4.5)
    bounds = (west, south, east, north)
    pad = map_pad(bounds)
    draw_regencies(ax, bounds, pad)
    handles = []
    for status in STATUSES:
        group = pockets[pockets["status"] == status] if len(pockets) else pockets
        if len(group):
            group.boundary.plot(ax=ax, color=STATUS_COLORS[status], linewidth=1.6)
            handles.append(Line2D([], [], color=STATUS_COLORS[status], linewidth=2,
                                  label=f"{status} ({len(group)})"))
    if handles:
        ax.legend(handles=handles, title="pockets", loc="lower left", fontsize=8)
    frame_map(ax, bounds, pad)
    ax.set_title(title or f"Change between the runs: {column.replace('_', ' ')} "
                 "(grey: published in one run only)", fontsize=10)
    if path is not None:
        save_png(fig, path)
    return fig


__all__ = ["NEW_COLOR", "OLD_COLOR", "draw_regencies", "frame_map", "map_pad", "new_figure",
           "plot_change_map", "plot_regency_ranking", "plot_regency_targets", "save_png"]
