"""Pockets on villages: contiguity, hot villages, pockets as village sets, the unit rule."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from scipy.sparse.csgraph import connected_components

from kantong.engine.config import Config, PocketConfig
from kantong.engine.errors import RunError
from kantong.engine.inputs import boundaries
from kantong.engine.pockets import villages as vp

REGENCY = "6109"  # Sekadau: 87 villages


@pytest.fixture(scope="module")
def sekadau() -> gpd.GeoDataFrame:
    vil = boundaries.villages()
    return vil[vil["regency_code"] == REGENCY].sort_values("village_code").reset_index(drop=True)


def test_neighbours_are_touching_polygons(sekadau):
    codes = sekadau["village_code"].to_numpy(dtype=object)
    w = vp.village_neighbours(codes)
    assert (w != w.T).nnz == 0 and (w.diagonal() == 1).all()
    # independent reference: geopandas spatial self-join on "intersects"
    pairs = gpd.sjoin(sekadau[["geometry"]], sekadau[["geometry"]], predicate="intersects")
    ref = {(int(i), int(j)) for i, j in zip(pairs.index, pairs["index_right"], strict=True)}
    got = set(zip(*[a.tolist() for a in w.nonzero()], strict=True))
    assert got == ref
    w2 = vp.village_neighbours(codes, k_ring=2)
    assert ((w2 @ np.ones(len(codes))) >= (w @ np.ones(len(codes)))).all()
    assert w2.nnz > w.nnz


def _table(sekadau: gpd.GeoDataFrame, core: str, *, rate_in: float = 0.7,
           rate_out: float = 0.2, households: int = 300) -> tuple[pd.DataFrame, set[str]]:
    """Villages with households; ``core`` and its neighbours at ``rate_in``."""
    codes = sekadau["village_code"].astype(str).to_numpy()
    w = vp.village_neighbours(codes)
    i = int(np.flatnonzero(codes == core)[0])
    cluster = set(codes[w[i].indices])
    extreme = np.where(np.isin(codes, list(cluster)), rate_in, rate_out) * households
    return pd.DataFrame({"village_code": codes, "households": households,
                         "extreme_households": np.rint(extreme).astype(int),
                         "households_village_located": households}), cluster


def _central_village(sekadau: gpd.GeoDataFrame) -> str:
    w = vp.village_neighbours(sekadau["village_code"].to_numpy(dtype=object))
    degree = np.asarray(w.sum(axis=1)).ravel()
    return str(sekadau["village_code"].iloc[int(np.argmax(degree))])


def test_a_planted_village_cluster_is_one_pocket_and_nothing_else(sekadau):
    core = _central_village(sekadau)
    table, cluster = _table(sekadau, core)
    stats = vp.hot_villages(table, config=PocketConfig())
    hot = set(table.loc[stats["hot"], "village_code"])
    assert hot <= cluster and core in hot
    pid = vp.assign_village_pockets(table, stats["hot"].to_numpy(), min_extreme_households=20)
    assert set(pid.dropna().unique()) == {1}
    members = table.loc[pid.notna(), "village_code"].to_numpy(dtype=object)
    n, _ = connected_components(vp.village_neighbours(members), directed=False)
    assert n == 1


def test_pure_noise_gives_no_pocket(sekadau):
    rng = np.random.default_rng(0)
    n = len(sekadau)
    hh = rng.integers(150, 400, n)
    table = pd.DataFrame({"village_code": sekadau["village_code"].astype(str),
                          "households": hh, "extreme_households": rng.binomial(hh, 0.2),
                          "households_village_located": hh})
    stats = vp.hot_villages(table, config=PocketConfig())
    pid = vp.assign_village_pockets(table, stats["hot"].to_numpy(), min_extreme_households=20)
    assert pid.notna().sum() == 0


def test_pocket_ids_order_by_extreme_households(sekadau):
    codes = sekadau["village_code"].astype(str).to_numpy()
    w = vp.village_neighbours(codes)
    a = 0
    far = [j for j in range(len(codes)) if w[a, j] == 0 and
           not set(w[j].indices) & set(w[a].indices)][0]
    table = pd.DataFrame({"village_code": codes, "households": 100,
                          "extreme_households": 10, "households_village_located": 100})
    table.loc[far, "extreme_households"] = 60
    table.loc[a, "extreme_households"] = 40
    hot = np.zeros(len(codes), dtype=bool)
    hot[[a, far]] = True
    pid = vp.assign_village_pockets(table, hot, min_extreme_households=20)
    assert pid[far] == 1 and pid[a] == 2
    pid = vp.assign_village_pockets(table, hot, min_extreme_households=50)
    assert pid[far] == 1 and pd.isna(pid[a])


def test_unit_rule_for_mixed_registers():
    table = pd.DataFrame({"village_code": ["a", "b"], "households": [60, 40],
                          "extreme_households": [1, 1],
                          "households_village_located": [30, 20]})
    auto = PocketConfig()
    assert vp.village_located_share(table) == 0.5
    assert vp.use_village_units(table, config=auto)
    table["households_village_located"] = [30, 19]
    assert not vp.use_village_units(table, config=auto)
    assert vp.use_village_units(table, config=dataclasses.replace(auto, units="villages"))
    assert not vp.use_village_units(table, config=dataclasses.replace(
        auto, units="cells", village_units_min_share=0.0))
    assert not vp.use_village_units(None, config=auto)
    with pytest.raises(RunError, match="villages.parquet"):
        vp.use_village_units(None, config=dataclasses.replace(auto, units="villages"))


def test_config_rejects_an_unknown_unit():
    from kantong.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="units"):
        Config.from_mapping({"pockets": {"units": "districts"}})
    with pytest.raises(ConfigError, match="village_units_min_share"):
        Config.from_mapping({"pockets": {"village_units_min_share": 1.5}})


def test_cells_take_the_village_holding_their_centre(sekadau):
    code = str(sekadau["village_code"].iloc[0])
    point = sekadau.geometry.iloc[0].representative_point()
    cells = pd.DataFrame({"lon": [point.x, 0.0], "lat": [point.y, 0.0]})
    holder = vp.cells_in_villages(cells, sekadau["village_code"].to_numpy(dtype=object))
    assert holder[0] == code and holder[1] is None
