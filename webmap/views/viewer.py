"""The ``viewer`` blueprint: the offline map page at ``/`` and its static assets.

``/`` is a Folium (Leaflet) page built by :mod:`kantong.webmap.page.build` from the run's published
content (``app.extensions["kantong"]``, a :class:`kantong.engine.publish.published.PublishedRun`)
and the
tile server's catalogue (``app.extensions["kantong_tiles"]``). The page is built once per
app, URL root and language (``?lang=id``, the default, or ``?lang=en``), then served from
memory. ``/static/...`` serves the vendored Leaflet and
the viewer's own script and style sheet (see ``webmap/static/VENDOR.md``); nothing is
loaded from another origin.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import pandas as pd
from flask import Blueprint, Response, current_app, request, url_for

from kantong.engine.build.sums import precision_of_manifest
from kantong.engine.inputs import boundaries
from kantong.webmap.i18n import DEFAULT_LANGUAGE, check_language
from kantong.webmap.page.build import BBox, ViewerContent, choose_layers, render_page
from kantong.webmap.views.compare import page_layers

logger = logging.getLogger(__name__)

# the assets are in webmap/static, one level above this module
bp = Blueprint("viewer", __name__, static_folder="../static", static_url_path="/static")

_lock = threading.Lock()
_CACHE_KEY = "kantong_viewer_pages"
#: A province is one of the run's own (title, outlines of all its regencies, lighter
#: background) when it holds at least this share of the published households; a few border
#: cells in a neighbouring province only add the outlines of their regencies.
MAIN_PROVINCE_SHARE = 0.05


def main_provinces(regencies: pd.DataFrame) -> tuple[str, ...]:
    """Return the Kalimantan province codes holding the run's households.

    Parameters
    ----------
    regencies
        Published regency summaries (``regency_code`` and, when present, ``households``).

    Returns
    -------
    tuple of str
        Sorted codes of the provinces with at least :data:`MAIN_PROVINCE_SHARE` of the
        households (the largest one at least), or ``()`` when no regency is in Kalimantan.

    Examples
    --------
    >>> main_provinces(pd.DataFrame({"regency_code": ["6101", "6206"],
    ...                              "households": [5000, 20]}))
    ('61',)
    """
    if regencies.empty:
        return ()
    province = regencies["regency_code"].astype(str).str[:2]
    weight = (pd.to_numeric(regencies["households"], errors="coerce").fillna(0.0)
              if "households" in regencies else pd.Series(1.0, index=regencies.index))
    share = weight.groupby(province).sum()
    share = share[share.index.isin(list(boundaries.KALIMANTAN_PROVINCES))]
    if share.empty:
        return ()
    total = float(share.sum())
    if total <= 0:
        return tuple(sorted(share.index))
    keep = set(share.index[share / total >= MAIN_PROVINCE_SHARE]) | {share.idxmax()}
    return tuple(sorted(keep))


def pocket_contributions(cells: pd.DataFrame) -> pd.DataFrame:
    """Return the household-weighted mean ``contrib_*`` of each pocket's published cells.

    Used when the published pockets carry no score components of their own.

    Parameters
    ----------
    cells
        Published base cells with ``pocket_id``, ``households`` and ``contrib_*`` columns.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``pocket_id`` (int64), one column per ``contrib_*`` (empty when absent).
    """
    cols = [c for c in cells.columns if c.startswith("contrib_")]
    if not cols or "pocket_id" not in cells.columns:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="pocket_id"))
    inside = cells[cells["pocket_id"].notna()]
    w = inside["households"].to_numpy(dtype="float64")
    weighted = pd.DataFrame(inside[cols].to_numpy(dtype="float64") * w[:, None], columns=cols)
    weighted["pocket_id"] = inside["pocket_id"].astype("int64").to_numpy()
    weighted["_w"] = w
    sums = weighted.groupby("pocket_id").sum()
    return sums[cols].div(sums["_w"].where(sums["_w"] > 0), axis=0)


def pocket_districts(cells: pd.DataFrame) -> pd.Series:
    """Return the kecamatan names of each pocket's published cells (largest first).

    Parameters
    ----------
    cells
        Published base cells with ``pocket_id``, ``district_name`` and ``households``.

    Returns
    -------
    pandas.Series
        ``pocket_id`` (int64) -> ``"Name A, Name B"`` (empty when the columns are absent).
    """
    if not {"pocket_id", "district_name", "households"} <= set(cells.columns):
        return pd.Series(dtype="string")
    inside = cells[cells["pocket_id"].notna() & cells["district_name"].notna()]
    sums = (inside.assign(pocket_id=inside["pocket_id"].astype("int64"))
            .groupby(["pocket_id", "district_name"])["households"].sum()
            .reset_index().sort_values(["pocket_id", "households"], ascending=[True, False]))
    return sums.groupby("pocket_id")["district_name"].agg(lambda s: ", ".join(map(str, s)))


def site_districts(sites: gpd.GeoDataFrame) -> pd.Series:
    """Return the kecamatan name (shipped BPS 2020 boundaries) of each site point."""
    if sites.empty:
        return pd.Series(dtype="string", index=sites.index)
    dist = boundaries.districts()[["district_name", "geometry"]]
    hit = gpd.sjoin(sites[["geometry"]].to_crs(dist.crs), dist, how="left",
                    predicate="within")
    return hit[~hit.index.duplicated()]["district_name"].reindex(sites.index)


def content_from_published(run: Any, *, indicators: Sequence[str], bounds: BBox
                           ) -> ViewerContent:
    """Collect the viewer content of a run from its privacy gate.

    Parameters
    ----------
    run
        An :class:`kantong.engine.publish.published.PublishedRun` (``run_id``, ``manifest``,
        ``min_households``, ``regencies()``, ``pockets()``, ``sites()``, ``cells()``).
    indicators
        Raster layers the tile server publishes (``TileService.indicators()``).
    bounds
        ``(west, south, east, north)`` of the published cells (``TileService.bounds()``).

    Returns
    -------
    ViewerContent
        Only published data, plus the shipped (public) boundaries of the run's provinces.
    """
    regencies = run.regencies()
    codes = regencies["regency_code"].astype(str)
    province_codes = main_provinces(regencies)
    if len(province_codes) == 1:
        province = boundaries.KALIMANTAN_PROVINCES[province_codes[0]]
    else:
        province = "Kalimantan"
    outlines = boundaries.regencies()
    if province_codes:  # the main provinces' regencies, plus any other regency of the run
        outlines = outlines[outlines["province_code"].astype(str).isin(province_codes)
                            | outlines["regency_code"].astype(str).isin(set(codes))]
    outlines = outlines[["regency_code", "regency_name", "geometry"]].reset_index(drop=True)
    provinces = boundaries.provinces()[["province_code", "geometry"]]
    pockets = run.pockets()
    cells = run.cells()
    if len(pockets) and not any(c.startswith("contrib_") for c in pockets.columns):
        contrib = pocket_contributions(cells)
        if len(contrib.columns):
            pockets = pockets.join(contrib, on="pocket_id")
    if len(pockets) and "districts" not in pockets.columns:
        pockets = pockets.join(pocket_districts(cells).rename("districts"), on="pocket_id")
    sites = run.sites()
    if len(sites):
        sites = sites.assign(district_name=site_districts(sites))
    facilities = run.facilities() if hasattr(run, "facilities") else None
    manifest = run.manifest if isinstance(run.manifest, dict) else {}
    return ViewerContent(
        run_id=str(run.run_id), province_name=province,
        bounds=tuple(float(v) for v in bounds), indicators=choose_layers(list(indicators)),
        regencies=regencies, outlines=outlines, provinces=provinces,
        pockets=pockets if len(pockets) else None, sites=sites if len(sites) else None,
        min_households=int(run.min_households), synthetic=bool(manifest.get("synthetic")),
        location_precision=precision_of_manifest(manifest),
        absent_indicators=tuple(str(f) for f in
                                (manifest.get("register") or {}).get("absent_indicators", [])),
        province_codes=province_codes,
        cell_columns=tuple(c for c in cells.columns if c != "geometry"),
        facility_count=0 if facilities is None else len(facilities),
        facility_types=() if facilities is None or not len(facilities) else tuple(
            sorted(facilities["type"].astype(str).unique())))


def viewer_html(lang: str = DEFAULT_LANGUAGE) -> str:
    """Return the viewer page of the current app in ``lang`` (built on first use, then cached).

    Returns
    -------
    str
        The HTML document; it references only this app's URLs.
    """
    run = current_app.extensions["kantong"]
    tiles = current_app.extensions["kantong_tiles"]
    root = request.script_root.rstrip("/")
    key = (run.run_id, run.min_households, root, lang)
    cache = current_app.extensions.setdefault(_CACHE_KEY, {})
    with _lock:
        if key not in cache:
            t0 = time.perf_counter()
            content = content_from_published(run, indicators=tiles.indicators(),
                                             bounds=tiles.bounds())
            compare = current_app.extensions.get("kantong_compare")
            if compare is not None:  # `kantong serve --compare`: add the change layers
                content = dataclasses.replace(content, compare=page_layers(compare))
            static_url = url_for("viewer.static", filename="").rstrip("/")
            cache[key] = render_page(content, base_url=root, static_url=static_url, lang=lang)
            logger.info("viewer page of run %s built in %.2f s (%d bytes)", run.run_id,
                        time.perf_counter() - t0, len(cache[key]))
        return cache[key]


@bp.get("/")
def index() -> Response:
    """Serve the map page in ``?lang=`` (``id`` by default, or ``en``; HTML with an ETag).

    The other query parameters (``layer``, ``regency``, ``lat``, ``lon``, ``z``) are read by
    the page's script: they reopen a view (a permalink).
    """
    page = viewer_html(check_language(request.args.get("lang")))
    response = Response(page, mimetype="text/html")
    response.set_etag(hashlib.blake2b(page.encode("utf-8"), digest_size=12).hexdigest())
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)
