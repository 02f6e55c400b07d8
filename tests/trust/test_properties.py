"""Property suite (issue 18): generated bad inputs thrown at every command.

For every generated invocation: either the command fails with exit code != 0 and exactly
one ``Error:`` line, or it succeeds (and then, for ``build``, read = accepted + rejected);
never a traceback, never a changed input or run file. Examples are derandomized so CI is
reproducible; the budget keeps the whole module well under a minute on two cores.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import pytest
from factories import make_households
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trustcli import invoke, succeeded

from kantong.engine.rundir import verify_run

_SETTINGS = {"deadline": None, "derandomize": True, "database": None,
             "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow]}
_COLUMNS = ["household_id", "lon", "lat", "desil", "members", "village_code",
            "water_improved", "sanitation_improved", "electricity", "housing_adequate",
            "child_out_of_school", "receives_assistance"]
_NUMBERS = st.sampled_from(["inf", "-inf", "nan", "1e308", "-1", "0", "1e-320", "3",
                            "99999999999999999999", "abc", "", " 5 ", "1_000", "0x10"])


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _check(result, *, what: object) -> bool:
    return succeeded(result, what=what)


_cell = st.one_of(
    st.sampled_from(["", "NA", "null", "-1", "0", "1", "4", "5", "ya", "tidak", "true",
                     "1e308", "inf", "nan", "109.3", "-0.05", "6102010001", "61.07.01.2001",
                     "999", "\u00e9\u00e8", "\x00", '"', "a,b", "\t"]),
    st.text(max_size=12))


_VALID = make_households(seed=5, radius=1, mean_households=4.0).households.astype(str)


@st.composite
def _register(draw) -> bytes:
    """A CSV register: valid rows of the schema mixed with generated junk, maybe truncated."""
    columns = draw(st.one_of(
        st.just(_COLUMNS),
        st.lists(st.sampled_from(_COLUMNS + ["extra", "nik"]), min_size=1, max_size=14,
                 unique=True)))
    rows = draw(st.lists(st.lists(_cell, min_size=len(columns), max_size=len(columns)),
                         max_size=8))
    valid = draw(st.lists(st.integers(0, len(_VALID) - 1), max_size=6))
    rows += [[_VALID.iloc[i].get(c, "") for c in columns] for i in valid]
    rows = draw(st.permutations(rows))
    buf = io.StringIO()
    csv.writer(buf).writerows([columns, *rows])
    data = buf.getvalue().encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    return data


@settings(max_examples=4, **_SETTINGS)
@given(data=_register())
def test_build_with_generated_registers(data: bytes, tmp_path: Path) -> None:
    folder = tmp_path / f"b{hashlib.sha1(data).hexdigest()[:8]}"
    folder.mkdir()
    src = folder / "hh.csv"
    src.write_bytes(data)
    result = invoke("build", "--households", src, "--population", "none", "--no-pockets",
                    "--out", folder / "run")
    assert src.read_bytes() == data  # never a lost or changed input
    if _check(result, what="build"):
        m = re.search(r"read\s+([\d,]+) = accepted\s+([\d,]+) \+ rejected\s+([\d,]+)",
                      result.output)
        read, accepted, rejected = (int(x.replace(",", "")) for x in m.groups())
        assert read == accepted + rejected
        verify_run(folder / "run")


@settings(max_examples=10, **_SETTINGS)
@given(count=_NUMBERS, minutes=_NUMBERS, budget=_NUMBERS,
       kind=st.sampled_from(["puskesmas", "school", "", "../x", "a" * 300]),
       use_budget=st.booleans())
def test_sites_with_generated_options(built_run: Path, tmp_path: Path, count: str,
                                      minutes: str, budget: str, kind: str,
                                      use_budget: bool) -> None:
    before = _tree(built_run)
    args = ["sites", "--run", built_run, "--type", kind, "--max-minutes", minutes,
            "--out", tmp_path / "s.geojson"]
    args += ["--budget", budget, "--cost", "1000"] if use_budget else ["--count", count]
    _check(invoke(*args), what=args)
    assert _tree(built_run) == before  # --out outside the run: the run is not touched


@settings(max_examples=10, **_SETTINGS)
@given(layer=st.sampled_from(["cells", "pockets", "sites", "x"]),
       fmt=st.sampled_from(["geojson", "gpkg", "parquet", "csv", "fgb", None]),
       out=st.sampled_from(["e.geojson", "e.csv", "e.gpkg", "e.txt", "run/cells.parquet",
                            "run/manifest.json", "run", "dir/", "run/rollups"]),
       resolution=st.sampled_from([None, "0", "5", "7", "8", "15", "x"]),
       regency=st.sampled_from([None, "6105", "9999", "", "'; drop"]),
       k=st.sampled_from([None, "1", "3", "10", "1000000"]))
def test_export_with_generated_options(built_run: Path, tmp_path: Path, layer: str,
                                       fmt: str | None, out: str, resolution: str | None,
                                       regency: str | None, k: str | None) -> None:
    before = _tree(built_run)
    (tmp_path / "dir").mkdir(exist_ok=True)
    target = built_run / out[4:] if out.startswith("run") else tmp_path / out
    args = ["export", "--run", built_run, "--layer", layer, "--out", target]
    for flag, value in (("--format", fmt), ("--resolution", resolution),
                        ("--regency", regency), ("--min-households", k)):
        if value is not None:
            args += [flag, value]
    _check(invoke(*args), what=args)
    assert _tree(built_run) == before


@settings(max_examples=3, **_SETTINGS)
@given(k_ring=st.sampled_from(["0", "1", "9", "x"]), fdr=_NUMBERS,
       res=st.sampled_from(["0", "4", "9", "11"]))
def test_pockets_with_generated_options(run_copy: Path, k_ring: str, fdr: str, res: str
                                        ) -> None:
    args = ["pockets", "--run", run_copy, "--k-ring", k_ring, "--fdr", fdr,
            "--analysis-resolution", res, "--top", "0"]
    _check(invoke(*args), what=args)
    verify_run(run_copy)  # old or new pockets, the run is complete and sealed either way


@settings(max_examples=3, **_SETTINGS)
@given(k=st.sampled_from(["2", "3", "10", "x"]), res=st.sampled_from(["5", "8", "12"]),
       thr=_NUMBERS)
def test_compare_with_generated_options(built_run: Path, tmp_path: Path, k: str, res: str,
                                        thr: str) -> None:
    before = _tree(built_run)
    args = ["compare", built_run, built_run, "--no-plot", "--min-households", k,
            "--resolution", res, "--change-threshold", thr, "--out", tmp_path / "cmp"]
    _check(invoke(*args), what=args)
    assert _tree(built_run) == before


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "missing.csv", "."])
def test_special_files_are_one_line_errors(tmp_path: Path, target: str) -> None:
    """Character devices, directories and missing files: an error, never a hang."""
    result = invoke("build", "--households", target, "--population", "none",
                    "--out", tmp_path / "run")
    assert not _check(result, what=target)


@settings(max_examples=6, **_SETTINGS)
@given(name=st.one_of(st.sampled_from(["ani", "", "A", "../x", "a" * 70, "ani budi"]),
                      st.text(max_size=10)),
       regency=st.sampled_from(["6105", "", "61", "x" * 4, "61055"]),
       role=st.sampled_from(["staff", "admin", "root"]),
       password=st.sampled_from(["", "short", "correct horse battery", "\x00" * 12]))
def test_users_with_generated_accounts(tmp_path: Path, name: str, regency: str, role: str,
                                       password: str) -> None:
    users = tmp_path / "users.json"
    before = users.read_bytes() if users.exists() else None
    args = ["users", "add", name, "--users", users, "--role", role, "--password-stdin"]
    if regency:
        args += ["--regency", regency]
    ok = _check(invoke(*args, input_=password + "\n"), what=args)
    if not ok:  # a refused account leaves the file as it was
        assert (users.read_bytes() if users.exists() else None) == before
    _check(invoke("users", "list", "--users", users), what="list")


@settings(max_examples=3, **_SETTINGS)
@given(run=st.sampled_from(["missing", "file", "empty", "run"]),
       k=st.sampled_from([None, "1", "3", "x"]),
       url=st.sampled_from([None, "evil.example", "https://ok.example", "javascript:x"]),
       users=st.sampled_from([None, "missing.json", "garbage.json"]))
def test_serve_with_generated_options(built_run: Path, tmp_path: Path, run: str,
                                      k: str | None, url: str | None, users: str | None,
                                      no_listen: None) -> None:
    """Everything but a valid setup fails before listening; a valid one starts and stops."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir(exist_ok=True)
    (tmp_path / "garbage.json").write_text("[1, 2]")
    args = ["serve", "--run", built_run if run == "run" else tmp_path / run]
    for flag, value in (("--min-households", k), ("--public-url", url),
                        ("--users", None if users is None else tmp_path / users)):
        if value is not None:
            args += [flag, value]
    _check(invoke(*args), what=args)
