"""Turn internal synthetic households into a P3KE-style register table, warts and all.

Real registers are imperfect, so the demo register is too:

* about 2 % of rows have blank ``lon``/``lat`` but a valid village code; about 40 % of those
  carry the Kemendagri dotted code (``61.07.01.2001``) instead of the BPS 10-digit code;
* unless ``clean``, about 0.1 % of rows (at least 4) are bad in one of four ways, chosen
  among desil 2-4 rows so the calibrated desil-1 figures are untouched:
  ``swapped_lat_lon``, ``desil_out_of_range`` (0 or 7), ``duplicate_household_id`` (the id of
  another row) and ``non_numeric_coordinate`` (``"109,123456"`` comma decimal or
  ``"0.123456S"`` hemisphere letter; in Parquet, whose coordinates are numeric, the sentinel
  ``-999.0``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kantong.engine.constants import DEPRIVATION_FIELDS, REQUIRED_HOUSEHOLD_COLUMNS
from kantong.engine.demo.space import DemoArea
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

BLANK_SHARE = 0.02
DOTTED_SHARE_OF_BLANK = 0.4
BAD_SHARE = 0.001
BAD_KINDS = ("swapped_lat_lon", "desil_out_of_range", "duplicate_household_id",
             "non_numeric_coordinate")
#: Parquet stand-in for a non-numeric coordinate.
PARQUET_BAD_COORDINATE = -999.0
REGISTER_COLUMNS = (*REQUIRED_HOUSEHOLD_COLUMNS, *DEPRIVATION_FIELDS)


def household_ids(province: str, numbers: np.ndarray) -> np.ndarray:
    """Return ids ``SYN-<province>-<7-digit number>`` (vectorised)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()),
                          width=7, padding="0")
    return np.asarray(pc.binary_join_element_wise(f"SYN-{province}", digits, "-")
                      .to_numpy(zero_copy_only=False), dtype=object)


def kemendagri_for_bps() -> pd.Series:
    """Return one Kemendagri dotted desa code per BPS village code (smallest that maps to it)."""
    cw = boundaries.kemendagri_village_crosswalk()
    inv = pd.Series(cw.index.to_numpy(), index=cw.to_numpy()).sort_values(kind="stable")
    return inv[~inv.index.duplicated(keep="first")]


def register_table(area: DemoArea, households: pd.DataFrame, rng: np.random.Generator, *,
                   clean: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return the register table and counts of the planted artefacts.

    Parameters
    ----------
    area
        The study area (village codes).
    households
        Internal households with ``household_id, lon, lat, village, desil, members`` and
        the six register booleans, in output order.
    rng
        Random generator.
    clean
        Leave out the bad rows (blank coordinates are still written).

    Returns
    -------
    tuple
        The table (``REGISTER_COLUMNS`` plus ``lon_text``/``lat_text``: the raw text of
        non-numeric coordinates, else ``<NA>``) and counts by artefact.
    """
    n = len(households)
    vil = area.villages
    bps = vil["village_code"].astype(str).to_numpy()
    kem = vil["kemendagri_code"].astype("string").to_numpy(dtype=object, na_value=None)
    codes = bps[households["village"].to_numpy()].astype(object)
    placeholder = np.char.startswith(codes.astype(str), "K")
    codes[placeholder] = kem[households["village"].to_numpy()[placeholder]]
    table = pd.DataFrame({
        "household_id": households["household_id"].to_numpy(dtype=object),
        "lon": np.round(households["lon"].to_numpy(), 6),
        "lat": np.round(households["lat"].to_numpy(), 6),
        "desil": households["desil"].to_numpy(np.int64),
        "members": households["members"].to_numpy(np.int64),
        "village_code": codes,
    })
    for field in DEPRIVATION_FIELDS:
        table[field] = households[field].to_numpy(bool)
    table["lon_text"] = pd.Series(pd.NA, index=table.index, dtype="string")
    table["lat_text"] = pd.Series(pd.NA, index=table.index, dtype="string")

    counts: dict[str, int] = {kind: 0 for kind in BAD_KINDS}
    n_bad = 0 if clean or n < 10 else max(len(BAD_KINDS), int(round(BAD_SHARE * n)))
    eligible = np.flatnonzero(table["desil"].to_numpy() >= 2)
    n_bad = min(n_bad, len(eligible) // 2)
    bad = np.sort(rng.choice(eligible, size=n_bad, replace=False))
    kind = np.arange(n_bad) % len(BAD_KINDS)
    rng.shuffle(kind)
    # each duplicated id is copied from a different, otherwise clean row
    donor = rng.choice(np.setdiff1d(eligible, bad), size=int((kind == 2).sum()), replace=False)
    picked = np.union1d(bad, donor)

    free = np.setdiff1d(np.arange(n), picked)
    n_blank = int(round(BLANK_SHARE * n))
    blank = np.sort(rng.choice(free, size=min(n_blank, len(free)), replace=False))
    table.loc[blank, ["lon", "lat"]] = np.nan
    inv = kemendagri_for_bps()
    dotted_ok = blank[table["village_code"].iloc[blank].isin(inv.index).to_numpy()]
    dotted = dotted_ok[rng.random(len(dotted_ok)) < DOTTED_SHARE_OF_BLANK]
    table.loc[dotted, "village_code"] = table["village_code"].iloc[dotted].map(inv).to_numpy()

    sel = bad[kind == 0]
    table.loc[sel, ["lon", "lat"]] = table.loc[sel, ["lat", "lon"]].to_numpy()
    sel = bad[kind == 1]
    table.loc[sel, "desil"] = rng.choice(np.array([0, 7]), size=len(sel))
    sel = bad[kind == 2]
    table.loc[sel, "household_id"] = table["household_id"].to_numpy()[donor]
    sel = bad[kind == 3]
    comma = rng.random(len(sel)) < 0.5
    # a handful of rows (about 0.025 % of the register): a comprehension is fine here
    lon_txt = [f"{v:.6f}".replace(".", ",") for v in table["lon"].to_numpy()[sel[comma]]]
    lat_txt = [f"{abs(v):.6f}{'S' if v < 0 else 'N'}" for v in table["lat"].to_numpy()[sel[~comma]]]
    table.loc[sel[comma], "lon_text"] = pd.array(lon_txt, dtype="string")
    table.loc[sel[~comma], "lat_text"] = pd.array(lat_txt, dtype="string")
    for k, name in enumerate(BAD_KINDS):
        counts[name] = int((kind == k).sum())
    counts["blank_coordinates"] = len(blank)
    counts["kemendagri_codes"] = len(dotted) + int(placeholder.sum())
    logger.info("register: %d rows, %d blank coordinates (%d dotted codes), %d bad rows", n,
                len(blank), len(dotted), n_bad)
    return table, counts
