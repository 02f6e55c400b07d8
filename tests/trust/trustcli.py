"""Helpers of the trust tests: run the CLI in-process and check one-line errors."""

from __future__ import annotations

import re

from click.testing import CliRunner, Result

from kantong.engine.cli.group import cli

_LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) kantong[.\w]*: ")


def invoke(*args: object, input_: str | None = None) -> Result:
    """Run ``kantong ARGS`` in-process (stdout and stderr together in ``output``)."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input_)


def succeeded(result: Result, *, what: object = "") -> bool:
    """Check the outcome contract of any invocation; return whether it succeeded.

    Success (exit 0), or a failure with exit code != 0 and exactly one ``Error:`` line;
    never a traceback or an unexpected exception.
    """
    if result.exit_code == 0:
        assert result.exception is None, (what, repr(result.exception))
        assert "Traceback" not in result.output, (what, result.output)
        return True
    assert_one_line_error(result)
    return False


def assert_one_line_error(result: Result) -> str:
    """Assert a non-zero exit with exactly one ``Error:`` line and no traceback; return it."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = [line for line in result.output.splitlines()
             if line.strip() and not _LOG_LINE.match(line)]  # log records are not the error
    errors = [line for line in lines if line.startswith("Error:")]
    # click's usage errors add its two standard lines ("Usage: ...", "Try '... --help'")
    others = [line for line in lines if line not in errors
              and not line.startswith(("Usage: ", "Try '"))]
    assert len(errors) == 1 and not others, result.output
    assert "Traceback" not in result.output
    return errors[0]
