"""HTML of the viewer's controls: title panel, search, pocket list, downloads, legend box.

Plain, escaped HTML in the page's language (:mod:`kantong.webmap.i18n`), wired up by
``static/viewer.js`` and ``static/viewer-tools.js``. The controls follow the keyboard order
title -> language -> menu -> search -> regency -> pocket list -> downloads -> print/link,
then the map's own controls; every control has a visible label or an ``aria-label``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Final

import pandas as pd

from kantong.webmap.i18n import fmt_int, t

#: Layers offered as downloads (``/download/<layer>.<format>``), and the formats.
DOWNLOAD_LAYERS: Final = ("cells", "pockets", "sites")
DOWNLOAD_FORMATS: Final = (("geojson", "GeoJSON"), ("csv", "CSV"), ("gpkg", "GeoPackage"))
_LAYER_KEYS: Final = {"cells": "dl_cells", "pockets": "dl_pockets", "sites": "dl_sites"}


def _e(text: Any) -> str:
    return html.escape(str(text))


def pocket_list_html(pockets: Sequence[tuple[int, int, float, Sequence[float]]], lang: str
                     ) -> str:
    """Return the ranked pocket list (a ``<details>`` of buttons).

    ``pockets`` holds ``(pocket_id, rank, extreme_households, bbox)`` tuples, by rank.
    """
    if not pockets:
        return ""
    items = "".join(
        f"<li><button type=\"button\" class=\"kantong-pocket-item\" data-pocket=\"{_e(pid)}\" "
        f"data-bbox=\"{_e(','.join(f'{v:.5f}' for v in bbox))}\">"
        f"{_e(t('pocket_list_item', lang, rank=rank, id=pid, n=fmt_int(extreme, lang)))}"
        "</button></li>"
        for pid, rank, extreme, bbox in pockets)
    return (f"<details class=\"kantong-pockets\"><summary>{_e(t('pocket_list', lang))}</summary>"
            f"<ol class=\"kantong-pocket-list\">{items}</ol></details>")


def downloads_html(layers: Sequence[str], *, base_url: str, lang: str) -> str:
    """Return the downloads box: one row per layer, one link per format, with its size."""
    rows = []
    for layer in layers:
        links = "".join(
            f"<li><a class=\"kantong-download\" data-layer=\"{_e(layer)}\" data-format=\"{fmt}\" "
            f"href=\"{_e(base_url)}/download/{layer}.{fmt}\" "
            f"data-href=\"{_e(base_url)}/download/{layer}.{fmt}\" download>{label}</a> "
            "<span class=\"kantong-size\"></span></li>"
            for fmt, label in DOWNLOAD_FORMATS)
        rows.append(f"<li><span class=\"kantong-dl-layer\">{_e(t(_LAYER_KEYS[layer], lang))}"
                    f"</span><ul>{links}</ul></li>")
    return (f"<details id=\"kantong-downloads\" class=\"kantong-downloads\"><summary>"
            f"{_e(t('downloads', lang))}</summary>"
            f"<div>{_e(t('download_scope', lang))}: <b id=\"kantong-download-scope\">"
            f"{_e(t('download_all', lang))}</b></div><ul class=\"kantong-dl\">{''.join(rows)}</ul>"
            f"<div class=\"kantong-hint\">{_e(t('download_hint', lang))}</div></details>")


def panel_html(*, title: str, subtitle: str, lang: str, regencies: pd.DataFrame,
               pockets: Sequence[tuple[int, int, float, Sequence[float]]],
               download_layers: Sequence[str], base_url: str) -> str:
    """Return the inner HTML of the title panel (top left).

    Parameters
    ----------
    title, subtitle
        Page title and the run line under it (already in ``lang``).
    lang
        ``"id"`` or ``"en"``.
    regencies
        ``regency_code``, ``regency_name`` and optionally ``extreme_households``.
    pockets
        Ranked pockets ``(pocket_id, rank, extreme_households, bbox)``.
    download_layers
        Layers offered as downloads.
    base_url
        URL prefix of the app.
    """
    other = "en" if lang == "id" else "id"
    options = [f"<option value=\"\" data-name=\"{_e(t('download_all', lang))}\">"
               f"{_e(t('all_regencies', lang))}</option>"]
    for row in regencies.sort_values("regency_name").itertuples(index=False):
        name = str(row.regency_name)
        extreme = getattr(row, "extreme_households", None)
        label = name if extreme is None or pd.isna(extreme) else t(
            "regency_option", lang, name=name, n=fmt_int(extreme, lang))
        options.append(f"<option value=\"{_e(row.regency_code)}\" data-name=\"{_e(name)}\">"
                       f"{_e(label)}</option>")
    return (
        "<div class=\"kantong-head\">"
        f"<h1>{_e(title)}</h1>"
        f"<a id=\"kantong-lang\" class=\"kantong-lang\" href=\"{_e(base_url)}/?lang={other}\" "
        f"hreflang=\"{other}\" lang=\"{other}\" title=\"{_e(t('language_switch_title', lang))}\">"
        f"{_e(t('language_switch', lang))}</a>"
        f"<button type=\"button\" id=\"kantong-menu-toggle\" class=\"kantong-menu-toggle\" "
        f"aria-expanded=\"true\" aria-controls=\"kantong-panel-body\">{_e(t('menu', lang))}"
        "</button></div>"
        f"<div class=\"kantong-sub\">{_e(subtitle)}</div>"
        "<div id=\"kantong-panel-body\" class=\"kantong-panel-body\">"
        "<div class=\"kantong-search\" role=\"search\">"
        f"<label for=\"kantong-search\">{_e(t('search_label', lang))}</label>"
        f"<input id=\"kantong-search\" type=\"search\" autocomplete=\"off\" maxlength=\"80\" "
        f"placeholder=\"{_e(t('search_placeholder', lang))}\">"
        "<div id=\"kantong-search-status\" class=\"kantong-search-status\" role=\"status\" "
        "aria-live=\"polite\"></div>"
        "<ul id=\"kantong-search-results\" class=\"kantong-search-results\"></ul></div>"
        f"<label for=\"kantong-regency\">{_e(t('zoom_regency', lang))}</label>"
        f"<select id=\"kantong-regency\">{''.join(options)}</select>"
        f"{pocket_list_html(pockets, lang)}"
        f"{downloads_html(download_layers, base_url=base_url, lang=lang)}"
        "<div class=\"kantong-actions\">"
        f"<button type=\"button\" id=\"kantong-print\">{_e(t('print', lang))}</button>"
        f"<button type=\"button\" id=\"kantong-copy-link\">{_e(t('copy_link', lang))}</button>"
        "</div></div>"
        "<div id=\"kantong-print-info\" class=\"kantong-print-info\"></div>")


def legend_html(lang: str) -> str:
    """Return the legend control: a ``<details>`` (open on a desktop, closed on a phone)."""
    return (f"<div id=\"kantong-legend-wrap\" class=\"kantong-legend\">"
            f"<details id=\"kantong-legend-details\" open><summary>{_e(t('legend', lang))}"
            "</summary><div id=\"kantong-legend\"></div></details></div>")


__all__ = ["DOWNLOAD_FORMATS", "DOWNLOAD_LAYERS", "downloads_html", "legend_html", "panel_html",
           "pocket_list_html"]
