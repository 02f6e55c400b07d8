"""The Dask backend gives the local backend's results: cells, counts, rejects, duplicates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kantong.engine import __version__
from kantong.engine.build.dask_backend import (
    ClusterInfo,
    HouseholdValues,
    check_workers,
    dask_client,
    dask_households,
    first_pieces_of_shared_ids,
    hash_strings,
)
from kantong.engine.build.grid import CellAccumulator
from kantong.engine.build.placement import StudyArea
from kantong.engine.build.run import read_study_area
from kantong.engine.build.travel import StraightLine, type_slug
from kantong.engine.demo.partitions import make_partitioned_demo
from kantong.engine.errors import InputError, MissingColumnError
from kantong.engine.inputs.households import canonical_columns, check_columns, validate_households
from kantong.engine.inputs.partitions import iter_part_batches, list_parts, plan_pieces

RES = 8
PIECE_ROWS = 1500


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[object, ClusterInfo]]:
    """A LocalCluster of two single-thread worker processes, shut down after the module."""
    manager = dask_client(workers=2, threads_per_worker=1, memory_limit="2GiB")
    yield manager.__enter__()
    manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def area() -> StudyArea:
    gdf, _ = read_study_area(province="61")
    return StudyArea.from_layer(gdf)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo partitions plus a hand-made last file full of duplicate-id corner cases."""
    root = tmp_path_factory.mktemp("dask")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("kantong.engine.demo.partitions.CHUNK_ROWS", 2500)
        mp.setattr("kantong.engine.demo.partitions.CROSS_DUPLICATE_SHARE", 0.002)
        demo = make_partitioned_demo(root / "demo", provinces="61", households=7000,
                                     partitions=3, seed=11)
    folder = demo.parts[0].parent
    first = pq.read_table(demo.parts[0]).to_pandas()
    bad_desil = first.loc[~first["desil"].between(1, 4), "household_id"].iloc[0]
    donor = first.iloc[10:16].copy()
    donor["household_id"] = [
        first["household_id"].iloc[3],            # plain duplicate of file 0
        " " + first["household_id"].iloc[4] + " ",  # same id once stripped
        bad_desil,                                # first occurrence was rejected (desil)
        "",                                       # blank id: missing, not a duplicate
        "NEW-1", "NEW-1",                         # duplicate within the last file
    ]
    donor["desil"] = 2
    extra = pa.Table.from_pandas(donor.reset_index(drop=True), preserve_index=False)
    pq.write_table(extra.cast(pq.read_schema(demo.parts[0]).remove_metadata()),
                   folder / "part-00003.parquet", row_group_size=2)
    (folder / "_SUCCESS").write_text("")
    return folder


def _local(files: list[str], area: StudyArea, values: HouseholdValues | None
           ) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """The local backend's streaming loop over the same files (one seen_ids set)."""
    acc = CellAccumulator(resolution=RES, sampler=values)
    seen: set = set()
    rejects, read, located = [], 0, 0
    for piece, raw in iter_part_batches(files, batch_rows=PIECE_ROWS, resolve=canonical_columns,
                                        check=check_columns):
        res = validate_households(raw, source=piece.path, row_offset=piece.row_offset,
                                  study_area=area, seen_ids=seen)
        acc.add(res.accepted, values=values(res.accepted) if values else None)
        rejects.append(res.rejects)
        read += res.read
        located += res.village_located
    return acc.result().sort_index(), pd.concat(rejects, ignore_index=True), read, located


def _values(parts: Path) -> HouseholdValues:
    fac = gpd.read_file(parts.parent / "facilities_synthetic.geojson")
    slugs = fac["type"].map(type_slug)
    x, y = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
    return HouseholdValues(straight={t: StraightLine(x[slugs == t], y[slugs == t])
                                     for t in sorted(slugs.unique())})


def test_dask_equals_local(cluster, area: StudyArea, parts: Path) -> None:
    client, info = cluster
    values = _values(parts)
    files = list_parts(parts)
    assert [Path(f).name for f in files] == [f"part-0000{k}.parquet" for k in range(4)]
    out = dask_households(parts, client=client, cluster=info, resolution=RES, study_area=area,
                          values=values, batch_rows=PIECE_ROWS)
    sums, rejects, read, located = _local(files, area, values)
    assert out.pieces == len(plan_pieces(files, target_rows=PIECE_ROWS)) > 4
    assert (out.read, out.accepted, out.village_located) == (
        read, round(float(sums["households"].sum())), located)
    assert located > 0 and sums["households"].dtype == np.float64  # expected counts
    assert out.read == out.accepted + len(out.rejects) == 7006
    # counts and value weights: exact integer sums per cell and per village, allocated once
    ints = [c for c in sums.columns if not c.endswith("__sum")]
    pd.testing.assert_frame_equal(out.sums[ints], sums[ints])
    floats = [c for c in sums.columns if c.endswith("__sum")]
    assert floats and np.allclose(out.sums[floats], sums[floats], rtol=1e-12, atol=1e-9)
    pd.testing.assert_frame_equal(out.rejects, rejects)
    assert out.cluster.workers == 2 and out.cluster.threads == 2
    section = out.manifest_section()
    assert section["name"] == "dask" and section["workers"] == 2
    assert {"plan", "duplicates", "households", "combine"} <= set(section["timings_s"])
    assert section["task_seconds"]["validate"] > 0


def test_duplicates_keep_first_across_partitions(cluster, area: StudyArea, parts: Path) -> None:
    client, info = cluster
    out = dask_households(str(parts / "part-*.parquet"), client=client, cluster=info,
                          resolution=RES, study_area=area, batch_rows=PIECE_ROWS)
    # oracle: every file in order, ids stripped, blanks excluded, pandas keep-first
    frames = []
    for path in list_parts(parts):
        f = pq.read_table(path, columns=["household_id"]).to_pandas()
        f["source"], f["row"] = Path(path).name, np.arange(1, len(f) + 1)
        frames.append(f)
    every = pd.concat(frames, ignore_index=True)
    ids = every["household_id"].str.strip().replace("", pd.NA)
    dup = ids.notna() & ids.duplicated(keep="first")
    expected = set(zip(every.loc[dup, "source"], every.loc[dup, "row"], strict=True))
    got = out.rejects[out.rejects["reason"] == "duplicate household_id"]
    assert set(zip(got["source"], got["row"], strict=True)) == expected
    last = got[got["source"] == "part-00003.parquet"]
    assert sorted(last["row"]) == [1, 2, 3, 6]  # the copied ids and the second NEW-1
    first_file = every.groupby(ids)["source"].transform("first")
    generated = dup & (first_file != every["source"]) & (every["source"] != "part-00003.parquet")
    assert generated.sum() >= 3  # the generator's duplicates across partitions
    blank = out.rejects[out.rejects["source"] == "part-00003.parquet"]
    assert "missing household_id" in set(blank["reason"])


def test_existing_scheduler_address(cluster, area: StudyArea, parts: Path) -> None:
    _, info = cluster
    with dask_client(info.scheduler) as (client, other):
        assert other.scheduler == info.scheduler and not other.local
        assert other.workers == 2
        out = dask_households(parts / "part-00001.parquet", client=client, cluster=other,
                              resolution=RES, study_area=area, batch_rows=PIECE_ROWS)
    assert out.files == [str(parts / "part-00001.parquet")]
    assert out.read == pq.ParquetFile(parts / "part-00001.parquet").metadata.num_rows


def test_unreachable_scheduler_is_an_input_error() -> None:
    with pytest.raises(InputError, match="cannot connect to the Dask scheduler"):
        with dask_client("tcp://127.0.0.1:9", timeout="1s"):
            pass


def test_missing_column_is_reported_before_any_task(cluster, area: StudyArea,
                                                    tmp_path: Path) -> None:
    client, info = cluster
    pq.write_table(pa.table({"household_id": ["a"], "lon": [110.0], "lat": [0.0]}),
                   tmp_path / "part-0.parquet")
    with pytest.raises(MissingColumnError, match="part-0.parquet: missing required"):
        dask_households(tmp_path, client=client, cluster=info, resolution=RES, study_area=area)


class _FakeClient:
    """Stands in for distributed.Client.run: what the workers report."""

    def __init__(self, reports: dict) -> None:
        self.reports = reports

        class _S:
            address = "tcp://fake:8786"

        self.scheduler = _S()

    def run(self, func):  # noqa: ANN001, ANN201
        return self.reports


def test_check_workers_rejects_other_versions_and_missing_data() -> None:
    ok = {"engine_version": __version__, "data_root": "/d", "missing": []}
    check_workers(_FakeClient({"w1": ok}))
    with pytest.raises(InputError, match="runs kantong 9.9"):
        check_workers(_FakeClient({"w1": ok, "w2": {**ok, "engine_version": "9.9"}}))
    with pytest.raises(InputError, match="KANTONG_DATA_DIR"):
        check_workers(_FakeClient({"w1": {**ok, "missing": ["boundaries/x.geojson"]}}))
    with pytest.raises(InputError, match="no worker"):
        check_workers(_FakeClient({}))


def test_list_parts_orders_and_filters(tmp_path: Path) -> None:
    table = pa.table({"household_id": ["a", "b", "c"]})
    for name in ("part-00010.parquet", "part-00002.parquet", ".hidden.parquet", "notes.txt"):
        pq.write_table(table, tmp_path / name) if name.endswith(".parquet") else \
            (tmp_path / name).write_text("x")
    (tmp_path / "_tmp").mkdir()
    pq.write_table(table, tmp_path / "_tmp" / "part-00000.parquet")
    (tmp_path / "sub").mkdir()
    pq.write_table(table, tmp_path / "sub" / "part-00001.parquet")
    names = [Path(p).relative_to(tmp_path).as_posix() for p in list_parts(tmp_path)]
    assert names == ["part-00002.parquet", "part-00010.parquet", "sub/part-00001.parquet"]
    assert [Path(p).name for p in list_parts(str(tmp_path / "part-*.parquet"))] == [
        "part-00002.parquet", "part-00010.parquet"]
    assert list_parts(f"file://{tmp_path}/part-*.parquet")[0].startswith("file://")
    with pytest.raises(InputError, match="not found"):
        list_parts(tmp_path / "missing")
    with pytest.raises(InputError, match="no Parquet file"):
        list_parts(str(tmp_path / "*.csv"))
    with pytest.raises(InputError, match="Parquet files only"):
        list_parts(tmp_path / "notes.txt")


def test_plan_pieces_groups_whole_row_groups(tmp_path: Path) -> None:
    table = pa.table({"household_id": [str(i) for i in range(10)]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=3)  # 3,3,3,1
    pq.write_table(table.slice(0, 4), tmp_path / "b.parquet", row_group_size=4)
    pieces = plan_pieces([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")],
                         target_rows=6)
    assert [(Path(p.path).name, p.row_groups, p.row_offset, p.rows) for p in pieces] == [
        ("a.parquet", (0, 1), 0, 6), ("a.parquet", (2, 3), 6, 4), ("b.parquet", (0,), 0, 4)]
    assert [p.index for p in pieces] == [0, 1, 2]
    with pytest.raises(InputError):
        plan_pieces([str(tmp_path / "a.parquet")], target_rows=0)


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same rows and columns; floats within 1e-9, everything else exactly equal."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x.dtype):
            assert np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=0, atol=1e-9,
                               equal_nan=True), col
        else:
            pd.testing.assert_series_equal(x, y, check_names=False, obj=col)


def test_build_run_dask_equals_local(cluster, parts: Path, tmp_path: Path) -> None:
    from kantong.engine.build.run import build_run

    _, info = cluster
    common = {"facilities": parts.parent / "facilities_synthetic.geojson", "province": "61",
              "batch_rows": PIECE_ROWS}
    local = build_run(parts, out=tmp_path / "local", **common)
    dask = build_run(str(parts), out=tmp_path / "dask", backend="dask",
                     scheduler=info.scheduler, **common)
    assert local.counts == dask.counts
    assert local.counts["households"]["read"] == 7006
    assert local.cells == dask.cells
    files = sorted(p.relative_to(local.run_dir).as_posix()
                   for p in local.run_dir.rglob("*.parquet"))
    assert {"cells.parquet", "pockets.parquet", "rollups/cells_r5.parquet"} <= set(files)
    for name in files:
        _assert_same_table(pd.read_parquet(local.run_dir / name),
                           pd.read_parquet(dask.run_dir / name))
    assert (local.run_dir / "rejects.csv").read_bytes() == (dask.run_dir / "rejects.csv"
                                                            ).read_bytes()
    assert local.manifest["backend"]["name"] == "local"
    used = dask.manifest["backend"]
    assert (used["name"], used["workers"], used["threads"]) == ("dask", 2, 2)
    assert not used["local_cluster"] and used["files"] == 4
    assert {"cluster", "households", "cells", "pockets"} <= set(dask.manifest["timings_s"])
    assert [f["path"].rsplit("/", 1)[-1] for f in dask.manifest["inputs"]["households"]["files"]
            ] == [f"part-0000{k}.parquet" for k in range(4)]


def test_cli_backend_options(cluster, parts: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kantong.engine.cli.group import cli

    _, info = cluster
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["build", "--households", str(parts / "part-0000[12]*"),
                                      "--province", "61", "--no-pockets", "--backend", "dask",
                                      "--scheduler", info.scheduler, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "backend     dask: 2 workers, 2 threads" in result.output
    assert "from 2 files" in result.output
    for args in (["--scheduler", info.scheduler], ["--workers", "2"],
                 ["--backend", "dask", "--scheduler", info.scheduler, "--workers", "3"],
                 ["--backend", "spark"]):
        bad = CliRunner().invoke(cli, ["build", "--households", str(parts), "--out",
                                       str(tmp_path / "x"), *args])
        assert bad.exit_code == 2, (args, bad.output)
        assert len([ln for ln in bad.output.splitlines() if ln.startswith("Error")]) == 1
    assert not (tmp_path / "x").exists()


def test_hash_strings_equal_for_equal_ids_only() -> None:
    rng = np.random.default_rng(5)
    ids = pd.Series([f"SYN-{rng.integers(61, 66)}-{i:07d}" for i in range(60_000)]
                    + ["é", "a" * 300, "ab", "ba", "a", "x y"], dtype="string")
    h = hash_strings(ids)
    assert h.dtype == np.uint64 and np.unique(h).size == len(ids)
    again = hash_strings(pd.Series(ids.to_numpy(dtype=object)[10:], dtype=object))
    assert np.array_equal(again, h[10:])  # same value, same hash: any dtype, any offset
    chunked = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(
        [pa.array(["ab", "SYN-61-0000001"]), pa.array(["é"])])))
    flat = pd.Series(["ab", "SYN-61-0000001", "é"], dtype=object)
    assert np.array_equal(hash_strings(chunked), hash_strings(flat))
    assert hash_strings(flat)[0] == h[-4] and hash_strings(flat)[2] == h[-6]


def test_duplicates_exact_even_when_every_hash_collides(parts: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A hash that puts every id in one of 3 buckets still finds exactly the shared ids."""
    from distributed import Client, LocalCluster

    monkeypatch.setattr("kantong.engine.build.dask_backend.hash_strings",
                        lambda v: (np.arange(len(v)) % 3).astype(np.uint64))
    pieces = plan_pieces(list_parts(parts), target_rows=PIECE_ROWS)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0") as local, Client(local) as client:
        got = first_pieces_of_shared_ids(client, pieces)
    rows = []
    for p in pieces:
        ids = pq.ParquetFile(p.path).read_row_groups(list(p.row_groups),
                                                     columns=["household_id"]).to_pandas()
        ids = ids["household_id"].str.strip().replace("", pd.NA).dropna().unique()
        rows.append(pd.DataFrame({"id": ids, "piece": p.index}))
    table = pd.concat(rows)
    agg = table.groupby("id")["piece"].agg(["min", "nunique"])
    expected = agg.loc[agg["nunique"] > 1, "min"].to_dict()
    assert got == expected and len(expected) >= 5


def test_geoparquet_pieces_read_like_the_local_reader(cluster, area: StudyArea, parts: Path,
                                                      tmp_path: Path) -> None:
    """A GeoParquet register (point geometry, another CRS) on Dask = the local file reader."""
    from kantong.engine.inputs.households import iter_household_batches

    client, info = cluster
    frame = pq.read_table(parts / "part-00001.parquet").to_pandas()
    points = gpd.points_from_xy(frame.pop("lon"), frame.pop("lat"), crs="EPSG:4326")
    gdf = gpd.GeoDataFrame(frame, geometry=points).to_crs("EPSG:32749")  # UTM 49S
    gdf.loc[gdf.geometry.x.isna(), "geometry"] = None  # blank coordinates stay blank
    path = tmp_path / "register.parquet"
    gdf.to_parquet(path, row_group_size=900)
    out = dask_households(path, client=client, cluster=info, resolution=RES, study_area=area,
                          batch_rows=PIECE_ROWS)
    acc, seen, rejects, offset = CellAccumulator(resolution=RES), set(), [], 0
    for batch in iter_household_batches(path, batch_rows=PIECE_ROWS):
        res = validate_households(batch, source=str(path), row_offset=offset, study_area=area,
                                  seen_ids=seen)
        acc.add(res.accepted)
        rejects.append(res.rejects)
        offset += len(batch)
    assert out.pieces == 2 and out.read == offset == len(frame)
    pd.testing.assert_frame_equal(out.sums, acc.result().sort_index())
    pd.testing.assert_frame_equal(out.rejects, pd.concat(rejects, ignore_index=True))
    assert out.village_located > 0


def test_pieces_without_accepted_households(cluster, area: StudyArea, parts: Path,
                                            tmp_path: Path) -> None:
    from kantong.engine.build.run import build_run
    from kantong.engine.errors import EmptyInputError

    client, info = cluster
    pieces = tmp_path / "pieces"  # the run goes beside the input, never inside it
    pieces.mkdir()
    good = pq.read_table(parts / "part-00001.parquet").slice(0, 2000)
    bad = good.set_column(good.schema.get_field_index("desil"), "desil",
                          pa.array(np.full(len(good), 9, dtype=np.int64)))
    bad = bad.set_column(0, "household_id", pa.array([f"BAD-{i}" for i in range(len(bad))]))
    pq.write_table(bad, pieces / "part-0.parquet", row_group_size=1000)
    pq.write_table(good, pieces / "part-1.parquet", row_group_size=1000)
    out = dask_households(pieces, client=client, cluster=info, resolution=RES,
                          study_area=area, batch_rows=1000)
    sums, rejects, read, _ = _local(list_parts(pieces), area, None)
    pd.testing.assert_frame_equal(out.sums, sums)
    pd.testing.assert_frame_equal(out.rejects, rejects)
    assert out.read == read == 4000 and 2000 <= len(out.rejects) < 2100
    assert round(float(out.sums["households"].sum())) == out.accepted > 1900
    (pieces / "part-1.parquet").unlink()
    with pytest.raises(EmptyInputError, match="no household was accepted"):
        build_run(pieces, out=tmp_path / "run", backend="dask", scheduler=info.scheduler,
                  population=None, pockets=False)
    assert not (tmp_path / "run").exists()
