"""Large synthetic registers as Parquet partitions (``kantong demo-data --partitions``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from kantong.engine.cli.group import cli
from kantong.engine.demo.make import default_households
from kantong.engine.demo.partitions import (
    ALL_PROVINCES,
    PartitionedDemo,
    _chunk_sizes,
    make_partitioned_demo,
    parse_provinces,
    split_households,
)
from kantong.engine.errors import ConfigError, InputError

N = 3000
CHUNK = 700


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[PartitionedDemo, PartitionedDemo]:
    """The same register written as 2 and as 3 partitions, in chunks of CHUNK rows."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("kantong.engine.demo.partitions.CHUNK_ROWS", CHUNK)
        mp.setattr("kantong.engine.demo.partitions.CROSS_DUPLICATE_SHARE", 0.004)
        a = make_partitioned_demo(tmp_path_factory.mktemp("a"), provinces="64,65",
                                  households=N, partitions=2, seed=3)
        b = make_partitioned_demo(tmp_path_factory.mktemp("b"), provinces=["65", "64"],
                                  households=N, partitions=3, seed=3)
    return a, b


def _rows(demo: PartitionedDemo) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in demo.parts], ignore_index=True)


def test_rows_do_not_depend_on_partitions(two: tuple[PartitionedDemo, PartitionedDemo]) -> None:
    a, b = two
    assert [p.name for p in a.parts] == ["part-00000.parquet", "part-00001.parquet"]
    assert len(b.parts) == 3
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == N
    pd.testing.assert_frame_equal(ra, rb)
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in b.parts]
    assert sizes == [1000, 1000, 1000]
    for p in b.parts:
        meta = pq.ParquetFile(p).metadata
        assert all(meta.row_group(i).num_rows <= CHUNK for i in range(meta.num_row_groups))


def test_provinces_ids_and_duplicates(two: tuple[PartitionedDemo, PartitionedDemo],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kantong.engine.demo.partitions.CHUNK_ROWS", CHUNK)
    a, _ = two
    rows = _rows(a)
    meta = json.loads(a.metadata.read_text(encoding="utf-8"))
    shares = split_households(N, ("64", "65"))
    assert meta["province_households"] == shares and sum(shares.values()) == N
    assert shares["64"] > shares["65"]  # Kaltim is larger than Kaltara
    prov = rows["household_id"].str.slice(4, 6)
    assert prov.iloc[: shares["64"]].eq("64").all()  # provinces in order, 64 first
    assert prov.iloc[shares["64"]:].eq("65").all()
    art = {k: sum(meta["by_province"][p]["artefacts"][k] for p in ("64", "65"))
           for k in ("duplicate_household_id", "cross_partition_duplicates")}
    assert art["cross_partition_duplicates"] >= 2
    assert rows["household_id"].duplicated().sum() == sum(art.values())
    # a copied id names its donor's position in the province: cross copies come from the
    # chunk before, the planted duplicates from the same chunk
    crossed = 0
    for code, start in (("64", 0), ("65", shares["64"])):
        block = rows.iloc[start:start + shares[code]].reset_index(drop=True)
        bounds = np.cumsum(_chunk_sizes(shares[code]))
        own = np.searchsorted(bounds, block.index.to_numpy(), side="right")
        donor = np.searchsorted(bounds, block["household_id"].str.slice(7).astype(int) - 1,
                                side="right")
        assert (donor <= own).all()
        assert (donor >= own - 1).all()
        crossed += int((donor < own).sum())
    assert crossed == art["cross_partition_duplicates"]
    assert meta["partitions"] == 2 and meta["households"] == N
    assert a.friction is None and a.facilities.exists()
    assert "SYNTHETIC" in (a.out_dir / "README.txt").read_text(encoding="utf-8")


def test_parse_provinces_and_limits(tmp_path: Path) -> None:
    assert parse_provinces("all") == ALL_PROVINCES
    assert parse_provinces("62, 61,62") == ("61", "62")
    with pytest.raises(InputError, match="unknown province"):
        parse_provinces("61,99")
    with pytest.raises(ConfigError, match="partitions"):
        make_partitioned_demo(tmp_path, provinces="65", households=10, partitions=11)
    with pytest.raises(ConfigError, match="households"):
        make_partitioned_demo(tmp_path, provinces="65", households=0)
    assert sum(split_households(7, ALL_PROVINCES).values()) == 7
    assert split_households(10**6, ("61",)) == {"61": 10**6}
    assert default_households("61") == 500_000


def test_cli_partitions(tmp_path: Path) -> None:
    out = tmp_path / "p"
    result = CliRunner().invoke(cli, ["demo-data", "--out", str(out), "--province", "65",
                                      "--households", "1200", "--partitions", "2",
                                      "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "2 Parquet files" in result.output and "SYNTHETIC" in result.output
    files = sorted((out / "households_synthetic").glob("*.parquet"))
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet"]
    assert (out / "friction_synthetic.tif").exists()  # one province: rasters too
    assert (out / "population_ghspop.tif").exists()
    kantong = json.loads(pq.read_schema(files[0]).metadata[b"kantong"])
    assert kantong["partition"] == 0 and kantong["label"].startswith("SYNTHETIC")


@pytest.mark.parametrize("args", [["--province", "all", "--format", "csv"],
                                  ["--partitions", "2", "--follow-up"],
                                  ["--province", "61,6x"], ["--partitions", "0"]])
def test_cli_partition_errors(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["demo-data", "--out", str(tmp_path / "x"),
                                      "--households", "100", *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert not (tmp_path / "x").exists()
