"""Synthetic facilities and planted poverty pockets for the demo.

* ``puskesmas``: one per kecamatan at its most populated pixel, plus one more per
  45,000 people (at most 5 more) at dense pixels of the same kecamatan.
* ``posyandu`` and ``school``: per village, Poisson in the village population
  (1 per ~1,100 / ~1,000 people, at least one); the chance that a village has none
  grows with its travel time to the nearest town, so the remote interior has gaps.
* ``water_point``: 1 per ~2,500 people, drawn by population x exp(-travel time / 60 min),
  so they cluster in towns and along settlement corridors.

Pockets are centres of planted extreme poverty in remote, populated pixels of named
regencies (Kalimantan Barat: Kapuas Hulu, Melawi, Kayong Utara, Sintang, Ketapang;
Kalimantan Timur: Mahakam Ulu, Kutai Barat, Paser, Kutai Timur; elsewhere the four
Kabupaten with the longest travel times). Never in a Kota.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd

from kantong.engine.constants import WGS84
from kantong.engine.demo.friction import UNREACHABLE_MINUTES
from kantong.engine.demo.space import DemoArea, locate_villages, sample_points
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Regencies (BPS codes) that receive planted pockets, in order; the first
#: ``INTERVENTION_POCKETS`` of them get the new facilities of the follow-up year.
POCKET_REGENCIES: dict[str, tuple[str, ...]] = {
    "61": ("6108", "6110", "6111", "6107", "6106"),
    "64": ("6411", "6402", "6401", "6404"),
}
INTERVENTION_POCKETS = 3
#: Gaussian radius (km) and logit strength of a planted pocket.
POCKET_SIGMA_KM = 12.0
POCKET_STRENGTH = 2.5
#: New facilities planted per intervention pocket in the follow-up year.
NEW_PER_POCKET = {"puskesmas": 1, "posyandu": 2, "school": 1, "water_point": 3}
_ABBR = {"puskesmas": "PKM", "posyandu": "PSY", "school": "SCH", "water_point": "WTR"}
_COLUMNS = ["facility_id", "type", "name", "geometry"]


def village_table(area: DemoArea, travel: np.ndarray) -> pd.DataFrame:
    """Return per-village population, representative point and travel time.

    Population is the sum of GHS-POP pixels whose centre lies in the village; villages
    holding no pixel centre take the pixel value at their representative point.
    """
    vil = area.villages
    pts = boundaries.village_points().set_index("village_code")
    rep = pts.reindex(vil["village_code"].astype(str))
    pop = np.bincount(area.village_id.ravel(), weights=area.population.ravel().astype(np.float64),
                      minlength=len(vil) + 1)[1:]
    row, col = area.pixel_of(rep["lon"].to_numpy(), rep["lat"].to_numpy())
    pop = np.where(pop > 0, pop, area.population[row, col])
    return pd.DataFrame({
        "village_code": vil["village_code"].astype(str).to_numpy(),
        "village_name": vil["village_name"].astype(str).to_numpy(),
        "district_code": vil["district_code"].astype(str).to_numpy(),
        "regency_code": vil["regency_code"].astype(str).to_numpy(),
        "population": pop,
        "lon": rep["lon"].to_numpy(),
        "lat": rep["lat"].to_numpy(),
        "travel_min": travel[row, col],
    })


def _remote01(minutes: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(minutes) - 60.0) / 360.0, 0.0, 1.0)


def _grouped_pick(groups: np.ndarray, weights: np.ndarray, wanted: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Pick one flat pixel per entry of ``wanted`` (group ids), weighted within the group.

    Returns -1 where the group has no pixel of positive weight.
    """
    pix = np.flatnonzero((groups > 0) & (weights > 0))
    pix = pix[np.argsort(groups[pix], kind="stable")]
    g = groups[pix]
    w = weights[pix].astype(np.float64)
    cs = np.cumsum(w)
    starts = np.searchsorted(g, g, side="left")
    ends = np.searchsorted(g, g, side="right") - 1
    before = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
    key = g + (cs - before) / (cs[ends] - before)
    key[ends] = g[ends] + 1.0
    q = wanted + rng.random(len(wanted)) * (1 - 1e-12)
    pos = np.minimum(np.searchsorted(key, q, side="left"), max(len(key) - 1, 0))
    found = np.isin(wanted, g) if len(g) else np.zeros(len(wanted), bool)
    return np.where(found, pix[pos] if len(pix) else -1, -1)


def _place_in_villages(area: DemoArea, vtab: pd.DataFrame, village_idx: np.ndarray,
                       rng: np.random.Generator, weights: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Return lon/lat of one point per entry of ``village_idx`` inside that village."""
    flat = _grouped_pick(area.village_id.ravel(), weights.ravel(), village_idx + 1, rng)
    row, col = np.divmod(np.maximum(flat, 0), area.shape[1])
    cx, cy = area.pixel_centres(row, col)
    jx = np.round(cx + (rng.random(len(flat)) - 0.5) * area.transform.a, 6)
    jy = np.round(cy + (rng.random(len(flat)) - 0.5) * area.transform.e, 6)
    ok = locate_villages(area, jx, jy) == village_idx
    lon, lat = np.where(ok, jx, cx), np.where(ok, jy, cy)
    none = flat < 0  # village holds no populated pixel centre: use its representative point
    lon[none] = vtab["lon"].to_numpy()[village_idx[none]]
    lat[none] = vtab["lat"].to_numpy()[village_idx[none]]
    return lon, lat


def _numbered(prefix: str, base: pd.Series, number: np.ndarray, *, always: bool) -> pd.Series:
    num = pd.Series(number + 1, index=base.index).astype(str)
    suffix = (" " + num) if always else np.where(number > 0, " " + num, "")
    return prefix + base + suffix


def _frame(kind: str, lon: np.ndarray, lat: np.ndarray, names: pd.Series) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"type": kind, "name": names.to_numpy()},
                            geometry=gpd.points_from_xy(np.round(lon, 6), np.round(lat, 6)),
                            crs=WGS84)


def _puskesmas(area: DemoArea, vtab: pd.DataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    dist = area.districts
    ids = area.district_id.ravel()
    pop = area.population.ravel().astype(np.float64)
    dpop = np.bincount(ids, weights=pop, minlength=len(dist) + 1)[1:]
    has = np.flatnonzero(ids > 0)
    order = has[np.lexsort((-pop[has], ids[has]))]
    first_pos = np.unique(ids[order], return_index=True)
    best = np.full(len(dist), -1, dtype=np.int64)
    best[first_pos[0] - 1] = order[first_pos[1]]
    extra = np.minimum(dpop // 45_000, 5).astype(np.int64)
    extra_d = np.repeat(np.arange(len(dist)), extra)
    extra_flat = _grouped_pick(ids, pop**2, extra_d + 1, rng)
    d_idx = np.concatenate([np.arange(len(dist)), extra_d])
    flat = np.concatenate([best, extra_flat])
    number = np.concatenate([np.zeros(len(dist), np.int64),
                             pd.Series(extra_d).groupby(extra_d).cumcount().to_numpy() + 1])
    row, col = np.divmod(np.maximum(flat, 0), area.shape[1])
    lon, lat = area.pixel_centres(row, col)
    jlon = np.round(lon + (rng.random(len(flat)) - 0.5) * 0.6 * area.transform.a, 6)
    jlat = np.round(lat + (rng.random(len(flat)) - 0.5) * 0.6 * area.transform.e, 6)
    vil = locate_villages(area, jlon, jlat)
    dcode = dist["district_code"].astype(str).to_numpy()
    vdist = np.where(vil >= 0, vtab["district_code"].to_numpy()[np.maximum(vil, 0)], "")
    ok = vdist == dcode[d_idx]
    lon, lat = np.where(ok, jlon, lon), np.where(ok, jlat, lat)
    none = flat < 0  # district holds no pixel centre: its representative point
    if none.any():
        rp = dist.geometry.iloc[d_idx[none]].representative_point()
        lon[none], lat[none] = rp.x.to_numpy(), rp.y.to_numpy()
    names = _numbered("Puskesmas ", pd.Series(dist["district_name"].astype(str).to_numpy()[d_idx]),
                      number, always=False)
    return _frame("puskesmas", lon, lat, names)


def _per_village(kind: str, area: DemoArea, vtab: pd.DataFrame, rng: np.random.Generator, *,
                 persons_per: float, coverage: float, remote_loss: float,
                 prefix: str) -> gpd.GeoDataFrame:
    has = rng.random(len(vtab)) < coverage - remote_loss * _remote01(vtab["travel_min"])
    count = np.where(has, np.maximum(rng.poisson(vtab["population"] / persons_per), 1), 0)
    count = np.minimum(count, 40)
    v_idx = np.repeat(np.arange(len(vtab)), count)
    lon, lat = _place_in_villages(area, vtab, v_idx, rng, area.population)
    number = pd.Series(v_idx).groupby(v_idx).cumcount().to_numpy()
    base = pd.Series(vtab["village_name"].to_numpy()[v_idx])
    if kind == "school":
        names = "SD Negeri " + pd.Series(number + 1).astype(str) + " " + base
    else:
        names = _numbered(prefix, base, number, always=True)
    return _frame(kind, lon, lat, names)


def _water_points(area: DemoArea, vtab: pd.DataFrame, travel: np.ndarray,
                  rng: np.random.Generator) -> gpd.GeoDataFrame:
    total = float(area.population[area.in_province].sum())
    n = max(int(round(total / 2500.0)), 1)
    weights = area.population * np.exp(-travel / 60.0)
    lon, lat, vil = sample_points(area, n, rng, weights=weights)
    order = np.lexsort((lat, lon, vil))
    lon, lat, vil = lon[order], lat[order], vil[order]
    number = pd.Series(vil).groupby(vil).cumcount().to_numpy()
    base = pd.Series(vtab["village_name"].to_numpy()[vil])
    return _frame("water_point", lon, lat, _numbered("Sarana Air Bersih ", base, number,
                                                     always=False))


def _with_ids(frames: list[gpd.GeoDataFrame], province: str, *,
              start: dict[str, int] | None = None) -> gpd.GeoDataFrame:
    out = pd.concat(frames, ignore_index=True)
    seq = out.groupby("type", sort=False).cumcount().to_numpy() + 1
    offset = out["type"].map(start or {}).fillna(0).astype(np.int64).to_numpy()
    abbr = out["type"].map(_ABBR).fillna("OTH")
    out["facility_id"] = (f"SYN-F{province}-" + abbr + "-"
                          + pd.Series(seq + offset).astype(str).str.zfill(5))
    return gpd.GeoDataFrame(out[_COLUMNS], geometry="geometry", crs=WGS84)


def make_facilities(area: DemoArea, travel: np.ndarray, rng: np.random.Generator
                    ) -> gpd.GeoDataFrame:
    """Return the year-1 synthetic facilities of the province.

    Parameters
    ----------
    area
        The study area.
    travel
        Travel time to the nearest town (minutes), grid-shaped.
    rng
        Random generator.

    Returns
    -------
    geopandas.GeoDataFrame
        ``facility_id, type, name, geometry`` (points, EPSG:4326), ordered by type.
    """
    vtab = village_table(area, travel)
    frames = [
        _puskesmas(area, vtab, rng),
        _per_village("posyandu", area, vtab, rng, persons_per=1100.0, coverage=0.97,
                     remote_loss=0.55, prefix="Posyandu "),
        _per_village("school", area, vtab, rng, persons_per=1000.0, coverage=0.95,
                     remote_loss=0.6, prefix="SD Negeri "),
        _water_points(area, vtab, travel, rng),
    ]
    fac = _with_ids(frames, area.province)
    logger.info("facilities: %s", fac["type"].value_counts().to_dict())
    return fac


def choose_pockets(area: DemoArea, travel: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Choose the planted pocket centres: remote, populated pixels of the pocket regencies.

    Returns
    -------
    pandas.DataFrame
        ``pocket_id, regency_code, regency_name, lon, lat, travel_min, intervention``
        (``intervention`` marks the pockets that receive new facilities in year 2).
    """
    regs = area.regencies
    kab = regs[regs["adm2_type"].astype(str) != "Kota"]
    d_reg = np.concatenate([[""], area.districts["regency_code"].astype(str).to_numpy()])
    pix_reg = d_reg[area.district_id]
    pop = area.population
    reachable = travel < UNREACHABLE_MINUTES
    codes = [c for c in POCKET_REGENCIES.get(area.province, ()) if c in set(kab["regency_code"])]
    if not codes:
        med = {c: float(np.median(travel[(pix_reg == c) & (pop >= 15) & reachable]))
               for c in kab["regency_code"].astype(str) if ((pix_reg == c) & (pop >= 15)).any()}
        codes = sorted(med, key=lambda c: (-med[c], c))[:4]
    rows = []
    for i, code in enumerate(codes):
        cand = np.flatnonzero(((pix_reg == code) & (pop >= 15) & reachable).ravel())
        if cand.size == 0:
            continue
        t = travel.ravel()[cand]
        cand = cand[t >= np.quantile(t, 0.8)]
        w = pop.ravel()[cand].astype(np.float64)
        pick = cand[rng.choice(cand.size, p=w / w.sum())]
        row, col = divmod(int(pick), area.shape[1])
        lon, lat = area.pixel_centres(np.array([row]), np.array([col]))
        name = regs.loc[regs["regency_code"] == code, "regency_name"].iloc[0]
        rows.append({"pocket_id": i + 1, "regency_code": code, "regency_name": str(name),
                     "lon": round(float(lon[0]), 6), "lat": round(float(lat[0]), 6),
                     "travel_min": round(float(travel[row, col]), 1),
                     "intervention": i < INTERVENTION_POCKETS})
    logger.info("pockets: %s", [r["regency_name"] for r in rows])
    return pd.DataFrame(rows)


def new_facilities(area: DemoArea, facilities: gpd.GeoDataFrame, pockets: pd.DataFrame,
                   rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Return the follow-up year's new facilities, planted near the intervention pockets.

    Each intervention pocket gets ``NEW_PER_POCKET`` facilities on populated pixels within
    10 km of its centre. Ids continue the year-1 numbering of each type.
    """
    frames = []
    rows, cols = np.indices(area.shape)
    plon, plat = area.pixel_centres(rows.ravel(), cols.ravel())
    for pocket in pockets[pockets["intervention"]].itertuples():
        dist, _ = area.nearest_m(plon, plat, np.array([pocket.lon]), np.array([pocket.lat]))
        weights = area.population * (dist.reshape(area.shape) <= 10_000)
        for kind, n in NEW_PER_POCKET.items():
            lon, lat, _ = sample_points(area, n, rng, weights=weights)
            label = "Puskesmas Pembantu" if kind == "puskesmas" else {
                "posyandu": "Posyandu", "school": "SD Negeri", "water_point": "Sarana Air Bersih",
            }[kind]
            names = pd.Series([f"{label} Baru {pocket.regency_name} {k + 1}" for k in range(n)])
            frames.append(_frame(kind, lon, lat, names))
    if not frames:
        return gpd.GeoDataFrame(columns=_COLUMNS, geometry="geometry", crs=WGS84)
    start = facilities["type"].value_counts().to_dict()
    return _with_ids(frames, area.province, start=start)
