"""Factories for tiny, seeded, contract-compliant test data.

``make_households`` draws a synthetic accepted-household frame around a centre point with
planted poverty pockets; ``make_run`` aggregates it the naive way (pandas groupby, a test
oracle independent of ``kantong.engine.build.grid``) into a run directory as described in
docs/architecture.md, so that stages downstream of the build can be tested alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.transform import from_origin

from kantong.engine.constants import DEPRIVATIONS, EQUAL_AREA, FACILITY_TYPES, WGS84
from kantong.engine.inputs import boundaries

#: Inland Kalimantan Barat (Sanggau/Sekadau area), far from Pontianak.
DEFAULT_CENTRE = (0.05, 110.75)


@dataclass
class PlantedPockets:
    """Households plus the H3 cells (at the given resolution) of each planted pocket."""

    households: pd.DataFrame
    pocket_cells: list[set[str]] = field(default_factory=list)
    resolution: int = 8


def make_households(*, seed: int = 0, centre: tuple[float, float] = DEFAULT_CENTRE,
                    radius: int = 12, resolution: int = 8, mean_households: float = 30.0,
                    background_rate: float = 0.02, pocket_rate: float = 0.45,
                    pockets: tuple[tuple[int, int, int], ...] = ((4, -3, 2), (-5, 4, 2)),
                    ) -> PlantedPockets:
    """Draw households on a disk of H3 cells with planted pockets.

    ``pockets`` holds ``(di, dj, k)``: a pocket is the k-ring of the cell at local IJ offset
    ``(di, dj)`` from the centre cell. Within pockets the desil-1 probability is ``pocket_rate``
    and deprivations are frequent; elsewhere ``background_rate``.
    """
    rng = np.random.default_rng(seed)
    origin = h3.latlng_to_cell(*centre, resolution)
    cells = sorted(h3.grid_disk(origin, radius))
    i0, j0 = h3.cell_to_local_ij(origin, origin)
    planted: list[set[str]] = []
    for di, dj, k in pockets:
        c = h3.local_ij_to_cell(origin, i0 + di, j0 + dj)
        planted.append(set(h3.grid_disk(c, k)))
    in_pocket = {c for p in planted for c in p}
    counts = rng.poisson(mean_households, size=len(cells))
    cell_of = np.repeat(np.array(cells), counts)
    n = len(cell_of)
    hot = np.isin(cell_of, list(in_pocket))
    # random point inside each cell: centre plus a small jitter (cells are ~460 m across at r8)
    centres = np.array([h3.cell_to_latlng(c) for c in cells])
    lat = np.repeat(centres[:, 0], counts) + rng.uniform(-1e-3, 1e-3, n)
    lon = np.repeat(centres[:, 1], counts) + rng.uniform(-1e-3, 1e-3, n)
    # keep the jittered point in the same cell (jitter is small, but be exact)
    back = np.array([h3.latlng_to_cell(a, b, resolution) for a, b in zip(lat, lon)])
    lat = np.where(back == cell_of, lat, np.repeat(centres[:, 0], counts))
    lon = np.where(back == cell_of, lon, np.repeat(centres[:, 1], counts))
    p1 = np.where(hot, pocket_rate, background_rate)
    u = rng.uniform(size=n)
    desil = np.where(u < p1, 1, rng.integers(2, 5, n)).astype("int8")
    frame = pd.DataFrame({
        "household_id": [f"T-{seed}-{i:06d}" for i in range(n)],
        "lon": lon, "lat": lat, "desil": desil,
        "members": rng.integers(1, 8, n).astype("int16"),
        "village_code": pd.array([pd.NA] * n, dtype="string"),
        "location_precision": np.where(rng.uniform(size=n) < 0.02, "village", "point"),
    })
    frame["household_id"] = frame["household_id"].astype("string")
    for fld, (deprived_value, _, _) in DEPRIVATIONS.items():
        p_dep = np.where(hot, 0.7, 0.15)
        deprived = rng.uniform(size=n) < p_dep
        frame[fld] = deprived if deprived_value else ~deprived
    return PlantedPockets(frame, planted, resolution)


def aggregate_naive(households: pd.DataFrame, resolution: int) -> pd.DataFrame:
    """Aggregate households to cells with a plain pandas groupby (the oracle)."""
    h = households.copy()
    h["h3"] = [h3.latlng_to_cell(a, b, resolution) for a, b in zip(h["lat"], h["lon"])]
    h["extreme"] = h["desil"] == 1
    h["extreme_members"] = np.where(h["extreme"], h["members"], 0)
    for d in (1, 2, 3, 4):
        h[f"households_desil_{d}"] = (h["desil"] == d).astype("int64")
    for fld, (deprived_value, count_col, _) in DEPRIVATIONS.items():
        h[count_col] = (h[fld] == deprived_value).astype("int64")
    h["assistance_gap"] = (h["extreme"] & ~h["receives_assistance"]).astype("int64")
    h["households_village_located"] = (h["location_precision"] == "village").astype("int64")
    agg = {"household_id": "count", "members": "sum", "extreme": "sum", "extreme_members": "sum",
           "assistance_gap": "sum", "households_village_located": "sum"}
    agg.update({f"households_desil_{d}": "sum" for d in (1, 2, 3, 4)})
    agg.update({c: "sum" for _, c, _ in DEPRIVATIONS.values()})
    cells = h.groupby("h3").agg(agg).rename(columns={
        "household_id": "households", "members": "persons", "extreme": "extreme_households",
        "extreme_members": "extreme_persons"}).reset_index()
    for c in cells.columns.drop("h3"):
        cells[c] = cells[c].astype("int64")
    return _finish(cells, resolution)


def _finish(cells: pd.DataFrame, resolution: int) -> pd.DataFrame:
    cells["resolution"] = np.int8(resolution)
    cells["extreme_rate"] = cells["extreme_persons"] / cells["persons"]
    for _, count_col, share_col in DEPRIVATIONS.values():
        cells[share_col] = cells[count_col] / cells["households"]
    ll = np.array([h3.cell_to_latlng(c) for c in cells["h3"]])
    cells["lat"], cells["lon"] = ll[:, 0], ll[:, 1]
    return cells


def rollup_naive(cells: pd.DataFrame, resolution: int) -> pd.DataFrame:
    """Sum count columns of ``cells`` into parents at ``resolution``; recompute the rest."""
    c = cells.copy()
    c["h3"] = [h3.cell_to_parent(x, resolution) for x in c["h3"]]
    count_cols = [k for k in c.columns if k in ("households", "persons", "extreme_households",
                  "extreme_persons", "assistance_gap", "households_village_located")
                  or k.startswith("households_desil_") or k.startswith("n_")]
    weighted = [k for k in c.columns if k.startswith("travel_min_")]
    for k in weighted:
        c[k] = c[k] * c["households"]
    sums = c.groupby("h3")[count_cols + weighted + ["population"]].sum().reset_index()
    for k in weighted:
        sums[k] = sums[k] / sums["households"]
    out = _finish(sums, resolution)
    return out


def make_run(run_dir: Path, *, seed: int = 0, resolution: int = 8,
             planted: PlantedPockets | None = None, with_friction: bool = True) -> PlantedPockets:
    """Write a contract-compliant run directory (without pocket columns) and return the truth."""
    planted = planted or make_households(seed=seed, resolution=resolution)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cells = aggregate_naive(planted.households, resolution)
    rng = np.random.default_rng(seed + 1)
    hot = cells["h3"].isin({c for p in planted.pocket_cells for c in p}).to_numpy()
    for t in FACILITY_TYPES:
        base = rng.gamma(2.0, 15.0, len(cells))
        cells[f"travel_min_{t}"] = np.where(hot, base + 90.0, base)
    cells["population"] = cells["persons"] * rng.uniform(2.0, 3.0, len(cells))
    pts = gpd.GeoDataFrame(cells[["h3"]], geometry=gpd.points_from_xy(cells["lon"], cells["lat"]),
                           crs=WGS84)
    reg = boundaries.regencies()[["province_code", "province_name", "regency_code",
                                  "regency_name", "regency_kemendagri_code", "geometry"]]
    dist = boundaries.districts()[["district_code", "district_name", "geometry"]]
    pts, reg, dist = (x.to_crs(EQUAL_AREA) for x in (pts, reg, dist))
    joined = gpd.sjoin_nearest(pts, reg, how="left").drop(columns="index_right")
    joined = joined[~joined.index.duplicated()]
    joined = gpd.sjoin_nearest(joined, dist, how="left").drop(columns="index_right")
    joined = joined[~joined.index.duplicated()]
    for col in ("province_code", "province_name", "regency_code", "regency_name",
                "regency_kemendagri_code", "district_code", "district_name"):
        cells[col] = joined[col].astype("string").to_numpy()
    geoms = shapely.polygons([[(lng, lat) for lat, lng in h3.cell_to_boundary(c)]
                              + [h3.cell_to_boundary(c)[0][::-1]] for c in cells["h3"]])
    gdf = gpd.GeoDataFrame(cells, geometry=geoms, crs=WGS84)
    gdf.to_parquet(run_dir / "cells.parquet")
    (run_dir / "rollups").mkdir(exist_ok=True)
    for r in range(5, resolution):
        ru = rollup_naive(cells, r)
        attrs = cells.drop_duplicates("h3").copy()
        attrs["parent"] = [h3.cell_to_parent(x, r) for x in attrs["h3"]]
        first = attrs.drop_duplicates("parent").set_index("parent")
        for col in ("province_code", "province_name", "regency_code", "regency_name",
                    "regency_kemendagri_code", "district_code", "district_name"):
            ru[col] = first.loc[ru["h3"], col].to_numpy()
        g = shapely.polygons([[(lng, lat) for lat, lng in h3.cell_to_boundary(c)]
                              + [h3.cell_to_boundary(c)[0][::-1]] for c in ru["h3"]])
        gpd.GeoDataFrame(ru, geometry=g, crs=WGS84).to_parquet(
            run_dir / "rollups" / f"cells_r{r}.parquet")
    # facilities: a few of each type at random cells outside pockets
    far = cells.loc[~hot].sample(n=min(8, int((~hot).sum())), random_state=seed)
    fac = gpd.GeoDataFrame({
        "facility_id": [f"F{i}" for i in range(len(far))],
        "type": [FACILITY_TYPES[i % len(FACILITY_TYPES)] for i in range(len(far))],
        "name": [f"Facility {i}" for i in range(len(far))],
    }, geometry=gpd.points_from_xy(far["lon"], far["lat"]), crs=WGS84)
    fac.to_parquet(run_dir / "facilities.parquet")
    if with_friction:
        west, south, east, north = gdf.total_bounds
        res = 1.0 / 240  # ~460 m pixels
        w = int(np.ceil((east - west) / res)) + 2
        hgt = int(np.ceil((north - south) / res)) + 2
        friction = np.full((hgt, w), 0.01, dtype="float32")  # 6 km/h walking
        friction[:, w // 2] = 0.0015  # a north-south road, 40 km/h
        with rasterio.open(run_dir / "friction.tif", "w", driver="GTiff", width=w, height=hgt,
                           count=1, dtype="float32", crs=WGS84,
                           transform=from_origin(west - res, north + res, res, res)) as dst:
            dst.write(friction, 1)
    manifest = {
        # unique per (seed, resolution), as real run ids are unique per build
        "run_id": f"test-{seed}" if resolution == 8 else f"test-{seed}-r{resolution}",
        "engine_version": "test", "created": "2026-11-22T00:00:00Z",
        "parameters": {"resolution": resolution},
        "counts": {"households": {"read": len(planted.households),
                                  "accepted": len(planted.households), "rejected": 0}},
        "travel_time": {"method": "least-cost" if with_friction else "straight-line"},
        "synthetic": True,
    }
    pd.DataFrame(columns=["source", "row", "record_id", "reason"]).to_csv(
        run_dir / "rejects.csv", index=False)
    seal_run(run_dir, manifest)
    return planted


def seal_run(run_dir: Path, manifest: dict | None = None) -> None:
    """Record the SHA-256 of every file of ``run_dir`` in its manifest, as ``kantong build`` does.

    Call it after a test changes a run's files on purpose (readers refuse unsealed edits).
    """
    from kantong.engine.rundir import seal_manifest

    if manifest is None:
        manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    seal_manifest(run_dir, manifest)


#: The minimum household count the web fixtures are served at.
WEB_K = 10


def _add_households_at(frame: pd.DataFrame, cell: str, n: int, tag: str) -> pd.DataFrame:
    """Return ``n`` copies of the first rows of ``frame`` moved to the centre of ``cell``."""
    lat, lon = h3.cell_to_latlng(cell)
    extra = frame.iloc[:n].copy()
    extra["household_id"] = pd.array([f"{tag}-{i:06d}" for i in range(n)], dtype="string")
    extra["lat"], extra["lon"] = lat, lon
    extra["location_precision"] = "point"
    return extra


def make_web_households(seed: int = 0, *, k: int = WEB_K) -> PlantedPockets:
    """``make_households(seed)`` made sparse in places, so that a run served at ``k``
    withholds cells at every resolution (5 to 8).

    - r8: one cell of the first planted pocket keeps 3 households (the pocket stays
      published, partly withheld) and two cells at the disk edge keep 2 and 4;
    - r7, r6: 4 and 3 households in an empty child of a populated parent (small, so a
      sibling is withheld by complementary suppression);
    - r5: 2 households in an empty resolution-5 cell about 20 km away.
    """
    planted = make_households(seed=seed)
    hh = planted.households
    res = planted.resolution
    cell_of = pd.Series([h3.latlng_to_cell(a, b, res)
                         for a, b in zip(hh["lat"], hh["lon"], strict=True)],
                        index=hh.index)
    occupied = set(cell_of)
    keep = pd.Series(True, index=hh.index)
    pocket = sorted(planted.pocket_cells[0])
    origin = h3.latlng_to_cell(*DEFAULT_CENTRE, res)
    edge = sorted(h3.grid_ring(origin, 12))
    for cell, n in ((pocket[1], 3), (edge[0], 2), (edge[len(edge) // 2], 4)):
        rows = cell_of.index[cell_of == cell]
        keep[rows[n:]] = False
    frame = hh[keep]
    parents = {r: {h3.cell_to_parent(c, r) for c in occupied} for r in (5, 6, 7)}
    extra = []
    for r, n in ((7, 4), (6, 3)):
        empty = sorted(c for p in parents[r - 1] for c in h3.cell_to_children(p, r)
                       if c not in parents[r])
        extra.append(_add_households_at(hh, h3.cell_to_center_child(empty[0], res), n, f"W{r}"))
    far = sorted(set(h3.grid_ring(h3.cell_to_parent(origin, 5), 2)) - parents[5])[0]
    extra.append(_add_households_at(hh, h3.cell_to_center_child(far, res), 2, "W5"))
    frame = pd.concat([frame, *extra], ignore_index=True)
    return PlantedPockets(frame, planted.pocket_cells, res)


def check_withheld_everywhere(run_dir: Path, *, k: int = WEB_K) -> None:
    """Assert that a run served at ``k`` really meets suppression (the web fixtures' claim).

    At every resolution some cell is withheld as too small; some published cell is withheld
    by complementary suppression; and a pocket is published with some of its cells withheld.
    """
    from kantong.engine.publish import privacy
    from kantong.engine.publish.published import PublishedRun

    pub = PublishedRun(run_dir, min_households=k)
    raw = {r: pd.read_parquet(p, columns=["h3", "households"])
           for r, p in [(pub.base_resolution, run_dir / "cells.parquet"),
                        *[(r, run_dir / "rollups" / f"cells_r{r}.parquet")
                          for r in pub.resolutions if r != pub.base_resolution]]}
    statuses = set()
    for r in pub.resolutions:
        status = pub.plan.status[r]
        statuses |= set(status)
        small = set(raw[r].loc[raw[r]["households"] < k, "h3"])
        assert small, f"r{r}: no cell below K={k}"
        assert small <= set(status.index[status != privacy.PUBLISHED]), r
        assert (status == privacy.SMALL).any(), f"r{r}: no cell withheld as too small"
        assert not small & set(pub.cells(r)["h3"]), r
    assert privacy.COMPLEMENTARY in statuses, "no complementary suppression"
    base = pd.read_parquet(run_dir / "cells.parquet", columns=["h3", "pocket_id"])
    published = set(pub.cells()["h3"])
    in_pocket = base[base["pocket_id"].notna()]
    partly = [pid for pid, g in in_pocket.groupby("pocket_id")
              if not set(g["h3"]) <= published and int(pid) in set(pub.pockets()["pocket_id"])]
    assert partly, "no published pocket has a withheld cell"
