"""``kantong serve``: serve the offline web map, tiles and API of a run with waitress."""

from __future__ import annotations

import gc
import ipaddress
import os
import time
from pathlib import Path

import click

from kantong.engine.cli.options import allow_lower_k_option, trust_run_option
from kantong.engine.config import Config
from kantong.engine.constants import LOWEST_MIN_HOUSEHOLDS
from kantong.engine.errors import RunError

#: Environment variable naming the user cache folder of the demo run.
CACHE_ENV = "KANTONG_CACHE_DIR"


def default_cache_dir() -> Path:
    """Return ``$KANTONG_CACHE_DIR`` or ``~/.cache/kantong`` (where the demo run is kept)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kantong"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory to serve. Default: the bundled Kalimantan Barat demo run, "
                   f"built once into ${CACHE_ENV} or ~/.cache/kantong/demo-61.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (loopback by default; 0.0.0.0 exposes the map to the network).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0 picks a free one).")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Worker threads of the waitress server.")
@click.option("--min-households", type=click.IntRange(min=LOWEST_MIN_HOUSEHOLDS), default=None,
              help="Privacy threshold: cells with fewer households are withheld "
                   "(default: the run's, else 10).")
@click.option("--cache-mb", type=click.IntRange(0, 16384), default=None,
              help="Size bound of the in-memory tile cache, in MiB "
                   "(default: $KANTONG_TILE_CACHE_BYTES, else 64).")
@click.option("--compare", "compare_dir", type=click.Path(path_type=Path), default=None,
              metavar="RUNDIR", help="An earlier run: add change layers (this run minus "
                                     "RUNDIR), pocket statuses and the regency table.")
@click.option("--users", "users_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Staff accounts file (`kantong users add`): enables /login; "
                                 "staff see their regency at [privacy] staff_min_households.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="kantong.toml ([privacy] staff_min_households is used).")
@click.option("--public-url", default=None, metavar="URL",
              help="Base URL of tile links in TileJSON (e.g. https://kantong.example.go.id); "
                   "default root-relative links, never the request's Host header.")
@click.option("--behind-proxy", is_flag=True,
              help="Trust one reverse-proxy hop for client address and scheme "
                   "(X-Forwarded-For/-Proto). See docs/security.md.")
@allow_lower_k_option
@trust_run_option
def command(run_dir: Path | None, host: str, port: int, threads: int,
            min_households: int | None, cache_mb: int | None,
            compare_dir: Path | None, users_file: Path | None, config_path: Path | None,
            public_url: str | None, behind_proxy: bool, allow_lower_k: bool,
            trust_run: bool) -> None:
    """Serve the offline web map, the tile server and the JSON API of a run.

    Uses waitress (a production WSGI server) and binds 127.0.0.1 unless --host says
    otherwise. Everything served goes through the privacy gate (PublishedRun): cells with
    fewer than --min-households households are never drawn, encoded or listed.
    """
    from waitress import create_server

    from kantong.webmap import create_app

    if run_dir is None:
        from kantong.engine.demo.cached_run import ensure_demo_run

        cache = default_cache_dir() / "demo-61"
        click.echo(f"no --run given: serving the Kalimantan Barat demo run (cache: {cache})")
        run_dir = ensure_demo_run(cache)
    elif not run_dir.exists():
        raise RunError(f"{run_dir}: run directory not found")
    elif not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a directory (expected a run directory)")
    if compare_dir is not None and not compare_dir.is_dir():
        raise RunError(f"{compare_dir}: --compare run directory not found")

    t0 = time.perf_counter()
    settings: dict[str, object] = {"RUN_DIR": str(run_dir)}  # flags win over KANTONG_* env
    if min_households is not None:
        settings["MIN_HOUSEHOLDS"] = min_households
    if cache_mb is not None:
        settings["TILE_CACHE_BYTES"] = cache_mb * 1024 * 1024
    if compare_dir is not None:
        settings["COMPARE_RUN_DIR"] = str(compare_dir)
    if public_url is not None:
        if not public_url.startswith(("https://", "http://")):
            raise click.BadParameter("must start with https:// (or http://)",
                                     param_hint="'--public-url'")
        settings["PUBLIC_URL"] = public_url.rstrip("/")
    settings.update(ALLOW_LOWER_K=allow_lower_k, TRUST_RUN=trust_run, BEHIND_PROXY=behind_proxy)
    if users_file is not None:
        if not users_file.is_file():
            raise click.BadParameter(f"{users_file}: not found (create it with `kantong users "
                                     "add`)", param_hint="'--users'")
        settings["USERS_FILE"] = str(users_file)
        settings["STAFF_MIN_HOUSEHOLDS"] = Config.from_toml(
            config_path).privacy.staff_min_households
    app = create_app(settings)
    tiles = app.extensions["kantong_tiles"]
    layers = tiles.indicators()  # reads and indexes the published base cells now: fail early
    run = app.extensions["kantong"]
    gc.collect()
    gc.freeze()  # the loaded run and libraries are permanent: keep them out of GC passes
    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="kantong")
    except OSError as exc:  # address in use, not an address of this machine, ...
        raise click.ClickException(f"cannot listen on {host}:{port}: "
                                   f"{exc.strerror or exc}") from None
    except ValueError as exc:  # waitress: a host name that does not resolve
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.effective_port}/"
    click.echo(f"run {run.run_id}: {len(layers)} map layers, resolutions "
               f"{run.resolutions}, min households {run.min_households} "
               f"(loaded in {time.perf_counter() - t0:.1f} s)")
    compare = app.extensions.get("kantong_compare")
    if compare is not None:
        click.echo(f"compared with run {compare.old.run_id} ({compare_dir}): change layers "
                   f"{', '.join(compare.summary()['layers'])}")
    if not _is_loopback(host):
        click.echo(f"warning: listening on {host} over plain HTTP (no TLS): the map is "
                   "reachable from the network and "
                   + ("staff passwords and cookies would cross it in clear text"
                      if users_file is not None else "anyone on it can read the traffic")
                   + "; put a TLS reverse proxy in front (recipe: docs/security.md)")
    if users_file is not None:
        click.echo(f"staff login at {url}login (accounts: {users_file}, staff threshold "
                   f"{app.config['STAFF_MIN_HOUSEHOLDS']}, audit log "
                   f"{app.extensions['kantong_audit'].path})")
    click.echo(f"serving {url} with waitress ({threads} threads); Ctrl+C to stop", )
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()
