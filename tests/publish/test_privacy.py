"""Privacy rules: suppression, complementary suppression, atoms, and an attacker that tries
to recover withheld cells from everything published (and succeeds on the naive publication).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import scipy.linalg
from factories import make_households, make_run, seal_run
from test_published import add_pockets_and_sites

from kantong.engine.constants import PERSONAL_FIELDS
from kantong.engine.errors import ConfigError
from kantong.engine.publish import privacy
from kantong.engine.publish.export import FORMATS, LAYERS, export_layer
from kantong.engine.publish.published import PublishedRun
from kantong.engine.publish.totals import TOTALS_EXACT, safe_units

K = 10


# ---- unit tests of the rules on hand-built hierarchies ----------------------------------
def _children(parent: str, hh: list[int]) -> pd.DataFrame:
    kids = sorted(h3.cell_to_children(parent, h3.get_resolution(parent) + 1))[:len(hh)]
    return pd.DataFrame({"h3": kids, "households": hh})


def _levels(families: list[list[int]], res: int = 7) -> dict[int, pd.DataFrame]:
    """One parent (at res) per family of children households; regency '6105' for all."""
    origin = h3.latlng_to_cell(0.05, 110.75, res)
    parents = sorted(h3.grid_disk(origin, 2))[:len(families)]
    kids = pd.concat([_children(p, f) for p, f in zip(parents, families, strict=True)],
                     ignore_index=True)
    kids["regency_code"] = "6105"
    top = pd.DataFrame({"h3": parents, "households": [sum(f) for f in families]})
    return {res: top, res + 1: kids}


@pytest.mark.parametrize(("family", "expected"), [
    ([3, 20, 25, 30], ["small", "complementary", "published", "published"]),
    ([4, 5, 40, 41], ["small", "small", "complementary", "published"]),
    ([6, 7, 50], ["small", "small", "published"]),
    ([12, 30], ["published", "published"]),
    ([2, 1, 3, 2, 4, 30], ["small"] * 5 + ["published"]),
    ([3, 30], ["small", "complementary"]),
])
def test_complementary_suppression(family, expected):
    status = privacy.suppress_hierarchy(_levels([family]), min_households=K)
    assert status[8].tolist() == expected
    withheld = np.array(family)[np.array(expected) != "published"]
    assert withheld.sum() == 0 or (withheld.sum() >= K and len(withheld) >= 2)


def test_smallest_sibling_is_chosen_and_ties_are_deterministic():
    status = privacy.suppress_hierarchy(_levels([[3, 40, 20, 20, 60]]), min_households=K)
    s = status[8].tolist()
    assert s[0] == "small" and s[1] == "published" and s[4] == "published"
    assert sorted(s[2:4]) == ["complementary", "published"]
    again = privacy.suppress_hierarchy(_levels([[3, 40, 20, 20, 60]]), min_households=K)
    assert again[8].tolist() == s


def test_small_parent_withholds_its_children():
    status = privacy.suppress_hierarchy(_levels([[3, 2], [40, 5, 7]]), min_households=K)
    assert status[7].tolist() == ["small", "published"]
    assert status[8].tolist() == ["ancestor", "ancestor", "published", "small", "small"]


def test_withheld_cells_withhold_all_descendants():
    origin = h3.latlng_to_cell(0.05, 110.75, 6)
    r7 = sorted(h3.cell_to_children(origin, 7))[:2]
    r8 = [sorted(h3.cell_to_children(c, 8))[:2] for c in r7]
    # r7: a small cell (3) and a big one (30) -> the big one is complementary at r7
    fine = pd.DataFrame({"h3": r8[0] + r8[1], "households": [1, 2, 15, 15],
                         "regency_code": "6105"})
    levels = {6: pd.DataFrame({"h3": [origin], "households": [33]}),
              7: pd.DataFrame({"h3": r7, "households": [3, 30]}), 8: fine}
    status = privacy.suppress_hierarchy(levels, min_households=K)
    assert status[7].tolist() == ["small", "complementary"]
    assert status[8].tolist() == ["ancestor"] * 4  # the 15s would let 3 be subtracted


def test_min_households_floor():
    with pytest.raises(ConfigError):
        privacy.suppress_hierarchy(_levels([[3, 30]]), min_households=2)


def test_atoms_and_remainders():
    levels = _levels([[3, 20, 25, 30], [2, 1], [4, 3]])
    status = privacy.suppress_hierarchy(levels, min_households=K)
    atoms = privacy.assign_atoms(levels[8], status, min_households=K)
    kinds = atoms["kind"].tolist()
    assert kinds[:4] == ["residual", "residual", "cell", "cell"]
    # the 2nd and 3rd families (3 and 7 households) are under no published cell: together
    # they are the remainder of their regency, released since it holds >= K over >= 2 cells
    assert kinds[4:] == ["remainder"] * 4
    assert atoms["released"].all()
    small = privacy.assign_atoms(_levels([[30], [2, 1]])[8],
                                 privacy.suppress_hierarchy(_levels([[30], [2, 1]]),
                                                            min_households=K),
                                 min_households=K)
    assert small["released"].tolist() == [True, False, False]


def test_withhold_site_counts():
    sites = pd.DataFrame({"type": ["a"] * 4 + ["b"] * 2, "rank": [1, 2, 3, 4, 2, 1],
                          "new_extreme_households": [30, 12, 9, 11, 20, 8],
                          "cumulative_extreme_households": [30, 42, 51, 62, 28, 8],
                          "covered_persons": [100, 50, 30, 9, 60, 30]})
    out = privacy.withhold_site_counts(sites, min_households=K)
    a = out[out["type"] == "a"]
    # 9 < K is withheld, 11 after it is not; cumulative values and covered persons stop
    # at the first withheld rank (their differences would reveal it)
    assert a["new_extreme_households"].tolist() == [30, 12, pd.NA, 11]
    assert a["cumulative_extreme_households"].tolist() == [30, 42, pd.NA, pd.NA]
    assert a["covered_persons"].tolist() == [100, 50, pd.NA, pd.NA]
    b = out[out["type"] == "b"]
    assert b["rank"].tolist() == [1, 2]
    assert b["new_extreme_households"].tolist() == [pd.NA, 20]
    assert b["cumulative_extreme_households"].tolist() == [pd.NA, pd.NA]
    assert b["covered_persons"].tolist() == [pd.NA, pd.NA]


# ---- the attacker ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A sparse run (many cells below K) with pockets and sites, and its published view."""
    run = tmp_path_factory.mktemp("attack") / "run"
    truth = make_run(run, seed=11, planted=make_households(seed=11, mean_households=10.0),
                     with_friction=False)
    add_pockets_and_sites(run, truth, seed=11)
    pub = PublishedRun(run, min_households=K)
    raw = {r: gpd.read_parquet(run / "rollups" / f"cells_r{r}.parquet") for r in (5, 6, 7)}
    raw[8] = gpd.read_parquet(run / "cells.parquet")
    return run, truth, pub, raw


def safe_publication(pub: PublishedRun) -> dict:
    """Everything the privacy gate publishes."""
    return {"cells": {r: pd.DataFrame(pub.cells(r).drop(columns="geometry"))
                      for r in pub.resolutions},
            "regencies": pub.regencies(), "pockets": pd.DataFrame(pub.pockets()),
            "sites": pd.DataFrame(pub.sites())}


def naive_publication(run: Path, raw: dict) -> dict:
    """What a careless publisher would release: every cell >= K at every resolution, true
    regency and pocket totals, and site counts below K blanked (cumulative kept)."""
    cells = {r: f[f["households"] >= K].drop(columns="geometry") for r, f in raw.items()}
    base = raw[8]
    regencies = base.groupby("regency_code")[["households", "extreme_households"]].sum()
    pockets = gpd.read_parquet(run / "pockets.parquet")
    pockets = pockets[pockets["households"] >= K]
    sites = pd.concat([gpd.read_parquet(p).assign(type=p.stem[6:])
                       for p in sorted((run / "sites").glob("sites_*.parquet"))])
    sites["new_extreme_households"] = sites["new_extreme_households"].astype("Int64")
    sites.loc[sites["new_extreme_households"] < K, "new_extreme_households"] = pd.NA
    return {"cells": cells, "regencies": regencies.reset_index(),
            "pockets": pd.DataFrame(pockets), "sites": sites}


def subtraction_attack(pub: dict, raw: dict) -> list[tuple]:
    """Recover withheld values by subtraction; return the successful recoveries.

    The attacker is strong: it knows which cells hold households (at every resolution, with
    their regency) and which base cells form each pocket, just not the withheld values. An
    attack on a published total succeeds when exactly one withheld cell lies inside it and
    the difference equals that cell's true households and extreme households.
    """
    cols = ["households", "extreme_households"]
    res_list = sorted(raw)
    hits: list[tuple] = []
    published = {r: set(pub["cells"][r]["h3"]) for r in res_list}
    truth = {r: raw[r].set_index("h3")[cols] for r in res_list}

    def claim(total: pd.Series, inside_pub: pd.DataFrame, target: str, res: int, how: str):
        got = total[cols].to_numpy(dtype="int64") - inside_pub[cols].sum().to_numpy("int64")
        if (got == truth[res].loc[target].to_numpy()).all():
            hits.append((how, res, target, tuple(got)))

    # 1. parent minus published descendants, at every pair of resolutions
    for i, r in enumerate(res_list):
        parents = pub["cells"][r].set_index("h3")
        for s in res_list[i + 1:]:
            fine = raw[s][["h3"]].copy()
            fine["up"] = [h3.cell_to_parent(c, r) for c in fine["h3"]]
            fine["pub"] = fine["h3"].isin(published[s])
            pubs = pub["cells"][s].set_index("h3")
            for p, grp in fine[fine["up"].isin(parents.index)].groupby("up"):
                hidden = grp.loc[~grp["pub"], "h3"].tolist()
                if len(hidden) == 1:
                    claim(parents.loc[p], pubs.loc[grp.loc[grp["pub"], "h3"]], hidden[0], s,
                          "parent")
    # 2. regency total minus published cells of that regency, at every resolution
    regs = pub["regencies"].set_index("regency_code")
    for s in res_list:
        fine = raw[s][["h3", "regency_code"]]
        pubs = pub["cells"][s]
        for code, grp in fine.groupby("regency_code"):
            hidden = grp.loc[~grp["h3"].isin(published[s]), "h3"].tolist()
            if code in regs.index and len(hidden) == 1:
                claim(regs.loc[code], pubs[pubs["regency_code"] == code], hidden[0], s,
                      "regency")
    # 3. pocket total minus published cells inside (true pocket membership)
    base = raw[max(res_list)]
    pubs = pub["cells"][max(res_list)]
    for _, pocket in pub["pockets"].iterrows():
        members = base.loc[(base["pocket_id"] == pocket["pocket_id"]).fillna(False), "h3"]
        hidden = members[~members.isin(published[max(res_list)])].tolist()
        if len(hidden) == 1:
            claim(pocket, pubs[pubs["h3"].isin(members)], hidden[0], max(res_list), "pocket")
    # 4. consecutive cumulative site counts around a withheld new count
    for kind, g in pub["sites"].groupby("type"):
        g = g.sort_values("rank")
        cum = g["cumulative_extreme_households"].astype("Int64").tolist()
        new = g["new_extreme_households"].astype("Int64").tolist()
        for j, value in enumerate(new):
            before = 0 if j == 0 else cum[j - 1]
            if value is pd.NA and cum[j] is not pd.NA and before is not pd.NA:
                hits.append(("site", kind, j + 1, cum[j] - before))
    return hits


def test_subtraction_attack_recovers_nothing(world):
    run, _, pub, raw = world
    assert sum(pub.withheld(r) for r in pub.resolutions) > 100
    assert subtraction_attack(safe_publication(pub), raw) == []


def test_subtraction_attack_breaks_the_naive_publication(world):
    run, _, _, raw = world
    hits = subtraction_attack(naive_publication(run, raw), raw)
    kinds = {h[0] for h in hits}
    assert {"parent", "site"} <= kinds, hits
    assert len(hits) >= 5


def _design(raw: dict, rows: list[np.ndarray]) -> np.ndarray:
    return np.vstack(rows).astype(float) if rows else np.zeros((0, len(raw[8])))


def _membership(raw: dict, res_list: list[int]) -> dict[int, pd.Series]:
    """Base-cell index -> ancestor id at every resolution."""
    base = raw[max(res_list)]["h3"]
    return {r: base.map(lambda c, r=r: h3.cell_to_parent(c, r)) for r in res_list}


def linear_attack(pub: dict, raw: dict, compositions: dict) -> list[tuple[int, str]]:
    """Find every withheld cell (any resolution) whose households are a linear function of
    the published numbers, given the exact composition of every published total.

    A withheld set ``v`` is determined iff its indicator vector lies in the row space of the
    published equations, i.e. is orthogonal to their null space.
    """
    res_list = sorted(raw)
    base = raw[max(res_list)]["h3"].to_numpy()
    up = _membership(raw, res_list)
    rows = []
    for r in res_list:
        for cell in pub["cells"][r]["h3"]:
            rows.append((up[r] == cell).to_numpy())
    rows += compositions["regencies"] + compositions["pockets"]
    a = _design(raw, rows)
    null = scipy.linalg.null_space(a)
    determined = []
    for r in res_list:
        for cell in sorted(set(raw[r]["h3"]) - set(pub["cells"][r]["h3"])):
            v = (up[r] == cell).to_numpy(dtype=float)
            if np.abs(v @ null).max(initial=0.0) < 1e-9:
                determined.append((r, cell))
    assert len(base) == a.shape[1]
    return determined


def test_linear_algebra_attack_determines_no_withheld_cell(world):
    run, _, pub, raw = world
    published = safe_publication(pub)
    atoms = pub.plan.atoms.reindex(raw[8]["h3"])
    regs = [((atoms["atom_regency"] == code) & atoms["released"]).to_numpy()
            for code in published["regencies"]["regency_code"]]
    base = raw[8]
    pubs = set(published["cells"][8]["h3"])
    # a pocket total covers its published cells, plus its withheld cells when exact, or
    # only those withheld cells that are safe units when protected (engine/publish/totals.py)
    safe = safe_units(base, pub.plan) | base["h3"].isin(pubs).to_numpy()
    pockets = [((base["pocket_id"] == p).fillna(False).to_numpy(bool)
                & (safe | (kind == TOTALS_EXACT)))
               for p, kind in zip(published["pockets"]["pocket_id"],
                                  published["pockets"]["totals"], strict=True)]
    # the published numbers really are these sums
    for row, (_, reg) in zip(regs, published["regencies"].iterrows(), strict=True):
        assert base.loc[row, "households"].sum() == reg["households"]
    for row, (_, poc) in zip(pockets, published["pockets"].iterrows(), strict=True):
        assert base.loc[row, "households"].sum() == poc["households"]
    assert linear_attack(published, raw, {"regencies": regs, "pockets": pockets}) == []


def test_linear_algebra_attack_breaks_the_naive_publication(world):
    run, _, _, raw = world
    published = naive_publication(run, raw)
    base = raw[8]
    regs = [(base["regency_code"] == code).to_numpy() for code in published["regencies"]
            ["regency_code"]]
    pockets = [(base["pocket_id"] == p).fillna(False).to_numpy(bool)
               for p in published["pockets"]["pocket_id"]]
    determined = linear_attack(published, raw, {"regencies": regs, "pockets": pockets})
    assert len(determined) >= 5


# ---- nothing personal ever leaves ------------------------------------------------------
@pytest.fixture(scope="module")
def leaky_world(tmp_path_factory):
    """A run whose files (wrongly) carry household ids, coordinates and personal fields."""
    run = tmp_path_factory.mktemp("leaky") / "run"
    truth = make_run(run, seed=12, planted=make_households(seed=12, mean_households=12.0),
                     with_friction=False)
    add_pockets_and_sites(run, truth, seed=12)
    hh = truth.households
    for path in [run / "cells.parquet", *sorted((run / "rollups").glob("*.parquet")),
                 run / "pockets.parquet", *sorted((run / "sites").glob("*.parquet"))]:
        frame = gpd.read_parquet(path)
        n = len(frame)
        pick = hh.iloc[np.arange(n) % len(hh)]
        frame["household_id"] = pick["household_id"].to_numpy()
        frame["nik"] = [f"6105{i:012d}" for i in range(n)]
        frame["nama_kepala_keluarga"] = [f"Nama {i}" for i in range(n)]
        frame["alamat"] = "Jalan Rahasia 1"
        frame["household_lon"] = pick["lon"].to_numpy()
        frame["household_lat"] = pick["lat"].to_numpy()
        frame.to_parquet(path)
    seal_run(run)  # the leaky files are the run as written (hashes match)
    return run, truth


def _secrets(truth) -> tuple[set[str], set[tuple[str, str]]]:
    hh = truth.households
    ids = set(hh["household_id"])
    pairs = {(f"{x:.6f}", f"{y:.6f}") for x, y in zip(hh["lon"], hh["lat"], strict=True)}
    return ids, pairs


def _check_frame(frame: pd.DataFrame, ids: set[str], pairs: set[tuple[str, str]], what: str):
    cols = set(map(str.lower, frame.columns))
    assert not cols & PERSONAL_FIELDS, what
    assert "household_id" not in cols and not any("household_l" in c for c in cols), what
    for col in frame.columns:
        if col == "geometry":
            continue
        values = set(frame[col].dropna().astype(str))
        assert not values & ids, (what, col)
        assert not {v for v in values if v.startswith("6105") and len(v) == 16}, (what, col)
        assert "Jalan Rahasia 1" not in values and not any(v.startswith("Nama ") for v in values)
    if "lon" in frame.columns and "lat" in frame.columns:
        got = {(f"{float(x):.6f}", f"{float(y):.6f}") for x, y in
               zip(frame["lon"], frame["lat"], strict=True) if pd.notna(x) and pd.notna(y)}
        assert not got & pairs, what
    if isinstance(frame, gpd.GeoDataFrame) and len(frame):
        xy = gpd.GeoSeries(frame.geometry).get_coordinates()
        got = {(f"{x:.6f}", f"{y:.6f}") for x, y in zip(xy["x"], xy["y"], strict=True)}
        assert not got & pairs, what


def _check_text(text: str, ids: set[str], pairs: set[tuple[str, str]], what: str):
    assert not set(re.findall(r"T-\d+-\d{6}", text)) & ids, what
    # generic words ("name" is a key of CRS JSON, "rt"/"rw"/"kk" are substrings) are checked
    # as column names by _check_frame; distinctive personal field names must not appear at all
    distinct = PERSONAL_FIELDS - {"name", "kk", "rt", "rw"}
    for field in distinct | {"household_id", "household_lon", "nik"}:
        assert f'"{field}"' not in text and f",{field}," not in text, (what, field)
    assert "Jalan Rahasia" not in text and "Nama 1" not in text, what
    numbers = re.findall(r"-?\d+\.\d+", text)
    adjacent = set(zip(numbers, numbers[1:], strict=False))
    assert not adjacent & pairs, what


def test_published_outputs_hold_nothing_personal(leaky_world):
    run, truth = leaky_world
    ids, pairs = _secrets(truth)
    pub = PublishedRun(run)
    for r in pub.resolutions:
        cells = pub.cells(r)
        _check_frame(cells, ids, pairs, f"cells r{r}")
        _check_text(json.dumps(pub.cell(cells["h3"].iloc[0])), ids, pairs, "cell()")
    _check_frame(pub.pockets(), ids, pairs, "pockets")
    _check_frame(pub.sites(), ids, pairs, "sites")
    _check_frame(pub.regencies(), ids, pairs, "regencies")
    assert not set(pub.indicators()) & (PERSONAL_FIELDS | {"household_lon", "household_lat"})


@pytest.mark.parametrize("layer", LAYERS)
def test_exports_hold_nothing_personal(leaky_world, tmp_path, layer):
    run, truth = leaky_world
    ids, pairs = _secrets(truth)
    pub = PublishedRun(run)
    for fmt in FORMATS:
        out = tmp_path / f"{layer}.{fmt}"
        summary = export_layer(pub, layer, out, fmt=fmt, wkt=(fmt == "csv"))
        what = f"{layer}.{fmt}"
        raw_text = out.read_bytes().decode("latin-1")
        _check_text(raw_text if fmt in ("geojson", "csv") else "", ids, pairs, what)
        assert not set(re.findall(r"T-\d+-\d{6}", raw_text)) & ids, what
        if fmt == "parquet":
            back = gpd.read_parquet(out)
            meta = pq.read_schema(out).metadata
            _check_text(b"".join(meta.values()).decode(), ids, pairs, what + " metadata")
        elif fmt == "csv":
            back = pd.read_csv(out, dtype=str)
            _check_text(summary.sidecar.read_text(), ids, pairs, what + " sidecar")
        else:
            back = pyogrio.read_dataframe(out)
        _check_frame(back, ids, pairs, what)


def test_published_regency_totals_match_regencies(world):
    _, _, pub, raw = world
    totals = pub.regency_totals(("households", "no_such_column"))
    assert list(totals.columns) == ["households", "cells"]
    ref = pub.regencies().set_index("regency_code")["households"]
    assert (totals["households"].reindex(ref.index).to_numpy() == ref.to_numpy()).all()
    # oracle: a plain groupby of the raw base households of the released atoms, by the
    # regency each atom is counted in
    atoms = pub.plan.atoms.reindex(raw[8]["h3"].to_numpy())
    released = atoms["released"].to_numpy(dtype=bool)
    expected = (raw[8].loc[released, "households"]
                .groupby(atoms["atom_regency"].to_numpy()[released]).sum())
    assert totals["households"].to_dict() == pytest.approx(expected.to_dict())
