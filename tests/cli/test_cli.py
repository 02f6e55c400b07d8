"""The CLI group and the public API surface."""

import importlib
import sys

import pytest
from click.testing import CliRunner

import kantong
import kantong.engine as engine
from kantong.engine.cli.group import COMMANDS, cli


def test_every_public_name_resolves():
    assert engine.__version__ == kantong.__version__
    for name in engine.__all__:
        if name == "__version__":
            continue
        module = importlib.import_module(engine._EXPORTS[name])
        # the very object its defining module holds, and that module really defines it
        assert getattr(engine, name) is getattr(module, name), name
        assert getattr(module, name).__module__ == module.__name__, name
    with pytest.raises(AttributeError):
        engine.no_such_thing  # noqa: B018


def test_help_lists_every_command_without_importing_them():
    before = set(sys.modules)
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
    assert "kantong.engine.cli.build" not in set(sys.modules) - before


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and len(result.output) > 200


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and engine.__version__ in result.output


def test_unknown_command_is_one_line_error():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output
    assert "Traceback" not in result.output


def test_engine_error_becomes_one_line_message(tmp_path):
    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["pockets", "--run", str(missing)])
    assert result.exit_code != 0
    assert result.output.strip().startswith("Error: ")
    assert "Traceback" not in result.output
    assert len([ln for ln in result.output.splitlines() if ln.startswith("Error")]) == 1
