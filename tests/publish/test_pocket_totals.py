"""Pocket totals tell the truth where safe, and no withheld cell can be recovered from them.

The attacker knows every published number: published cells at every resolution, pocket
totals and regency totals. Each is a linear equation in the unknown household counts of the
withheld base cells. A withheld cell is *recovered* when its unit vector lies in the row
space of those equations (then some combination of published numbers equals its count).
"""

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
from factories import make_households, make_run

from kantong.engine.config import Config
from kantong.engine.pockets.run import write_pockets
from kantong.engine.publish import privacy
from kantong.engine.publish.published import PublishedRun
from kantong.engine.publish.totals import TOTALS_EXACT, TOTALS_PROTECTED, safe_units

K = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    run = tmp_path_factory.mktemp("totals") / "run"
    truth = make_run(run, seed=26, planted=make_households(seed=26, mean_households=16.0),
                     with_friction=False)
    write_pockets(run, Config().replace("pockets", analysis_resolution=8))
    assert truth.pocket_cells
    pub = PublishedRun(run, min_households=K)
    base = gpd.read_parquet(run / "cells.parquet")
    return pub, pd.DataFrame(base.drop(columns="geometry"))


def _equations(pub: PublishedRun, base: pd.DataFrame, pockets: pd.DataFrame) -> tuple:
    """Rows over the withheld base cells: one per published aggregate that involves them."""
    status = pub.plan.status[pub.base_resolution].reindex(base["h3"]).to_numpy()
    hidden = np.flatnonzero(status != privacy.PUBLISHED)
    col = {h: i for i, h in enumerate(base["h3"].to_numpy()[hidden])}
    rows = []
    hidden_h3 = base["h3"].to_numpy()[hidden]
    for res in pub.resolutions:
        if res == pub.base_resolution:
            continue
        parent = np.array([h3.cell_to_parent(c, res) for c in hidden_h3])
        for p in pub.plan.published_ids(res):
            row = np.zeros(len(hidden))
            row[parent == p] = 1
            if row.any():
                rows.append(row)
    pid = base["pocket_id"].to_numpy()[hidden]
    safe = safe_units(pub._base_frame().set_index("h3").loc[base["h3"]].reset_index(),
                      pub.plan)[hidden]
    for p, kind in zip(pockets["pocket_id"], pockets["totals"], strict=True):
        # an exact total involves every withheld cell of the pocket; a protected one only
        # the withheld cells of safe atoms (the published figure's definition)
        row = ((pid == p) & (safe | (kind == TOTALS_EXACT))).astype(float)
        if row.any():
            rows.append(row)
    atoms = pub.plan.atoms.reindex(hidden_h3)
    for reg in pub.regencies()["regency_code"]:
        row = (atoms["released"].to_numpy(dtype=bool)
               & (atoms["atom_regency"].to_numpy() == reg)).astype(float)
        if row.any():
            rows.append(row)
    return np.array(rows), col, hidden


def _recoverable(a: np.ndarray) -> np.ndarray:
    """Which unknowns are determined: e_j in the row space of ``a``."""
    if a.size == 0:
        return np.zeros(a.shape[1] if a.ndim == 2 else 0, dtype=bool)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    basis = vt[s > 1e-9 * s.max()]
    # projection of e_j on the row space has norm 1 exactly when e_j lies in it
    return np.einsum("ij,ij->j", basis, basis) > 1 - 1e-9


def test_exact_pockets_equal_the_run_totals(world):
    pub, base = world
    pockets = pub.pockets().set_index("pocket_id")
    assert set(pockets["totals"]) <= {TOTALS_EXACT, TOTALS_PROTECTED}
    true = base.groupby("pocket_id")[["households", "extreme_households"]].sum()
    exact = pockets[pockets["totals"] == TOTALS_EXACT]
    assert len(exact) >= 1
    for pid, row in exact.iterrows():
        assert row["households"] == true.loc[pid, "households"]
        assert row["extreme_households"] == true.loc[pid, "extreme_households"]
    # some exact pocket really contains withheld cells (true totals beyond published cells)
    cells = pub.cells()
    shown = cells.groupby("pocket_id")["households"].sum()
    assert (exact["households"] > shown.reindex(exact.index)).any()
    for pid, row in pockets[pockets["totals"] == TOTALS_PROTECTED].iterrows():
        assert shown.loc[pid] <= row["households"] <= true.loc[pid, "households"]


def test_no_withheld_cell_can_be_recovered_from_published_totals(world):
    pub, base = world
    pockets = pub.pockets()
    assert set(pockets["totals"]) == {TOTALS_EXACT, TOTALS_PROTECTED}
    a, _, hidden = _equations(pub, base, pockets)
    assert len(hidden) > 0 and len(a) > 0
    assert not _recoverable(a).any()


def test_naive_true_totals_would_expose_cells(world):
    """The control: publishing every pocket's true totals would expose withheld cells."""
    pub, base = world
    all_pockets = pd.DataFrame({"pocket_id": base["pocket_id"].dropna().unique(),
                                "totals": TOTALS_EXACT})
    a, _, _ = _equations(pub, base, all_pockets)
    assert _recoverable(a).any()


def test_regency_totals_are_flagged(world):
    pub, base = world
    reg = pub.regencies().set_index("regency_code")
    true = base.groupby("regency_code")["households"].sum()
    for code, row in reg.iterrows():
        same = row["households"] == true.loc[code]
        assert row["totals"] == (TOTALS_EXACT if same else TOTALS_PROTECTED)
