"""Row-level helpers shared by the register readers: reject reasons, blanks, numbers.

Everything is vectorised: a column is parsed on its distinct values and the result
taken back to the rows (registers repeat a few labels and codes millions of times).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


class RowReasons:
    """One reject reason per row, stored as small integer codes (0 = no reason yet).

    Each reason may keep one example value (the first offending value seen), used in
    messages; examples only ever come from non-personal fields.
    """

    def __init__(self, n: int) -> None:
        self.code = np.zeros(n, dtype=np.int16)
        self.labels: list[str] = [""]
        self.examples: dict[str, str] = {}

    def code_of(self, text: str) -> int:
        """Return the code of reason ``text`` (added on first use)."""
        if text not in self.labels:
            self.labels.append(text)
        return self.labels.index(text)

    @property
    def open(self) -> np.ndarray:
        """Rows without a reason so far."""
        return self.code == 0

    def fail(self, mask: np.ndarray, text: str, example: str | None = None) -> None:
        """Give ``text`` to the rows of ``mask`` that have no reason yet."""
        hit = mask & (self.code == 0)
        if hit.any():
            self.code[hit] = self.code_of(text)
            if example is not None:
                self.examples.setdefault(text, example)

    def suffix(self, mask: np.ndarray, text: str) -> None:
        """Append ``text`` to the reasons of the rows of ``mask`` (which have one)."""
        for old in np.unique(self.code[mask & (self.code > 0)]):
            rows = mask & (self.code == old)
            new = self.labels[old] + text
            self.code[rows] = self.code_of(new)
            if self.labels[old] in self.examples:
                self.examples.setdefault(new, self.examples[self.labels[old]])

    def merge(self, other: RowReasons) -> None:
        """Give the rows without a reason the reason ``other`` holds for them."""
        for old in np.unique(other.code[other.code > 0]):
            label = other.labels[old]
            self.fail(other.code == old, label, other.examples.get(label))

    def text(self, rows: np.ndarray) -> pd.Series:
        """Return the reasons of ``rows`` as strings."""
        return take_strings(self.labels, self.code[rows].astype(np.int64))

    def used_examples(self) -> dict[str, str]:
        """Return the examples of the reasons some row still holds."""
        used = {self.labels[c] for c in np.unique(self.code) if c}
        return {k: v for k, v in self.examples.items() if k in used}


def take_strings(values: list[str] | np.ndarray, codes: np.ndarray) -> pd.Series:
    """Return ``values[codes]`` as a pandas string Series (fast, via Arrow take)."""
    taken = pa.array(np.asarray(values, dtype=object), type=pa.large_string()).take(
        pa.array(codes, type=pa.int64()))
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([taken])))


def duplicates(ids: np.ndarray, blank: np.ndarray, seen_ids: set | None) -> np.ndarray:
    """Return the rows whose id appeared before (in this batch or in ``seen_ids``).

    Uses set operations (C loops) for the common case of no duplicates; ``seen_ids`` is
    updated in place with this batch's ids.
    """
    out = np.zeros(ids.size, dtype=bool)
    given = ids[~blank].tolist()
    batch = set(given)
    overlap = (seen_ids & batch) if seen_ids else set()
    if len(batch) < len(given) or overlap:
        series = pd.Series(ids, dtype=object)
        out = (series.duplicated(keep="first").to_numpy() | series.isin(overlap).to_numpy())
        out &= ~blank
    if seen_ids is not None:
        seen_ids |= batch
    return out


def blank_strings(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return ``s`` as stripped strings (NA for blanks) and the blank mask."""
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (values == np.round(values))
        if integral[~np.isnan(values)].all():  # ids read as float because of blanks
            s = pd.Series(pd.array(values, dtype="Float64").astype("Int64"), index=s.index)
    out = s.astype("string").str.strip()
    out = out.mask(out == "")
    return out, out.isna().to_numpy()


def first_value(s: pd.Series, mask: np.ndarray) -> str | None:
    """Return the first value of ``s`` where ``mask`` holds, stripped and shortened."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    return str(s.iloc[int(idx[0])]).strip()[:60]


def parse_number(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(values, blank, non_numeric)``: float64 values, NaN where unusable.

    Text is parsed on its distinct values. Decimal commas (``109,33``) are read as
    decimal points when no value of the column uses a point, so the reading is
    unambiguous; a column mixing both keeps the comma values non-numeric.
    """
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return values, np.isnan(values), np.zeros(len(s), dtype=bool)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    text = pd.Series(uniques, dtype=object).astype("string").str.strip()
    text = text.mask(text == "")
    comma = text.str.fullmatch(r"[+-]?\d+,\d+").fillna(False)
    if comma.any() and not text.str.contains(".", regex=False).fillna(False).any():
        text = text.where(~comma, text.str.replace(",", ".", regex=False))
    parsed = pd.to_numeric(text, errors="coerce")
    parsed = np.append(parsed.to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    blank_u = np.append(text.isna().to_numpy(), True)
    values, blank = parsed[codes], blank_u[codes]  # code -1 (NA) picks the appended entry
    return values, blank, ~blank & np.isnan(values)


__all__ = ["RowReasons", "blank_strings", "duplicates", "first_value", "parse_number",
           "take_strings"]
