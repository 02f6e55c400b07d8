"""Unit costs of the plan across strategies: reading and checking ``costs.toml``.

Example ``costs.toml`` (Rupiah; every table optional, unknown keys are errors)::

    [assistance]            # strategy 1: a household assistance package that lifts an
    cost = 3.0e6            #   extreme-poor household above the extreme-poverty line (per year)
    [income]                # strategy 2: skills / micro-business support that lifts one
    cost = 8.0e6            #   extreme-poor household above the line
    [water]                 # strategy 3: improved water for one household (a connection or
    cost = 2.5e6            #   its share of a water point)
    [sanitation]            # strategy 3: improved sanitation for one household
    cost = 3.0e6
    [education]             # strategy 1: school support for a household with a child out
    cost = 1.5e6            #   of school
    [facilities.puskesmas]  # strategy 3: one new facility of a type, reaching households
    cost = 2.5e9            #   within max_minutes (kantong sites' coverage model)
    max_minutes = 60.0
    max_per_pocket = 3
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kantong.engine.build.travel import type_slug
from kantong.engine.config import read_toml
from kantong.engine.errors import ConfigError

#: Household interventions: key -> (Inpres strategy, what the household gains).
HOUSEHOLD_INTERVENTIONS: Final = {
    "assistance": (1, "lifted"),
    "income": (2, "lifted"),
    "water": (3, "water"),
    "sanitation": (3, "sanitation"),
    "education": (1, "school"),
}
#: Strategy of a new facility (eliminate poverty pockets: basic infrastructure).
FACILITY_STRATEGY: Final = 3


@dataclass(frozen=True)
class FacilityCost:
    """A new facility of one type: its cost, reach and the most per pocket."""

    facility_type: str
    cost: float
    max_minutes: float = 60.0
    max_per_pocket: int = 3


@dataclass(frozen=True)
class PlanCosts:
    """Unit costs read from ``costs.toml`` (Rupiah); absent interventions are not used.

    Attributes
    ----------
    household
        Cost per household of each household intervention present
        (:data:`HOUSEHOLD_INTERVENTIONS` keys).
    facilities
        New facility types with their cost and reach.
    source
        The file read.
    """

    household: dict[str, float] = field(default_factory=dict)
    facilities: tuple[FacilityCost, ...] = ()
    source: str = "costs"

    @classmethod
    def from_toml(cls, path: str | Path) -> PlanCosts:
        """Read and check a costs file.

        Raises
        ------
        ConfigError
            Missing or unreadable file, unknown tables or keys, costs that are not > 0.
        """
        return cls.from_mapping(read_toml(path, what="costs"), source=str(path))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "costs") -> PlanCosts:
        """Build the costs from nested mappings (as read from TOML).

        Examples
        --------
        >>> c = PlanCosts.from_mapping({"assistance": {"cost": 3e6},
        ...                             "facilities": {"puskesmas": {"cost": 2.5e9}}})
        >>> c.household, c.facilities[0].max_minutes
        ({'assistance': 3000000.0}, 60.0)
        """
        unknown = sorted(set(raw) - set(HOUSEHOLD_INTERVENTIONS) - {"facilities"})
        if unknown:
            raise ConfigError(f"{source}: unknown table(s) {unknown}; expected some of "
                              f"{', '.join([*HOUSEHOLD_INTERVENTIONS, 'facilities'])}")
        household = {}
        for key in HOUSEHOLD_INTERVENTIONS:
            if key in raw:
                table = _table(raw[key], key, source, {"cost"})
                household[key] = _positive(table.get("cost"), f"{key}.cost", source)
        facilities = []
        for name, table in sorted(_table(raw.get("facilities", {}), "facilities", source,
                                         None).items()):
            table = _table(table, f"facilities.{name}", source,
                           {"cost", "max_minutes", "max_per_pocket"})
            type_slug(name)
            per = table.get("max_per_pocket", 3)
            if not isinstance(per, int) or isinstance(per, bool) or per < 1:
                raise ConfigError(f"{source}: facilities.{name}.max_per_pocket must be an "
                                  f"integer >= 1, got {per!r}")
            facilities.append(FacilityCost(
                facility_type=name, cost=_positive(table.get("cost"),
                                                   f"facilities.{name}.cost", source),
                max_minutes=_positive(table.get("max_minutes", 60.0),
                                      f"facilities.{name}.max_minutes", source),
                max_per_pocket=per))
        if not household and not facilities:
            raise ConfigError(f"{source}: no intervention has a cost")
        return cls(household=household, facilities=tuple(facilities), source=source)


def _table(value: Any, name: str, source: str, keys: set[str] | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {name} must be a table ([{name}]), got {value!r}")
    if keys is not None and set(value) - keys:
        raise ConfigError(f"{source}: unknown key(s) {sorted(set(value) - keys)} in [{name}]")
    return value


def _positive(value: Any, name: str, source: str) -> float:
    if value is None:
        raise ConfigError(f"{source}: {name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value > 0):
        raise ConfigError(f"{source}: {name} must be a number > 0, got {value!r}")
    return float(value)


__all__ = ["FACILITY_STRATEGY", "HOUSEHOLD_INTERVENTIONS", "FacilityCost", "PlanCosts"]
