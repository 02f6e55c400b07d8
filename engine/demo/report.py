"""Summaries, file listings and the README of a demo data set."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kantong.engine.constants import DEPRIVATION_FIELDS
from kantong.engine.demo.space import DemoArea


def register_summary(area: DemoArea, hh: pd.DataFrame, *, population: int,
                     weight: float) -> dict[str, Any]:
    """Return headline counts of internal households, overall and by regency.

    ``extreme_rate`` = desil-1 persons x ``weight`` / population (the register represents
    ``weight`` real households per synthetic one).
    """
    d1 = hh["desil"].to_numpy() == 1
    members = hh["members"].to_numpy()
    by_desil = hh.groupby("desil")["members"].agg(["size", "sum"])
    reg_code = area.villages["regency_code"].astype(str).to_numpy()[hh["village"].to_numpy()]
    frame = pd.DataFrame({"regency_code": reg_code, "members": members, "d1": d1,
                          "d1_members": np.where(d1, members, 0)})
    agg = frame.groupby("regency_code").agg(households=("members", "size"),
                                            extreme_households=("d1", "sum"),
                                            extreme_persons=("d1_members", "sum"))
    regs = area.regencies.set_index("regency_code")
    rows = []
    for code, row in agg.iterrows():
        pop = float(regs.loc[code, "penduduk_kemendagri_2025"])
        rows.append({"regency_code": str(code), "regency_name": str(regs.loc[code, "regency_name"]),
                     "households": int(row["households"]),
                     "extreme_households": int(row["extreme_households"]),
                     "extreme_persons": int(row["extreme_persons"]),
                     "extreme_rate": round(float(row["extreme_persons"]) * weight / pop, 6)})
    shares = {}
    for field in DEPRIVATION_FIELDS:
        shares[f"share_{field}"] = round(float(hh[field].mean()), 4)
    return {
        "households": len(hh),
        "persons": int(members.sum()),
        "mean_members": round(float(members.mean()), 3),
        "households_by_desil": {str(k): int(v) for k, v in by_desil["size"].items()},
        "persons_by_desil": {str(k): int(v) for k, v in by_desil["sum"].items()},
        "extreme_households": int(d1.sum()),
        "extreme_persons": int(members[d1].sum()),
        "extreme_rate": round(float(members[d1].sum()) * weight / population, 6),
        **shares,
        "regencies": rows,
    }


def file_entries(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Return ``{file name: {"bytes": size, "sha256": hex}}`` for written files."""
    out = {}
    for path in sorted(paths, key=lambda p: p.name):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out[path.name] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return out


def readme_text(meta: dict[str, Any]) -> str:
    """Return the README.txt of a demo folder from its metadata."""
    y1 = meta["year1"]
    art = meta["register_artefacts"]
    lines = [
        meta["label"],
        "=" * len(meta["label"]),
        "",
        "EVERYTHING IN THIS FOLDER IS SYNTHETIC except population_ghspop.tif (the real GHS-POP",
        "grid) and the administrative boundaries and codes it refers to (BPS 2020 / Kemendagri",
        "2025). The households are invented; they are not real P3KE data and describe no person.",
        "",
        f"province:            {meta['province']} {meta['province_name']}",
        f"seed:                {meta['seed']}",
        f"generator:           {meta['generator']} {meta['generator_version']}",
        f"households:          {meta['households']:,} (each stands for {meta['weight']:.3f} of the "
        f"{meta['represented_households']:,} households of a full register)",
        f"desil-1 households:  {y1['extreme_households']:,} ({y1['extreme_persons']:,} persons)",
        f"extreme rate:        {100 * meta['extreme_rate']:.3f} % of the province population "
        f"(target {100 * meta['target_extreme_rate']:.2f} %)",
        "facilities:          " + ", ".join(f"{k} {v:,}" for k, v in meta["facilities"].items()),
        f"bad rows planted:    {'none (--clean)' if meta['clean'] else ''}"
        + ("" if meta["clean"] else ", ".join(
            f"{k} {meta['register_artefacts'][k]}" for k in
            ("swapped_lat_lon", "desil_out_of_range", "duplicate_household_id",
             "non_numeric_coordinate"))),
        f"blank coordinates:   {art['blank_coordinates']:,} rows (village code only; "
        f"{art['kemendagri_codes']:,} use Kemendagri dotted codes)",
        "",
        "Files",
        "-----",
        "households_synthetic.*        SYNTHETIC register: household_id, lon, lat, desil, members,",
        "                              village_code, six booleans (see data/SYNTHETIC.md)",
        "facilities_synthetic.geojson  SYNTHETIC puskesmas, posyandu, school, water_point",
        "friction_synthetic.tif        SYNTHETIC friction, minutes per metre, EPSG:4326,",
        "                              1/120 degree pixels;",
        "                              nodata -9999 = sea / outside Kalimantan (impassable)",
        "population_ghspop.tif         REAL GHS-POP persons per pixel, province bounds + 0.25 deg",
        "metadata.json                 parameters, counts, planted pockets, file checksums",
    ]
    if "follow_up" in meta:
        fu = meta["follow_up"]
        lines += [
            "households_synthetic_year2.*  SYNTHETIC next-year register (same seed)",
            "facilities_synthetic_year2.geojson  year-1 facilities + the new ones listed in",
            "                              metadata.json (follow_up.new_facilities)",
            "",
            f"year 2: {fu['households']:,} households ({fu['stayed']:,} stayed, "
            f"{fu['left']:,} left, {fu['fell_in']:,} fell in); "
            f"extreme rate {100 * fu['extreme_rate']:.3f} %",
        ]
    lines += ["", "Planted pockets (centres)", "-------------------------"]
    lines += [f"{p['pocket_id']}. {p['regency_name']} ({p['lon']:.4f}, {p['lat']:.4f})"
              + (" - new facilities in year 2" if p["intervention"] else "")
              for p in meta["pockets"]]
    return "\n".join(lines) + "\n"
