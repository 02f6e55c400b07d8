"""Place search of the web map: regencies, kecamatan, villages and pocket ids.

``/api/search?q=`` answers from a :class:`SearchIndex` built once per app from the shipped
BPS 2020 boundaries (public names, ``data/boundaries/``) of the run's regencies and the
run's *published* pockets (:class:`kantong.engine.publish.published.PublishedRun`). Names
are compared without case, accents, punctuation or an administrative prefix (``Kabupaten``,
``Kota``, ``Kecamatan``, ``Desa``, ``Kelurahan``), so ``sungai daun``, ``Sungai-Daun`` and
``Desa Sungai Daun`` all find the village ``Sungai Daun``. Results are ranked: exact name,
then name prefix, then word prefix, then substring; within a rank regencies before kecamatan
before villages, then by name. Every result carries ``name``, ``kind``, ``codes``,
``centre`` (``[lon, lat]``, a point inside the area) and ``bbox`` (``[west, south, east,
north]``), EPSG:4326.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from kantong.engine.errors import InputError
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Longest accepted query (characters) and most results returned.
MAX_QUERY: Final = 80
MAX_RESULTS: Final = 20
#: Shortest query that is searched (shorter ones answer nothing; pocket ids excepted).
MIN_QUERY: Final = 2
KINDS: Final = ("regency", "district", "village", "pocket")
_PREFIXES: Final = re.compile(r"^(kabupaten|kab|kota|kecamatan|kec|desa|kelurahan|kel|"
                              r"kantong|pocket)\s+")
_NON_WORD: Final = re.compile(r"[^0-9a-z]+")
_DECIMALS: Final = 5


def normalise(text: str) -> str:
    """Return ``text`` lower-cased, without accents, punctuation or an admin prefix.

    Examples
    --------
    >>> normalise("  Desa Sungai-Daun "), normalise("Kab. Kapuas Hulu")
    ('sungai daun', 'kapuas hulu')
    """
    plain = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    words = _NON_WORD.sub(" ", plain.lower()).strip()
    return _PREFIXES.sub("", words)


class SearchIndex:
    """Searchable names of a run's area (built once; searches are vectorised).

    Parameters
    ----------
    regency_codes
        BPS codes of the run's regencies (the villages and kecamatan searched lie in them).
    pockets
        Published pockets (``pocket_id``, polygons, optional ``regency_code``/``rank``).
    """

    def __init__(self, regency_codes: Iterable[str], pockets: gpd.GeoDataFrame | None = None
                 ) -> None:
        codes = {str(c) for c in regency_codes}
        frames = [self._regencies(codes), self._districts(codes), self._villages(codes)]
        if pockets is not None and len(pockets):
            frames.append(self._pockets(pockets))
        table = pd.concat([f for f in frames if len(f)], ignore_index=True)
        table["key"] = table["name"].map(normalise)
        table["kind_order"] = table["kind"].map({k: i for i, k in enumerate(KINDS)})
        self.table = table.sort_values(["kind_order", "key"]).reset_index(drop=True)
        self._keys = self.table["key"].astype(str)
        logger.info("search index: %s", self.table["kind"].value_counts().to_dict())

    @staticmethod
    def _frame(kind: str, names: pd.Series, codes: list[dict[str, Any]],
               geoms: np.ndarray, centres: np.ndarray | None = None) -> pd.DataFrame:
        bounds = np.round(shapely.bounds(geoms), _DECIMALS)
        if centres is None:
            pts = shapely.point_on_surface(geoms)
            centres = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
        return pd.DataFrame({"name": names.astype(str).to_numpy(), "kind": kind, "codes": codes,
                             "lon": np.round(centres[:, 0], _DECIMALS),
                             "lat": np.round(centres[:, 1], _DECIMALS),
                             "west": bounds[:, 0], "south": bounds[:, 1],
                             "east": bounds[:, 2], "north": bounds[:, 3]})

    def _regencies(self, codes: set[str]) -> pd.DataFrame:
        reg = boundaries.regencies()
        reg = reg[reg["regency_code"].astype(str).isin(codes)]
        return self._frame("regency", reg["regency_name"], [
            {"province_code": str(p), "regency_code": str(r)}
            for p, r in zip(reg["province_code"], reg["regency_code"], strict=True)],
            reg.geometry.to_numpy())

    def _districts(self, codes: set[str]) -> pd.DataFrame:
        dist = boundaries.districts()
        dist = dist[dist["regency_code"].astype(str).isin(codes)]
        names = boundaries.regencies().set_index("regency_code")["regency_name"]
        return self._frame("district", dist["district_name"], [
            {"regency_code": str(r), "regency_name": str(names.get(r, "")),
             "district_code": str(d)}
            for r, d in zip(dist["regency_code"], dist["district_code"], strict=True)],
            dist.geometry.to_numpy())

    def _villages(self, codes: set[str]) -> pd.DataFrame:
        pts = boundaries.village_points()
        pts = pts[pts["regency_code"].astype(str).isin(codes)]
        poly = boundaries.villages().set_index("village_code").geometry
        geoms = poly.reindex(pts["village_code"]).to_numpy()
        missing = shapely.is_missing(geoms)
        geoms[missing] = shapely.points(pts.loc[missing, ["lon", "lat"]].to_numpy())
        dists = boundaries.districts().set_index("district_code")["district_name"]
        regs = boundaries.regencies().set_index("regency_code")["regency_name"]
        return self._frame("village", pts["village_name"], [
            {"regency_code": str(r), "regency_name": str(regs.get(r, "")),
             "district_code": str(d), "district_name": str(dists.get(d, "")),
             "village_code": str(v)}
            for r, d, v in zip(pts["regency_code"], pts["district_code"], pts["village_code"],
                               strict=True)],
            geoms, pts[["lon", "lat"]].to_numpy(dtype="float64"))

    def _pockets(self, pockets: gpd.GeoDataFrame) -> pd.DataFrame:
        if pockets.crs is not None and pockets.crs.to_epsg() != 4326:
            pockets = pockets.to_crs(4326)
        ids = pockets["pocket_id"].astype("int64")
        codes = [{"pocket_id": int(p),
                  "regency_code": None if "regency_code" not in pockets or pd.isna(r) else str(r),
                  "rank": None if "rank" not in pockets or pd.isna(k) else int(k)}
                 for p, r, k in zip(ids, pockets.get("regency_code", ids),
                                    pockets.get("rank", ids), strict=True)]
        return self._frame("pocket", ids.astype(str), codes, pockets.geometry.to_numpy())

    def search(self, query: str, *, limit: int = MAX_RESULTS) -> list[dict[str, Any]]:
        """Return the places matching ``query``, best first.

        Parameters
        ----------
        query
            Free text (a name, part of one, or a pocket id); at most :data:`MAX_QUERY`
            characters.
        limit
            Most results returned (1..:data:`MAX_RESULTS`).

        Returns
        -------
        list of dict
            ``{name, kind, codes, centre: [lon, lat], bbox: [w, s, e, n]}``.

        Raises
        ------
        InputError
            If the query is longer than :data:`MAX_QUERY` characters.
        """
        if len(query) > MAX_QUERY:
            raise InputError(f"search text longer than {MAX_QUERY} characters")
        key = normalise(query)
        is_id = key.isdigit()
        if not key or (len(key) < MIN_QUERY and not is_id):
            return []
        keys = self._keys
        kinds = self.table["kind"].to_numpy()
        exact = (keys == key).to_numpy()
        prefix = keys.str.startswith(key).to_numpy()
        word = (" " + keys).str.contains(" " + key, regex=False).to_numpy()
        inside = keys.str.contains(key, regex=False).to_numpy()
        score = np.select([exact, prefix, word, inside], [0, 1, 2, 3], default=9)
        if is_id:  # a number names a pocket id only exactly
            score = np.where(kinds == "pocket", np.where(exact, 0, 9), score)
        else:
            score = np.where(kinds == "pocket", 9, score)
        hits = np.flatnonzero(score < 9)
        order = hits[np.lexsort((hits, score[hits]))][:max(1, min(limit, MAX_RESULTS))]
        rows = self.table.iloc[order]
        return [{"name": r.name, "kind": r.kind, "codes": r.codes, "centre": [r.lon, r.lat],
                 "bbox": [r.west, r.south, r.east, r.north]}
                for r in rows.itertuples(index=False)]


__all__ = ["KINDS", "MAX_QUERY", "MAX_RESULTS", "SearchIndex", "normalise"]
