"""H3 cell ids: the one place where hex strings and ``uint64`` indexes are converted.

Cell ids are ``uint64`` inside the engine and lower-case hex strings (``"8868b6550dfffff"``)
in every file and response. Every conversion goes through here, with one rule for bad ids:
a bulk conversion raises :class:`~kantong.engine.errors.InputError` naming the first bad ids
(never a traceback from the H3 library), a single id from a user (URL, CLI) becomes ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import h3
import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa

from kantong.engine.errors import InputError

__all__ = ["canonical_cell", "cells_to_uint64", "parent_cells", "uint64_to_cells"]

#: Shape of a cell id a user may type: 15 hex digits (16 with a leading zero).
_HEX: Final = re.compile(r"0?[0-9a-fA-F]{15}")


def cells_to_uint64(cells: Sequence[str] | np.ndarray | pd.Series, *,
                    what: str = "H3 cell id") -> np.ndarray:
    """Parse hex-string H3 cell ids into ``uint64`` indexes, vectorised.

    Parameters
    ----------
    cells : sequence of str
        H3 cell ids as hex strings.
    what : str, optional
        How the ids are named in an error message (e.g. ``"cells.parquet h3"``).

    Returns
    -------
    numpy.ndarray
        ``uint64`` cell indexes in the same order.

    Raises
    ------
    InputError
        If any id is not a valid H3 cell (the message shows up to three of them).

    Examples
    --------
    >>> cells_to_uint64(["8868b6550dfffff"]).tolist()
    [614331666447466495]
    >>> cells_to_uint64(["not-a-cell"])
    Traceback (most recent call last):
    ...
    kantong.engine.errors.InputError: invalid H3 cell id(s): 'not-a-cell'
    """
    values = np.asarray(cells, dtype=object)
    if len(values) == 0:
        return np.zeros(0, dtype=np.uint64)
    strings = pa.array([v if isinstance(v, str) else None for v in values], type=pa.string())
    parsed = pa.array(h3ronpy.cells_parse(strings, set_failing_to_invalid=True))
    if parsed.null_count:
        bad = values[np.asarray(parsed.is_null())][:3]
        raise InputError(f"invalid {what}(s): {', '.join(repr(b) for b in bad)}")
    return parsed.to_numpy(zero_copy_only=False).astype(np.uint64)


def uint64_to_cells(cells: np.ndarray) -> np.ndarray:
    """Return lower-case hex-string ids (object array) for ``uint64`` cells.

    Parameters
    ----------
    cells : numpy.ndarray
        ``uint64`` H3 cell indexes.

    Returns
    -------
    numpy.ndarray
        Object array of hex strings, in the same order.

    Examples
    --------
    >>> uint64_to_cells(np.array([614331666447466495], dtype=np.uint64)).tolist()
    ['8868b6550dfffff']
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) == 0:
        return np.zeros(0, dtype=object)
    return pa.array(h3ronpy.cells_to_string(cells)).to_numpy(zero_copy_only=False)


def parent_cells(cells: np.ndarray, resolution: int) -> np.ndarray:
    """Return the parents (``uint64``) of ``uint64`` H3 cells at a coarser ``resolution``.

    Parameters
    ----------
    cells : numpy.ndarray
        ``uint64`` H3 cell indexes, all at a resolution >= ``resolution``.
    resolution : int
        The parent resolution.

    Returns
    -------
    numpy.ndarray
        ``uint64`` parent cells, in the same order.

    Examples
    --------
    >>> parent = parent_cells(cells_to_uint64(["8868b6550dfffff"]), 5)
    >>> uint64_to_cells(parent).tolist() == [h3.cell_to_parent("8868b6550dfffff", 5)]
    True
    """
    if len(cells) == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.asarray(h3ronpy.change_resolution(np.asarray(cells, dtype=np.uint64), resolution),
                      dtype=np.uint64)


def canonical_cell(text: object) -> str | None:
    """Return the canonical (lower-case, 15-digit) form of one user-given cell id, or ``None``.

    Parameters
    ----------
    text : object
        What the user typed (URL segment, CLI argument); anything that is not a valid H3
        cell id gives ``None``, never an exception.

    Returns
    -------
    str or None
        The canonical id, or ``None`` when ``text`` is not a valid H3 cell.

    Examples
    --------
    >>> canonical_cell("8868B6550DFFFFF")
    '8868b6550dfffff'
    >>> canonical_cell("08868b6550dfffff")
    '8868b6550dfffff'
    >>> canonical_cell("8868b6550dfffff0") is None, canonical_cell(42) is None
    (True, True)
    """
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        return None
    cell = h3.int_to_str(int(text, 16))
    return cell if h3.is_valid_cell(cell) else None
