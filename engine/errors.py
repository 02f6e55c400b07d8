"""One exception tree for the engine.

Every error a user can cause derives from :class:`EngineError`; those caused by
bad input also derive from :class:`ValueError`. The CLI turns any
``EngineError`` into a one-line message and a non-zero exit code, and the web
app maps them to HTTP status codes in one table (``kantong.webmap.errors``).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(EngineError, ValueError):
    """An input file or argument cannot be used (format, schema, values)."""


class MissingColumnError(InputError):
    """A required column is absent from an input table."""


class CRSError(InputError):
    """A layer has no CRS, an unreadable CRS, or a CRS that does not fit."""


class NoOverlapError(InputError):
    """A layer does not overlap the study area."""


class EmptyInputError(InputError):
    """An input holds no usable rows."""


class ConfigError(InputError):
    """The TOML configuration or a parameter value is invalid."""


class RunError(EngineError):
    """A run directory is missing, incomplete or inconsistent."""


class PrivacyError(EngineError):
    """An operation would publish data that the privacy rules withhold."""


class SolverError(EngineError):
    """An optimisation backend failed or returned no usable solution."""


class KantongWarning(UserWarning):
    """Base class of warnings the engine issues."""


def first_line(exc: BaseException) -> str:
    r"""Return the first non-empty line of an exception's message, or its class name.

    Third-party libraries (pyarrow, GDAL, pandas) raise multi-line messages; a user is
    shown one line.

    Parameters
    ----------
    exc : BaseException
        Any exception.

    Returns
    -------
    str
        The first line of ``str(exc)`` (stripped), or ``type(exc).__name__`` when empty.

    Examples
    --------
    >>> first_line(ValueError("bad header\n  at byte 7"))
    'bad header'
    >>> first_line(KeyError())
    'KeyError'
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
