"""The ``kantong`` command line: a click group whose sub-commands load lazily.

Each sub-command lives in ``engine/commands/<name>.py`` as a click command named
``command``; the group imports it only when it runs, so ``kantong --help`` is
instant. Every :class:`~kantong.engine.errors.EngineError` (and file-system error)
becomes a one-line ``Error: ...`` message with exit code 1 - never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from typing import Any

import click

from kantong.engine import __version__
from kantong.engine.errors import EngineError, first_line

#: sub-command name -> (module under kantong.engine.cli, one-line help shown by ``kantong --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo-data": ("demo_data",
                  "Write a synthetic P3KE-style demo register, facilities and rasters."),
    "build": ("build", "Fuse households, facilities and rasters into H3 cells (a run directory)."),
    "pockets": ("pockets",
                "Find poverty pockets and priority scores in a run (re-runnable)."),
    "sites": ("sites",
              "Choose sites for new facilities to reach the most extreme-poor households."),
    "export": ("export", "Export privacy-safe cells, pockets or sites for GIS tools."),
    "serve": ("serve", "Serve the offline web map and tile server for a run."),
    "compare": ("compare", "Compare two runs (e.g. two years) cell by cell and pocket by pocket."),
    "friction": ("friction",
                 "Build a friction surface (min/m) from roads, rivers, land cover and a DEM."),
    "plan": ("plan", "Plan a budget across pockets and strategies, with targets before and after."),
    "inspect": ("inspect",
                "Show a register's sheets, columns and how they map to Kantong's fields."),
    "users": ("users", "Add, remove or list staff accounts of the web map (serve --users)."),
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: D102
        if cmd_name not in COMMANDS:
            return None
        module_name, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"kantong.engine.cli.{module_name}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List sub-commands from the static table, without importing them."""
        rows = [(name, help_) for name, (_, help_) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; turn engine and file errors into one-line messages."""
        try:
            return super().invoke(ctx)
        except EngineError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # missing file, not a directory, permission, disk full, ...
            raise click.ClickException(_os_error_message(exc)) from None
        except MemoryError:
            raise click.ClickException("out of memory; try a smaller input") from None
        except EOFError:  # click would print only "Aborted!"
            raise click.ClickException("input ended unexpectedly (a truncated or corrupt "
                                       "compressed file?)") from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a library error nobody foresaw: one line, never a traceback
            logging.getLogger("kantong").debug("unexpected error", exc_info=True)
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {first_line(exc)} (details with -vv; "
                "please report it)") from None


def _os_error_message(exc: OSError) -> str:
    """One line for a file-system error: ``<reason>: <file>`` when both are known."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return first_line(exc)


def configure_logging(verbosity: int) -> None:
    """Set the log level of the ``kantong`` logger (engine and web map) from -v/-q counts.

    One stderr handler is installed on it (replacing a previous one, so repeated calls in
    one process do not duplicate lines). Records still propagate to the root logger, which
    has no handler in the CLI, so embedding applications and pytest's ``caplog`` see them.
    """
    level = {-2: logging.CRITICAL, -1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-2, min(verbosity, 2)), logging.DEBUG
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    log = logging.getLogger("kantong")
    log.handlers[:] = [handler]
    log.setLevel(level)
    warnings.showwarning = _warning_to_log  # one log line, never a source-code dump


def _warning_to_log(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, file: Any = None, line: str | None = None) -> None:
    """Log a Python warning as one line of the ``kantong`` logger (no source line)."""
    logging.getLogger("kantong").warning("%s", first_line(message)  # type: ignore[arg-type]
                                         if isinstance(message, Warning)
                                         else str(message).splitlines()[0])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="kantong")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less log output (-qq for none).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Kantong: find and prioritise poverty pockets in Kalimantan, by H3 cell.

    Typical use: ``kantong demo-data --out demo``, ``kantong build ... --out run``,
    ``kantong sites --run run ...``, ``kantong export --run run ...``,
    ``kantong serve --run run``. Household rows never leave the engine: everything
    published is a cell aggregate with small cells suppressed.

    Progress bars are drawn on standard error when it is a terminal (not with -q).
    """
    configure_logging(verbose - quiet)
    if quiet == 0 and sys.stderr.isatty():
        from kantong.engine import progress

        ctx.with_resource(progress.reporting(progress.TqdmReporter(sys.stderr)))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kantong")


if __name__ == "__main__":  # pragma: no cover
    main()
