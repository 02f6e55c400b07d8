"""Large synthetic registers: several provinces, millions of households, Parquet partitions.

:func:`make_partitioned_demo` writes ``households_synthetic/part-00000.parquet ...`` for
one or more Kalimantan provinces with bounded memory, for scale tests of ``kantong
build`` (local streaming and the Dask backend):

* each province's model (friction, travel times, facilities, pockets, village effects) is
  built once, with random streams derived from ``(seed, province)``;
* its households are drawn in chunks of at most :data:`CHUNK_ROWS` (random stream
  ``(seed, province, chunk)``), each calibrated to its share of the desil-1 target, so a
  chunk is a random sample of the province and only one chunk is in memory at a time;
* chunks are streamed, in (province, chunk) order, into ``partitions`` files of nearly
  equal row counts, as row groups of at most :data:`CHUNK_ROWS` rows. The rows do not
  depend on ``partitions``: the same seed gives the same rows in the same order.

Unless ``clean``, every chunk carries the usual planted problems
(:mod:`kantong.engine.demo.register`), and every chunk after a province's first re-uses a few ids
of the chunk before it (:data:`CROSS_DUPLICATE_SHARE`): duplicates that only a global
check across partitions finds.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kantong.engine import __version__
from kantong.engine.atomic import atomic_dir, write_json, write_text
from kantong.engine.constants import SYNTHETIC_LABEL
from kantong.engine.demo.facilities import choose_pockets, make_facilities
from kantong.engine.demo.friction import FRICTION_NODATA, friction_surface, travel_minutes
from kantong.engine.demo.households import draw_households, village_effects
from kantong.engine.demo.io import register_arrow, write_facilities_geojson, write_geotiff
from kantong.engine.demo.register import BAD_KINDS, household_ids, register_table
from kantong.engine.demo.space import load_demo_area
from kantong.engine.errors import ConfigError
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Most households drawn at once (and most rows per Parquet row group).
CHUNK_ROWS = 1_000_000
#: Share of a chunk's rows given the id of a row of the province's previous chunk.
CROSS_DUPLICATE_SHARE = 0.00005
#: Largest register written.
MAX_HOUSEHOLDS = 50_000_000
PARTS_DIR = "households_synthetic"
ALL_PROVINCES = ("61", "62", "63", "64", "65")


@dataclass(frozen=True)
class PartitionedDemo:
    """What :func:`make_partitioned_demo` wrote."""

    out_dir: Path
    parts: list[Path]
    facilities: Path
    metadata: Path
    provinces: tuple[str, ...]
    n_households: int
    n_facilities: int
    seed: int
    friction: Path | None = None
    population: Path | None = None


def parse_provinces(value: str | Sequence[str]) -> tuple[str, ...]:
    """Return sorted, distinct BPS province codes from ``"all"``, ``"61,62"`` or a sequence.

    Raises
    ------
    InputError
        A code is not a Kalimantan province.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items if str(v).strip()]
    if [v.lower() for v in items] == ["all"]:
        return ALL_PROVINCES
    codes = tuple(sorted({boundaries.check_province(v) for v in items}))
    if not codes:
        raise ConfigError("demo-data: no province given")
    return codes


def split_households(total: int, provinces: Sequence[str]) -> dict[str, int]:
    """Share ``total`` households among provinces in proportion to their P3KE size.

    Largest remainders get the leftover households, so the counts add up to ``total``.
    """
    from kantong.engine.demo.make import default_households

    weights = np.array([default_households(p) for p in provinces], dtype=np.float64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return {p: int(c) for p, c in zip(provinces, counts, strict=True)}


def _chunk_sizes(n: int) -> list[int]:
    k = max(1, math.ceil(n / CHUNK_ROWS))
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


@dataclass
class _Province:
    code: str
    area: Any
    ctx: Any
    facilities: pd.DataFrame
    friction: np.ndarray
    target_persons_per_household: float
    weight: float


def _province_model(code: str, n: int, seed: int) -> _Province:
    from kantong.engine.demo.make import (
        _context,
        default_households,
        province_population,
        target_extreme_rate,
    )

    area = load_demo_area(code)
    friction = friction_surface(area, _rng(seed, int(code), 0))
    towns = area.towns
    travel = travel_minutes(area, friction, towns["lon"].to_numpy(), towns["lat"].to_numpy())
    facilities = make_facilities(area, travel, _rng(seed, int(code), 1))
    pockets = choose_pockets(area, travel, _rng(seed, int(code), 2))
    effects = village_effects(len(area.villages), _rng(seed, int(code), 3))
    ctx = _context(area, travel, facilities, pockets, effects)
    represented = default_households(code)
    per_household = target_extreme_rate(code) * province_population(code) / represented
    return _Province(code=code, area=area, ctx=ctx, facilities=facilities, friction=friction,
                     target_persons_per_household=per_household, weight=represented / n)


def _cross_duplicates(table: pd.DataFrame, previous: np.ndarray, rng: np.random.Generator
                      ) -> int:
    """Give a few clean rows of ``table`` ids of the previous chunk; return how many."""
    k = int(round(CROSS_DUPLICATE_SHARE * len(table)))
    if k == 0 or previous.size == 0:
        return 0
    lat = table["lat"].to_numpy(dtype=np.float64)
    clean = (table["desil"].between(2, 4).to_numpy()
             & table["lon_text"].isna().to_numpy() & table["lat_text"].isna().to_numpy()
             & np.isfinite(lat) & (np.abs(lat) <= 90)
             & ~table["household_id"].duplicated(keep=False).to_numpy())
    rows = np.flatnonzero(clean)
    k = min(k, rows.size, previous.size)
    target = np.sort(rng.choice(rows, size=k, replace=False))
    donor = rng.choice(previous, size=k, replace=False)
    ids = table["household_id"].to_numpy(dtype=object).copy()
    ids[target] = donor
    table["household_id"] = ids
    return k


def _chunks(provinces: dict[str, int], seed: int, clean: bool, stats: dict[str, Any],
            models: dict[str, _Province]) -> Iterator[tuple[str, pa.Table]]:
    """Yield ``(province, register chunk as Arrow)`` in output order.

    Fills ``stats`` (counts per province) and ``models`` (the model of each province,
    without its study area grids when several provinces are written).
    """
    for code, n in provinces.items():
        if n == 0:
            continue
        t0 = time.perf_counter()
        model = _province_model(code, n, seed)
        st = stats.setdefault(code, {"households": 0, "extreme_households": 0,
                                     "extreme_persons": 0, "persons": 0,
                                     "artefacts": {k: 0 for k in (*BAD_KINDS,
                                                                  "blank_coordinates",
                                                                  "kemendagri_codes",
                                                                  "cross_partition_duplicates")},
                                     "facilities": len(model.facilities),
                                     "weight": model.weight})
        models[code] = model
        logger.info("province %s model ready in %.1f s", code, time.perf_counter() - t0)
        previous = np.empty(0, dtype=object)
        start = 0
        for c, size in enumerate(_chunk_sizes(n)):
            rng = _rng(seed, int(code), 100 + c)
            hh, _ = draw_households(model.ctx, size, rng,
                                    target_persons=model.target_persons_per_household * size)
            hh["household_id"] = household_ids(code, np.arange(start + 1, start + size + 1))
            table, art = register_table(model.area, hh, rng, clean=clean)
            cross = 0 if clean else _cross_duplicates(table, previous, rng)
            d1 = hh["desil"].to_numpy() == 1
            members = hh["members"].to_numpy()
            st["households"] += size
            st["persons"] += int(members.sum())
            st["extreme_households"] += int(d1.sum())
            st["extreme_persons"] += int(members[d1].sum())
            for key, value in art.items():
                st["artefacts"][key] += int(value)
            st["artefacts"]["cross_partition_duplicates"] += cross
            previous = hh["household_id"].to_numpy(dtype=object)
            start += size
            del hh
            yield code, register_arrow(table)
        if len(provinces) > 1:  # keep the facilities only: the grids are large
            models[code] = _Province(code, None, None, model.facilities, np.empty((0, 0)),
                                     model.target_persons_per_household, model.weight)


def make_partitioned_demo(out_dir: str | Path, *, provinces: str | Sequence[str] = "all",
                          households: int | None = None, partitions: int | None = None,
                          seed: int = 42, clean: bool = False) -> PartitionedDemo:
    """Write a large synthetic register as Parquet partitions, with bounded memory.

    Parameters
    ----------
    out_dir
        Output folder; gets ``households_synthetic/part-*.parquet``,
        ``facilities_synthetic.geojson``, ``metadata.json``, ``README.txt`` (and, for a
        single province, ``friction_synthetic.tif`` and ``population_ghspop.tif``).
    provinces
        ``"all"``, a code, ``"61,62"`` or a sequence of codes.
    households
        Total households (default: the realistic P3KE size of each province), shared
        among provinces in proportion to their P3KE size.
    partitions
        Number of files (default: one per started million households, at least one per
        province).
    seed
        Seed of every random stream.
    clean
        Leave out the planted bad rows and cross-partition duplicates.

    Returns
    -------
    PartitionedDemo
        Paths and counts.

    Raises
    ------
    ConfigError, InputError
        Bad province, size or partition count.

    Examples
    --------
    >>> demo = make_partitioned_demo("/tmp/kal", provinces="all",
    ...                              households=10_000_000, partitions=10)  # doctest: +SKIP
    >>> len(demo.parts)  # doctest: +SKIP
    10
    """
    from kantong.engine.demo.make import DEMO_VERSION, default_households

    t0 = time.perf_counter()
    codes = parse_provinces(provinces)
    total = sum(default_households(c) for c in codes) if households is None else int(households)
    if not 1 <= total <= MAX_HOUSEHOLDS:
        raise ConfigError(f"demo-data: households must be 1 to {MAX_HOUSEHOLDS:,}, got {total}")
    if int(seed) < 0:
        raise ConfigError(f"demo-data: seed must be >= 0, got {seed}")
    n_parts = (max(len(codes), math.ceil(total / CHUNK_ROWS)) if partitions is None
               else int(partitions))
    if not 1 <= n_parts <= total:
        raise ConfigError(f"demo-data: partitions must be 1 to {total:,} (the households), "
                          f"got {partitions}")
    shares = split_households(total, codes)
    bounds = [total * k // n_parts for k in range(n_parts + 1)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = {"label": SYNTHETIC_LABEL, "generator": "kantong demo-data",
            "generator_version": f"{__version__}/demo-{DEMO_VERSION}", "seed": int(seed),
            "provinces": list(codes), "clean": bool(clean)}
    stats: dict[str, Any] = {}
    models: dict[str, _Province] = {}
    parts: list[Path] = []
    with atomic_dir(out / PARTS_DIR) as tmp:
        writer: pq.ParquetWriter | None = None
        k = written = 0
        for _code, chunk in _chunks(shares, int(seed), clean, stats, models):
            offset = 0
            while offset < chunk.num_rows:
                if writer is None:
                    name = f"part-{k:05d}.parquet"
                    meta = json.dumps({**base, "partition": k, "partitions": n_parts},
                                      sort_keys=True)
                    writer = pq.ParquetWriter(tmp / name,
                                              chunk.schema.with_metadata({"kantong": meta}),
                                              compression="zstd")
                    parts.append(out / PARTS_DIR / name)
                take = min(chunk.num_rows - offset, bounds[k + 1] - written)
                writer.write_table(chunk.slice(offset, take), row_group_size=CHUNK_ROWS)
                offset += take
                written += take
                if written == bounds[k + 1]:
                    writer.close()
                    writer, k = None, k + 1
        if writer is not None:  # pragma: no cover - the bounds always close the last file
            writer.close()
    facilities = pd.concat([m.facilities for m in models.values()], ignore_index=True)
    fac_path = write_facilities_geojson(facilities, out / "facilities_synthetic.geojson",
                                        name="facilities_synthetic",
                                        description=SYNTHETIC_LABEL,
                                        extra={"kantong": {**base, "year": 1}})
    friction_path = population_path = None
    if len(codes) == 1:
        model = models[codes[0]]
        friction_path = write_geotiff(
            model.friction, out / "friction_synthetic.tif", transform=model.area.transform,
            nodata=FRICTION_NODATA, tags={"label": SYNTHETIC_LABEL, "seed": str(seed),
                                          "province": codes[0], "units": "minutes per metre"},
            description="friction (minutes per metre), SYNTHETIC")
        population_path = write_geotiff(
            model.area.population, out / "population_ghspop.tif",
            transform=model.area.transform, nodata=None,
            tags={"source": "GHS-POP (REAL data), clipped to the province bounds",
                  "units": "persons per pixel", "province": codes[0]},
            description="population (persons per pixel), GHS-POP")
    meta_doc = {**base, "format": "parquet", "households": total, "partitions": n_parts,
                "rows_per_row_group_max": CHUNK_ROWS, "province_households": shares,
                "by_province": stats,
                "facilities": {str(k): int(v) for k, v in
                               facilities["type"].value_counts().sort_index().items()},
                "files": [p.relative_to(out).as_posix() for p in parts]}
    write_json(out / "metadata.json", meta_doc)
    write_text(out / "README.txt", _readme(meta_doc))
    logger.info("partitioned demo: %d households in %d files written to %s in %.1f s",
                total, len(parts), out, time.perf_counter() - t0)
    return PartitionedDemo(out_dir=out, parts=parts, facilities=fac_path,
                           metadata=out / "metadata.json", provinces=codes,
                           n_households=total, n_facilities=len(facilities), seed=int(seed),
                           friction=friction_path, population=population_path)


def _readme(meta: dict[str, Any]) -> str:
    lines = [
        meta["label"], "=" * len(meta["label"]), "",
        "EVERYTHING IN THIS FOLDER IS SYNTHETIC except the administrative codes it refers to",
        "(and population_ghspop.tif, the real GHS-POP grid, when present). The households are",
        "invented; they are not real P3KE data and describe no person.", "",
        f"provinces:    {', '.join(meta['provinces'])}",
        f"households:   {meta['households']:,} in {meta['partitions']} Parquet files "
        f"({PARTS_DIR}/part-*.parquet, row groups of at most {CHUNK_ROWS:,} rows)",
        f"seed:         {meta['seed']}",
        f"generator:    {meta['generator']} {meta['generator_version']}",
        f"bad rows:     {'none (--clean)' if meta['clean'] else 'planted, see metadata.json'}",
        "", "Build it with", "",
        f"  kantong build --households {PARTS_DIR} --facilities facilities_synthetic.geojson "
        "--out run", f"  kantong build --households {PARTS_DIR} --backend dask --out run", "",
    ]
    return "\n".join(lines)


__all__ = ["ALL_PROVINCES", "CHUNK_ROWS", "PartitionedDemo", "make_partitioned_demo",
           "parse_provinces", "split_households"]
