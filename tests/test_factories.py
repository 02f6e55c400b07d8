import geopandas as gpd
import pandas as pd
from factories import make_households, make_run


def test_make_run_writes_contract(tmp_path):
    truth = make_run(tmp_path / "r", seed=3)
    cells = gpd.read_parquet(tmp_path / "r" / "cells.parquet")
    assert cells.crs.to_epsg() == 4326
    assert cells["households"].sum() == len(truth.households)
    for r in (5, 6, 7):
        ru = pd.read_parquet(tmp_path / "r" / "rollups" / f"cells_r{r}.parquet")
        assert ru["households"].sum() == cells["households"].sum()
        assert ru["extreme_households"].sum() == cells["extreme_households"].sum()
    assert cells["regency_code"].str.startswith("61").all()


def test_planted_pockets_are_poorer():
    p = make_households(seed=1)
    hot = {c for s in p.pocket_cells for c in s}
    assert len(hot) == 38  # two 2-rings of 19 cells
    assert (p.households["desil"] == 1).mean() < 0.2
