"""Village codes of a register: which code system a file uses, and the BPS village of each code.

Indonesia has two village-code systems (``docs/input-schema.md``, ``data/SOURCES.md``):
BPS (``6101042002``) and Kemendagri (``61.01.04.2002``, often exported without the dots).
228 undotted Kemendagri desa codes of Kalimantan are also valid BPS codes of a
**different** village, so digits are never read in the wrong system. Per file:

* a dotted code is always read as Kemendagri;
* 10-digit codes are counted: valid only as BPS, valid only as Kemendagri, valid in both;
* the system of the 10-digit codes is the one some code is valid only in. When both
  have such codes, the majority is applied if the minority is at most
  :data:`MINORITY_SHARE` of them (the minority's codes give no village, with a reason);
  above that the file is refused. When every valid 10-digit code is valid in both
  systems, dotted codes in the file make it Kemendagri; without any, the file is refused
  with the collisions named, unless ``village_codes="bps"`` or ``"kemendagri"`` says
  which system it uses.

A household is therefore never placed in a village of the other system.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kantong.engine import datapaths
from kantong.engine.errors import InputError
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Accepted values of the code-system option (``--village-codes``).
SYSTEMS = ("auto", "bps", "kemendagri")
#: Largest share of the evidence the minority system may hold for the majority to apply.
MINORITY_SHARE = 0.05
#: Reasons attached to codes that do not give a village.
UNKNOWN = "unknown village_code"
_DOTTED = r"\d{2}\.\d{2}\.\d{2}\.\d{4}"
_TEN = r"\d{10}"


@functools.cache
def _tables() -> tuple[frozenset[str], pd.Series, pd.DataFrame]:
    """Return (BPS village codes, Kemendagri digits -> BPS code, names for messages)."""
    bps = frozenset(boundaries.village_points()["village_code"].astype(str))
    crosswalk = boundaries.kemendagri_village_crosswalk()
    codes = pd.read_csv(datapaths.data_file(datapaths.CODES_KEMENDAGRI), dtype=str)
    desa = codes[codes["level"] == "desa_kelurahan"]
    digits = desa["kode"].str.replace(".", "", regex=False)
    to_bps = pd.Series(desa["kode"].map(crosswalk).to_numpy(), index=digits.to_numpy(),
                       dtype="string")
    names = pd.DataFrame({"kemendagri": desa["nama"].to_numpy()}, index=digits.to_numpy())
    return bps, to_bps, names


@dataclass(frozen=True)
class CodeSystem:
    """The village-code system of one file, and what was counted to decide it.

    Attributes
    ----------
    system
        ``"bps"``, ``"kemendagri"`` or ``"none"`` (no valid code at all).
    how
        ``"option"`` (given), ``"detected"``, or ``"majority"`` (minority rejected).
    counts
        Rows with a code, by kind: ``dotted``, ``only_bps``, ``only_kemendagri``,
        ``both`` (10-digit codes valid in both systems, different villages),
        ``unknown``.
    """

    system: str
    how: str
    counts: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        """Return the manifest record of this decision."""
        return {"system": self.system, "how": self.how, **self.counts}


def classify(codes: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(digits, dotted, in_bps, in_kemendagri)`` for raw code strings (per row).

    ``digits`` are the codes without dots (NA when not a 10-digit code in either form).
    """
    raw = codes.astype("string").str.strip().str.replace(r"\.0$", "", regex=True)
    dotted = raw.str.fullmatch(_DOTTED).fillna(False).to_numpy(dtype=bool)
    ten = raw.str.fullmatch(_TEN).fillna(False).to_numpy(dtype=bool)
    digits = raw.str.replace(".", "", regex=False).where(dotted | ten)
    bps, to_bps, _ = _tables()
    d = digits.fillna("")
    in_bps = ten & d.isin(bps).to_numpy(dtype=bool)
    in_k = (dotted | ten) & d.isin(to_bps.index).to_numpy(dtype=bool)
    return digits, dotted, in_bps, in_k


def detect_system(codes: pd.Series, *, source: str, system: str = "auto") -> CodeSystem:
    """Decide the code system of a file's village codes.

    Parameters
    ----------
    codes
        Village codes as read (strings; blanks allowed).
    source
        File name for messages.
    system
        ``"auto"`` (detect), ``"bps"`` or ``"kemendagri"`` (undotted codes read in that
        system; dotted codes are always Kemendagri).

    Returns
    -------
    CodeSystem

    Raises
    ------
    InputError
        ``auto`` and the file cannot be told: only codes valid in both systems, or a
        real mixture of the two systems.
    """
    if system not in SYSTEMS:
        raise InputError(f"village code system must be one of {', '.join(SYSTEMS)}, "
                         f"got {system!r}")
    index, uniques = pd.factorize(codes.astype("string"), use_na_sentinel=True)
    rows = np.bincount(index[index >= 0], minlength=len(uniques))
    uniques = pd.Series(uniques, dtype="string")
    digits, dotted, in_b, in_k = classify(uniques)
    ten = ~dotted & digits.notna().to_numpy()
    given = uniques.str.strip().fillna("").ne("").to_numpy()
    counts = {
        "dotted": int(rows[dotted & in_k].sum()),
        "only_bps": int(rows[ten & in_b & ~in_k].sum()),
        "only_kemendagri": int(rows[ten & in_k & ~in_b].sum()),
        "both": int(rows[ten & in_b & in_k].sum()),
        "unknown": int(rows[given & ~in_b & ~in_k].sum()),
    }
    if system != "auto":
        return CodeSystem(system=system, how="option", counts=counts)
    ev_k, ev_b = counts["only_kemendagri"], counts["only_bps"]
    if ev_k == 0 and ev_b == 0:
        if counts["dotted"]:  # the dotted codes tell the export's system
            return CodeSystem(system="kemendagri", how="detected", counts=counts)
        if counts["both"] == 0:
            return CodeSystem(system="none", how="detected", counts=counts)
        raise InputError(f"{source}: village codes are ambiguous: {counts['both']} rows have "
                         "10-digit codes that are valid both as BPS and as Kemendagri codes of "
                         f"different villages ({_collisions(digits[ten & in_b & in_k])}) and "
                         "no other code tells the system; pass --village-codes bps or "
                         "--village-codes kemendagri")
    if ev_k and ev_b:
        minority = min(ev_k, ev_b)
        if minority > MINORITY_SHARE * (ev_k + ev_b):
            raise InputError(
                f"{source}: 10-digit village codes mix both systems ({ev_b} rows valid only "
                f"as BPS codes, {ev_k} only as Kemendagri codes, {counts['both']} in both); "
                "split the file or pass --village-codes bps or --village-codes kemendagri")
        chosen = "kemendagri" if ev_k > ev_b else "bps"
        logger.warning("%s: 10-digit village codes read as %s codes; %d rows with codes valid "
                       "only in the other system are not placed from their code", source,
                       chosen, minority)
        return CodeSystem(system=chosen, how="majority", counts=counts)
    chosen = "kemendagri" if ev_k else "bps"
    if counts["both"]:
        logger.info("%s: %d 10-digit village codes valid in both systems read as %s codes",
                    source, counts["both"], chosen)
    return CodeSystem(system=chosen, how="detected", counts=counts)


def codes_to_bps(codes: pd.Series, system: CodeSystem | str) -> tuple[pd.Series, pd.Series]:
    """Return the BPS village code of each row, and why a given code gives none.

    Parameters
    ----------
    codes
        Village codes as read.
    system
        A :class:`CodeSystem` (from :func:`detect_system`) or ``"bps"``/``"kemendagri"``.

    Returns
    -------
    tuple of pandas.Series
        BPS codes (``<NA>`` where none), and per row ``<NA>`` or a reason:
        ``unknown village_code`` or ``village_code is a <other> code (file read as
        <system> codes)``.
    """
    name = system.system if isinstance(system, CodeSystem) else system
    index, uniques = pd.factorize(codes.astype("string").reset_index(drop=True),
                                  use_na_sentinel=True)
    bps_u, reason_u = _codes_to_bps(pd.Series(uniques, dtype="string"), name)
    take = np.where(index < 0, len(uniques), index)
    na = pd.Series(pd.array([None], dtype="string"))
    out = pd.concat([bps_u, na], ignore_index=True).take(take).reset_index(drop=True)
    reason = pd.concat([reason_u, na], ignore_index=True).take(take).reset_index(drop=True)
    return out, reason


def _codes_to_bps(codes: pd.Series, name: str) -> tuple[pd.Series, pd.Series]:
    """:func:`codes_to_bps` on distinct codes."""
    digits, dotted, in_b, in_k = classify(codes)
    _, to_bps, _ = _tables()
    n = len(codes)
    out = pd.Series(pd.array([None] * n, dtype="string"))
    reason = pd.Series(pd.array([None] * n, dtype="string"))
    given = codes.astype("string").str.strip().fillna("").ne("").to_numpy()
    d = digits.reset_index(drop=True)
    use_k = dotted & in_k
    if name == "kemendagri":
        use_k = use_k | (~dotted & in_k)
        use_b = np.zeros(n, dtype=bool)
        other = ~dotted & in_b & ~in_k
        other_text = "village_code is a BPS code (file read as Kemendagri codes)"
    elif name == "bps":
        use_b = ~dotted & in_b
        other = ~dotted & in_k & ~in_b
        other_text = "village_code is a Kemendagri code (file read as BPS codes)"
    else:
        use_b = np.zeros(n, dtype=bool)
        other = np.zeros(n, dtype=bool)
        other_text = ""
    if use_k.any():
        out[use_k] = d[use_k].map(to_bps).astype("string").to_numpy()
    if use_b.any():
        out[use_b] = d[use_b].to_numpy()
    reason[other] = other_text
    reason[given & out.isna().to_numpy() & ~other] = UNKNOWN
    return out, reason


def _collisions(digits: pd.Series, *, n: int = 3) -> str:
    """Describe a few colliding codes: ``6101022001 = BPS Parit Baru / Kemendagri ...``."""
    _, _, names = _tables()
    points = boundaries.village_points().set_index("village_code")["village_name"]
    common = digits.value_counts().index[:n]
    parts = [f"{c} = BPS {points.get(c, '?')} / Kemendagri {names['kemendagri'].get(c, '?')}"
             for c in common]
    return "e.g. " + "; ".join(parts)


__all__ = ["MINORITY_SHARE", "SYSTEMS", "UNKNOWN", "CodeSystem", "classify", "codes_to_bps",
           "detect_system"]
