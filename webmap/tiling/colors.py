"""Colour scales of the map indicators, precomputed to 256-entry RGBA lookup tables.

Every indicator has a fixed, documented colormap and a domain rule (table
:data:`RULES`, matched on the column name); the domain itself comes from the published
values of the resolution being drawn:

========================  ============  ==================================================
columns                   colormap      domain
========================  ============  ==================================================
``priority``              ``magma_r``   0 .. 99.9th percentile of the base resolution
                                        rounded up to 0.1 (at least 0.1, at most 1), the
                                        same at every zoom
``contrib_*``             ``magma_r``   0 .. 98th percentile
``extreme_rate``          ``YlOrRd``    0 .. 98th percentile of the base resolution
                                        rounded up to 1/2/2.5/5 x 10^n (at least 0.01, at
                                        most 1), the same at every zoom
``share_*``               ``YlOrRd``    fixed 0..1
``travel_min_*``          ``cividis_r`` 0 .. 95th percentile rounded up to 15 min, capped
                                        at 240 min (longer times get the last colour)
``gi_z``                  ``RdBu_r``    symmetric, +-max(1.96, 98th percentile of abs)
counts (``households``,   ``viridis_r`` 0 .. 98th percentile (per resolution, since rollup
``extreme_households``,                 cells sum their children)
``n_*``, ...)
anything else             ``viridis``   2nd .. 98th percentile
``pocket``                ``tab20``     categorical: colour ``pocket_id mod 20`` (the same
                                        pocket keeps its colour at every zoom)
========================  ============  ==================================================

Data-driven upper bounds leave room for outliers: values beyond the domain take the end
colour and the legend says so (``open_high``; the viewer writes "0.7+"). The fixed 0..1 of
a score or a rate wastes most of the colour ramp when, as in Kalimantan Barat, the largest
priority is about 0.6 and 98 % of cells have an extreme-poverty rate below 20 %.

Cells with a missing value are drawn in :data:`NODATA_RGBA` (with a hatch, see
:mod:`kantong.webmap.tiling.render`); cells outside every pocket are not drawn on the ``pocket``
layer.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any, Final

import numpy as np
from matplotlib import colormaps

#: Opacity of filled hexagons (0..255): the background stays readable underneath.
FILL_ALPHA: Final = 215
#: Colour of cells whose value is missing (for example a travel time without a facility).
NODATA_RGBA: Final = (190, 190, 190, 110)
#: Legend text of the no-data colour (the server may give a more specific one).
NODATA_LABEL: Final = "No data"
#: Domain kinds computed from the base resolution, so that colours do not change with zoom.
BASE_DOMAINS: Final = frozenset({"top01", "rate"})
#: Pseudo-indicator of pocket membership (categorical colours per ``pocket_id``).
POCKET: Final = "pocket"
_LUT_SIZE: Final = 256


@dataclasses.dataclass(frozen=True)
class _Rule:
    pattern: str
    cmap: str
    domain: str  # unit | top01 | rate | count | minutes | symmetric | quantile0 | quantile
    unit: str
    label: Callable[[re.Match[str]], str]


def _words(text: str) -> str:
    return text.replace("_", " ")


#: Indicator styles, first match wins.
RULES: Final[tuple[_Rule, ...]] = (
    _Rule(r"priority", "magma_r", "top01", "score 0-1", lambda m: "Priority score"),
    _Rule(r"contrib_(.+)", "magma_r", "quantile0", "score",
          lambda m: f"Priority contribution of {_words(m[1])}"),
    _Rule(r"extreme_rate", "YlOrRd", "rate", "share of persons",
          lambda m: "Extreme-poverty rate (desil 1 persons / persons)"),
    _Rule(r"share_(.+)", "YlOrRd", "unit", "share of households",
          lambda m: f"Share of households: {_words(m[1])}"),
    _Rule(r"travel_min_(.+)", "cividis_r", "minutes", "minutes",
          lambda m: f"Travel time to the nearest {_words(m[1])}"),
    _Rule(r"gi_z", "RdBu_r", "symmetric", "z-score", lambda m: "Getis-Ord Gi* z-score"),
    _Rule(r"extreme_households", "viridis_r", "count", "households",
          lambda m: "Extreme-poor households (desil 1)"),
    _Rule(r"extreme_persons", "viridis_r", "count", "persons",
          lambda m: "Extreme-poor persons (desil 1)"),
    _Rule(r"households_desil_(\d)", "viridis_r", "count", "households",
          lambda m: f"Households in desil {m[1]}"),
    _Rule(r"households_village_located", "viridis_r", "count", "households",
          lambda m: "Households placed from their village code"),
    _Rule(r"households", "viridis_r", "count", "households", lambda m: "Households"),
    _Rule(r"persons", "viridis_r", "count", "persons", lambda m: "Persons"),
    _Rule(r"assistance_gap", "viridis_r", "count", "households",
          lambda m: "Extreme-poor households without social assistance"),
    _Rule(r"n_(.+)", "viridis_r", "count", "households",
          lambda m: f"Households: {_words(m[1])}"),
    _Rule(r"population", "viridis_r", "count", "persons",
          lambda m: "Population (population raster)"),
    _Rule(r"(.+)_mean", "viridis", "quantile", "", lambda m: f"Mean {_words(m[1])}"),
    _Rule(r"(.+)", "viridis", "quantile", "", lambda m: _words(m[1]).capitalize()),
)


def _rule_for(indicator: str) -> tuple[_Rule, re.Match[str]]:
    for rule in RULES:
        match = re.fullmatch(rule.pattern, indicator)
        if match:
            return rule, match
    raise AssertionError("the last rule matches everything")  # pragma: no cover


def _nice_ceiling(x: float) -> float:
    """Round ``x`` > 0 up to 1, 2, 2.5 or 5 times a power of ten."""
    exp = 10.0 ** math.floor(math.log10(x))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if x <= step * exp * (1 + 1e-12):
            return step * exp
    return 10.0 * exp  # pragma: no cover


def _domain(kind: str, values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if kind == "unit":
        return 0.0, 1.0
    if finite.size == 0:
        return (0.0, 1.0) if kind != "symmetric" else (-1.96, 1.96)
    if kind == "top01":
        top = math.ceil(round(float(np.quantile(finite, 0.999)) * 10.0, 9)) / 10.0
        return 0.0, float(min(1.0, max(0.1, top)))
    if kind == "rate":
        return 0.0, float(min(1.0, _nice_ceiling(max(float(np.quantile(finite, 0.98)), 0.01))))
    if kind == "count":
        return 0.0, _nice_ceiling(max(float(np.quantile(finite, 0.98)), 1.0))
    if kind == "minutes":
        cap = math.ceil(float(np.quantile(finite, 0.95)) / 15.0) * 15.0
        return 0.0, float(min(240.0, max(15.0, cap)))
    if kind == "symmetric":
        m = max(1.96, float(np.quantile(np.abs(finite), 0.98)))
        return -m, m
    if kind == "quantile0":
        hi = float(np.quantile(finite, 0.98))
        return 0.0, hi if hi > 0 else 1.0
    lo, hi = (float(q) for q in np.quantile(finite, [0.02, 0.98]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


#: Where the lookup table starts on colormaps whose lightest colour is the map background's
#: (near-white): a zero rate or count is then drawn visibly, not like "no cell". The first
#: colours, at the fill alpha over the run's province fill ``#f7f5f0``, get a luminance
#: contrast of 1.32:1 (YlOrRd ``#feca65``), 1.34:1 (magma_r ``#fec689``, viridis_r
#: ``#bdde26``) and 1.36:1 (cividis_r ``#e4ce51``) instead of 1.03-1.14:1, and a different
#: hue; no data stays the grey hatch.
LOW_END: Final = {"YlOrRd": 0.3, "magma_r": 0.12, "viridis_r": 0.1, "cividis_r": 0.1}


def _lut(cmap: str) -> np.ndarray:
    lut = colormaps[cmap](np.linspace(LOW_END.get(cmap, 0.0), 1.0, _LUT_SIZE), bytes=True)
    lut[:, 3] = FILL_ALPHA
    return lut


def _hex(rgba: np.ndarray | tuple[int, ...]) -> str:
    r, g, b = (int(c) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclasses.dataclass(frozen=True, eq=False)
class Scale:
    """A colour scale of one indicator at one resolution.

    Attributes
    ----------
    indicator, label, unit
        Column name, human label and unit.
    kind
        ``"continuous"`` or ``"categorical"`` (the ``pocket`` layer).
    cmap
        Matplotlib colormap name the lookup table was built from.
    domain
        Values mapped to the first and last colour (clipped beyond).
    lut
        ``(256, 4)`` uint8 RGBA lookup table.
    open_high
        Whether some values lie above the domain (drawn in the last colour).
    open_low
        Whether some values lie below the domain (drawn in the first colour; the legend
        marks the low end "≤").
    """

    indicator: str
    label: str
    unit: str
    kind: str
    cmap: str
    domain: tuple[float, float]
    lut: np.ndarray
    open_high: bool = False
    open_low: bool = False

    def rgba(self, values: np.ndarray) -> np.ndarray:
        """Return the ``(n, 4)`` uint8 colours of ``values`` (NaN: nodata; pockets: alpha 0).

        For the categorical pocket scale ``values`` are pocket ids (NaN = no pocket).
        """
        values = np.asarray(values, dtype="float64")
        missing = ~np.isfinite(values)
        if self.kind == "categorical":
            idx = np.where(missing, 0, values).astype("int64") % len(self.lut)
            out = self.lut[idx]
            out[missing] = 0
            return out
        lo, hi = self.domain
        t = np.clip((np.where(missing, lo, values) - lo) / (hi - lo), 0.0, 1.0)
        out = self.lut[np.rint(t * (len(self.lut) - 1)).astype("int64")]
        out[missing] = NODATA_RGBA
        return out

    def legend(self, *, values: np.ndarray | None = None, n_stops: int = 6,
               nodata_label: str = NODATA_LABEL) -> dict[str, Any]:
        """Return the legend as JSON-ready data.

        Parameters
        ----------
        values
            For the categorical scale: the pocket ids to list (one stop each).
        n_stops
            Number of evenly spaced stops of a continuous scale.
        nodata_label
            Legend text of the no-data colour.

        Returns
        -------
        dict
            ``{indicator, label, unit, kind, colormap, domain, stops: [{value, color}],
            ticks, nodata, nodata_label, open_high, opacity}``; colours are ``#rrggbb``,
            ``ticks`` are round values to label (:func:`nice_ticks`; ``None`` for the
            categorical scale), ``opacity`` is the fill opacity and ``open_high`` tells
            that values above the last stop exist (drawn in its colour).
        """
        if self.kind == "categorical":
            ids = np.unique(np.asarray(values if values is not None else [], dtype="float64"))
            ids = ids[np.isfinite(ids)].astype("int64")
            colours = self.rgba(ids)
            stops = [{"value": int(i), "color": _hex(c)}
                     for i, c in zip(ids, colours, strict=True)]
            domain = [int(ids.min()), int(ids.max())] if ids.size else None
            nodata = None
            ticks = None
        else:
            lo, hi = self.domain
            vals = np.linspace(lo, hi, n_stops)
            colours = self.rgba(vals)
            stops = [{"value": _round(v), "color": _hex(c)}
                     for v, c in zip(vals, colours, strict=True)]
            domain = [_round(lo), _round(hi)]
            nodata = _hex(NODATA_RGBA)
            ticks = nice_ticks(lo, hi, minutes=self.unit == "minutes")
        return {"indicator": self.indicator, "label": self.label, "unit": self.unit,
                "kind": self.kind, "colormap": self.cmap, "domain": domain, "stops": stops,
                "ticks": ticks, "nodata": nodata, "nodata_label": nodata_label if nodata else None,
                "open_high": bool(self.open_high and self.kind != "categorical"),
                "open_low": bool(self.open_low and self.kind != "categorical"),
                "opacity": round(FILL_ALPHA / 255, 3)}


def _round(v: float) -> float:
    return float(f"{float(v):.6g}")


def nice_ticks(lo: float, hi: float, *, minutes: bool = False,
               max_intervals: int = 6) -> list[float]:
    """Return legend tick values: both ends plus round steps in between.

    Steps are 1, 2, 2.5 or 5 times a power of ten (5 .. 240 minutes for travel times), the
    smallest giving at most ``max_intervals`` intervals; the gradient itself keeps its
    evenly spaced colour stops.

    Examples
    --------
    >>> nice_ticks(0.0, 0.9)
    [0.0, 0.2, 0.4, 0.6, 0.8, 0.9]
    >>> nice_ticks(0.0, 240.0, minutes=True)
    [0.0, 60.0, 120.0, 180.0, 240.0]
    >>> nice_ticks(-5.0, 5.0)
    [-5.0, -4.0, -2.0, 0.0, 2.0, 4.0, 5.0]
    """
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return [_round(lo), _round(hi)]
    if minutes:
        steps = [5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 240.0]
    else:
        e = math.floor(math.log10(span / max_intervals))
        steps = [m * 10.0 ** k for k in (e, e + 1) for m in (1.0, 2.0, 2.5, 5.0)]
    fitting = [st for st in steps if span / st <= max_intervals * (1 + 1e-9)]
    step = min(fitting) if fitting else span
    first = math.ceil(lo / step - 1e-9)
    inner = [(first + i) * step for i in range(int(math.floor(hi / step + 1e-9)) - first + 1)]
    values = sorted({_round(lo), _round(hi), *(_round(v) for v in inner)})
    return [v for v in values if lo - 1e-12 <= v <= hi + 1e-12]


def describe(indicator: str) -> dict[str, str]:
    """Return ``{"label", "unit", "colormap"}`` of an indicator without computing a domain.

    Examples
    --------
    >>> describe("travel_min_puskesmas")["label"]
    'Travel time to the nearest puskesmas'
    """
    if indicator == POCKET:
        return {"label": "Poverty pocket", "unit": "pocket id", "colormap": "tab20"}
    rule, match = _rule_for(indicator)
    return {"label": rule.label(match), "unit": rule.unit, "colormap": rule.cmap}


def domain_from_base(indicator: str) -> bool:
    """Return whether the domain of ``indicator`` comes from the base-resolution values.

    Examples
    --------
    >>> domain_from_base("priority"), domain_from_base("households")
    (True, False)
    """
    return indicator != POCKET and _rule_for(indicator)[0].domain in BASE_DOMAINS


def make_scale(indicator: str, values: np.ndarray, *,
               reference: np.ndarray | None = None) -> Scale:
    """Build the colour scale of ``indicator`` from its published ``values``.

    Parameters
    ----------
    indicator
        A numeric public cell column, or ``"pocket"``.
    values
        The values at the resolution being drawn (NaN allowed); they set data-driven domains.
    reference
        Values the domain is computed from instead of ``values`` (the service passes the
        base-resolution values for :func:`domain_from_base` indicators, so that colours
        keep their meaning at every zoom).

    Returns
    -------
    Scale
        The scale with its lookup table.

    Examples
    --------
    >>> make_scale("priority", np.array([0.2, 0.55])).domain
    (0.0, 0.6)
    """
    if indicator == POCKET:
        tab = colormaps["tab20"](np.arange(20), bytes=True)
        lut = np.concatenate([tab[0::2], tab[1::2]])  # 10 distinct hues, then their light tints
        lut[:, 3] = FILL_ALPHA
        return Scale(POCKET, "Poverty pocket", "pocket id", "categorical", "tab20", (0.0, 19.0),
                     lut)
    rule, match = _rule_for(indicator)
    values = np.asarray(values, dtype="float64")
    basis = values if reference is None else np.asarray(reference, dtype="float64")
    lo, hi = _domain(rule.domain, basis)
    finite = values[np.isfinite(values)]
    open_high = bool(rule.domain != "unit" and finite.size and float(finite.max()) > hi)
    open_low = bool(rule.domain != "unit" and finite.size and float(finite.min()) < lo)
    return Scale(indicator, rule.label(match), rule.unit, "continuous", rule.cmap, (lo, hi),
                 _lut(rule.cmap), open_high=open_high, open_low=open_low)
