"""Build the offline Folium (Leaflet) page of the web map.

The page is a Folium map whose every asset is served by the app itself: Folium's default
CDN links (Leaflet, jQuery, Bootstrap, awesome-markers, Font Awesome) are replaced by the
vendored Leaflet under ``/static/vendor/`` and nothing else is loaded. The indicator rasters
come from the app's tile server (``/tiles/<indicator>/{z}/{x}/{y}.png``); the small vector
layers (pockets, chosen sites, regency outlines, the province background) are embedded in the
page, so it needs no further request to be usable. A few controls (title and regency selector,
download links, legend) are plain HTML wired up by ``/static/viewer.js``.

Everything here works on already-published data (:class:`ViewerContent`); the content comes
from :class:`kantong.engine.publish.published.PublishedRun`, the privacy gate, via
:func:`kantong.webmap.views.viewer.content_from_published`.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from jinja2 import Template

from kantong.engine.constants import WGS84
from kantong.engine.errors import RunError
from kantong.webmap.page.markers import POCKET_MARKER_MAX_ZOOM, POCKET_MARKER_RADIUS, pocket_markers

logger = logging.getLogger(__name__)

BBox = tuple[float, float, float, float]

#: The indicator shown when the page opens (when the run publishes it).
DEFAULT_INDICATOR = "priority"
#: Layers offered as GeoJSON downloads (``/download/<layer>.geojson``).
DOWNLOAD_LAYERS = ("cells", "pockets", "sites")
#: Simplification tolerances (degrees) of the embedded outlines: regencies, provinces.
REGENCY_TOLERANCE = 0.002
PROVINCE_TOLERANCE = 0.01
#: Decimals kept in embedded coordinates (1e-5 degree is about 1 m).
COORD_DECIMALS = 5

_LABELS = {
    "priority": "Priority score",
    "extreme_households": "Extreme-poor households",
    "extreme_persons": "Extreme-poor persons",
    "extreme_rate": "Extreme-poverty rate",
    "pocket": "Poverty pockets",
    "assistance_gap": "Extreme-poor households without assistance",
    "households": "Households",
    "persons": "Persons",
    "population": "Population",
}

#: Labels of the priority-score components (``contrib_<component>`` columns,
# kantong.engine.pockets.score).
_COMPONENT_LABELS = {
    "extreme_households": "Number of extreme-poor households",
    "extreme_rate": "Extreme-poverty rate",
    "deprivation": "Lack of water, sanitation, electricity, housing",
    "travel": "Travel time to services",
    "assistance_gap": "Extreme poor without social assistance",
}
#: Tile layers offered in the layer control, in order (``travel_min_*`` expands to every type).
MAP_LAYERS = ("priority", "extreme_households", "extreme_rate", "travel_min_*", "pocket")

_STYLE_PROVINCE = {"color": "#9a9a8f", "weight": 1, "fillColor": "#e9e6df", "fillOpacity": 1.0}
_STYLE_RUN_PROVINCE = {"color": "#6f6f66", "weight": 2, "fillColor": "#f7f5f0", "fillOpacity": 1.0}
_STYLE_REGENCY = {"color": "#6b6b6b", "weight": 1.2, "opacity": 0.9, "fill": False}
_STYLE_POCKET = {"color": "#00a3d9", "weight": 3, "opacity": 1.0, "fillColor": "#00a3d9",
                 "fillOpacity": 0.06}

_ASSETS_JS = (("leaflet", "vendor/leaflet/leaflet.js"), ("kantong_viewer", "viewer.js"))
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
    compare
        Change layers of ``kantong serve --compare`` (an object with ``add_to(fmap, *,
        base_url, bounds)`` returning ``(overlay, low-zoom markers)`` layer pairs and
        ``legend_entries()``, :class:`kantong.webmap.views.compare.ComparePageLayers`) or ``None``.
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
    province_codes: tuple[str, ...] = field(default_factory=tuple)
    compare: Any = None


def indicator_label(name: str) -> str:
    """Return a human label for an indicator or score-component name.

    Parameters
    ----------
    name
        Indicator name as used in tile URLs and ``contrib_<name>`` columns.

    Returns
    -------
    str
        E.g. ``"Travel time to water point"`` for ``"travel_min_water_point"``.

    Examples
    --------
    >>> indicator_label("share_no_improved_water")
    'No improved water'
    """
    if name in _LABELS:
        return _LABELS[name]
    if name.startswith("travel_min_"):
        return "Travel time to " + name.removeprefix("travel_min_").replace("_", " ")
    text = name.removeprefix("share_").removeprefix("n_").replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name


def _fmt_int(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    return f"{int(round(float(value))):,}"


def _fmt_float(value: Any, digits: int = 2) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _names(value: Any) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ", ".join(str(v) for v in value)
    return str(value)


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)


def pocket_popup_html(pocket: Mapping[str, Any], *, top: int = 3) -> str:
    """Return the (escaped) HTML of a pocket's popup.

    Parameters
    ----------
    pocket
        Properties of one published pocket: ``pocket_id``, ``households``,
        ``extreme_households``, ``strategy_label``, ``priority``, optionally
        ``strategy_reason``, ``regencies`` (else ``regency_name``) and ``contrib_<indicator>``.
    top
        How many of the largest positive contributions to list.

    Returns
    -------
    str
        An HTML fragment; every value is escaped.
    """
    rows = [("Households", _fmt_int(pocket.get("households"))),
            ("Extreme-poor households", _fmt_int(pocket.get("extreme_households"))),
            ("Priority score", _fmt_float(pocket.get("priority")))]
    regencies = _names(pocket.get("regencies")) or _names(pocket.get("regency_name"))
    if regencies:
        rows.append(("Regency", regencies))
    strategy = pocket.get("strategy_label") or pocket.get("strategy") or "–"
    reason = pocket.get("strategy_reason") or ""
    contribs = []
    for key, value in pocket.items():
        if key.startswith("contrib_") and value is not None and value is not pd.NA:
            v = float(value)
            if math.isfinite(v) and v > 0:
                contribs.append((v, key.removeprefix("contrib_")))
    contribs.sort(reverse=True)
    total = sum(v for v, _ in contribs)
    items = "".join(
        f"<li>{html.escape(_COMPONENT_LABELS.get(name) or indicator_label(name))} "
        f"<span class=\"kantong-share\">{100 * v / total:.0f}%</span></li>"
        for v, name in contribs[:top])
    pocket_id = html.escape(str(pocket.get("pocket_id", "")))
    parts = [
        f"<div class=\"kantong-popup\"><h3>Poverty pocket {pocket_id}</h3>",
        f"<table>{_rows(rows)}</table>",
        "<p class=\"kantong-strategy\"><b>Recommended strategy:</b> "
        f"{html.escape(str(strategy))}",
    ]
    if reason:
        parts.append(f"<br><span class=\"kantong-reason\">{html.escape(str(reason))}</span>")
    parts.append("</p>")
    if items:
        parts.append(f"<p><b>Top contributing indicators</b></p><ol>{items}</ol>")
    parts.append("</div>")
    return "".join(parts)


def site_popup_html(site: Mapping[str, Any]) -> str:
    """Return the (escaped) HTML of a chosen site's popup.

    Parameters
    ----------
    site
        Properties of one site: ``rank``, ``type``, ``new_extreme_households``,
        ``cumulative_extreme_households``, ``regency_name``.

    Returns
    -------
    str
        An HTML fragment; every value is escaped.
    """
    kind = str(site.get("type") or "site").replace("_", " ")
    rows = [("New extreme-poor households in reach", _fmt_int(site.get("new_extreme_households"))),
            ("Cumulative (sites 1 to this one)",
             _fmt_int(site.get("cumulative_extreme_households")))]
    if site.get("regency_name"):
        rows.append(("Regency", str(site["regency_name"])))
    return (f"<div class=\"kantong-popup\"><h3>Site #{html.escape(_fmt_int(site.get('rank')))}: "
            f"new {html.escape(kind)}</h3><table>{_rows(rows)}</table></div>")


def _round_geometry(geoms: gpd.GeoSeries, tolerance: float | None) -> np.ndarray:
    values = geoms.to_numpy()
    if tolerance:
        values = shapely.simplify(values, tolerance, preserve_topology=True)
    return shapely.transform(values, lambda xy: np.round(xy, COORD_DECIMALS))


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_json_value(v) for v in value]
    return value


def to_feature_collection(gdf: gpd.GeoDataFrame, *, columns: Sequence[str] = (),
                          tolerance: float | None = None,
                          extra: Mapping[str, Sequence[Any]] | None = None) -> dict[str, Any]:
    """Return a compact GeoJSON FeatureCollection of ``gdf`` for embedding in the page.

    Parameters
    ----------
    gdf
        Layer with a CRS; reprojected to EPSG:4326 when needed.
    columns
        Property columns to keep (others are dropped to keep the page small).
    tolerance
        Optional simplification tolerance in degrees (topology preserved).
    extra
        Further per-feature properties, one sequence per name, aligned with ``gdf`` rows.

    Returns
    -------
    dict
        A FeatureCollection with coordinates rounded to ``COORD_DECIMALS`` decimals.
    """
    if gdf.crs is None:
        raise RunError("viewer: a layer to embed has no CRS")
    if gdf.crs.to_epsg() != 4326:
        logger.info("reprojecting an embedded layer from %s to %s", gdf.crs, WGS84)
        gdf = gdf.to_crs(WGS84)
    geoms = _round_geometry(gdf.geometry, tolerance)
    keep = [c for c in columns if c in gdf.columns]
    records = gdf[keep].to_dict("records") if keep else [{} for _ in range(len(gdf))]
    extra = extra or {}
    features = []
    for i, (geom, props) in enumerate(zip(geoms, records, strict=True)):
        if geom is None or geom.is_empty:
            continue
        props = {k: _json_value(v) for k, v in props.items()}
        props.update({k: vals[i] for k, vals in extra.items()})
        features.append({"type": "Feature", "properties": props,
                         "geometry": json.loads(shapely.to_geojson(geom))})
    return {"type": "FeatureCollection", "features": features}


class _Controls(MacroElement):
    """Title panel, regency selector, downloads, legend, and the script that wires them."""

    _template = Template("""
{% macro header(this, kwargs) %}
<link rel="icon" type="image/svg+xml" href="{{ this.favicon }}">
{% endmacro %}
{% macro html(this, kwargs) %}
<div id="kantong-panel" class="kantong-panel">{{ this.panel_html }}</div>
<div id="kantong-legend" class="kantong-legend" aria-live="polite"></div>
{% endmacro %}
{% macro script(this, kwargs) %}
kantongViewer({{ this._parent.get_name() }}, {{ this.config|tojson }},
              {{ this.outlines_name }}, {{ this.pairs_js }});
{% endmacro %}
""")

    def __init__(self, *, panel_html: str, config: dict[str, Any], outlines_name: str,
                 favicon: str, marker_pairs: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self._name = "KantongControls"
        self.panel_html = panel_html
        self.config = config
        self.outlines_name = outlines_name
        # JavaScript array of [overlay, markers] layer variables (names made by Folium)
        self.pairs_js = "[" + ", ".join(f"[{a}, {b}]" for a, b in marker_pairs) + "]"
        self.favicon = favicon


def _panel_html(content: ViewerContent, *, base_url: str) -> str:
    title = f"Kantong — kantong kemiskinan {content.province_name}"
    sub = [f"Run {content.run_id}"]
    if content.synthetic:
        sub.append("SYNTHETIC demo data")
    options = ["<option value=\"\">All regencies of this run</option>"]
    regs = content.regencies.sort_values("regency_name")
    for row in regs.itertuples(index=False):
        label = str(row.regency_name)
        extreme = getattr(row, "extreme_households", None)
        if extreme is not None and not pd.isna(extreme):
            label += f" ({_fmt_int(extreme)} extreme-poor households)"
        options.append(f"<option value=\"{html.escape(str(row.regency_code))}\">"
                       f"{html.escape(label)}</option>")
    layers = [x for x in DOWNLOAD_LAYERS
              if x == "cells" or (x == "pockets" and content.pockets is not None)
              or (x == "sites" and content.sites is not None)]
    links = " · ".join(
        f"<a class=\"kantong-download\" href=\"{html.escape(base_url)}/download/{x}.geojson\" "
        f"data-href=\"{html.escape(base_url)}/download/{x}.geojson\" download>{x}</a>"
        for x in layers)
    return (f"<h1>{html.escape(title)}</h1>"
            f"<div class=\"kantong-sub\">{html.escape(' · '.join(sub))}</div>"
            "<label for=\"kantong-regency\">Zoom to regency</label>"
            f"<select id=\"kantong-regency\">{''.join(options)}</select>"
            f"<div class=\"kantong-downloads\">Download GeoJSON: {links}</div>")


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


def build_map(content: ViewerContent, *, base_url: str = "", static_url: str = "/static",
              default_indicator: str = DEFAULT_INDICATOR) -> folium.Map:
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
    figure = Figure(title=f"Kantong — kantong kemiskinan {content.province_name}")
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
                folium.GeoJson(to_feature_collection(part, tolerance=PROVINCE_TOLERANCE),
                               name="Province", control=False, pane="kantong-background",
                               interactive=False,
                               style_function=lambda _f, s=style: s).add_to(fmap)

    pad = 0.02
    tile_bounds = [[south - pad, west - pad], [north + pad, east + pad]]
    for name in content.indicators:
        folium.TileLayer(f"{base_url}/tiles/{name}/{{z}}/{{x}}/{{y}}.png",
                         name=indicator_label(name), attr="Kantong", overlay=False,
                         control=True, show=name == active, min_zoom=5, max_zoom=16,
                         bounds=tile_bounds, indicator=name, opacity=0.9).add_to(fmap)

    outlines = folium.GeoJson(
        to_feature_collection(content.outlines, columns=("regency_code", "regency_name"),
                              tolerance=REGENCY_TOLERANCE),
        name="Regency boundaries", interactive=False, style_function=lambda _f: _STYLE_REGENCY,
        attribution="Boundaries: BPS 2020")
    outlines.add_to(fmap)

    pocket_layer = None
    marker_pairs: list[tuple[str, str]] = []  # (overlay, its low-zoom markers) for viewer.js
    if content.pockets is not None and len(content.pockets):
        props = content.pockets.drop(columns=content.pockets.geometry.name).to_dict("records")
        popups = [pocket_popup_html(p) for p in props]
        pocket_layer = folium.GeoJson(
            to_feature_collection(content.pockets, columns=("pocket_id",),
                                  extra={"popup_html": popups}),
            name=f"Poverty pockets ({len(content.pockets)})", className="kantong-pocket",
            style_function=lambda _f: _STYLE_POCKET,
            highlight_function=lambda _f: {"weight": 4.5, "fillOpacity": 0.18},
            on_each_feature=folium.JsCode(
                "function (f, l) { l.bindPopup(f.properties.popup_html, {maxWidth: 340}); }"),
        )
        pocket_layer.add_to(fmap)
        # rings at low zoom (shown by viewer.js while the outlines are on and zoom is low)
        markers_layer = folium.GeoJson(
            pocket_markers(content.pockets, popups), name="Pocket markers", control=False,
            marker=folium.CircleMarker(radius=POCKET_MARKER_RADIUS[0], color="#00a3d9",
                                       weight=3, fill=True, fill_color="#00a3d9",
                                       fill_opacity=0.2, className="kantong-pocket-marker"),
            style_function=lambda f: {"radius": f["properties"]["radius"]},
            on_each_feature=folium.JsCode(
                "function (f, l) { l.bindPopup(f.properties.popup_html, {maxWidth: 340});"
                " l.bindTooltip('Poverty pocket ' + f.properties.pocket_id); }"),
        )
        markers_layer.add_to(fmap)
        marker_pairs.append((pocket_layer.get_name(), markers_layer.get_name()))

    if content.sites is not None and len(content.sites):
        sites = content.sites.sort_values("rank") if "rank" in content.sites else content.sites
        props = sites.drop(columns=sites.geometry.name).to_dict("records")
        folium.GeoJson(
            to_feature_collection(sites, columns=("rank", "type"),
                                  extra={"popup_html": [site_popup_html(p) for p in props]}),
            name=f"Chosen sites ({len(sites)})",
            marker=folium.CircleMarker(radius=7, color="#ffffff", weight=2, fill=True,
                                       fill_color="#08519c", fill_opacity=1.0),
            on_each_feature=folium.JsCode(
                "function (f, l) { l.bindPopup(f.properties.popup_html, {maxWidth: 320});"
                " l.bindTooltip('Site #' + f.properties.rank); }"),
        ).add_to(fmap)

    if content.compare is not None:  # change layers of `kantong serve --compare`
        pairs = content.compare.add_to(fmap, base_url=base_url, bounds=tile_bounds)
        marker_pairs += [(a.get_name(), b.get_name()) for a, b in pairs or ()]

    folium.LayerControl(position="topright", collapsed=False).add_to(fmap)
    regency_bounds = _bounds_of(content.outlines[content.outlines["regency_code"].isin(
        content.regencies["regency_code"].astype(str))])
    entries = getattr(content.compare, "legend_entries", None)
    config = {
        "defaultIndicator": active,
        "legendUrl": f"{base_url}/tiles/{{indicator}}/legend.json",
        "runBounds": [west, south, east, north],
        "regencyBounds": regency_bounds,
        "minHouseholds": content.min_households,
        "hasSites": content.sites is not None and len(content.sites) > 0,
        "hasPockets": pocket_layer is not None,
        "pocketMarkerMaxZoom": POCKET_MARKER_MAX_ZOOM,
        "pocketStatuses": entries() if callable(entries) else [],
        "regencyLabels": _label_points(content.outlines),
        "outlineStyle": _STYLE_REGENCY,
    }
    fmap.add_child(_Controls(panel_html=_panel_html(content, base_url=base_url), config=config,
                             outlines_name=outlines.get_name(),
                             marker_pairs=marker_pairs,
                             favicon=f"{static_url}/favicon.svg"))
    fmap.fit_bounds([[south, west], [north, east]], padding=(20, 20))
    return fmap


def render_page(content: ViewerContent, *, base_url: str = "", static_url: str = "/static",
                default_indicator: str = DEFAULT_INDICATOR) -> str:
    """Return the complete HTML of the viewer page.

    Parameters
    ----------
    content, base_url, static_url, default_indicator
        As for :func:`build_map`.

    Returns
    -------
    str
        A standalone HTML document referencing only app-local URLs.
    """
    fmap = build_map(content, base_url=base_url, static_url=static_url,
                     default_indicator=default_indicator)
    root = fmap.get_root()
    root.header.add_child(Element('<meta name="robots" content="noindex">'), name="robots")
    return root.render()


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
