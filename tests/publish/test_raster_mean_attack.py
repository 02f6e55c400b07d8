"""The raster-mean attack of issue 18 recovers no withheld cell from published data.

Setting: a run built with ``--raster ghs=<raster>``; the raster is public (GHS-POP in the
issue). Rollup ``<raster>_mean`` values used to be household-weighted over *all* children,
withheld ones included. For a published parent ``P`` with published children ``C`` and
unpublished children ``U`` (the attacker computes every child's raster mean ``m`` from the
public raster):

    sum_{u in U} h_u       = H_P - sum_{c in C} h_c                  (residual households)
    sum_{u in U} h_u m_u   = H_P M_P - sum_{c in C} h_c m_c          (residual weighted sum)

With two unknowns the system has one solution; an integer, positive one is a claim. The
attack is run against the raw rollup files (positive control: it must recover cells, or
the test proves nothing) and against :class:`PublishedRun`, for every derived column.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
import rasterio
from factories import make_households
from rasterio.transform import from_origin

from kantong.engine.build.run import build_run
from kantong.engine.build.zonal import cell_means
from kantong.engine.h3ids import cells_to_uint64
from kantong.engine.inputs.rasters import open_raster
from kantong.engine.publish.published import PublishedRun

K = 10


@pytest.fixture(scope="module")
def raster_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real build with small cells (many withheld) and a public random raster ``ghs``."""
    tmp = tmp_path_factory.mktemp("attack")
    hh = make_households(seed=3, mean_households=7.0, radius=14).households
    hh.to_csv(tmp / "hh.csv", index=False)
    pixel = 1 / 1200
    west, north = hh["lon"].min() - 0.05, hh["lat"].max() + 0.05
    width = int((hh["lon"].max() + 0.05 - west) / pixel)
    height = int((north - hh["lat"].min() + 0.05) / pixel)
    data = np.random.default_rng(1).gamma(2.0, 50.0, (height, width)).astype("float32")
    with rasterio.open(tmp / "ghs.tif", "w", driver="GTiff", width=width, height=height,
                       count=1, dtype="float32", crs="EPSG:4326",
                       transform=from_origin(west, north, pixel, pixel)) as dst:
        dst.write(data, 1)
    build_run(tmp / "hh.csv", out=tmp / "run", rasters={"ghs": tmp / "ghs.tif"},
              population=None, pockets=False)
    return tmp / "run", tmp / "ghs.tif"


def _solve(parents: pd.DataFrame, children: pd.DataFrame, child_value: dict[str, float],
           column: str) -> dict[str, int]:
    """Claimed households of unpublished children, from two equations per parent."""
    pub = children.set_index("h3")
    claims: dict[str, int] = {}
    for _, p in parents.iterrows():  # a few hundred parents: a loop keeps the algebra readable
        m_p = p[column]
        if not np.isfinite(m_p):
            continue
        kids = h3.cell_to_children(p["h3"], h3.get_resolution(p["h3"]) + 1)
        known = [k for k in kids if k in pub.index]
        unknown = [k for k in kids if k not in pub.index and np.isfinite(child_value[k])]
        r = p["households"] - pub.loc[known, "households"].sum()
        s = p["households"] * m_p - sum(pub.at[k, "households"] * child_value[k]
                                        for k in known if np.isfinite(child_value[k]))
        solutions = []
        for i, j in itertools.combinations(unknown, 2):
            mi, mj = child_value[i], child_value[j]
            if r <= 0 or abs(mi - mj) < 1e-9:
                continue
            b = (s - r * mi) / (mj - mi)
            a = r - b
            if min(a, b) >= 1 - 1e-6 and abs(a - round(a)) < 1e-4 and abs(b - round(b)) < 1e-4:
                solutions.append({i: round(a), j: round(b)})
        if len(solutions) == 1:
            claims.update(solutions[0])
    return claims


def _recovered(claims: dict[str, int], truth: pd.Series, published: set[str]) -> int:
    return sum(1 for c, v in claims.items() if c not in published and truth.get(c) == v)


def test_raster_mean_attack_recovers_no_withheld_cell(raster_run: tuple[Path, Path]) -> None:
    run, raster = raster_run
    pub = PublishedRun(run, min_households=K)
    base = pub.base_resolution
    parents, children = pub.cells(base - 1), pub.cells(base)
    every_child = sorted({c for p in parents["h3"] for c in h3.cell_to_children(p, base)})
    values = cell_means(open_raster(raster, name="ghs"), cells_to_uint64(every_child))
    child_value = dict(zip(every_child, values, strict=True))
    truth = pd.read_parquet(run / "cells.parquet", columns=["h3", "households"]
                            ).set_index("h3")["households"]
    shown = set(children["h3"])
    withheld = set(truth.index) - shown
    assert len(withheld) > 100  # the run has plenty to protect

    # positive control: the values the rollup file holds (all children) do leak
    raw = pd.read_parquet(run / "rollups" / f"cells_r{base - 1}.parquet",
                          columns=["h3", "ghs_mean"]).set_index("h3")["ghs_mean"]
    leaky = parents.assign(ghs_mean=raw.reindex(parents["h3"]).to_numpy())
    assert _recovered(_solve(leaky, children, child_value, "ghs_mean"), truth, shown) > 0

    # what is published: nothing recovered
    assert _recovered(_solve(parents, children, child_value, "ghs_mean"), truth, shown) == 0


def test_every_derived_rollup_column_uses_published_cells_only(
        raster_run: tuple[Path, Path]) -> None:
    """Each rollup mean equals the household-weighted mean over its published base cells."""
    run, _ = raster_run
    pub = PublishedRun(run, min_households=K)
    base = pub.cells(pub.base_resolution)
    for res in pub.resolutions[:-1]:
        cells = pub.cells(res).set_index("h3")
        derived = [c for c in cells.columns
                   if c.endswith("_mean") or c.startswith("travel_min_") or c == "population"]
        assert "ghs_mean" in derived
        parent = [h3.cell_to_parent(c, res) for c in base["h3"]]
        for col in derived:
            x = base[col].astype(float)
            ok = np.isfinite(x)
            frame = pd.DataFrame({"p": parent, "w": base["households"] * ok,
                                  "wx": (base["households"] * x).where(ok, 0.0),
                                  "x": x.where(ok, 0.0), "n": ok})
            g = frame.groupby("p").sum()
            expected = (g["x"].where(g["n"] > 0) if col == "population"
                        else (g["wx"] / g["w"]).where(g["w"] > 0))
            got = cells[col].astype(float)
            ref = expected.reindex(got.index)
            both = np.isfinite(ref.to_numpy())
            assert np.array_equal(both, np.isfinite(got.to_numpy())), (res, col)
            np.testing.assert_allclose(got.to_numpy()[both], ref.to_numpy()[both], rtol=1e-9)
