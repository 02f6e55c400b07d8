"""Build the offline Folium (Leaflet) page of the web map.

The page is a Folium map whose every asset is served by the app itself: Folium's default
CDN links (Leaflet, jQuery, Bootstrap, awesome-markers, Font Awesome) are replaced by the
vendored Leaflet under ``/static/vendor/`` and nothing else is loaded. The indicator rasters
come from the app's tile server (``/tiles/<indicator>/{z}/{x}/{y}.png``); the small vector
layers (pockets, chosen sites, regency outlines, the province background) are embedded in the
page, so it needs no further request to be usable. A few controls (title and regency selector,
download links, legend) are plain HTML (:mod:`kantong.webmap.page.panel`) wired up by
``/static/viewer.js`` and ``/static/viewer-tools.js``. The page is built per language
(:mod:`kantong.webmap.i18n`): Bahasa Indonesia by default, English with ``?lang=en``.

Everything here works on already-published data (:class:`ViewerContent`); the content comes
from :class:`kantong.engine.publish.published.PublishedRun`, the privacy gate, via
:func:`kantong.webmap.views.viewer.content_from_published`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from jinja2 import Template

from kantong.engine.constants import DEPRIVATIONS, WGS84
from kantong.engine.errors import RunError
from kantong.webmap.i18n import (
    DEFAULT_LANGUAGE,
    LOCALES,
    facility_label,
    indicator_label,
    js_messages,
    t,
)
from kantong.webmap.page.geojson import COORD_DECIMALS, to_feature_collection
from kantong.webmap.page.markers import POCKET_MARKER_MAX_ZOOM, POCKET_MARKER_RADIUS, pocket_markers
from kantong.webmap.page.panel import DOWNLOAD_LAYERS, legend_html, panel_html
from kantong.webmap.page.popups import pocket_popup_html, site_popup_html

logger = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]

#: The indicator shown when the page opens (when the run publishes it).
DEFAULT_INDICATOR = "priority"
#: Simplification tolerances (degrees) of the embedded outlines: regencies, provinces
#: (0.002 degree is about 220 m: cells stay inside the drawn coast).
REGENCY_TOLERANCE = 0.002
PROVINCE_TOLERANCE = 0.002

#: Tile layers offered in the layer control, in order (``travel_min_*`` expands to every type).
MAP_LAYERS = ("priority", "extreme_households", "extreme_rate", "travel_min_*", "pocket")

_STYLE_PROVINCE = {"color": "#9a9a8f", "weight": 1, "fillColor": "#e9e6df", "fillOpacity": 1.0}
_STYLE_RUN_PROVINCE = {"color": "#6f6f66", "weight": 2, "fillColor": "#f7f5f0", "fillOpacity": 1.0}
_STYLE_REGENCY = {"color": "#6b6b6b", "weight": 1.2, "opacity": 0.9, "fill": False}
#: Pockets: a dark blue outline (7.2:1 on the background, 7.8:1 on its white halo) with a white
#: halo (``.kantong-pocket`` in viewer.css), so it stays >= 3:1 on light and dark cells.
_STYLE_POCKET = {"color": "#0b5394", "weight": 3, "opacity": 1.0, "fillColor": "#0b5394",
                 "fillOpacity": 0.06}

_ASSETS_JS = (("leaflet", "vendor/leaflet/leaflet.js"), ("kantong_text", "viewer-legend.js"),
              ("kantong_tools", "viewer-tools.js"),
              ("kantong_viewer", "viewer.js"))
_ASSETS_CSS = (("leaflet_css", "vendor/leaflet/leaflet.css"), ("kantong_css", "viewer.css"))


@dataclass(frozen=True)
class ViewerContent:
    """Published content of one run, as the viewer page shows it.

    Attributes
    ----------
    run_id
        Identifier of the run (shown under the title).
    province_name
        Name used in the title, e.g. ``"Kalimantan Barat"``.
    bounds
        ``(west, south, east, north)`` of the published cells, EPSG:4326.
    indicators
        Tile indicators the server publishes, in display order.
    regencies
        One row per regency of the run: ``regency_code``, ``regency_name`` and optionally
        ``households``, ``extreme_households``, ``pockets``.
    outlines
        Regency outlines to draw (``regency_code``, ``regency_name``, geometry), EPSG:4326.
    provinces
        Province polygons for the background (``province_code``, geometry), EPSG:4326.
    pockets
        Published pockets (GeoJSON-like frame) or ``None`` when the run has none.
    sites
        Chosen sites (points) or ``None`` when ``kantong sites`` was not run.
    min_households
        Privacy threshold: cells with fewer households are not published.
    synthetic
        Whether the run was built from synthetic demo data.
    location_precision
        The run's ``location_precision`` record (share of households located by coordinates
        and by village code only), stated under the title.
    absent_indicators
        Register fields the register did not hold (``register.absent_indicators`` of the
        manifest, e.g. ``child_out_of_school``), stated under the title as "not in this
        register"; their shares and counts are missing, never zero.
    compare
        Change layers of ``kantong serve --compare`` (an object with ``add_to(fmap, *,
        base_url, bounds, lang)`` returning ``(overlay, low-zoom markers)`` layer pairs and
        ``legend_entries(lang)``: a
        :class:`kantong.webmap.page.compare_layers.ComparePageLayers`) or ``None``.
    cell_columns
        Public columns of the published cells (labels of the cell popup).
    facility_count, facility_types
        Number and types of the published existing facilities (``/api/facilities``).
    """

    run_id: str
    province_name: str
    bounds: BBox
    indicators: tuple[str, ...]
    regencies: pd.DataFrame
    outlines: gpd.GeoDataFrame
    provinces: gpd.GeoDataFrame | None = None
    pockets: gpd.GeoDataFrame | None = None
    sites: gpd.GeoDataFrame | None = None
    min_households: int | None = None
    synthetic: bool = False
    location_precision: Mapping[str, Any] | None = None
    absent_indicators: tuple[str, ...] = ()
    province_codes: tuple[str, ...] = field(default_factory=tuple)
    compare: Any = None
    cell_columns: tuple[str, ...] = ()
    facility_count: int = 0
    facility_types: tuple[str, ...] = ()


class _Controls(MacroElement):
    """Title panel, legend box, and the script that wires them to the map's layers."""

    _template = Template("""
{% macro header(this, kwargs) %}
<link rel="icon" type="image/svg+xml" href="{{ this.favicon }}">
{% endmacro %}
{% macro html(this, kwargs) %}
<div id="kantong-panel" class="kantong-panel" role="region"
     aria-label="{{ this.panel_label }}">{{ this.panel_html }}</div>
{{ this.legend_html }}
{% endmacro %}
{% macro script(this, kwargs) %}
kantongViewer({{ this._parent.get_name() }}, {{ this.config|tojson }}, {{ this.layers_js }});
{% endmacro %}
""")

    def __init__(self, *, panel_html: str, legend_html: str, panel_label: str,
                 config: dict[str, Any], layers: Mapping[str, str | None],
                 tiles: Mapping[str, str], favicon: str,
                 marker_pairs: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self._name = "KantongControls"
        self.panel_html = panel_html
        self.legend_html = legend_html
        self.panel_label = panel_label
        self.config = config
        # a JavaScript object of layer variables (names made by Folium): outlines, control,
        # pockets, sites, tiles {indicator: layer}, pairs [[overlay, low-zoom rings], ...]
        parts = [f"{k}: {v or 'null'}" for k, v in layers.items()]
        parts.append("tiles: {" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in tiles.items())
                     + "}")
        parts.append("pairs: [" + ", ".join(f"[{a}, {b}]" for a, b in marker_pairs) + "]")
        self.layers_js = "{" + ", ".join(parts) + "}"
        self.favicon = favicon


def _label_points(outlines: gpd.GeoDataFrame) -> list[list[Any]]:
    """Return ``[lat, lon, name]`` of a point inside each regency outline (for name labels).

    Largest regencies first: where labels collide the viewer keeps the earlier one.
    """
    geoms = outlines.geometry.to_numpy()
    points = shapely.point_on_surface(geoms)
    order = np.argsort(-shapely.area(geoms), kind="stable")  # degrees², only to rank them
    names = outlines["regency_name"].to_numpy()
    return [[round(float(points[i].y), 4), round(float(points[i].x), 4), str(names[i])]
            for i in order]


def initial_zoom(bounds: BBox, *, width: int = 1200, height: int = 650) -> int:
    """Return the Web Mercator zoom at which ``bounds`` fit a ``width`` x ``height`` px view.

    The page still fits the real bounds on load; starting near the right zoom avoids
    fetching a first round of tiles at a zoom that is left at once.

    Examples
    --------
    >>> initial_zoom((110.6, -0.05, 110.85, 0.15))
    12
    """
    west, south, east, north = bounds
    lon_span = max(east - west, 1e-6)
    y = [math.log(math.tan(math.pi / 4 + math.radians(v) / 2)) for v in (south, north)]
    merc_span = max((y[1] - y[0]) * 180 / math.pi, 1e-6)
    zoom = min(math.log2(width * 360 / (256 * lon_span)),
               math.log2(height * 360 / (256 * merc_span)))
    return int(max(5, min(16, math.floor(zoom))))


def _bounds_of(gdf: gpd.GeoDataFrame) -> dict[str, list[float]]:
    b = gdf.geometry.bounds
    return {str(code): [round(float(v), 5) for v in row]
            for code, row in zip(gdf["regency_code"], b.itertuples(index=False), strict=True)}


def _pocket_bboxes(pockets: gpd.GeoDataFrame) -> np.ndarray:
    frame = pockets if pockets.crs is None or pockets.crs.to_epsg() == 4326 else \
        pockets.to_crs(WGS84)
    return np.round(shapely.bounds(frame.geometry.to_numpy()), COORD_DECIMALS)


def _ranked_pockets(pockets: gpd.GeoDataFrame, bboxes: np.ndarray
                    ) -> list[tuple[int, int, float, list[float]]]:
    """Return ``(pocket_id, rank, extreme_households, bbox)`` by rank (for the pocket list)."""
    if "rank_province" in pockets:
        rank = pockets["rank_province"]
    elif "rank" in pockets:
        rank = pockets["rank"]
    else:
        rank = pockets["extreme_households"].rank(ascending=False, method="first")
    order = np.argsort(pd.to_numeric(rank, errors="coerce").fillna(1e9).to_numpy(),
                       kind="stable")
    extreme = pockets["extreme_households"] if "extreme_households" in pockets else \
        pd.Series(np.nan, index=pockets.index)
    return [(int(pockets["pocket_id"].iloc[i]), int(rank.iloc[i]) if pd.notna(rank.iloc[i])
             else i + 1, extreme.iloc[i], [float(v) for v in bboxes[i]]) for i in order]


def _on_each(tooltip: str, *, max_width: int = 340) -> folium.JsCode:
    """Popup + tooltip binding of a vector layer; its clicks do not reach the map (inspect)."""
    return folium.JsCode(
        "function (f, l) { l.options.bubblingMouseEvents = false;"
        f" l.bindPopup(f.properties.popup_html, {{maxWidth: {max_width}}});"
        f" l.bindTooltip({tooltip}); }}")


def build_map(content: ViewerContent, *, base_url: str = "", static_url: str = "/static",
              default_indicator: str = DEFAULT_INDICATOR, lang: str = DEFAULT_LANGUAGE
              ) -> folium.Map:
    """Build the Folium map of the viewer page.

    Parameters
    ----------
    content
        The run's published content.
    base_url
        URL prefix of the app (``request.script_root``; ``""`` at the root).
    static_url
        URL of the static folder (vendored Leaflet, ``viewer.js``, ``viewer.css``).
    default_indicator
        Indicator shown on load; falls back to the first published indicator.
    lang
        Language of every text on the page (``"id"`` or ``"en"``).

    Returns
    -------
    folium.Map
        A map that references only local assets and local tile URLs.
    """
    if not content.indicators:
        raise RunError(f"run {content.run_id}: no published indicator to show")
    active = default_indicator if default_indicator in content.indicators else content.indicators[0]
    static_url = static_url.rstrip("/")
    west, south, east, north = content.bounds
    title = t("title", lang, province=content.province_name)
    figure = Figure(title=title)
    fmap = folium.Map(location=[(south + north) / 2, (west + east) / 2], tiles=None,
                      zoom_start=initial_zoom(content.bounds), min_zoom=5, max_zoom=16,
                      zoom_control="bottomleft", font_size="14px")
    # Local assets only: no CDN link of Folium's defaults is kept.
    fmap.default_js = [(n, f"{static_url}/{p}") for n, p in _ASSETS_JS]
    fmap.default_css = [(n, f"{static_url}/{p}") for n, p in _ASSETS_CSS]
    figure.add_child(fmap)

    folium.map.CustomPane("kantong-background", z_index=150, pointer_events=False).add_to(fmap)
    if content.provinces is not None and len(content.provinces):
        run_codes = set(content.province_codes)
        for is_run in (False, True):
            part = content.provinces[content.provinces["province_code"].isin(run_codes) == is_run]
            if len(part):
                style = _STYLE_RUN_PROVINCE if is_run else _STYLE_PROVINCE
                folium.GeoJson(to_feature_collection(
                    part, tolerance=PROVINCE_TOLERANCE if is_run else 5 * PROVINCE_TOLERANCE),
                    name="Province", control=False, pane="kantong-background",
                    interactive=False, style_function=lambda _f, s=style: s).add_to(fmap)

    pad = 0.02
    tile_bounds = [[south - pad, west - pad], [north + pad, east + pad]]
    tiles: dict[str, str] = {}
    for name in content.indicators:
        layer = folium.TileLayer(f"{base_url}/tiles/{name}/{{z}}/{{x}}/{{y}}.png",
                                 name=indicator_label(name, lang), attr="Kantong", overlay=False,
                                 control=True, show=name == active, min_zoom=5, max_zoom=16,
                                 bounds=tile_bounds, indicator=name, opacity=0.9)
        layer.add_to(fmap)
        tiles[name] = layer.get_name()

    outlines = folium.GeoJson(
        to_feature_collection(content.outlines, columns=("regency_code", "regency_name"),
                              tolerance=REGENCY_TOLERANCE),
        name=t("layer_regencies", lang), interactive=False,
        style_function=lambda _f: _STYLE_REGENCY, attribution="BPS 2020; Natural Earth")
    outlines.add_to(fmap)

    pocket_layer = sites_layer = None
    pocket_list: list[tuple[int, int, float, list[float]]] = []
    marker_pairs: list[tuple[str, str]] = []  # (overlay, its low-zoom markers) for viewer.js
    if content.pockets is not None and len(content.pockets):
        props = content.pockets.drop(columns=content.pockets.geometry.name).to_dict("records")
        bboxes = _pocket_bboxes(content.pockets)
        popups = [pocket_popup_html(p, lang, bbox=b) for p, b in zip(props, bboxes, strict=True)]
        pocket_list = _ranked_pockets(content.pockets, bboxes)
        short = json.dumps(t("pocket_short", lang, id="@"))
        pocket_layer = folium.GeoJson(
            to_feature_collection(content.pockets, columns=("pocket_id",),
                                  extra={"popup_html": popups}),
            name=t("layer_pockets", lang, n=len(content.pockets)), className="kantong-pocket",
            style_function=lambda _f: _STYLE_POCKET,
            highlight_function=lambda _f: {"weight": 4.5, "fillOpacity": 0.18},
            on_each_feature=_on_each(f"{short}.replace('@', f.properties.pocket_id)"))
        pocket_layer.add_to(fmap)
        # rings at low zoom (shown by viewer.js while the outlines are on and zoom is low)
        markers_layer = folium.GeoJson(
            pocket_markers(content.pockets, popups), name="Pocket markers", control=False,
            marker=folium.CircleMarker(radius=POCKET_MARKER_RADIUS[0],
                                       color=_STYLE_POCKET["color"], weight=3, fill=True,
                                       fill_color=_STYLE_POCKET["color"], fill_opacity=0.2,
                                       className="kantong-pocket-marker"),
            style_function=lambda f: {"radius": f["properties"]["radius"]},
            on_each_feature=_on_each(f"{short}.replace('@', f.properties.pocket_id)"))
        markers_layer.add_to(fmap)
        marker_pairs.append((pocket_layer.get_name(), markers_layer.get_name()))

    if content.sites is not None and len(content.sites):
        sites = content.sites.sort_values("rank") if "rank" in content.sites else content.sites
        props = sites.drop(columns=sites.geometry.name).to_dict("records")
        sites_layer = folium.GeoJson(
            to_feature_collection(sites, columns=("rank", "type"), extra={
                "popup_html": [site_popup_html(p, lang) for p in props]}),
            name=t("layer_sites", lang, n=len(sites)),
            marker=folium.CircleMarker(radius=6, color="#ffffff", weight=2, fill=True,
                                       fill_color="#08519c", fill_opacity=1.0,
                                       className="kantong-site"),
            on_each_feature=_on_each("'#' + f.properties.rank", max_width=320))
        sites_layer.add_to(fmap)

    if content.compare is not None:  # change layers of `kantong serve --compare`
        pairs = content.compare.add_to(fmap, base_url=base_url, bounds=tile_bounds, lang=lang)
        marker_pairs += [(a.get_name(), b.get_name()) for a, b in pairs or ()]
        for name in getattr(content.compare, "layer_names", ()):
            tiles.setdefault(name, "null")

    control = folium.LayerControl(position="topright", collapsed=False)
    control.add_to(fmap)
    regency_bounds = _bounds_of(content.outlines[content.outlines["regency_code"].isin(
        content.regencies["regency_code"].astype(str))])
    entries = getattr(content.compare, "legend_entries", None)
    shown = [*content.indicators, *getattr(content.compare, "layer_names", ())]
    labels = {c: indicator_label(c, lang) for c in shown}
    fields = {c: indicator_label(c, lang) for c in content.cell_columns
              if c.startswith(("share_", "travel_min_", "contrib_"))}
    root = base_url
    config = {
        "lang": lang, "locale": LOCALES[lang], "messages": js_messages(lang),
        "runId": content.run_id,
        "indicatorLabels": labels, "fieldLabels": fields,
        "facilityLabels": {k: facility_label(k, lang) for k in content.facility_types},
        "facilityCount": content.facility_count,
        "defaultIndicator": active,
        "legendUrl": f"{root}/tiles/{{indicator}}/legend.json",
        "urls": {"locate": f"{root}/api/locate", "cell": f"{root}/api/cells/{{h3}}",
                 "search": f"{root}/api/search", "facilities": f"{root}/api/facilities",
                 "context": f"{root}/api/context/places.json",
                 "districts": f"{root}/api/context/districts.geojson",
                 "coast": f"{root}/api/context/coast.geojson",
                 "villages": f"{root}/api/context/villages.json"},
        "runBounds": [west, south, east, north],
        "regencyBounds": regency_bounds,
        "minHouseholds": content.min_households,
        "pocketMarkerMaxZoom": POCKET_MARKER_MAX_ZOOM,
        "pocketStatuses": entries(lang) if callable(entries) else [],
        "regencyLabels": _label_points(content.outlines),
        "outlineStyle": _STYLE_REGENCY,
    }
    sub = [t("run", lang, run_id=content.run_id)]
    if content.synthetic:
        sub.append(t("synthetic", lang))
    if content.location_precision:  # share located by coordinates vs village code (issue 19)
        share = float(content.location_precision.get("share_by_village", 0.0))
        sub.append(t("location_precision", lang, point=round(100 * (1 - share)),
                     village=round(100 * share)))
    if content.absent_indicators:  # indicators the register lacks (issue 13)
        names = [t("dep_" + DEPRIVATIONS[f][1].removeprefix("n_"), lang)
                 for f in content.absent_indicators if f in DEPRIVATIONS]
        sub.append(t("absent_indicators", lang, names=", ".join(names)))
    layers = [x for x in DOWNLOAD_LAYERS
              if x == "cells" or (x == "pockets" and content.pockets is not None)
              or (x == "sites" and content.sites is not None)]
    panel = panel_html(title=title, subtitle=" · ".join(sub), lang=lang,
                       regencies=content.regencies, pockets=pocket_list,
                       download_layers=layers, base_url=base_url)
    # fit first: the viewer script may then restore a view from the URL (a permalink)
    fmap.fit_bounds([[south, west], [north, east]], padding=(20, 20))
    fmap.add_child(_Controls(
        panel_html=panel, legend_html=legend_html(lang), panel_label=title, config=config,
        layers={"outlines": outlines.get_name(), "control": control.get_name(),
                "pockets": pocket_layer.get_name() if pocket_layer else None,
                "sites": sites_layer.get_name() if sites_layer else None},
        tiles={k: v for k, v in tiles.items() if v != "null"},
        marker_pairs=marker_pairs, favicon=f"{static_url}/favicon.svg"))
    return fmap


#: Folium's viewport tag forbids pinch zoom (``user-scalable=no``); the page allows it.
_VIEWPORT = re.compile(r'<meta name="viewport"[^>]*>', re.S)
VIEWPORT_TAG = '<meta name="viewport" content="width=device-width, initial-scale=1.0">'


def render_page(content: ViewerContent, *, base_url: str = "", static_url: str = "/static",
                default_indicator: str = DEFAULT_INDICATOR, lang: str = DEFAULT_LANGUAGE
                ) -> str:
    """Return the complete HTML of the viewer page in ``lang``.

    Parameters
    ----------
    content, base_url, static_url, default_indicator, lang
        As for :func:`build_map`.

    Returns
    -------
    str
        A standalone HTML document (``<html lang="id">`` or ``"en"``) referencing only
        app-local URLs.
    """
    fmap = build_map(content, base_url=base_url, static_url=static_url,
                     default_indicator=default_indicator, lang=lang)
    root = fmap.get_root()
    root.header.add_child(Element('<meta name="robots" content="noindex">'), name="robots")
    page = root.render()
    page = page.replace("<html>", f'<html lang="{lang}">', 1)
    return _VIEWPORT.sub(VIEWPORT_TAG, page, count=1)


def choose_layers(served: Sequence[str]) -> tuple[str, ...]:
    """Return the tile layers to offer in the layer control, in :data:`MAP_LAYERS` order.

    Parameters
    ----------
    served
        Raster layers the tile server publishes for the run.

    Returns
    -------
    tuple of str
        The served ones among ``priority``, ``extreme_households``, ``extreme_rate``, every
        ``travel_min_<type>`` and ``pocket``; all of ``served`` if none of those is served.

    Examples
    --------
    >>> choose_layers(["households", "travel_min_school", "priority", "pocket"])
    ('priority', 'travel_min_school', 'pocket')
    """
    out: list[str] = []
    for name in MAP_LAYERS:
        if name.endswith("*"):
            out += [s for s in served if s.startswith(name[:-1]) and s not in out]
        elif name in served:
            out.append(name)
    return tuple(out) if out else tuple(served)
