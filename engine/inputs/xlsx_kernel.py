"""Compiled scanners of SpreadsheetML: the cells of a worksheet and the shared strings.

One pass over the inflated XML, byte by byte in compiled code (numba, GIL released), so a
500,000-row register sheet (570 MiB of XML) is scanned in 1.3-1.6 s on two cores, its
chunks in parallel threads (:mod:`kantong.engine.inputs.xlsx_reader` assembles
the result). The scanners understand the SpreadsheetML that spreadsheet programs and
libraries write (unprefixed elements, attributes in any order, ``r`` references present or
implied, formulas, shared, inline and formula strings, rich-text runs, phonetic runs,
the five XML entities and numeric character references) and report everything else:

* a structure they do not understand gives a non-zero *status* (the caller then reads the
  sheet with calamine instead);
* a cell whose text could differ from calamine's (a date-formatted number, an error
  value, a number in exponent form or with more than 15 significant digits, an unknown
  entity, a carriage return) is read but flagged *inexact*, per cell.

Cell text is written to a byte *heap* (UTF-8) with offsets; shared-string cells refer to
the shared-string table instead (``ref >= 0``), other cells to the heap (``ref = -1 - k``).
"""

from __future__ import annotations

import numba
import numpy as np

#: Scan results (``status``).
OK, NO_ROW_NUMBER, MALFORMED = 0, 1, 2

#: Cell types (the ``t`` attribute).
_NUMBER, _SHARED, _BOOL, _FORMULA_STR, _INLINE, _OTHER = 0, 1, 2, 3, 4, 5

#: Significant digits and decimals of a number whose text calamine can write back
#: unchanged (see :func:`_number`).
EXACT_DIGITS, EXACT_DECIMALS = 15, 9

_LT, _GT, _SLASH, _QUOTE, _APOS, _EQ, _AMP, _SEMI, _HASH = 60, 62, 47, 34, 39, 61, 38, 59, 35


@numba.njit(cache=True, nogil=True)
def _delim(c):  # pragma: no cover - compiled
    """Tell whether byte ``c`` can end an element name."""
    return c == 32 or c == 62 or c == 47 or c == 9 or c == 10 or c == 13


@numba.njit(cache=True, nogil=True)
def _tag_end(b, i, end):  # pragma: no cover - compiled
    """Index of the ``>`` closing the tag opened at ``i`` (quotes respected), or -1."""
    quote = 0
    while i < end:
        c = b[i]
        if quote:
            if c == quote:
                quote = 0
        elif c == _QUOTE or c == _APOS:
            quote = c
        elif c == _GT:
            return i
        i += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _find(b, i, end, c):  # pragma: no cover - compiled
    while i < end and b[i] != c:
        i += 1
    return i


@numba.njit(cache=True, nogil=True)
def _closing(b, i, end, c1, c2, c3):  # pragma: no cover - compiled
    """Index of the next closing tag ``</c1c2c3>`` from ``i`` (unused letters 0), or -1."""
    n = 1 if c2 == 0 else (2 if c3 == 0 else 3)
    while True:
        i = _find(b, i, end, _LT)
        if i + n + 2 >= end:
            return -1
        if (b[i + 1] == _SLASH and b[i + 2] == c1 and (n < 2 or b[i + 3] == c2)
                and (n < 3 or b[i + 4] == c3) and b[i + 2 + n] == _GT):
            return i
        i += 1


@numba.njit(cache=True, nogil=True)
def _put_utf8(heap, h, cp):  # pragma: no cover - compiled
    if cp < 0x80:
        heap[h] = cp
        return h + 1
    if cp < 0x800:
        heap[h] = 0xC0 | (cp >> 6)
        heap[h + 1] = 0x80 | (cp & 0x3F)
        return h + 2
    if cp < 0x10000:
        heap[h] = 0xE0 | (cp >> 12)
        heap[h + 1] = 0x80 | ((cp >> 6) & 0x3F)
        heap[h + 2] = 0x80 | (cp & 0x3F)
        return h + 3
    heap[h] = 0xF0 | (cp >> 18)
    heap[h + 1] = 0x80 | ((cp >> 12) & 0x3F)
    heap[h + 2] = 0x80 | ((cp >> 6) & 0x3F)
    heap[h + 3] = 0x80 | (cp & 0x3F)
    return h + 4


@numba.njit(cache=True, nogil=True)
def _hex(b, i, j):  # pragma: no cover - compiled
    """Return the value of the hex digits ``b[i:j]``, or -1."""
    cp = 0
    for k in range(i, j):
        c = b[k]
        if 48 <= c <= 57:
            cp = cp * 16 + c - 48
        elif 65 <= c <= 70:
            cp = cp * 16 + c - 55
        elif 97 <= c <= 102:
            cp = cp * 16 + c - 87
        else:
            return -1
    return cp


@numba.njit(cache=True, nogil=True)
def _entity(b, i, end):  # pragma: no cover - compiled
    """Decode the entity at ``b[i] == '&'``: ``(code point or -1, index after ';')``."""
    j = i + 1
    stop = min(end, i + 12)
    while j < stop and b[j] != _SEMI:
        j += 1
    if j >= stop:
        return -1, i + 1
    n = j - i - 1
    if n >= 2 and b[i + 1] == _HASH:
        cp = 0
        if b[i + 2] == 120:  # '&#x..;'
            cp = _hex(b, i + 3, j) if n >= 3 else -1
            if cp < 0:
                return -1, i + 1
        else:
            for k in range(i + 2, j):
                c = b[k]
                if 48 <= c <= 57:
                    cp = cp * 10 + c - 48
                else:
                    return -1, i + 1
        if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            return -1, i + 1
        return cp, j + 1
    if n == 3 and b[i + 1] == 97 and b[i + 2] == 109 and b[i + 3] == 112:
        return 38, j + 1  # &amp;
    if n == 2 and b[i + 2] == 116 and (b[i + 1] == 108 or b[i + 1] == 103):
        return 60 if b[i + 1] == 108 else 62, j + 1  # &lt; &gt;
    if n == 4 and b[i + 1] == 113 and b[i + 2] == 117 and b[i + 3] == 111 and b[i + 4] == 116:
        return 34, j + 1  # &quot;
    if n == 4 and b[i + 1] == 97 and b[i + 2] == 112 and b[i + 3] == 111 and b[i + 4] == 115:
        return 39, j + 1  # &apos;
    return -1, i + 1


@numba.njit(cache=True, nogil=True)
def _copy_text(b, i, end, heap, h):  # pragma: no cover - compiled
    """Copy character data ``b[i:end]`` to ``heap[h:]``: ``(h, exact, escaped)``.

    Entities are decoded, and so are Excel's ``_xHHHH_`` escapes (``escaped`` tells
    that one was met: calamine decodes them in shared strings).
    """
    exact = True
    escaped = False
    while i < end:
        c = b[i]
        if c == _AMP:
            cp, nxt = _entity(b, i, end)
            if cp < 0:
                exact = False
                heap[h] = c
                h += 1
                i += 1
            else:
                h = _put_utf8(heap, h, cp)
                i = nxt
            continue
        if c == 95 and i + 6 < end and b[i + 1] == 120 and b[i + 6] == 95:  # _xHHHH_
            cp = _hex(b, i + 2, i + 6)
            if cp >= 0:
                escaped = True
                if 0xD800 <= cp <= 0xDFFF:
                    exact = False
                h = _put_utf8(heap, h, cp)
                i += 7
                continue
        if c == 13:
            exact = False
        heap[h] = c
        h += 1
        i += 1
    return h, exact, escaped


@numba.njit(cache=True, nogil=True)
def _is_space(c):  # pragma: no cover - compiled
    """Tell whether byte ``c`` is XML white space."""
    return c == 32 or c == 9 or c == 10 or c == 13


@numba.njit(cache=True, nogil=True)
def _preserves_space(b, i, close):  # pragma: no cover - compiled
    """Tell whether the tag attributes ``b[i:close]`` hold ``xml:space="preserve"``."""
    while True:
        ns, ne, vs, ve = _attr(b, i, close)
        if ns < 0:
            return False
        i = ve + 1
        if (ne - ns == 9 and b[ns] == 120 and b[ns + 3] == 58 and b[ns + 4] == 115
                and ve - vs == 8 and b[vs] == 112 and b[vs + 2] == 101):  # xml:space preserve
            return True


@numba.njit(cache=True, nogil=True)
def _rich_text(b, i, end, heap, h, shared):  # pragma: no cover - compiled
    """Text of an ``<si>``/``<is>`` body ``b[i:end]``: every ``<t>`` outside ``<rPh>``.

    Each ``<t>``'s text is trimmed of white space unless it has ``xml:space="preserve"``
    (as calamine does). ``_xHHHH_`` escapes are decoded; outside the shared strings
    (``shared`` False) a text holding one is flagged inexact, as calamine may not decode
    it there.

    Returns ``(h, exact, ok)``.
    """
    exact = True
    while True:
        i = _find(b, i, end, _LT)
        if i >= end:
            return h, exact, True
        if b[i + 1] == 33:  # '<!': CDATA or a comment inside text
            return h, exact, False
        close = _tag_end(b, i, end)
        if close < 0:
            return h, exact, False
        if b[i + 1] == 116 and _delim(b[i + 2]):  # <t ...> or <t/>
            if b[close - 1] == _SLASH:
                i = close + 1
                continue
            stop = _find(b, close + 1, end, _LT)
            s, e = close + 1, stop
            if not _preserves_space(b, i + 2, close):  # calamine trims the text then
                while s < e and _is_space(b[s]):
                    s += 1
                while e > s and _is_space(b[e - 1]):
                    e -= 1
            h, ok, esc = _copy_text(b, s, e, heap, h)
            exact = exact and ok and not (esc and not shared)
            i = stop
            continue
        if (b[i + 1] == 114 and b[i + 2] == 80 and b[i + 3] == 104
                and _delim(b[i + 4]) and b[close - 1] != _SLASH):  # <rPh>: phonetic run
            stop = _closing(b, close + 1, end, 114, 80, 104)
            if stop < 0:
                return h, exact, False
            i = _tag_end(b, stop, end) + 1
            continue
        i = close + 1


@numba.njit(cache=True, nogil=True)
def scan_shared_strings(b, heap, offsets, exact):  # pragma: no cover - compiled
    """Fill ``heap``/``offsets``/``exact`` from ``sharedStrings.xml``: ``(count, status)``.

    ``offsets`` needs one more slot than there are ``<si>``; ``heap`` as many bytes as
    ``b``.
    """
    end = b.size
    n = 0
    h = 0
    i = 0
    offsets[0] = 0
    while True:
        i = _find(b, i, end, _LT)
        if i + 3 >= end:
            break
        if b[i + 1] == 115 and b[i + 2] == 105 and _delim(b[i + 3]):  # <si
            close = _tag_end(b, i, end)
            if close < 0 or n + 1 >= offsets.size:
                return n, MALFORMED
            ok = True
            good = True
            if b[close - 1] == _SLASH:
                i = close + 1
            else:
                stop = _closing(b, close + 1, end, 115, 105, 0)
                if stop < 0:
                    return n, MALFORMED
                h, ok, good = _rich_text(b, close + 1, stop, heap, h, True)
                if not good:
                    return n, MALFORMED
                i = stop + 5
            exact[n] = ok
            n += 1
            offsets[n] = h
            continue
        i += 1
    return n, OK


@numba.njit(cache=True, nogil=True)
def _attr(b, i, close):  # pragma: no cover - compiled
    """Next attribute of a tag from ``i``: ``(name start, name end, value start, value end)``.

    ``name start = -1`` when there is none left.
    """
    while i < close and (b[i] == 32 or b[i] == 9 or b[i] == 10 or b[i] == 13):
        i += 1
    if i >= close or b[i] == _SLASH:
        return -1, -1, -1, -1
    ns = i
    while i < close and b[i] != _EQ and b[i] != 32:
        i += 1
    ne = i
    while i < close and b[i] != _QUOTE and b[i] != _APOS:
        i += 1
    if i >= close:
        return -1, -1, -1, -1
    q = b[i]
    vs = i + 1
    ve = _find(b, vs, close, q)
    return ns, ne, vs, ve


@numba.njit(cache=True, nogil=True)
def _uint(b, i, end):  # pragma: no cover - compiled
    """Digits ``b[i:end]`` as an integer, or -1."""
    if i >= end or end - i > 15:
        return -1
    v = 0
    for k in range(i, end):
        c = b[k]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + c - 48
    return v


@numba.njit(cache=True, nogil=True)
def _digits(b, s, e, heap, h, digits, mantissa):  # pragma: no cover - compiled
    """Copy the digits ``b[s:e]``, counting significant ones into ``mantissa``."""
    for m in range(s, e):
        heap[h] = b[m]
        h += 1
        if digits or b[m] != 48:
            digits += 1
        if digits <= EXACT_DIGITS:
            mantissa = mantissa * 10 + b[m] - 48
    return h, digits, mantissa


@numba.njit(cache=True, nogil=True)
def _number(b, i, end, heap, h):  # pragma: no cover - compiled
    """Copy a number's text as calamine writes it back: ``(h, exact)``.

    calamine holds the number as a float64 and writes it with nine decimals, trailing
    zeros dropped (Rust ``{:.9}``). A plain decimal ``R`` (``-12``, ``0.50``,
    ``6111032004``) comes back as itself, normalised, when it has at most
    :data:`EXACT_DIGITS` significant digits and at most :data:`EXACT_DECIMALS` decimals,
    and either ``|R| < 4e6`` (the float's error, at most ``|R| 2**-53``, then stays
    under half the ninth decimal) or ``R`` is a float exactly (its digits divisible by
    ``5**decimals``). Anything else is copied unchanged and flagged inexact.
    """
    start = h
    k = i
    neg = k < end and b[k] == 45
    if neg:
        k += 1
    int_s = k
    while k < end and 48 <= b[k] <= 57:
        k += 1
    int_e = k
    frac_s = frac_e = k
    if k < end and b[k] == 46:
        frac_s = k + 1
        k += 1
        while k < end and 48 <= b[k] <= 57:
            k += 1
        frac_e = k
    if k != end or int_e == int_s:
        for m in range(i, end):
            heap[h] = b[m]
            h += 1
        return h, False
    while int_s < int_e - 1 and b[int_s] == 48:
        int_s += 1
    while frac_e > frac_s and b[frac_e - 1] == 48:
        frac_e -= 1
    if neg:
        heap[h] = 45
        h += 1
    h, digits, mantissa = _digits(b, int_s, int_e, heap, h, 0, 0)
    whole = mantissa
    decimals = frac_e - frac_s
    if decimals:
        heap[h] = 46
        h += 1
        h, digits, mantissa = _digits(b, frac_s, frac_e, heap, h, digits, mantissa)
    if digits > EXACT_DIGITS or decimals > EXACT_DECIMALS or h == start:
        return h, False
    if decimals == 0 or whole < 4_000_000:
        return h, True
    return h, mantissa % (5 ** decimals) == 0


@numba.njit(cache=True, nogil=True)
def _grow(rows, cols, refs, inexact):  # pragma: no cover - compiled
    n = rows.size * 2
    r2 = np.empty(n, np.int32)
    c2 = np.empty(n, np.int32)
    f2 = np.empty(n, np.int64)
    x2 = np.empty(n, np.bool_)
    r2[:rows.size] = rows
    c2[:cols.size] = cols
    f2[:refs.size] = refs
    x2[:inexact.size] = inexact
    return r2, c2, f2, x2


@numba.njit(cache=True, nogil=True)
def scan_cells(b, start, end, row_known, n_shared, shared_exact, date_style,
               heap):  # pragma: no cover - compiled
    """Scan the cells of ``b[start:end]`` (whole ``<row>`` elements of ``<sheetData>``).

    Parameters
    ----------
    b
        The inflated worksheet XML (uint8).
    start, end
        The chunk; ``start`` is at a ``<row`` tag (or the start of ``<sheetData>``'s body).
    row_known
        False for a chunk after the first: a ``<row>`` without ``r`` is then an error
        (:data:`NO_ROW_NUMBER`) since the row number cannot be counted.
    n_shared, shared_exact
        Size of the shared-string table, and whether each entry is exact.
    date_style
        Per cell style index (``s``): True when the style formats numbers as dates.
    heap
        Bytes for the texts of non-shared cells (as many as the chunk).

    Returns
    -------
    tuple
        ``(rows, cols, refs, inexact, n_cells, offsets, n_texts, status, position)``:
        0-based row and column of each valued cell, its text reference, whether it is
        inexact; heap offsets of the ``n_texts`` texts; scan status and where it stopped.
    """
    cap = max(1024, (end - start) // 48)
    rows = np.empty(cap, np.int32)
    cols = np.empty(cap, np.int32)
    refs = np.empty(cap, np.int64)
    inexact = np.empty(cap, np.bool_)
    offsets = np.empty(cap + 1, np.int64)
    offsets[0] = 0
    n = 0
    n_texts = 0
    h = 0
    row = -1
    col = -1
    i = start
    while True:
        i = _find(b, i, end, _LT)
        if i + 2 >= end:
            break
        c1 = b[i + 1]
        if c1 == 33:  # '<!': a comment is skipped (it may hold anything); CDATA is not read
            if not (b[i + 2] == 45 and b[i + 3] == 45):
                return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, i
            k = i + 4
            while k + 2 < end and not (b[k] == 45 and b[k + 1] == 45 and b[k + 2] == _GT):
                k += 1
            i = k + 3
            continue
        close = _tag_end(b, i, end)
        if close < 0:
            return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, i
        if c1 == 114 and b[i + 2] == 111 and b[i + 3] == 119 and _delim(b[i + 4]):  # <row
            got = False
            a = i + 4
            while True:
                ns, ne, vs, ve = _attr(b, a, close)
                if ns < 0:
                    break
                a = ve + 1
                if ne - ns == 1 and b[ns] == 114:
                    r = _uint(b, vs, ve)
                    if r < 1:
                        return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, i
                    row = r - 1
                    got = True
            if not got:
                if not row_known:
                    return rows, cols, refs, inexact, n, offsets, n_texts, NO_ROW_NUMBER, i
                row += 1
            col = -1
            i = close + 1
            continue
        if not (c1 == 99 and _delim(b[i + 2])):  # not <c: closing tags, <rowBreaks>, ...
            i = close + 1
            continue
        if row < 0:
            return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, i
        # <c r=".." t=".." s="..">
        kind = _NUMBER
        style = 0
        got_ref = False
        a = i + 2
        while True:
            ns, ne, vs, ve = _attr(b, a, close)
            if ns < 0:
                break
            a = ve + 1
            if ne - ns != 1:
                continue
            name = b[ns]
            if name == 114:  # r="AB12"
                k = vs
                cc = 0
                while k < ve and 65 <= b[k] <= 90:
                    cc = cc * 26 + b[k] - 64
                    k += 1
                rr = _uint(b, k, ve)
                if cc == 0 or rr < 1:
                    return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, i
                col = cc - 1
                row = rr - 1
                got_ref = True
            elif name == 116:  # t
                w = ve - vs
                if w == 1 and b[vs] == 115:
                    kind = _SHARED
                elif w == 1 and b[vs] == 110:
                    kind = _NUMBER
                elif w == 1 and b[vs] == 98:
                    kind = _BOOL
                elif w == 3 and b[vs] == 115 and b[vs + 1] == 116 and b[vs + 2] == 114:
                    kind = _FORMULA_STR
                elif w == 9 and b[vs] == 105 and b[vs + 1] == 110:  # inlineStr
                    kind = _INLINE
                else:
                    kind = _OTHER
            elif name == 115:  # s
                style = _uint(b, vs, ve)
        if not got_ref:
            col += 1
        i = close + 1
        if b[close - 1] == _SLASH:
            continue  # <c .../>: no value
        v_s = v_e = -1
        is_s = is_e = -1
        while True:  # children up to </c>
            k = _find(b, i, end, _LT)
            if k + 3 >= end:
                return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, k
            kc = _tag_end(b, k, end)
            if kc < 0:
                return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, k
            if b[k + 1] == _SLASH and b[k + 2] == 99 and b[k + 3] == _GT:
                i = kc + 1
                break
            if b[k + 1] == 118 and _delim(b[k + 2]):  # <v>
                if b[kc - 1] == _SLASH:
                    v_s = v_e = kc + 1
                    i = kc + 1
                else:
                    v_s = kc + 1
                    v_e = _find(b, v_s, end, _LT)
                    i = v_e
                continue
            if b[k + 1] == 105 and b[k + 2] == 115 and _delim(b[k + 3]):  # <is>
                if b[kc - 1] == _SLASH:
                    is_s = is_e = kc + 1
                    i = kc + 1
                else:
                    is_s = kc + 1
                    is_e = _closing(b, is_s, end, 105, 115, 0)
                    if is_e < 0:
                        return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, k
                    i = is_e
                continue
            if b[k + 1] == 102 and _delim(b[k + 2]) and b[kc - 1] != _SLASH:  # <f>..</f>
                i = _find(b, kc + 1, end, _LT)
                continue
            if b[k + 1] == 33:
                return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, k
            i = kc + 1
        if kind == _INLINE:
            if is_s < 0:
                continue
        elif v_s < 0:
            continue
        if n == rows.size:
            rows, cols, refs, inexact = _grow(rows, cols, refs, inexact)
        rows[n] = row
        cols[n] = col
        if kind == _SHARED:
            idx = _uint(b, v_s, v_e)
            if idx < 0 or idx >= n_shared:
                return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, v_s
            refs[n] = idx
            inexact[n] = not shared_exact[idx]
            n += 1
            continue
        exact = True
        if kind == _NUMBER:
            if v_e == v_s:
                continue
            h, exact = _number(b, v_s, v_e, heap, h)
            if 0 <= style < date_style.size and date_style[style]:
                exact = False
        elif kind == _BOOL and v_e - v_s == 1 and (b[v_s] == 48 or b[v_s] == 49):
            word = (116, 114, 117, 101) if b[v_s] == 49 else (102, 97, 108, 115)
            for c in word:
                heap[h] = c
                h += 1
            if b[v_s] == 48:
                heap[h] = 101
                h += 1
        elif kind == _FORMULA_STR:
            h, exact, esc = _copy_text(b, v_s, v_e, heap, h)
            exact = exact and not esc
        elif kind == _INLINE:
            h, exact, good = _rich_text(b, is_s, is_e, heap, h, False)
            if not good:
                return rows, cols, refs, inexact, n, offsets, n_texts, MALFORMED, is_s
        else:  # errors, ISO dates, unknown types, malformed booleans
            h, exact, esc = _copy_text(b, v_s, v_e, heap, h)
            exact = False
        if n_texts + 1 == offsets.size:
            bigger = np.empty(offsets.size * 2, np.int64)
            bigger[:offsets.size] = offsets
            offsets = bigger
        refs[n] = -1 - n_texts
        inexact[n] = not exact
        n_texts += 1
        offsets[n_texts] = h
        n += 1
    return rows, cols, refs, inexact, n, offsets, n_texts, OK, i


@numba.njit(cache=True, nogil=True)
def layout(dense, rows, cols, refs, n, own_base, n_shared, first_col,
           prev_key):  # pragma: no cover - compiled
    """Write one chunk's cells into ``dense`` (columns x rows of text references).

    A cell's own text ``-1 - k`` becomes ``n_shared + own_base + k``; ``dense`` comes
    filled with the reference of a missing text (cells without a value). Returns the
    last cell's key (row-major position), or -1 when the cells are not in strictly
    increasing order (repeated or unordered).
    """
    width = dense.shape[0]
    for k in range(n):
        c = cols[k] - first_col
        key = rows[k] * width + c
        if key <= prev_key:
            return -1
        prev_key = key
        r = refs[k]
        if r < 0:
            r = n_shared + own_base + (-1 - r)
        dense[c, rows[k]] = r
    return prev_key
