"""Synthetic P3KE households: placement, welfare deciles, deprivations and the follow-up year.

The model (see data/SYNTHETIC.md):

* a remoteness index ``r = 0.55 log(1 + t/30) + 0.45 log(1 + d/5)`` from the travel time
  ``t`` (minutes) to the nearest town over the friction surface and the distance ``d``
  (km) to the nearest puskesmas;
* a latent poverty score ``s = 1.5 r + pocket + Logistic(0, 0.8)``, where ``pocket`` is the
  sum of Gaussian bumps (``POCKET_STRENGTH``, sigma ``POCKET_SIGMA_KM``) at the planted
  pocket centres;
* desil 1 = the highest scores until desil-1 persons reach the calibration target;
  desil 2, 3, 4 = the following thirds;
* each deprivation is Bernoulli with a logit linear in ``r``, the desil, the pocket bump and
  a village random effect (so deprivations cluster by village).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kantong.engine.constants import DEPRIVATION_FIELDS
from kantong.engine.demo.facilities import POCKET_SIGMA_KM, POCKET_STRENGTH
from kantong.engine.demo.space import DemoArea, sample_points

logger = logging.getLogger(__name__)

#: Logit coefficients of each deprivation: intercept, remoteness, desil 1, (4 - desil) / 3,
#: pocket bump, log(1 + km to nearest water point / 3). The modelled event is "deprived".
_DEPRIVATION_MODEL: dict[str, tuple[float, float, float, float, float, float]] = {
    "water_improved": (-2.2, 0.55, 0.7, 0.5, 0.35, 0.45),
    "sanitation_improved": (-1.9, 0.65, 0.8, 0.5, 0.35, 0.0),
    "electricity": (-5.0, 1.25, 0.8, 0.3, 0.3, 0.0),
    "housing_adequate": (-1.5, 0.45, 1.0, 0.6, 0.25, 0.0),
    "child_out_of_school": (-3.4, 0.6, 0.9, 0.3, 0.25, 0.0),
    "receives_assistance": (0.2, 0.3, -1.2, -0.9, 0.0, 0.0),
}
_VILLAGE_EFFECT_SD = 0.5
_SCORE_SLOPE = 1.5
_NOISE_SCALE = 0.8
#: Drop of the latent score at a new facility (decays as exp(-km / 8)).
_NEW_FACILITY_EFFECT = 2.0
#: Year-to-year persistence of the latent score and the general improvement per year.
_PERSISTENCE = 0.95
_YEARLY_TREND = 0.1


@dataclass(frozen=True, eq=False)
class Context:
    """Everything a household's attributes depend on, besides its location.

    Attributes
    ----------
    area
        The study area.
    travel
        Grid-shaped travel minutes to the nearest town.
    puskesmas, water
        ``(lon, lat)`` arrays of the puskesmas and water points in force.
    pockets
        Pocket centres (``lon``, ``lat`` columns).
    village_effect
        ``(n_villages, n_deprivations)`` random effects on the deprivation logits.
    """

    area: DemoArea
    travel: np.ndarray
    puskesmas: tuple[np.ndarray, np.ndarray]
    water: tuple[np.ndarray, np.ndarray]
    pockets: pd.DataFrame
    village_effect: np.ndarray


def village_effects(n_villages: int, rng: np.random.Generator) -> np.ndarray:
    """Draw the village random effects of the deprivation logits."""
    return rng.normal(0.0, _VILLAGE_EFFECT_SD, size=(n_villages, len(DEPRIVATION_FIELDS)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def pocket_bump(ctx: Context, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return the summed Gaussian pocket bump (logit units) at each point."""
    out = np.zeros(len(lon))
    if ctx.pockets.empty:
        return out
    xy = ctx.area.to_metric(lon, lat)
    centres = ctx.area.to_metric(ctx.pockets["lon"].to_numpy(), ctx.pockets["lat"].to_numpy())
    for cx, cy in centres:
        d2 = ((xy[:, 0] - cx) ** 2 + (xy[:, 1] - cy) ** 2) / 1e6
        out += POCKET_STRENGTH * np.exp(-d2 / (2 * POCKET_SIGMA_KM**2))
    return out


def features(ctx: Context, lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    """Return remoteness features: ``travel_min, puskesmas_km, water_km, remoteness, pocket``."""
    row, col = ctx.area.pixel_of(lon, lat)
    travel = ctx.travel[row, col]
    pkm, _ = ctx.area.nearest_m(lon, lat, *ctx.puskesmas)
    wat, _ = ctx.area.nearest_m(lon, lat, *ctx.water)
    pkm_km, wat_km = pkm / 1000.0, wat / 1000.0
    remote = 0.55 * np.log1p(travel / 30.0) + 0.45 * np.log1p(pkm_km / 5.0)
    return pd.DataFrame({"travel_min": travel, "puskesmas_km": pkm_km, "water_km": wat_km,
                         "remoteness": remote, "pocket": pocket_bump(ctx, lon, lat)})


def draw_members(score_rank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Household size 1-9 (mean about 4), larger for poorer households (rank in [0, 1])."""
    return np.minimum(1 + rng.poisson(2.5 + 1.0 * score_rank), 9).astype(np.int64)


def assign_desil(score: np.ndarray, members: np.ndarray, target_persons: float
                 ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Rank by score: desil 1 until the persons target, then thirds for desil 2-4.

    Returns
    -------
    tuple
        Desil per household and the score thresholds ``(t1, t2, t3)``: a score at or
        above ``t1`` is desil 1, above ``t2`` desil 2, above ``t3`` desil 3, else desil 4.
    """
    n = len(score)
    order = np.argsort(-score, kind="stable")
    cum = np.cumsum(members[order])
    k1 = int(np.searchsorted(cum, target_persons, side="left"))
    if k1 < n and k1 > 0 and abs(cum[k1] - target_persons) < abs(cum[k1 - 1] - target_persons):
        k1 += 1
    k1 = min(max(k1, 1 if target_persons > 0 else 0), n)
    rest = n - k1
    k2, k3 = k1 + rest // 3, k1 + (2 * rest) // 3
    desil = np.empty(n, dtype=np.int64)
    desil[order[:k1]], desil[order[k1:k2]] = 1, 2
    desil[order[k2:k3]], desil[order[k3:]] = 3, 4
    s = score[order]

    def cut(k: int) -> float:
        if k <= 0:
            return float(s[0]) + 1.0
        if k >= n:
            return float(s[-1]) - 1.0
        return float((s[k - 1] + s[k]) / 2.0)

    return desil, (cut(k1), cut(k2), cut(k3))


def desil_from_thresholds(score: np.ndarray, thresholds: tuple[float, float, float]) -> np.ndarray:
    """Return the desil of scores given the thresholds of :func:`assign_desil`."""
    t1, t2, t3 = thresholds
    return np.select([score >= t1, score >= t2, score >= t3], [1, 2, 3], 4).astype(np.int64)


def draw_deprivations(ctx: Context, feats: pd.DataFrame, desil: np.ndarray, members: np.ndarray,
                      village: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Return the six register booleans (True = the field's value, not "deprived")."""
    out = {}
    d1 = (desil == 1).astype(np.float64)
    lower = (4 - desil) / 3.0
    for j, field in enumerate(DEPRIVATION_FIELDS):
        a, b_r, b_d1, b_low, b_pocket, b_water = _DEPRIVATION_MODEL[field]
        logit = (a + b_r * feats["remoteness"].to_numpy() + b_d1 * d1 + b_low * lower
                 + b_pocket * feats["pocket"].to_numpy()
                 + b_water * np.log1p(feats["water_km"].to_numpy() / 3.0)
                 + ctx.village_effect[village, j])
        if field == "child_out_of_school":
            logit = logit + 0.2 * (members - 4)
        deprived = rng.random(len(desil)) < _sigmoid(logit)
        # the register value: deprived means False, except child_out_of_school
        out[field] = deprived if field == "child_out_of_school" else ~deprived
    return pd.DataFrame(out)


def latent_score(feats: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Return the latent poverty score (higher = poorer)."""
    return (_SCORE_SLOPE * feats["remoteness"].to_numpy() + feats["pocket"].to_numpy()
            + rng.logistic(0.0, _NOISE_SCALE, size=len(feats)))


def draw_households(ctx: Context, n: int, rng: np.random.Generator, *, target_persons: float
                    ) -> tuple[pd.DataFrame, tuple[float, float, float]]:
    """Draw ``n`` year-1 households calibrated so desil-1 persons hit ``target_persons``.

    Returns
    -------
    tuple
        The internal household frame (``lon, lat, village, desil, members``, the six
        register booleans and the hidden model columns ``score``, ``remoteness``, ...)
        ordered by village then at random, and the desil score thresholds.
    """
    lon, lat, village = sample_points(ctx.area, n, rng)
    feats = features(ctx, lon, lat)
    score = latent_score(feats, rng)
    rank = np.argsort(np.argsort(score, kind="stable"), kind="stable") / max(n - 1, 1)
    members = draw_members(rank, rng)
    desil, thresholds = assign_desil(score, members, target_persons)
    deps = draw_deprivations(ctx, feats, desil, members, village, rng)
    df = pd.concat([pd.DataFrame({"lon": lon, "lat": lat, "village": village, "desil": desil,
                                  "members": members, "score": score}), deps, feats], axis=1)
    order = np.lexsort((rng.random(n), village))
    df = df.iloc[order].reset_index(drop=True)
    logger.info("households: %d, desil-1 %d (%d persons; target %.0f)", n,
                int((df["desil"] == 1).sum()), int(df.loc[df["desil"] == 1, "members"].sum()),
                target_persons)
    return df, thresholds


def follow_up_households(ctx2: Context, year1: pd.DataFrame, new_sites: tuple[np.ndarray, ...],
                         thresholds: tuple[float, float, float], rng: np.random.Generator
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Age the year-1 register by one year under the year-2 facilities.

    Parameters
    ----------
    ctx2
        Context with the year-2 facilities (year 1 plus the new ones).
    year1
        Internal year-1 frame from :func:`draw_households` (with ``household_id``).
    new_sites
        ``(lon_all, lat_all, lon_water, lat_water)`` of the new facilities.
    thresholds
        Year-1 desil score thresholds (the welfare cut-offs stay fixed).
    rng
        Random generator.

    Returns
    -------
    tuple of pandas.DataFrame
        Stayers (same ids; updated desil, members and booleans) and the new entrants
        (without ids).
    """
    n = len(year1)
    lon, lat = year1["lon"].to_numpy(), year1["lat"].to_numpy()
    feats2 = features(ctx2, lon, lat)
    lon_all, lat_all, lon_w, lat_w = new_sites
    d_new, _ = ctx2.area.nearest_m(lon, lat, lon_all, lat_all)
    d_wat, _ = ctx2.area.nearest_m(lon, lat, lon_w, lat_w)
    impact = np.exp(-d_new / 8000.0)
    impact_w = np.exp(-d_wat / 5000.0)

    # AR(1) around the year-1 mean: keeps the spread (and so the desil-1 tail) stable
    score1 = year1["score"].to_numpy()
    mean, spread = float(score1.mean()), float(score1.std())
    score2 = (mean + _PERSISTENCE * (score1 - mean)
              + rng.normal(0.0, np.sqrt(1.0 - _PERSISTENCE**2) * spread, size=n)
              + _SCORE_SLOPE * (feats2["remoteness"].to_numpy() - year1["remoteness"].to_numpy())
              - _NEW_FACILITY_EFFECT * impact - _YEARLY_TREND)
    exits = (score2 < np.quantile(year1["score"].to_numpy(), 0.05)) | (rng.random(n) < 0.015)
    stay = year1.copy()
    stay["desil"] = desil_from_thresholds(score2, thresholds)
    stay["score"] = score2
    for col in feats2.columns:
        stay[col] = feats2[col].to_numpy()
    step = rng.random(n)
    stay["members"] = np.clip(stay["members"].to_numpy() + (step < 0.05) - (step > 0.95), 1, 9)

    def improve(field: str, p_fix: np.ndarray, p_lose: float, good: bool = True) -> None:
        cur = stay[field].to_numpy().astype(bool)
        ok = cur if good else ~cur
        u = rng.random(n)
        ok = np.where(ok, u >= p_lose, u < p_fix)
        stay[field] = ok if good else ~ok

    improve("water_improved", 0.04 + 0.75 * impact_w, 0.01)
    improve("sanitation_improved", 0.04 + 0.5 * impact, 0.01)
    improve("electricity", 0.03 + 0.3 * impact, 0.005)
    improve("housing_adequate", 0.03 + 0.2 * impact, 0.01)
    improve("child_out_of_school", 0.2 + 0.4 * impact, 0.02, good=False)
    flip = rng.random(n) < 0.05
    stay["receives_assistance"] = np.where(flip, ~stay["receives_assistance"].to_numpy(),
                                           stay["receives_assistance"].to_numpy())
    stay = stay[~exits].reset_index(drop=True)

    n_new = int(exits.sum())
    lon_n, lat_n, vil_n = sample_points(ctx2.area, n_new, rng)
    feats_n = features(ctx2, lon_n, lat_n)
    score_n = latent_score(feats_n, rng)
    rank_n = np.searchsorted(np.sort(year1["score"].to_numpy()), score_n) / max(n, 1)
    members_n = draw_members(rank_n, rng)
    desil_n = desil_from_thresholds(score_n, thresholds)
    deps_n = draw_deprivations(ctx2, feats_n, desil_n, members_n, vil_n, rng)
    new = pd.concat([pd.DataFrame({"lon": lon_n, "lat": lat_n, "village": vil_n, "desil": desil_n,
                                   "members": members_n, "score": score_n}), deps_n, feats_n],
                    axis=1)
    new = new.iloc[np.lexsort((rng.random(n_new), vil_n))].reset_index(drop=True)
    logger.info("follow-up: %d stay, %d leave, %d fall in", len(stay), int(exits.sum()), n_new)
    return stay, new
