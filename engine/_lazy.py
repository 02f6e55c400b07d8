"""Lazy public API of a package: names resolve to their defining module on first use.

Keeps ``import kantong.engine`` and ``kantong --help`` fast and lets sub-packages list
their entry points in ``__all__`` without importing every stage (and without import cycles).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[
        Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for a package whose names live in sub-modules.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (used in error messages).
    exports : dict of str to str
        Public name -> absolute name of the module that defines it.

    Returns
    -------
    tuple of callable
        Module-level ``__getattr__`` and ``__dir__`` functions.

    Examples
    --------
    >>> get, names = lazy_exports("pkg", {"sqrt": "math"})
    >>> get("sqrt")(9.0)
    3.0
    >>> names()
    ['sqrt']
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
