"""Synthetic P3KE demo data: households, facilities, friction, plus the real population grid.

:func:`make_demo` writes a complete, deterministic demo data set for one Kalimantan
province: a household register (desil 1-4, deprivations, coordinates and village
codes, with realistic blanks and a few bad rows), facilities, a friction surface and
the bundled GHS-POP population raster clipped to the province. Everything except the
population raster and the administrative boundaries is SYNTHETIC
(:data:`kantong.engine.constants.SYNTHETIC_LABEL`). The model is documented in
``data/SYNTHETIC.md``; the stages live in ``engine/demo_*.py``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kantong.engine import __version__
from kantong.engine.atomic import write_json, write_text
from kantong.engine.constants import SYNTHETIC_LABEL
from kantong.engine.demo.facilities import choose_pockets, make_facilities, new_facilities
from kantong.engine.demo.friction import FRICTION_NODATA, friction_surface, travel_minutes
from kantong.engine.demo.households import (
    Context,
    draw_households,
    follow_up_households,
    village_effects,
)
from kantong.engine.demo.io import (
    write_facilities_geojson,
    write_geotiff,
    write_register_csv,
    write_register_parquet,
)
from kantong.engine.demo.register import household_ids, register_table
from kantong.engine.demo.report import file_entries, readme_text, register_summary
from kantong.engine.demo.space import DemoArea, load_demo_area
from kantong.engine.errors import ConfigError
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Version of the synthetic data model (bump when the generated data changes).
DEMO_VERSION = "1.1"  # 1.1: friction from real rivers + roads + land cover (issue 14)
DEFAULT_PROVINCE = "61"
DEFAULT_SEED = 42
#: P3KE households of Kalimantan Barat (bottom 40 % of ~1.5 M households, rounded);
#: other provinces scale by their population.
REFERENCE_HOUSEHOLDS = 500_000
#: Target share of the province population in desil-1 households.
TARGET_EXTREME_RATE = {"61": 0.008}
DEFAULT_TARGET_EXTREME_RATE = 0.01
FORMATS = ("csv", "parquet")

HOUSEHOLDS_STEM = "households_synthetic"
FACILITIES_FILE = "facilities_synthetic.geojson"
FACILITIES_YEAR2_FILE = "facilities_synthetic_year2.geojson"
FRICTION_FILE = "friction_synthetic.tif"
POPULATION_FILE = "population_ghspop.tif"
METADATA_FILE = "metadata.json"
README_FILE = "README.txt"
_STREAMS = ("terrain", "facilities", "pockets", "village_effects", "households", "register",
            "follow_up", "register_year2")


@dataclass(frozen=True)
class DemoPaths:
    """Paths and headline counts of a written demo data set.

    ``households_year2``, ``facilities_year2``, ``n_households_year2`` and
    ``extreme_rate_year2`` are ``None`` unless the follow-up year was requested.
    ``extreme_rate`` is desil-1 persons / represented province population.
    """

    out_dir: Path
    households: Path
    facilities: Path
    friction: Path
    population: Path
    metadata: Path
    readme: Path
    province: str
    seed: int
    n_households: int
    n_facilities: int
    extreme_rate: float
    households_year2: Path | None = None
    facilities_year2: Path | None = None
    n_households_year2: int | None = None
    extreme_rate_year2: float | None = None


def province_population(province: str) -> int:
    """Return the province population (sum of regency ``penduduk_kemendagri_2025``)."""
    code = boundaries.check_province(province)
    regs = boundaries.regencies()
    return int(regs.loc[regs["province_code"] == code, "penduduk_kemendagri_2025"].sum())


def default_households(province: str) -> int:
    """Return the realistic P3KE household count of a province (61: 500,000).

    Other provinces scale Kalimantan Barat's 500,000 by population, rounded to 1,000.
    """
    share = province_population(province) / province_population("61")
    return int(round(REFERENCE_HOUSEHOLDS * share, -3))


def target_extreme_rate(province: str) -> float:
    """Return the calibration target: desil-1 persons / province population.

    Kalimantan Barat: 0.8 % (published 0.57-0.99 %); elsewhere 1 %.
    """
    return TARGET_EXTREME_RATE.get(boundaries.check_province(province),
                                   DEFAULT_TARGET_EXTREME_RATE)


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.Generator(np.random.PCG64(child))
            for name, child in zip(_STREAMS, children, strict=True)}


def _context(area: DemoArea, travel: np.ndarray, facilities: pd.DataFrame,
             pockets: pd.DataFrame, effects: np.ndarray) -> Context:
    def lonlat(kind: str) -> tuple[np.ndarray, np.ndarray]:
        sel = facilities[facilities["type"] == kind]
        return sel.geometry.x.to_numpy(), sel.geometry.y.to_numpy()

    return Context(area=area, travel=travel, puskesmas=lonlat("puskesmas"),
                   water=lonlat("water_point"), pockets=pockets, village_effect=effects)


def _check(province: str | int, households: int | None, seed: int, fmt: str) -> tuple[str, int]:
    code = boundaries.check_province(province)
    n = default_households(code) if households is None else int(households)
    if n < 1:
        raise ConfigError(f"demo-data: households must be >= 1, got {households}")
    if n > 20_000_000:
        raise ConfigError(f"demo-data: households must be <= 20,000,000, got {households}")
    if int(seed) < 0:
        raise ConfigError(f"demo-data: seed must be >= 0, got {seed}")
    if fmt not in FORMATS:
        raise ConfigError(f"demo-data: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return code, n


def _write_register(table: pd.DataFrame, path: Path, fmt: str, meta: dict[str, Any]) -> Path:
    if fmt == "parquet":
        return write_register_parquet(table, path, meta)
    return write_register_csv(table, path)


def make_demo(out_dir: str | Path, *, province: str | int = DEFAULT_PROVINCE,
              households: int | None = None, seed: int = DEFAULT_SEED, follow_up: bool = False,
              fmt: str = "csv", clean: bool = False) -> DemoPaths:
    """Write a synthetic P3KE-style demo data set for one province.

    Parameters
    ----------
    out_dir
        Output folder (created if needed); each file is written atomically.
    province
        BPS province code, ``"61"`` (Kalimantan Barat) to ``"65"``.
    households
        Register size; default :func:`default_households` (500,000 for 61).
    seed
        Seed of every random stream: the same arguments give the same bytes.
    follow_up
        Also write the next-year register and facilities (``*_year2`` files).
    fmt
        ``"csv"`` or ``"parquet"`` for the register.
    clean
        Leave out the deliberately bad rows (about 0.1 %).

    Returns
    -------
    DemoPaths
        The written paths and headline counts.

    Examples
    --------
    >>> paths = make_demo("demo61", households=5000)  # doctest: +SKIP
    >>> paths.extreme_rate  # doctest: +SKIP
    0.008
    """
    t0 = time.perf_counter()
    code, n = _check(province, households, seed, fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = _rngs(int(seed))
    area = load_demo_area(code)
    population = province_population(code)
    represented = default_households(code)
    weight = represented / n
    target_rate = target_extreme_rate(code)
    target_persons = target_rate * population / weight

    friction = friction_surface(area, rng["terrain"])
    towns = area.towns
    travel = travel_minutes(area, friction, towns["lon"].to_numpy(), towns["lat"].to_numpy())
    facilities = make_facilities(area, travel, rng["facilities"])
    pockets = choose_pockets(area, travel, rng["pockets"])
    effects = village_effects(len(area.villages), rng["village_effects"])
    ctx = _context(area, travel, facilities, pockets, effects)
    hh, thresholds = draw_households(ctx, n, rng["households"], target_persons=target_persons)
    hh["household_id"] = household_ids(code, np.arange(1, n + 1))
    table, artefacts = register_table(area, hh, rng["register"], clean=clean)
    logger.info("demo model ready in %.1f s", time.perf_counter() - t0)

    base = {"label": SYNTHETIC_LABEL, "generator": "kantong demo-data",
            "generator_version": f"{__version__}/demo-{DEMO_VERSION}", "seed": int(seed),
            "province": code, "province_name": area.province_name}
    ext = "parquet" if fmt == "parquet" else "csv"
    paths: dict[str, Path] = {
        "households": out / f"{HOUSEHOLDS_STEM}.{ext}", "facilities": out / FACILITIES_FILE,
        "friction": out / FRICTION_FILE, "population": out / POPULATION_FILE,
    }
    summary = register_summary(area, hh, population=population, weight=weight)
    _write_register(table, paths["households"], fmt, {**base, "year": 1, "weight": weight})
    write_facilities_geojson(facilities, paths["facilities"], name="facilities_synthetic",
                             description=SYNTHETIC_LABEL,
                             extra={"kantong": {**base, "year": 1}})
    tags = {"label": SYNTHETIC_LABEL, "seed": str(seed), "province": code,
            "generator_version": base["generator_version"]}
    write_geotiff(friction, paths["friction"], transform=area.transform, nodata=FRICTION_NODATA,
                  tags={**tags, "units": "minutes per metre",
                        "nodata_meaning": "sea or outside Kalimantan (impassable)"},
                  description="friction (minutes per metre), SYNTHETIC")
    write_geotiff(area.population, paths["population"], transform=area.transform, nodata=None,
                  tags={"source": "GHS-POP, European Commission JRC, 30 arc-second grid "
                                  "(REAL data, not synthetic), clipped to the province bounds",
                        "units": "persons per pixel", "province": code},
                  description="population (persons per pixel), GHS-POP")

    meta: dict[str, Any] = {
        **base, "clean": bool(clean), "format": fmt,
        "households": n, "represented_households": represented, "weight": weight,
        "province_population": population, "target_extreme_rate": target_rate,
        "extreme_rate": summary["extreme_rate"], "year1": summary,
        "register_artefacts": artefacts,
        "facilities": {str(k): int(v)
                       for k, v in facilities["type"].value_counts().sort_index().items()},
        "pockets": pockets.to_dict(orient="records"),
        "real_data": ["population_ghspop.tif (GHS-POP)", "village codes and boundaries (BPS 2020, "
                      "Kemendagri 2025)", "town locations (GeoNames)"],
    }
    y2: dict[str, Any] = {}
    if follow_up:
        y2 = _follow_up(area, ctx, hh, facilities, pockets, thresholds, rng, out=out, ext=ext,
                        fmt=fmt, clean=clean, base=base, population=population, weight=weight,
                        n=n)
        meta["follow_up"] = y2["meta"]
        paths.update(y2["paths"])
    write_text(out / README_FILE, readme_text(meta))
    paths["readme"] = out / README_FILE
    meta["files"] = file_entries([p for p in paths.values()])
    write_json(out / METADATA_FILE, meta)
    logger.info("demo data for %s written to %s in %.1f s", code, out, time.perf_counter() - t0)
    return DemoPaths(
        out_dir=out, households=paths["households"], facilities=paths["facilities"],
        friction=paths["friction"], population=paths["population"],
        metadata=out / METADATA_FILE, readme=paths["readme"], province=code, seed=int(seed),
        n_households=n, n_facilities=len(facilities), extreme_rate=summary["extreme_rate"],
        households_year2=paths.get("households_year2"),
        facilities_year2=paths.get("facilities_year2"),
        n_households_year2=y2["meta"]["households"] if y2 else None,
        extreme_rate_year2=y2["meta"]["extreme_rate"] if y2 else None,
    )


def _follow_up(area: DemoArea, ctx: Context, hh: pd.DataFrame, facilities: pd.DataFrame,
               pockets: pd.DataFrame, thresholds: tuple[float, float, float],
               rng: dict[str, np.random.Generator], *, out: Path, ext: str, fmt: str,
               clean: bool, base: dict[str, Any], population: int, weight: float,
               n: int) -> dict[str, Any]:
    """Generate and write the follow-up year; return its paths and metadata."""
    new = new_facilities(area, facilities, pockets, rng["follow_up"])
    fac2 = pd.concat([facilities, new], ignore_index=True)
    ctx2 = _context(area, ctx.travel, fac2, pockets, ctx.village_effect)
    is_water = new["type"].to_numpy() == "water_point"
    sites = (new.geometry.x.to_numpy(), new.geometry.y.to_numpy(),
             new.geometry.x.to_numpy()[is_water], new.geometry.y.to_numpy()[is_water])
    stay, entrants = follow_up_households(ctx2, hh, sites, thresholds, rng["follow_up"])
    entrants["household_id"] = household_ids(area.province, np.arange(n + 1, n + 1 + len(entrants)))
    hh2 = pd.concat([stay, entrants], ignore_index=True)
    table2, artefacts2 = register_table(area, hh2, rng["register_year2"], clean=clean)
    summary2 = register_summary(area, hh2, population=population, weight=weight)
    paths = {"households_year2": out / f"{HOUSEHOLDS_STEM}_year2.{ext}",
             "facilities_year2": out / FACILITIES_YEAR2_FILE}
    _write_register(table2, paths["households_year2"], fmt, {**base, "year": 2, "weight": weight})
    write_facilities_geojson(fac2, paths["facilities_year2"],
                             name="facilities_synthetic_year2", description=SYNTHETIC_LABEL,
                             extra={"kantong": {**base, "year": 2}})
    new_list = [{"facility_id": r.facility_id, "type": r.type, "name": r.name,
                 "lon": round(float(r.geometry.x), 6), "lat": round(float(r.geometry.y), 6)}
                for r in new.itertuples()]
    near = _near_new_change(area, hh, hh2, new)
    meta = {"households": len(hh2), "stayed": len(stay), "left": n - len(stay),
            "fell_in": len(entrants), "extreme_rate": summary2["extreme_rate"],
            "year2": summary2, "register_artefacts": artefacts2, "new_facilities": new_list,
            "near_new_facilities": near}
    return {"paths": paths, "meta": meta}


def _near_new_change(area: DemoArea, hh: pd.DataFrame, hh2: pd.DataFrame,
                     new: pd.DataFrame, radius_m: float = 10_000.0) -> dict[str, Any]:
    """Desil-1 and water shares within ``radius_m`` of a new facility, year 1 vs year 2."""
    nx, ny = new.geometry.x.to_numpy(), new.geometry.y.to_numpy()
    out: dict[str, Any] = {"radius_km": radius_m / 1000.0}
    for year, frame in (("year1", hh), ("year2", hh2)):
        d, _ = area.nearest_m(frame["lon"].to_numpy(), frame["lat"].to_numpy(), nx, ny)
        near = frame[d <= radius_m]
        out[year] = {
            "households": len(near),
            "share_desil_1": round(float((near["desil"] == 1).mean()), 4) if len(near) else None,
            "share_water_improved": (round(float(near["water_improved"].mean()), 4)
                                     if len(near) else None),
            "share_sanitation_improved": (round(float(near["sanitation_improved"].mean()), 4)
                                          if len(near) else None),
        }
    return out


__all__ = [
    "DemoPaths", "make_demo", "default_households", "target_extreme_rate", "province_population",
    "DEFAULT_SEED", "DEFAULT_PROVINCE", "FORMATS", "DEMO_VERSION",
]
