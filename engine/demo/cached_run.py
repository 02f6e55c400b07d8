"""The bundled demo run: the Kalimantan Barat demo data, built once into a cache folder.

``kantong serve`` without ``--run`` serves this run. The first call generates the
synthetic demo data (:func:`kantong.engine.demo.make.make_demo`), builds the run with pockets
(:func:`kantong.engine.build.run.build_run`) and chooses example puskesmas sites
(:func:`kantong.engine.sites.run.plan_sites`); later calls return the cached run at once. A stamp
file written last records the parameters, so an interrupted or outdated build is redone.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from kantong.engine import __version__, progress
from kantong.engine.atomic import write_json
from kantong.engine.constants import CELLS_FILE, MANIFEST_FILE

logger = logging.getLogger(__name__)

#: Stamp file (in the cache folder) describing the cached demo run.
STAMP_FILE = "demo_run.json"
#: Province of the bundled demo.
DEMO_PROVINCE = "61"
#: Example siting stored with the demo run: facility type, count, coverage minutes.
DEMO_SITES = ("puskesmas", 10, 60.0)


def _stamp(households: int | None, seed: int, sites: bool) -> dict[str, object]:
    from kantong.engine.demo.make import DEMO_VERSION

    return {"engine_version": __version__, "demo_version": DEMO_VERSION,
            "province": DEMO_PROVINCE, "households": households, "seed": seed, "sites": sites}


def ensure_demo_run(cache_dir: str | Path, *, households: int | None = None, seed: int = 42,
                    sites: bool = True) -> Path:
    """Return the demo run directory under ``cache_dir``, building it on first use.

    Parameters
    ----------
    cache_dir
        Cache folder of the demo (e.g. ``~/.cache/kantong/demo-61``); holds ``data/``
        (the synthetic inputs), ``run/`` (the run directory) and the stamp file.
    households
        Register size (default: the full 500,000-household Kalimantan Barat demo).
    seed
        Seed of the demo generator.
    sites
        Also choose :data:`DEMO_SITES` (example puskesmas sites shown by the web map).

    Returns
    -------
    Path
        The run directory (``cache_dir / "run"``).

    Examples
    --------
    >>> run = ensure_demo_run("~/.cache/kantong/demo-61")  # doctest: +SKIP
    """
    cache = Path(cache_dir).expanduser()
    run = cache / "run"
    stamp = _stamp(households, seed, sites)
    stamp_path = cache / STAMP_FILE
    if (run / CELLS_FILE).is_file() and (run / MANIFEST_FILE).is_file() and stamp_path.is_file():
        try:
            if json.loads(stamp_path.read_text(encoding="utf-8")) == stamp:
                logger.info("demo run cached at %s", run)
                return run
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    from kantong.engine.build.run import build_run
    from kantong.engine.demo.make import make_demo

    stamp_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    logger.info("building the Kalimantan Barat demo run into %s (first use only)", cache)
    with progress.stage("demo data (first use only)"):
        paths = make_demo(cache / "data", province=DEMO_PROVINCE, households=households,
                          seed=seed)
    build_run(paths.households, out=run, facilities=paths.facilities, friction=paths.friction,
              population=paths.population, province=DEMO_PROVINCE, pockets=True)
    if sites:
        from kantong.engine.sites.run import plan_sites

        facility_type, count, minutes = DEMO_SITES
        with progress.stage("example puskesmas sites"):
            plan_sites(run, facility_type=facility_type, max_minutes=minutes, count=count)
    write_json(stamp_path, stamp)
    logger.info("demo run built in %.0f s", time.perf_counter() - t0)
    return run
