"""The ``kantong`` command line: the click group and one module per sub-command.

:func:`main` is the console-script entry point; the group lives in
:mod:`kantong.engine.cli.group` and loads each sub-command module lazily.
"""

from kantong.engine.cli.group import main

__all__ = ["main"]
