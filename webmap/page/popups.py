"""Popup HTML of the viewer's pockets and chosen sites, in the page's language.

Built from published rows only (:class:`kantong.engine.publish.published.PublishedRun`);
every value is escaped. Pocket popups carry the figures staff ask for first (households,
extreme-poor households and rate, priority, rank, cells, regency and kecamatan, travel
times, the recommended strategy and the largest score contributions) and buttons to zoom
to the pocket, inspect the cell under the popup and download the pocket's data; site
popups carry the gain, the regency and kecamatan, the coordinates and the travel-time
threshold. The cell popup (a click anywhere) is drawn by ``static/viewer-tools.js`` from
``/api/cells/<h3>``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from kantong.webmap.i18n import (
    component_label,
    facility_label,
    fmt_int,
    fmt_number,
    fmt_pct,
    indicator_label,
    strategy_text,
    t,
)


def _names(value: Any) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ", ".join(str(v) for v in value)
    return str(value)


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _button(css: str, text: str, **data: str) -> str:
    attrs = "".join(f' data-{k}="{html.escape(v)}"' for k, v in data.items())
    return f'<button type="button" class="{css}"{attrs}>{html.escape(text)}</button>'


def pocket_popup_html(pocket: Mapping[str, Any], lang: str, *, top: int = 3,
                      bbox: Sequence[float] | None = None) -> str:
    """Return the (escaped) HTML of a pocket's popup in ``lang``.

    Parameters
    ----------
    pocket
        Properties of one published pocket: ``pocket_id``, ``households``,
        ``extreme_households``, ``extreme_rate``, ``priority``, ``rank``, ``cells``,
        ``strategy`` (number) or ``strategy_label``, ``regencies`` or ``regency_name``,
        optionally ``districts``, ``travel_min_<type>`` and ``contrib_<indicator>``.
    lang
        ``"id"`` or ``"en"``.
    top
        How many of the largest positive contributions to list.
    bbox
        ``(west, south, east, north)`` of the pocket, for the zoom-to button.

    Returns
    -------
    str
        An HTML fragment; every value is escaped.
    """
    rows = [(t("f_households", lang), fmt_int(pocket.get("households"), lang)),
            (t("f_extreme_households", lang), fmt_int(pocket.get("extreme_households"), lang))]
    if "extreme_rate" in pocket:
        rows.append((t("f_extreme_rate", lang), fmt_pct(pocket.get("extreme_rate"), lang)))
    rows.append((t("f_priority", lang), fmt_number(pocket.get("priority"), lang, 2)))
    rank = pocket.get("rank_province", pocket.get("rank"))
    if _number(rank) is not None:
        rows.append((t("f_rank", lang), fmt_int(rank, lang)))
    if pocket.get("confidence") in ("high", "medium", "low"):  # docs/pockets.md step 5b
        level = t(f"confidence_{pocket['confidence']}", lang)
        p = _number(pocket.get("pocket_p"))
        rows.append((t("f_confidence", lang), level if p is None else f"{level} (p = {p:.2g})"))
    if _number(pocket.get("cells")) is not None:
        rows.append((t("f_cells", lang), fmt_int(pocket.get("cells"), lang)))
    regencies = _names(pocket.get("regencies")) or _names(pocket.get("regency_name"))
    if regencies:
        rows.append((t("f_regency", lang), regencies))
    districts = _names(pocket.get("districts"))
    if districts:
        rows.append((t("f_district", lang), districts))
    travel = [(indicator_label(k, lang), t("f_minutes", lang, n=fmt_int(v, lang)))
              for k, v in pocket.items() if k.startswith("travel_min_") and _number(v) is not None]
    strategy = strategy_text(pocket.get("strategy"), pocket.get("strategy_label"), lang)
    contribs = sorted(((_number(v), k.removeprefix("contrib_")) for k, v in pocket.items()
                       if k.startswith("contrib_") and (_number(v) or 0) > 0), reverse=True)
    total = sum(v for v, _ in contribs)
    items = "".join(
        f"<li>{html.escape(component_label(name, lang))} "
        f"<span class=\"kantong-share\">{html.escape(fmt_pct(v / total, lang, 0))}</span></li>"
        for v, name in contribs[:top])
    pocket_id = str(pocket.get("pocket_id", ""))
    heading = html.escape(t("pocket_title", lang, id=pocket_id))
    parts = [f"<div class=\"kantong-popup\"><h3>{heading}</h3><table>{_rows(rows)}</table>"]
    if pocket.get("totals") == "protected":
        parts.append(f"<p class=\"kantong-note\">{html.escape(t('totals_protected', lang))}</p>")
    if travel:
        parts.append(f"<h4>{html.escape(t('h_travel', lang))}</h4><table>{_rows(travel)}</table>")
    parts.append(f"<p class=\"kantong-strategy\"><b>{html.escape(t('strategy_label', lang))}</b> "
                 f"{html.escape(strategy)}</p>")
    if items:
        parts.append(f"<p><b>{html.escape(t('top_indicators', lang))}</b></p><ol>{items}</ol>")
    buttons = []
    if bbox is not None:
        buttons.append(_button("kantong-zoom", t("zoom_to", lang),
                               bbox=",".join(f"{v:.5f}" for v in bbox)))
    buttons.append(_button("kantong-inspect-here", t("inspect_here", lang)))
    buttons.append(_button("kantong-pocket-download", t("download_pocket", lang), pocket=pocket_id))
    parts.append(f"<div class=\"kantong-popup-actions\">{''.join(buttons)}</div></div>")
    return "".join(parts)


def site_popup_html(site: Mapping[str, Any], lang: str) -> str:
    """Return the (escaped) HTML of a chosen site's popup in ``lang``.

    Parameters
    ----------
    site
        Properties of one site: ``rank``, ``type``, ``new_extreme_households``,
        ``cumulative_extreme_households``, ``regency_name``, optionally ``district_name``,
        ``lon``, ``lat`` and ``max_minutes`` (the travel-time threshold of the plan).
    lang
        ``"id"`` or ``"en"``.

    Returns
    -------
    str
        An HTML fragment; every value is escaped.
    """
    kind = facility_label(str(site.get("type") or "site"), lang)
    rows = [(t("f_new_in_reach", lang), fmt_int(site.get("new_extreme_households"), lang)),
            (t("f_cumulative", lang), fmt_int(site.get("cumulative_extreme_households"), lang))]
    if site.get("regency_name"):
        rows.append((t("f_regency", lang), str(site["regency_name"])))
    if _names(site.get("district_name")):
        rows.append((t("f_district", lang), str(site["district_name"])))
    lon, lat = _number(site.get("lon")), _number(site.get("lat"))
    if lon is not None and lat is not None:
        rows.append((t("f_coordinates", lang),
                     f"{fmt_number(lat, lang, 5)}, {fmt_number(lon, lang, 5)}"))
    if _number(site.get("max_minutes")) is not None:
        rows.append((t("f_threshold", lang),
                     t("f_minutes", lang, n=fmt_int(site.get("max_minutes"), lang))))
    title = t("site_title", lang, rank=fmt_int(site.get("rank"), lang), kind=kind)
    buttons = ""
    if lon is not None and lat is not None:
        d = 0.02
        buttons = ("<div class=\"kantong-popup-actions\">" + _button(
            "kantong-zoom", t("zoom_to", lang),
            bbox=f"{lon - d:.5f},{lat - d:.5f},{lon + d:.5f},{lat + d:.5f}") + "</div>")
    return (f"<div class=\"kantong-popup\"><h3>{html.escape(title)}</h3>"
            f"<table>{_rows(rows)}</table>{buttons}</div>")


__all__ = ["pocket_popup_html", "site_popup_html"]
