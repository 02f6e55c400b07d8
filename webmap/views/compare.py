"""The ``compare`` blueprint: change layers of ``kantong serve --run NEW --compare OLD``.

When the app is configured with ``COMPARE_RUN_DIR`` (``KANTONG_COMPARE_RUN_DIR``), the served
run is the *new* run and the compare run the *old* one; both are read only through
:class:`kantong.engine.publish.published.PublishedRun` and compared with
:mod:`kantong.engine.compare.run`, so a cell
withheld in either run has its change withheld (drawn in the no-data grey when it is
published in one run only, not drawn at all otherwise).

URLs:

* ``/tiles/change_extreme_households/<z>/<x>/<y>.png`` and
  ``/tiles/change_extreme_rate/<z>/<x>/<y>.png`` - raster tiles of the change (new - old),
  diverging colours (blue = fewer / lower, red = more / higher), one H3 resolution per zoom
  among those both runs publish; ``.../legend.json`` - their legends.
* ``/api/compare`` - summary: runs, resolution, cell presence counts, pocket statuses.
* ``/api/compare/regencies`` - the regency table (extreme rate and target indicators in both
  runs, change, distance to the targets) with the target definitions.
* ``/api/compare/pockets.geojson`` - pocket groups with their status (RFC 7946).

The viewer page shows the change rasters as base layers, the pocket statuses as an overlay
and a small regency table (:meth:`CompareService.page_layers`).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Final

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from branca.element import MacroElement
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from jinja2 import Template
from matplotlib import colormaps

from kantong.engine.compare.pockets import STATUS_COLORS, STATUSES
from kantong.engine.compare.run import Comparison, cell_changes, compare_runs
from kantong.engine.compare.targets import targets_record
from kantong.engine.errors import ConfigError
from kantong.engine.publish.export import geojson_text, round_and_orient
from kantong.engine.publish.published import PublishedRun
from kantong.webmap.config import MAX_ZOOM, OUTLINE_MIN_ZOOM, resolution_for_zoom
from kantong.webmap.page.markers import status_markers
from kantong.webmap.tiling import colors
from kantong.webmap.tiling.cache import TileCache, etag_for
from kantong.webmap.tiling.render import EMPTY_PNG, CellGeometry, render_png
from kantong.webmap.views.tiles import ascii_int, parse_tile

logger = logging.getLogger(__name__)

bp = Blueprint("compare", __name__)

#: Change layer -> (compared cell column, legend label, legend unit, smallest domain).
CHANGE_LAYERS: Final[dict[str, tuple[str, str, str, float]]] = {
    "change_extreme_households": ("extreme_households",
                                  "Change in extreme-poor households (later - earlier run)",
                                  "households", 2.0),
    "change_extreme_rate": ("extreme_rate",
                            "Change in the extreme-poverty rate (later - earlier run)",
                            "share of persons (percentage points)", 0.01),
}
#: Diverging colormap of the change layers (blue = decrease, red = increase).
CHANGE_CMAP: Final = "RdBu_r"
#: Legend text of the no-data colour of the change layers.
NODATA_LABEL: Final = "Published in one run only (change withheld)"
#: Key of the service in ``app.extensions``.
EXTENSION: Final = "kantong_compare"
_MISS: Final = object()
_RENDER_VERSION: Final = "2"


class CompareService:
    """Change tiles, legends and tables of an (old, new) pair of published runs.

    Parameters
    ----------
    old, new
        Privacy-safe views of the earlier (compare) run and the later (served) run.
    cache_bytes
        Bound of the in-memory tile cache of the change layers.

    Raises
    ------
    ConfigError
        If the runs share no H3 resolution.
    """

    def __init__(self, old: PublishedRun, new: PublishedRun, *, cache_bytes: int) -> None:
        self.old, self.new = old, new
        self.resolutions = sorted(set(old.resolutions) & set(new.resolutions))
        if not self.resolutions:
            raise ConfigError(f"{old.run_dir} and {new.run_dir} share no H3 resolution "
                              f"({old.resolutions} vs {new.resolutions})")
        self.cache = TileCache(cache_bytes)
        self._lock = threading.RLock()
        self._comparison: Comparison | None = None
        self._levels: dict[int, tuple[CellGeometry, gpd.GeoDataFrame]] = {}
        self._scales: dict[tuple[str, int], tuple[colors.Scale, np.ndarray, np.ndarray]] = {}
        text = "|".join([old.run_id, str(old.min_households), new.run_id,
                         str(new.min_households), _RENDER_VERSION])
        self.fingerprint = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    # ---- analysis -------------------------------------------------------------------------
    def comparison(self) -> Comparison:
        """Return the comparison at the finest common resolution (computed once)."""
        with self._lock:
            if self._comparison is None:
                self._comparison = compare_runs(self.old, self.new,
                                                resolution=max(self.resolutions))
            return self._comparison

    def changes(self, resolution: int) -> gpd.GeoDataFrame:
        """Return the cell changes at ``resolution`` (one of :attr:`resolutions`)."""
        if resolution == max(self.resolutions):
            return self.comparison().cells
        return cell_changes(self.old.cells(resolution), self.new.cells(resolution))

    def level(self, resolution: int) -> tuple[CellGeometry, gpd.GeoDataFrame]:
        """Return the indexed hexagons and cell changes of one resolution (built once)."""
        with self._lock:
            if resolution not in self._levels:
                cells = self.changes(resolution)
                self._levels[resolution] = (CellGeometry(cells.geometry.to_numpy()), cells)
                logger.info("compare: indexed %d changed cells at r%d", len(cells), resolution)
            return self._levels[resolution]

    def resolution_for_zoom(self, zoom: int) -> int:
        """Return the H3 resolution drawn at ``zoom`` (among the common resolutions)."""
        return resolution_for_zoom(zoom, self.resolutions)

    # ---- colours and tiles ----------------------------------------------------------------
    def scale(self, layer: str, resolution: int) -> tuple[colors.Scale, np.ndarray]:
        """Return the diverging colour scale of ``layer`` and the RGBA of every cell."""
        scale, rgba, _ = self._scale_entry(layer, resolution)
        return scale, rgba

    def nodata(self, layer: str, resolution: int) -> np.ndarray:
        """Return the bool mask of the cells drawn as "no data" (published in one run only)."""
        return self._scale_entry(layer, resolution)[2]

    def _scale_entry(self, layer: str, resolution: int
                     ) -> tuple[colors.Scale, np.ndarray, np.ndarray]:
        key = (layer, resolution)
        with self._lock:
            if key not in self._scales:
                column, label, unit, smallest = CHANGE_LAYERS[layer]
                _, cells = self.level(resolution)
                values = cells[f"{column}_delta"].to_numpy(dtype="float64", na_value=np.nan)
                finite = np.abs(values[np.isfinite(values)])
                top = float(np.quantile(finite, 0.98)) if finite.size else smallest
                bound = _nice(max(top, smallest))
                lut = colormaps[CHANGE_CMAP](np.linspace(0.0, 1.0, 256), bytes=True)
                lut[:, 3] = colors.FILL_ALPHA
                scale = colors.Scale(layer, label, unit, "continuous", CHANGE_CMAP,
                                     (-bound, bound), lut,
                                     open_high=bool(finite.size and finite.max() > bound))
                self._scales[key] = (scale, scale.rgba(values), ~np.isfinite(values))
            return self._scales[key]

    def legend(self, layer: str, *, resolution: int | None = None) -> dict[str, Any]:
        """Return the legend of a change layer (the viewer's legend format)."""
        res = max(self.resolutions) if resolution is None else resolution
        scale, _ = self.scale(layer, res)
        out = scale.legend(n_stops=5, nodata_label=NODATA_LABEL)
        out["resolution"] = res
        return out

    def png(self, layer: str, z: int, x: int, y: int) -> bytes | None:
        """Return the PNG tile of a change layer (``None``: no cell in the tile), cached."""
        key = (layer, z, x, y)
        hit = self.cache.get(key, _MISS)
        if hit is not _MISS:
            return hit
        res = self.resolution_for_zoom(z)
        geometry, _ = self.level(res)
        _, rgba, nodata = self._scale_entry(layer, res)
        data = render_png(geometry, rgba, z, x, y, outline=z >= OUTLINE_MIN_ZOOM, hatch=nodata)
        self.cache.put(key, data)
        return data

    def etag(self, layer: str, z: int, x: int, y: int) -> str:
        """Return the ETag of a change tile."""
        return etag_for("compare", self.fingerprint, layer, z, x, y)

    # ---- tables ---------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Return the comparison summary safe to publish (no server paths)."""
        s = self.comparison().summary
        runs = {side: {k: v for k, v in r.items() if k not in ("path", "inputs")}
                for side, r in s["runs"].items()}
        return {"runs": runs, "resolution": s["resolution"], "resolutions": self.resolutions,
                "parameters": s["parameters"], "cells": s["cells"], "pockets": s["pockets"],
                "totals": s["totals"], "layers": list(CHANGE_LAYERS), "privacy": s["privacy"]}

    def regencies(self) -> list[dict[str, Any]]:
        """Return the regency table as JSON-ready records (NaN as null)."""
        return json.loads(self.comparison().regencies.to_json(orient="records",
                                                              force_ascii=False))

    def pockets_geojson(self) -> str:
        """Return the pocket groups with their status as RFC 7946 GeoJSON text."""
        pockets = round_and_orient(self.comparison().pockets)
        return geojson_text(pockets, id_column="change_id",
                            metadata={"layer": "pockets_change", "privacy":
                                      self.comparison().summary["privacy"]})

    def page_layers(self) -> ComparePageLayers:
        """Return the layers the viewer page adds (see :class:`ComparePageLayers`)."""
        return ComparePageLayers(self.comparison())


class ComparePageLayers:
    """What the viewer page shows of a comparison: change rasters, pocket statuses, table.

    ``kantong.webmap.page.build.build_map`` calls :meth:`add_to` when the app serves a comparison.
    """

    def __init__(self, comparison: Comparison, *, top: int = 8) -> None:
        self.comparison = comparison
        self.top = top

    def legend_entries(self) -> list[list[str]]:
        """Return ``[[label, colour], ...]`` of the pocket statuses shown (legend key)."""
        present = set(self.comparison.pockets["status"]) if len(self.comparison.pockets) else set()
        return [[f"Pocket {status}", STATUS_COLORS[status]] for status in STATUSES
                if status in present and status in STATUS_COLORS]

    def add_to(self, fmap: folium.Map, *, base_url: str = "",
               bounds: list[list[float]] | None = None
               ) -> list[tuple[folium.GeoJson, folium.GeoJson]]:
        """Add the change tile layers, the pocket status overlay and the regency box.

        Returns
        -------
        list
            ``[(overlay, markers)]``: the pocket status overlay and its rings, which the
            viewer shows at low zoom while the overlay is on (empty without pockets).
        """
        pairs: list[tuple[folium.GeoJson, folium.GeoJson]] = []
        for name, (_, label, _, _) in CHANGE_LAYERS.items():
            folium.TileLayer(f"{base_url}/tiles/{name}/{{z}}/{{x}}/{{y}}.png",
                             name=label.split(" (")[0], attr="Kantong", overlay=False,
                             control=True, show=False, min_zoom=5, max_zoom=16, bounds=bounds,
                             indicator=name, opacity=0.9).add_to(fmap)
        pockets = self.comparison.pockets
        if len(pockets):
            props = pockets.drop(columns=pockets.geometry.name).to_dict("records")
            styles = {s: {"color": c, "weight": 3, "opacity": 1.0, "fillColor": c,
                          "fillOpacity": 0.15} for s, c in STATUS_COLORS.items()}
            popups = [pocket_change_popup_html(p) for p in props]
            bind = folium.JsCode(
                "function (f, l) { l.bindPopup(f.properties.popup_html, {maxWidth: 320});"
                " l.bindTooltip('Pocket change: ' + f.properties.status); }")
            overlay = folium.GeoJson(
                _features(pockets, popups), name=f"Pocket changes ({len(pockets)})", show=True,
                style_function=lambda f: styles.get(f["properties"]["status"],
                                                    styles["persisting"]),
                on_each_feature=bind)
            overlay.add_to(fmap)
            markers = folium.GeoJson(
                status_markers(pockets, popups, colors=STATUS_COLORS,
                               default=STATUS_COLORS["persisting"]),
                name="Pocket change markers", control=False,
                marker=folium.CircleMarker(radius=9, weight=3, fill=True, fill_opacity=0.2,
                                           className="kantong-pocket-marker"),
                style_function=lambda f: {"radius": f["properties"]["radius"],
                                          "color": f["properties"]["color"],
                                          "fillColor": f["properties"]["color"]},
                on_each_feature=bind)
            markers.add_to(fmap)
            pairs.append((overlay, markers))
        fmap.add_child(_CompareBox(regency_box_html(self.comparison, base_url=base_url,
                                                    top=self.top)))
        return pairs


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return str(value)


def pocket_change_popup_html(row: dict[str, Any]) -> str:
    """Return the (escaped) popup HTML of one pocket group (a row of the pocket changes)."""
    rows = [("Status", row.get("status")), ("Pockets earlier", row.get("pocket_ids_old") or None),
            ("Pockets later", row.get("pocket_ids_new") or None),
            ("Extreme-poor households earlier", row.get("extreme_households_old")),
            ("Extreme-poor households later", row.get("extreme_households_new")),
            ("Regency", row.get("regency_name"))]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_text(v))}</td></tr>"
                   for k, v in rows)
    return (f"<div class=\"kantong-popup\"><h3>Pocket change "
            f"{html.escape(_text(row.get('change_id')))}</h3><table>{body}</table></div>")


def regency_box_html(comparison: Comparison, *, base_url: str = "", top: int = 8) -> str:
    """Return the (escaped) HTML of the page's regency box: largest falls in extreme poverty."""
    best = comparison.top_improvements(top)

    def pct(v: Any) -> str:
        return "–" if v is None or v != v else f"{100 * float(v):.2f}"

    head = ("<tr><th>Regency</th><th>Extreme %<br>earlier</th><th>later</th><th>change pp</th>"
            "<th>Water %</th><th>School* %</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(str(r['regency_name']))}</td><td>{pct(r['extreme_rate_old'])}</td>"
        f"<td>{pct(r['extreme_rate_new'])}</td><td>{pct(r['extreme_rate_change'])}</td>"
        f"<td>{pct(r['water_access_new'])}</td><td>{pct(r['school_proxy_new'])}</td></tr>"
        for _, r in best.iterrows())
    status = ", ".join(f"{k} {v}" for k, v in comparison.status_counts().items() if v)
    url = html.escape(f"{base_url}/api/compare/regencies")
    pockets_url = html.escape(f"{base_url}/api/compare/pockets.geojson")
    return ("<details class=\"kantong-compare\"><summary>Change since the earlier run: "
            "regency table"
            "</summary>"
            f"<div>Pockets: {html.escape(status or 'none published')}</div>"
            f"<table>{head}{rows}</table>"
            "<div>* school-completion proxy. Targets: extreme poverty 0 %, water and "
            "sanitation 80 %, school 90 %.</div>"
            f"<div><a href=\"{url}\">regency table (JSON)</a> · "
            f"<a href=\"{pockets_url}\" download>pocket changes (GeoJSON)</a></div></details>")


class _CompareBox(MacroElement):
    """A Leaflet control (bottom right) holding the regency box HTML."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var box = L.control({position: "bottomright"});
  box.onAdd = function () {
    var div = L.DomUtil.create("div", "kantong-compare-box");
    div.style.cssText = "background:#fff;padding:6px 8px;max-height:40vh;overflow:auto;" +
      "font-size:12px;max-width:460px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3)";
    div.innerHTML = {{ this.box_html|tojson }};
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    return div;
  };
  box.addTo({{ this._parent.get_name() }});
})();
{% endmacro %}
""")

    def __init__(self, box_html: str) -> None:
        super().__init__()
        self._name = "KantongCompareBox"
        self.box_html = box_html


def _features(pockets: gpd.GeoDataFrame, popups: list[str]) -> dict[str, Any]:
    doc = json.loads(geojson_text(round_and_orient(pockets[["change_id", "status", "geometry"]])))
    for feature, popup in zip(doc["features"], popups, strict=True):
        feature["properties"]["popup_html"] = popup
    return doc


def _nice(x: float) -> float:
    exp = 10.0 ** np.floor(np.log10(x))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if x <= step * exp * (1 + 1e-12):
            return float(step * exp)
    return float(10.0 * exp)  # pragma: no cover


def service() -> CompareService:
    """Return the compare service of the current app."""
    return current_app.extensions[EXTENSION]


def _tile(layer: str, z: str, x: str, y: str) -> Response:
    zi, xi, yi = parse_tile(z, x, y)
    svc = service()
    etag = svc.etag(layer, zi, xi, yi)
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
        del response.headers["Content-Type"]
    else:
        data = svc.png(layer, zi, xi, yi)
        response = Response(data if data is not None else EMPTY_PNG, mimetype="image/png")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['TILE_MAX_AGE']}"
    return response


def _legend(layer: str) -> Response:
    svc = service()
    res = None
    if "resolution" in request.args:
        res = ascii_int(request.args["resolution"], digits=2)
        if res is None or res not in svc.resolutions:
            abort(400, description=f"resolution must be one of {svc.resolutions}")
    elif "z" in request.args:
        z = ascii_int(request.args["z"], digits=2)
        if z is None or z > MAX_ZOOM:
            abort(400, description=f"z must be an integer in 0..{MAX_ZOOM}")
        res = svc.resolution_for_zoom(z)
    return _api(jsonify(svc.legend(layer, resolution=res)))


def _api(response: Response) -> Response:
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['API_MAX_AGE']}"
    response.add_etag()
    return response.make_conditional(request)


for _name in CHANGE_LAYERS:  # static paths: they take precedence over /tiles/<indicator>/...
    bp.add_url_rule(f"/tiles/{_name}/<z>/<x>/<y>.png", endpoint=f"tile_{_name}",
                    view_func=_tile, defaults={"layer": _name})
    bp.add_url_rule(f"/tiles/{_name}/legend.json", endpoint=f"legend_{_name}",
                    view_func=_legend, defaults={"layer": _name})


@bp.get("/api/compare")
def summary() -> Response:
    """Summary of the comparison: runs, resolution, cell presence, pocket statuses."""
    return _api(jsonify(service().summary()))


@bp.get("/api/compare/regencies")
def regencies() -> Response:
    """Regency table: extreme rate and target indicators in both runs, change, gap."""
    return _api(jsonify({"targets": targets_record(), "regencies": service().regencies()}))


@bp.get("/api/compare/pockets.geojson")
def pockets() -> Response:
    """Pocket groups with status (persisting, shrinking, growing, new, resolved)."""
    response = Response(service().pockets_geojson(), mimetype="application/geo+json")
    return _api(response)


def init_app(app: Flask, compare_dir: str | Path) -> CompareService:
    """Serve the changes between ``compare_dir`` (earlier) and the app's run (later).

    The earlier run is read through its own :class:`PublishedRun` with a threshold of at
    least the served run's ``K`` (and at least its own configured one).

    Parameters
    ----------
    app
        An app made by :func:`webmap.create_app` (its served run is the later run).
    compare_dir
        Run directory of the earlier run.

    Returns
    -------
    CompareService

    Raises
    ------
    ConfigError
        If ``compare_dir`` is the served run or the runs share no resolution.
    RunError
        If ``compare_dir`` is not a run directory.
    """
    new: PublishedRun = app.extensions["kantong"]
    path = Path(compare_dir).resolve()
    if path == new.run_dir.resolve():
        raise ConfigError(f"{path}: the compare run is the served run")
    old = PublishedRun(path)
    if old.min_households < new.min_households:
        old = PublishedRun(path, min_households=new.min_households)
    app.config["COMPARE_RUN_DIR"] = str(path)
    svc = CompareService(old, new, cache_bytes=max(int(app.config["TILE_CACHE_BYTES"]) // 4, 0))
    app.extensions[EXTENSION] = svc
    app.register_blueprint(bp)
    logger.info("serving changes from run %s to run %s", old.run_id, new.run_id)
    return svc


__all__ = ["CHANGE_LAYERS", "STATUSES", "CompareService", "ComparePageLayers", "bp", "init_app",
           "pocket_change_popup_html", "regency_box_html"]
