"""What the viewer page shows of a comparison (``kantong serve --compare``), in its language.

Change rasters as base layers, the pocket statuses as an overlay (with low-zoom rings) and a
small regency table, built from a :class:`kantong.engine.compare.run.Comparison` of two
published runs (:class:`kantong.webmap.tiling.change.CompareService`). Every text comes from
:mod:`kantong.webmap.i18n`; every value is escaped.
"""

from __future__ import annotations

import html
import json
from typing import Any, Final

import folium
import geopandas as gpd
import pandas as pd
from branca.element import MacroElement
from jinja2 import Template

from kantong.engine.compare.pockets import STATUS_COLORS, STATUSES
from kantong.engine.compare.run import Comparison
from kantong.engine.publish.export import geojson_text, round_and_orient
from kantong.webmap.i18n import DEFAULT_LANGUAGE, fmt_int, fmt_number, t
from kantong.webmap.page.markers import status_markers
from kantong.webmap.tiling.change import CHANGE_LAYERS

#: Tile layers a comparison adds (their legends come from ``/tiles/<name>/legend.json``).
LAYER_NAMES: Final = tuple(CHANGE_LAYERS)


def status_text(status: Any, lang: str) -> str:
    """Return a pocket status (``persisting``, ``new``, ...) in ``lang``.

    Examples
    --------
    >>> status_text("resolved", "id"), status_text("resolved", "en")
    ('teratasi', 'resolved')
    """
    return t(f"status_{status}", lang) if status in STATUSES else str(status)


def _text(value: Any, lang: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_int(value, lang)
    return str(value)


def pocket_change_popup_html(row: dict[str, Any], lang: str = DEFAULT_LANGUAGE) -> str:
    """Return the (escaped) popup HTML of one pocket group (a row of the pocket changes)."""
    rows = [(t("change_status", lang), status_text(row.get("status"), lang)),
            (t("change_before", lang), row.get("pocket_ids_old") or None),
            (t("change_after", lang), row.get("pocket_ids_new") or None),
            (t("change_extreme_before", lang), row.get("extreme_households_old")),
            (t("change_extreme_after", lang), row.get("extreme_households_new")),
            (t("f_regency", lang), row.get("regency_name"))]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_text(v, lang))}</td></tr>"
                   for k, v in rows)
    title = t("change_title", lang, id=_text(row.get("change_id"), lang))
    return (f"<div class=\"kantong-popup\"><h3>{html.escape(title)}</h3>"
            f"<table>{body}</table></div>")


def regency_box_html(comparison: Comparison, *, base_url: str = "", top: int = 8,
                     lang: str = DEFAULT_LANGUAGE) -> str:
    """Return the (escaped) HTML of the page's regency box: largest falls in extreme poverty."""
    best = comparison.top_improvements(top)

    def pct(v: Any) -> str:
        return "–" if v is None or v != v else fmt_number(100 * float(v), lang, 2)

    head = (f"<tr><th>{html.escape(t('compare_regency', lang))}</th>"
            f"<th>{t('compare_extreme_before', lang)}</th>"
            f"<th>{html.escape(t('compare_after', lang))}</th>"
            f"<th>{html.escape(t('compare_change', lang))}</th>"
            f"<th>{html.escape(t('compare_water', lang))}</th>"
            f"<th>{html.escape(t('compare_school', lang))}</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(str(r['regency_name']))}</td><td>{pct(r['extreme_rate_old'])}</td>"
        f"<td>{pct(r['extreme_rate_new'])}</td><td>{pct(r['extreme_rate_change'])}</td>"
        f"<td>{pct(r['water_access_new'])}</td><td>{pct(r['school_proxy_new'])}</td></tr>"
        for _, r in best.iterrows())
    status = ", ".join(f"{status_text(k, lang)} {fmt_int(v, lang)}"
                       for k, v in comparison.status_counts().items() if v)
    url = html.escape(f"{base_url}/api/compare/regencies")
    pockets_url = html.escape(f"{base_url}/api/compare/pockets.geojson")
    pockets_line = t("compare_pockets", lang, status=status or t("compare_none", lang))
    return (f"<details class=\"kantong-compare\"><summary>"
            f"{html.escape(t('compare_summary', lang))}</summary>"
            f"<div>{html.escape(pockets_line)}</div>"
            f"<table>{head}{rows}</table>"
            f"<div>{html.escape(t('compare_note', lang))}</div>"
            f"<div><a href=\"{url}\">{html.escape(t('compare_table_json', lang))}</a> · "
            f"<a href=\"{pockets_url}\" download>"
            f"{html.escape(t('compare_pockets_geojson', lang))}</a></div></details>")


class _CompareBox(MacroElement):
    """A Leaflet control (bottom right) holding the regency box HTML."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var box = L.control({position: "bottomright"});
  box.onAdd = function () {
    var div = L.DomUtil.create("div", "kantong-compare-box");
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


class ComparePageLayers:
    """What the viewer page shows of a comparison: change rasters, pocket statuses, table.

    :func:`kantong.webmap.page.build.build_map` calls :meth:`add_to` when the app serves a
    comparison.
    """

    layer_names = LAYER_NAMES

    def __init__(self, comparison: Comparison, *, top: int = 8) -> None:
        self.comparison = comparison
        self.top = top

    def legend_entries(self, lang: str = DEFAULT_LANGUAGE) -> list[list[str]]:
        """Return ``[[label, colour], ...]`` of the pocket statuses shown (legend key)."""
        present = set(self.comparison.pockets["status"]) if len(self.comparison.pockets) else set()
        return [[t("legend_status", lang, status=status_text(status, lang)),
                 STATUS_COLORS[status]]
                for status in STATUSES if status in present and status in STATUS_COLORS]

    def add_to(self, fmap: folium.Map, *, base_url: str = "",
               bounds: list[list[float]] | None = None, lang: str = DEFAULT_LANGUAGE
               ) -> list[tuple[folium.GeoJson, folium.GeoJson]]:
        """Add the change tile layers, the pocket status overlay and the regency box.

        Returns
        -------
        list
            ``[(overlay, markers)]``: the pocket status overlay and its rings, which the
            viewer shows at low zoom while the overlay is on (empty without pockets).
        """
        pairs: list[tuple[folium.GeoJson, folium.GeoJson]] = []
        for name in CHANGE_LAYERS:
            folium.TileLayer(f"{base_url}/tiles/{name}/{{z}}/{{x}}/{{y}}.png",
                             name=t(f"ind_{name}", lang), attr="Kantong", overlay=False,
                             control=True, show=False, min_zoom=5, max_zoom=16, bounds=bounds,
                             indicator=name, opacity=0.9).add_to(fmap)
        pockets = self.comparison.pockets
        if len(pockets):
            props = pockets.drop(columns=pockets.geometry.name).to_dict("records")
            styles = {s: {"color": c, "weight": 3, "opacity": 1.0, "fillColor": c,
                          "fillOpacity": 0.15} for s, c in STATUS_COLORS.items()}
            popups = [pocket_change_popup_html(p, lang) for p in props]
            names = json.dumps({s: status_text(s, lang) for s in STATUSES})
            bind = folium.JsCode(
                "function (f, l) { l.options.bubblingMouseEvents = false;"
                " l.bindPopup(f.properties.popup_html, {maxWidth: 320});"
                f" l.bindTooltip({names}[f.properties.status] || f.properties.status); }}")
            overlay = folium.GeoJson(
                _features(pockets, popups), show=True, className="kantong-pocket",
                name=t("compare_layer", lang, n=fmt_int(len(pockets), lang)),
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
                                                    top=self.top, lang=lang)))
        return pairs


__all__ = ["LAYER_NAMES", "ComparePageLayers", "pocket_change_popup_html", "regency_box_html",
           "status_text"]
