"""Agreement checks of the benchmarks: a benchmark that reports agreement with a peer asserts it.

Each check prints one ``agreement OK`` line; a disagreement ends the benchmark at once with
exit status 1 and an ``AGREEMENT FAILED`` message, so a peer that disagrees can never go
unnoticed behind a timing table.
"""

from __future__ import annotations

import sys


def check(label: str, ok: bool, detail: str) -> None:
    """Print ``agreement OK: label (detail)`` or exit 1 with ``AGREEMENT FAILED``."""
    if not ok:
        print(f"AGREEMENT FAILED: {label} ({detail})", file=sys.stderr, flush=True)
        raise SystemExit(1)
    print(f"agreement OK: {label} ({detail})", flush=True)


def check_close(label: str, difference: float, tolerance: float) -> None:
    """Check that a maximum absolute ``difference`` is at most ``tolerance``."""
    check(label, bool(difference <= tolerance), f"max difference {difference:.2e}, "
                                                f"tolerance {tolerance:.0e}")
