"""Options shared by the commands that read a run: ``--trust-run`` and ``--allow-lower-k``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

#: ``--trust-run``: skip the SHA-256 check of the run's files (docs/security.md).
trust_run_option: Callable[[Any], Any] = click.option(
    "--trust-run", is_flag=True,
    help="Use the run even if its files do not match the SHA-256 hashes of its manifest "
         "(logged; cells are still validated). See docs/security.md.")

#: ``--allow-lower-k``: publish below the run's own minimum household count.
allow_lower_k_option: Callable[[Any], Any] = click.option(
    "--allow-lower-k", is_flag=True,
    help="Allow --min-households below the run's own threshold (logged). Without it a lower "
         "value is refused. See docs/privacy.md.")


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback: refuse ``inf``/``nan`` and values too large to compute with (> 1e12)."""
    if value is not None and (not math.isfinite(value) or abs(value) > 1e12):
        raise click.BadParameter(f"{value!r} is not a usable number (finite, at most 1e12)")
    return value


__all__ = ["allow_lower_k_option", "finite", "trust_run_option"]
