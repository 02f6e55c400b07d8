"""Lazy public API of a package: names resolve to their defining module on first use.

Keeps ``import kantong.engine`` and ``kantong --help`` fast and lets sub-packages list
their entry points in ``__all__`` without importing every stage (and without import cycles).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str] | None = None, **modules: str) -> tuple[
        list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__all__, __getattr__, __dir__)`` for a package whose names live in sub-modules.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict of str to str, optional
        Public name -> absolute name of the module that defines it.
    **modules : str
        Sub-module name (relative to ``package``) -> its public names, space-separated.

    Returns
    -------
    tuple
        ``__all__`` (sorted names) and module-level ``__getattr__`` and ``__dir__`` functions.

    Examples
    --------
    >>> names, get, listing = lazy_exports("os", {"sqrt": "math"}, path="join basename")
    >>> names
    ['basename', 'join', 'sqrt']
    >>> get("sqrt")(9.0), get("join")("a", "b")
    (3.0, 'a/b')
    """
    exports = dict(exports or {})
    for module, names in modules.items():
        exports.update(dict.fromkeys(names.split(), f"{package}.{module}"))

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
