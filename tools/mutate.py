"""Mutation testing of the modules that guard privacy, hot spots, coverage, the grid and tiles.

Usage::

    pip install -e ".[mutation]"           # mutmut (once)
    python tools/mutate.py                   # every module below, one after the other
    python tools/mutate.py privacy render    # some modules
    python tools/mutate.py --list            # the modules and their test subsets

For each module, ``mutmut`` (https://mutmut.readthedocs.io) makes small changes to the code
(``<`` to ``<=``, ``+`` to ``-``, ``True`` to ``False``, a constant changed, an argument
dropped, ...) and runs the module's test subset against each; a *killed* mutant makes a test
fail, a *survivor* passes every test: a bug the suite would not catch. The score is
``(killed + timeout) / (killed + timeout + survived + no tests + suspicious)`` (a mutant
that makes a test hang is detected, as in mutmut's own score); the target is at least 90 %.

Nothing runs in the working tree: the code and tests are staged into ``--workdir``
(default ``$TMPDIR/kantong-mutation``) as the installed layout (``kantong/engine``,
``kantong/webmap``), where mutmut writes its ``mutants/`` copy. Lines that only log or only
build an error message are not mutated (``DO_NOT_MUTATE``): changing a message's wording is
not a behaviour the suite is meant to pin down. Results: ``<workdir>/<module>/report.json``
(counts, score, surviving mutant names); ``cd <workdir>/<module> && mutmut show NAME`` prints a
survivor's diff. Slow (minutes per module on 2 cores): not part of CI. See docs/testing.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: one settings file per module: tools/mutation/<module>.toml with ``file`` (to mutate, relative
#: to the repository), ``tests`` (the tests that must kill its mutants) and ``deselect`` (a
#: pytest -k expression leaving out tests too slow to run once per mutant, or "").
SETTINGS = Path(__file__).resolve().parent / "mutation"


def _modules() -> dict[str, tuple[str, list[str], str]]:
    out = {}
    for f in sorted(SETTINGS.glob("*.toml")):
        d = tomllib.loads(f.read_text())
        out[f.stem] = (d["file"], list(d["tests"]), d.get("deselect", ""))
    return out


MODULES = _modules()

#: A mutant whose tests run past ``TIMEOUT_MULTIPLIER`` times their usual CPU time (mutmut
#: doubles it and adds a constant) is stopped and counted as *timeout*: the change made a test
#: hang, which the suite detects (CI would fail), so it counts as detected, as in mutmut's own
#: score (``mutmut export-cicd-stats``/badge) and in PIT and Stryker.
TIMEOUT_MULTIPLIER = 5.0

#: Lines mutmut leaves alone (regular expressions): logging, and raise lines (the message).
DO_NOT_MUTATE = [r"^\s*logger\.(debug|info|warning|error)\(", r"^\s*raise \w+(Error|Exception)\("]


def _stage(workdir: Path) -> None:
    """Copy the package as installed (kantong/engine, kantong/webmap) and the tests."""
    if workdir.exists():
        shutil.rmtree(workdir)
    pkg = workdir / "kantong"
    pkg.mkdir(parents=True)
    shutil.copy2(ROOT / "kantong" / "__init__.py", pkg / "__init__.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "engine", pkg / "engine", ignore=ignore)
    shutil.copytree(ROOT / "webmap", pkg / "webmap", ignore=ignore)
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore)


def _config(module_file: str, tests: list[str], keyword: str) -> str:
    """Return the [tool.mutmut] and pytest settings of one module's run (a pyproject.toml)."""
    target = "kantong/" + module_file
    quoted = ", ".join(json.dumps(t) for t in [*tests, *(["-k", keyword] if keyword else [])])
    patterns = ", ".join(json.dumps(p) for p in DO_NOT_MUTATE)
    return f"""[tool.mutmut]
source_paths = ["kantong"]
only_mutate = [{json.dumps(target)}]
pytest_add_cli_args_test_selection = [{quoted}]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-p", "no:randomly"]
do_not_mutate_patterns = [{patterns}]
also_copy = ["tests"]
timeout_multiplier = {TIMEOUT_MULTIPLIER}

[tool.pytest.ini_options]
addopts = "--strict-markers"
markers = ["browser: headless Chromium", "slow: end-to-end runs"]
filterwarnings = ["ignore::DeprecationWarning", "ignore::PendingDeprecationWarning"]
"""


def _counts(workdir: Path) -> dict[str, list[str]]:
    out = subprocess.run(["mutmut", "results", "--all", "true"], cwd=workdir,
                         capture_output=True, text=True, check=False).stdout
    by_status: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if m:
            by_status.setdefault(m.group(2).strip(), []).append(m.group(1))
    return by_status


def run_module(key: str, base: Path, max_children: int, only: list[str] | None = None) -> dict:
    """Stage, run mutmut on one module (``only``: mutant name globs), write its report."""
    module_file, tests, keyword = MODULES[key]
    workdir = base / key
    _stage(workdir)
    (workdir / "pyproject.toml").write_text(_config(module_file, tests, keyword))
    env = dict(os.environ, KANTONG_DATA_DIR=str(ROOT / "data"), PYTHONDONTWRITEBYTECODE="1")
    t0 = time.perf_counter()
    names = [f"kantong.{module_file[:-3].replace('/', '.')}.{g}" for g in only or []]
    proc = subprocess.run(["mutmut", "run", "--max-children", str(max_children), *names],
                          cwd=workdir, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    (workdir / "mutmut.log").write_text(proc.stdout[-20000:] + proc.stderr[-20000:])
    status = _counts(workdir)
    if names:  # mutants outside the globs are not part of the score
        status = {s: [m for m in v if any(fnmatch.fnmatch(m, g) for g in names)]
                  for s, v in status.items()}
    n = {s: len(v) for s, v in status.items() if v}
    detected = n.get("killed", 0) + n.get("timeout", 0) + n.get("segfault", 0)
    counted = detected + sum(n.get(s, 0) for s in ("survived", "no tests", "suspicious"))
    report = {"module": module_file, "tests": tests, "deselected": keyword,
              "only": only or [], "counts": n,
              "score": round(detected / counted, 4) if counted else None,
              "seconds": round(seconds), "survived": sorted(status.get("survived", [])),
              "no_tests": sorted(status.get("no tests", []))}
    (workdir / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    """Run the modules named on the command line (default: all) and print the scores."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"of {', '.join(MODULES)} (default: all)")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "kantong-mutation")
    ap.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", action="append", metavar="GLOB",
                    help="only these mutants, e.g. 'x_rollup_cells*' (repeatable; one module)")
    ap.add_argument("--list", action="store_true", help="list the modules and their tests")
    args = ap.parse_args()
    if args.list:
        for key, (path, tests, keyword) in MODULES.items():
            print(f"{key:10s} {path}\n{'':10s} tests: {' '.join(tests)}"
                  + (f" -k '{keyword}'" if keyword else ""))
        return
    if shutil.which("mutmut") is None:
        sys.exit("Error: mutmut is not installed (pip install -e '.[mutation]')")
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        sys.exit(f"Error: unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    print(f"{'module':10s} {'killed':>7s} {'survived':>8s} {'no tests':>8s} {'timeout':>7s} "
          f"{'score':>6s} {'time':>6s}")
    scores = []
    for key in args.modules or list(MODULES):
        r = run_module(key, args.workdir, args.max_children, args.only)
        c = r["counts"]
        score = "n/a" if r["score"] is None else f"{100 * r['score']:.1f}%"
        print(f"{key:10s} {c.get('killed', 0):7d} {c.get('survived', 0):8d} "
              f"{c.get('no tests', 0):8d} {c.get('timeout', 0):7d} {score:>6s} "
              f"{r['seconds']:5d}s", flush=True)
        scores.append(r["score"] or 0.0)
    print(f"reports: {args.workdir}/<module>/report.json")
    if min(scores) < 0.9:
        sys.exit(1)


if __name__ == "__main__":
    main()
