"""Pocket recovery with household coordinates vs the same register reduced to village codes.

Run: ``python benchmarks/bench_village_precision.py [--households 60000] [--radii 4,8,14,20]
[--seeds 1,2,3] [--out bench_village_precision.json]``

A synthetic register (SYNTHETIC, not P3KE data) is drawn over Sanggau and Sekadau
(Kalimantan Barat): households are sampled in proportion to the bundled GHS-POP grid, one
pocket per radius is planted around a populated village (extreme-poor share 60 % inside,
15 % outside). The register is built with ``kantong build`` (the real pipeline: ingest,
build, pockets stage) with its true coordinates, and with ``lon``/``lat`` blanked so that
every household is located by its BPS village code only; each with the pocket methods of
:data:`CASES` (default units, and the cell path forced on the village-coded copy). The
village-coded copy is built again, and once more with its rows shuffled: both must give
identical cells, pockets and villages tables.

Recovery is measured on resolution-7 H3 cells: a planted pocket is the set of r7 cells
holding its households (true coordinates); a found pocket is the set of r7 parents of the
run cells given its ``pocket_id``. Each planted pocket is scored with its best IoU over the
found pockets; a *false* pocket is a found pocket sharing no r7 cell with any planted one.
The table goes into docs/pockets.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from kantong.engine import datapaths
from kantong.engine.build.placement import villages_of_points
from kantong.engine.build.run import build_run
from kantong.engine.config import Config
from kantong.engine.constants import DEPRIVATIONS
from kantong.engine.inputs import boundaries
from kantong.engine.inputs.rasters import open_raster

#: Sanggau and Sekadau (BPS regency codes).
REGENCIES = ("6105", "6109")
_EARTH_KM = 6371.0088


def haversine_km(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float) -> np.ndarray:
    """Great-circle distance in km from one point."""
    p1, p2 = np.radians(lat), np.radians(lat0)
    a = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon0 - lon) / 2) ** 2)
    return 2 * _EARTH_KM * np.arcsin(np.sqrt(a))


def make_register(households: int, radii: tuple[float, ...], *, seed: int = 1,
                  p_in: float = 0.6, p_out: float = 0.15
                  ) -> tuple[pd.DataFrame, list[tuple[float, float, float]]]:
    """Return a register with true coordinates and village codes, and the planted circles."""
    rng = np.random.default_rng(seed)
    vil = boundaries.villages()
    vil = vil[vil["regency_code"].isin(REGENCIES)]
    codes = vil["village_code"].to_numpy(dtype=object)
    west, south, east, north = shapely.total_bounds(vil.geometry.to_numpy())
    pop = open_raster(datapaths.data_file(datapaths.POPULATION_TIF), name="population",
                      study_area_bounds=(west, south, east, north))
    data = np.nan_to_num(pop.data.astype(np.float64))
    rows, cols = np.nonzero(data > 0)
    weight = data[rows, cols]
    pick = rng.choice(weight.size, size=households, p=weight / weight.sum())
    lon, lat = pop.transform * (cols[pick] + rng.uniform(0, 1, households),
                                rows[pick] + rng.uniform(0, 1, households))
    village = villages_of_points(lon, lat)
    keep = np.isin(village.astype(str), codes.astype(str))
    lon, lat, village = lon[keep], lat[keep], village[keep]
    n = lon.size
    points = boundaries.village_points().set_index("village_code").loc[codes]
    busy = pd.Series(village).value_counts().reindex(codes).fillna(0).to_numpy()
    centres: list[tuple[float, float, float]] = []
    for r in radii:  # the busiest village point far enough from earlier pockets
        for i in np.argsort(-busy, kind="stable"):
            x, y = float(points["lon"].iloc[i]), float(points["lat"].iloc[i])
            if all(haversine_km(np.array([x]), np.array([y]), cx, cy)[0] > r + cr + 15
                   for cx, cy, cr in centres):
                centres.append((x, y, float(r)))
                break
    inside = np.zeros(n, dtype=bool)
    for cx, cy, r in centres:
        inside |= haversine_km(lon, lat, cx, cy) < r
    extreme = rng.uniform(size=n) < np.where(inside, p_in, p_out)
    frame = pd.DataFrame({
        "household_id": [f"S{i:07d}" for i in range(n)],
        "lon": np.round(lon, 6), "lat": np.round(lat, 6),
        "desil": np.where(extreme, 1, rng.integers(2, 5, n)),
        "members": rng.integers(1, 8, n),
        "village_code": village.astype(str),
    })
    for field in DEPRIVATIONS:
        frame[field] = rng.uniform(size=n) < 0.4
    return frame, centres


def planted_r7(frame: pd.DataFrame, centres: list[tuple[float, float, float]]) -> list[set]:
    """r7 cells holding the households of each planted pocket (true coordinates)."""
    out = []
    for cx, cy, r in centres:
        d = haversine_km(frame["lon"].to_numpy(), frame["lat"].to_numpy(), cx, cy) < r
        out.append({h3.latlng_to_cell(la, lo, 7)
                    for lo, la in zip(frame["lon"][d], frame["lat"][d], strict=True)})
    return out


def found_r7(run: Path) -> dict[int, set]:
    """r7 parents of the run cells of each pocket."""
    cells = pd.read_parquet(run / "cells.parquet", columns=["h3", "pocket_id"])
    inside = cells[cells["pocket_id"].notna()]
    parents = pd.Series([h3.cell_to_parent(c, 7) for c in inside["h3"]])
    return parents.groupby(inside["pocket_id"].astype(int).to_numpy()).agg(set).to_dict()


def score(planted: list[set], found: dict[int, set]) -> tuple[list[float], int]:
    """Best IoU of each planted pocket, and the number of found pockets touching none."""
    ious = [max((len(p & f) / len(p | f) for f in found.values()), default=0.0)
            for p in planted]
    false = sum(1 for f in found.values() if not any(f & p for p in planted))
    return ious, false


def study_area(root: Path) -> Path:
    """Write the two regencies as the study-area boundaries file."""
    reg = boundaries.regencies()
    path = root / "sanggau_sekadau.geojson"
    reg[reg["regency_code"].isin(REGENCIES)][["regency_code", "geometry"]].to_file(
        path, driver="GeoJSON")
    return path


def build(register: pd.DataFrame, root: Path, name: str, area: Path,
          config: Config) -> tuple[Path, float]:
    """Build one register (CSV) with pockets; return the run directory and seconds."""
    csv = root / f"{name}_synthetic.csv"
    if not csv.exists():
        register.to_csv(csv, index=False)
    t0 = time.perf_counter()
    build_run(csv, out=root / f"{name}_{config.pockets.units}_{config.pockets.method}",
              boundaries_path=area, config=config)
    return root / f"{name}_{config.pockets.units}_{config.pockets.method}", \
        time.perf_counter() - t0


def identical(a: Path, b: Path) -> bool:
    """Same cells, pockets and villages tables (row order and values)."""
    for name in ("cells.parquet", "pockets.parquet", "villages.parquet"):
        x, y = pd.read_parquet(a / name), pd.read_parquet(b / name)
        if not x.equals(y):
            return False
    return True


#: (register, pockets.units, pockets.method) of each build.
CASES = (("coordinates", "auto", "scan"), ("coordinates", "auto", "gistar"),
         ("village_codes", "auto", "scan"), ("village_codes", "cells", "scan"),
         ("village_codes", "cells", "gistar"))


def run_seed(households: int, radii: tuple[float, ...], seed: int) -> dict:
    """Build every case of one seed; return IoU, false pockets and timings."""
    frame, centres = make_register(households, radii, seed=seed)
    planted = planted_r7(frame, centres)
    out: dict = {"seed": seed, "households": len(frame),
                 "pockets": [{"radius_km": r, "area_km2": round(float(np.pi * r * r)),
                              "villages": int(frame.loc[haversine_km(
                                  frame["lon"].to_numpy(), frame["lat"].to_numpy(), cx, cy) < r,
                                  "village_code"].nunique())}
                             for cx, cy, r in centres], "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        area = study_area(root)
        registers = {"coordinates": frame, "village_codes": frame.assign(lon="", lat="")}
        runs = {}
        for name, units, method in CASES:
            config = Config.from_mapping({"pockets": {"units": units, "method": method}})
            run, seconds = build(registers[name], root, name, area, config)
            runs[(name, units, method)] = run
            manifest = json.loads((run / "manifest.json").read_text())
            ious, false = score(planted, found_r7(run))
            units_used = manifest["pockets"]["units"]
            out["cases"].append({
                "register": name, "units": units_used,
                "method": "gistar (villages)" if units_used == "villages" else method,
                "seconds": round(seconds, 1), "pockets_found": len(found_r7(run)),
                "iou": [round(x, 2) for x in ious], "false_pockets": false,
                "share_by_village": manifest["location_precision"]["share_by_village"]})
        shuffled = registers["village_codes"].sample(frac=1.0, random_state=7)
        config = Config()
        run, _ = build(shuffled, root, "village_codes_shuffled", area, config)
        out["shuffled_identical"] = identical(runs[("village_codes", "auto", "scan")], run)
        again, _ = build(registers["village_codes"], root, "village_codes_again", area, config)
        out["rebuild_identical"] = identical(runs[("village_codes", "auto", "scan")], again)
    return out


def main() -> None:
    """Run the benchmark and print the table (JSON to ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=60_000)
    parser.add_argument("--radii", default="4,8,14,20")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    radii = tuple(float(r) for r in args.radii.split(","))
    vil = boundaries.villages()
    areas = vil.loc[vil["regency_code"].isin(REGENCIES), "area_km2"]
    results = {"median_village_km2": float(areas.median()), "seeds": []}
    for seed in (int(x) for x in args.seeds.split(",")):
        results["seeds"].append(run_seed(args.households, radii, seed))
    print(json.dumps(results, indent=1))
    for res in results["seeds"]:
        print(f"\nseed {res['seed']}: {res['households']} households; planted "
              + ", ".join(f"r={p['radius_km']:g} km ({p['area_km2']} km2, {p['villages']} "
                          "villages)" for p in res["pockets"])
              + f"; shuffled identical: {res['shuffled_identical']}, rebuilt identical: "
              f"{res['rebuild_identical']}")
        print("| register | units | method | pockets | false | "
              + " | ".join(f"IoU r={p['radius_km']:g}" for p in res["pockets"]) + " |")
        print("|---|---|---|---|---|" + "---|" * len(res["pockets"]))
        for c in res["cases"]:
            print(f"| {c['register']} | {c['units']} | {c['method']} | {c['pockets_found']} | "
                  f"{c['false_pockets']} | " + " | ".join(f"{x:.2f}" for x in c["iou"]) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    gpd.options.io_engine = "pyogrio"
    main()
