"""The ``Examples`` of every docstring in kantong, engine/ and webmap/ run as doctests.

Modules are imported under their installed names (``kantong.engine.build.grid``), never from
their file paths, so no second copy of a module (with its own registries and exception
classes) is created. Docstrings whose every example is marked ``+SKIP`` (illustrations that
need a run directory or data files) run nothing and are not collected.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import kantong
import kantong.engine
import kantong.webmap

_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _module_names() -> list[str]:
    names = ["kantong"]
    for package in (kantong.engine, kantong.webmap):
        names.append(package.__name__)
        names += [info.name for info in pkgutil.walk_packages(package.__path__,
                                                              package.__name__ + ".")]
    return sorted(names)


def _doctests() -> list:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in _module_names():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if any(not ex.options.get(doctest.SKIP) for ex in test.examples):
                found.append(pytest.param(test, id=test.name))
    return found


def test_every_package_module_is_walked():
    names = _module_names()
    for expected in ("kantong.engine.h3ids", "kantong.engine.pockets.hotspots",
                     "kantong.webmap.tiling.render", "kantong.engine.cli.group"):
        assert expected in names


@pytest.mark.parametrize("test", _doctests())
def test_docstring_examples(test: doctest.DocTest) -> None:
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    result = runner.run(test, out=out.write)
    assert result.failed == 0, out.getvalue()
