"""Where ``kantong sites`` may write, and writing its outputs as units (issue 18).

The outputs of one ``kantong sites`` call are the GeoJSON, GeoParquet and JSON sidecar of
the chosen sites (``--out``, default ``RUNDIR/sites/sites_<type>.geojson``), the curve PNG,
and ``RUNDIR/sites/sites_<type>.parquet`` (+ ``.json``) for the web map.

- Inside the run only ``RUNDIR/sites/`` may be written, and the run is updated as one unit
  (:func:`kantong.engine.rundir.update_run`: hard-linked copy, resealed, swapped in).
- Outside the run, the files of one folder are written as one unit
  (:func:`kantong.engine.atomic.atomic_files`, a journal) and may replace only a previous
  ``kantong sites`` output (recognised by its JSON sidecar), never an input or a file of
  another run.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from kantong.engine.atomic import atomic_files, claim_file, is_png
from kantong.engine.constants import SITES_DIR
from kantong.engine.errors import InputError
from kantong.engine.rundir import update_run

logger = logging.getLogger(__name__)

_SIDECAR_KEYS = ("run_id", "parameters", "totals")


def _inside(path: Path, run_dir: Path) -> bool:
    target, root = path.resolve(), run_dir.resolve()
    return target == root or root in target.parents


def _previous_sites_output(path: Path) -> bool:
    """Whether ``path`` belongs to a previous ``kantong sites`` output (its JSON sidecar)."""
    if path.suffix.lower() == ".png":
        return is_png(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and all(k in meta for k in _SIDECAR_KEYS)


def claim_outputs(paths: dict[str, Path], run_dir: Path) -> None:
    """Check every output path before anything is written (one-line ``InputError``).

    Parameters
    ----------
    paths
        Output name -> path (``geojson``, ``parquet``, ``json``, ``plot``, ``web``).
    run_dir
        The run directory.

    Raises
    ------
    InputError
        A path inside the run but outside ``RUNDIR/sites/``; an existing file that is not a
        previous ``kantong sites`` output; a path inside another run.
    """
    sites_dir = (run_dir / SITES_DIR).resolve()
    for key, path in paths.items():
        if _inside(path, run_dir):
            if path.resolve().parent != sites_dir:
                raise InputError(f"{path}: lies inside the run directory {run_dir}; sites are "
                                 f"written to {run_dir / SITES_DIR} or outside the run")
            continue
        claim_file(path, command="sites", recognise=_previous_sites_output,
                   inputs=(run_dir,), flag="--plot" if key == "plot" else "--out")


def write_as_units(run_dir: Path, paths: dict[str, Path],
                   write: Callable[[dict[str, Path]], None]) -> None:
    """Call ``write(targets)`` with temporary targets, then put everything in place as units.

    Targets inside the run live in a hard-linked copy of the run that replaces it in one
    atomic exchange (resealed); targets outside it are journalled sibling temporaries, one
    unit per folder. A failure anywhere leaves every old file as it was.

    Parameters
    ----------
    run_dir
        The run directory (already verified by the caller).
    paths
        Output name -> final path; ``web_json`` (the web copy's sidecar) is added.
    write
        Writes each output to ``targets[name]`` (new files only).
    """
    finals = {**paths, "web_json": paths["web"].with_suffix(".json")}
    inside = {k: p for k, p in finals.items() if _inside(p, run_dir)}
    outside = {k: p for k, p in finals.items() if k not in inside}
    folders: dict[Path, list[str]] = {}
    for key, path in outside.items():
        folders.setdefault(path.resolve().parent, []).append(key)
    with update_run(run_dir, verify=False) as work, contextlib.ExitStack() as stack:
        targets = {k: work / p.resolve().relative_to(run_dir.resolve())
                   for k, p in inside.items()}
        (work / SITES_DIR).mkdir(exist_ok=True)
        for path in targets.values():
            path.unlink(missing_ok=True)  # a hard link of the old run: never write through it
        for keys in folders.values():
            tmps = stack.enter_context(atomic_files([outside[k] for k in keys]))
            targets.update(zip(keys, tmps, strict=True))
        write(targets)


__all__ = ["claim_outputs", "write_as_units"]
