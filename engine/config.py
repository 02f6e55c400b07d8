"""Pipeline configuration: frozen dataclasses read from ``kantong.toml``.

Every section has documented defaults; CLI flags override the file. Unknown keys
are an error (a typo must not silently fall back to a default).

Example ``kantong.toml``::

    [build]
    resolution = 8

    [pockets]
    method = "scan"                 # "scan" (default) or "gistar"; docs/pockets.md
    scan_max_k = 5                  # scan windows: H3 disks of radius 1..scan_max_k
    scan_permutations = 99          # Monte Carlo permutations of the scan's null
    scan_alpha = 0.01               # family-wise significance of a scan window
    scan_cap_quantile = 0.99        # per-cell binomial cap of the scan's counts (0 = none)
    scan_seed = 0                   # seed of the permutations
    k_ring = 1                      # neighbourhood of Gi*: H3 ring distance
    fdr = 0.05                      # Benjamini-Hochberg false discovery rate
    min_extreme_households = 20     # smallest pocket kept
    min_households = 1              # cells below this are not tested (EB smoothing handles noise)
    max_pocket_cells = 0            # split larger pockets into compact parts (0 = never)
    strategy_travel_min = 60.0      # strategy rule thresholds, see docs/pockets.md
    strategy_infrastructure_share = 0.5
    strategy_assistance_gap_share = 0.3
    analysis_resolution = 0         # H3 resolution of the pocket search (0 = automatic)
    auto_median_households = 10     # automatic: finest resolution with this median per cell

    [score]
    travel_cap_min = 180.0          # travel times above this score as the cap
    travel_types = []               # facility types in score/strategy ([] = all but hospitals)

    [score.weights]
    extreme_households = 0.30
    extreme_rate = 0.20
    deprivation = 0.20
    travel = 0.20
    assistance_gap = 0.10

    [privacy]
    min_households = 10
    staff_min_households = 5        # logged-in regency staff (serve --users); never below 3

    [sites]                         # kantong sites; CLI flags override (docs/sites.md)
    facility_type = "puskesmas"
    objective = "max-coverage"      # max-coverage | min-sites | min-travel | min-max-travel
    max_minutes = 60.0              # reach limit (travel objectives: the horizon)
    count = 10
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kantong.engine.constants import (
    DEFAULT_MIN_HOUSEHOLDS,
    DEFAULT_RESOLUTION,
    LOWEST_MIN_HOUSEHOLDS,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
)
from kantong.engine.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Parameters of ``kantong build`` (fusion into H3 cells)."""

    resolution: int = DEFAULT_RESOLUTION
    #: Coarsest rollup resolution written beside the cells.
    min_rollup_resolution: int = MIN_RESOLUTION
    #: Speed (km/h) of the straight-line travel-time fallback (no friction surface):
    #: walking, no detour factor (``kantong build --straight-line-kmh``).
    straight_line_kmh: float = 4.0

    def __post_init__(self) -> None:
        check_resolution(self.resolution)
        if not self.straight_line_kmh > 0:
            raise ConfigError(f"build.straight_line_kmh must be > 0, got {self.straight_line_kmh}")
        if not MIN_RESOLUTION <= self.min_rollup_resolution <= self.resolution:
            raise ConfigError(
                f"build.min_rollup_resolution must be in {MIN_RESOLUTION}..{self.resolution}, "
                f"got {self.min_rollup_resolution}"
            )


@dataclasses.dataclass(frozen=True)
class PocketConfig:
    """Parameters of hotspot detection and pocket clustering."""

    #: Which statistic decides the hot cells: ``"scan"`` (Kulldorff scan over H3 k-ring
    #: windows, permutation p-values) or ``"gistar"`` (Getis-Ord Gi* with BH). The default
    #: and its evidence (planted-pocket benchmark) are in docs/pockets.md.
    method: str = "scan"
    #: Scan windows are the H3 disks of radius 1..``scan_max_k`` around every cell.
    scan_max_k: int = 5
    #: Monte Carlo permutations of the cells for the scan's null distribution.
    scan_permutations: int = 99
    #: Family-wise significance level of a scan window (and of a scan pocket).
    scan_alpha: float = 0.01
    #: Each cell's extreme-poor count enters the scan capped at this binomial quantile (0 = off).
    scan_cap_quantile: float = 0.99
    #: Seed of the permutations (the same input gives the same pockets).
    scan_seed: int = 0
    k_ring: int = 1
    fdr: float = 0.05
    min_extreme_households: int = 20
    #: Cells with fewer households are not tested. Default 1 (all): Empirical-Bayes smoothing
    #: already tames small cells, and dropping them punches holes in sparse interiors.
    min_households: int = 1
    #: Pockets larger than this many cells are split into compact contiguous parts (0 = never).
    max_pocket_cells: int = 0
    #: Strategy rule (docs/pockets.md): mean travel time (minutes) that counts as "far".
    strategy_travel_min: float = 60.0
    #: Strategy rule: mean infrastructure deprivation share that counts as "high".
    strategy_infrastructure_share: float = 0.5
    #: Strategy rule: share of extreme-poor households without assistance that is "large".
    strategy_assistance_gap_share: float = 0.3
    #: H3 resolution at which hot spots and pockets are found (0 = automatic: the finest
    #: resolution, not finer than the build's, whose median cell holds at least
    #: ``auto_median_households`` households). Cells of the run inherit their parent's result.
    analysis_resolution: int = 0
    #: Target of the automatic choice of ``analysis_resolution``.
    auto_median_households: int = 10
    #: Analysis units: ``"auto"`` (villages when at least ``village_units_min_share`` of the
    #: households are located by village code only, else cells), ``"cells"`` or
    #: ``"villages"`` (docs/pockets.md, "Registers located by village code").
    units: str = "auto"
    #: Share of village-located households from which ``units = "auto"`` tests villages.
    village_units_min_share: float = 0.5

    def __post_init__(self) -> None:
        if self.units not in ("auto", "cells", "villages"):
            raise ConfigError("pockets.units must be \"auto\", \"cells\" or \"villages\", "
                              f"got {self.units!r}")
        if not 0.0 <= self.village_units_min_share <= 1.0:
            raise ConfigError("pockets.village_units_min_share must be in [0, 1], "
                              f"got {self.village_units_min_share}")
        if self.method not in ("scan", "gistar"):
            raise ConfigError(f"pockets.method must be \"scan\" or \"gistar\", got {self.method!r}")
        if not 1 <= self.scan_max_k <= 10:
            raise ConfigError(f"pockets.scan_max_k must be in 1..10, got {self.scan_max_k}")
        if not 19 <= self.scan_permutations <= 9999:
            raise ConfigError("pockets.scan_permutations must be in 19..9999, "
                              f"got {self.scan_permutations}")
        if not 0.0 < self.scan_alpha < 1.0:
            raise ConfigError(f"pockets.scan_alpha must be in (0, 1), got {self.scan_alpha}")
        if not 0.0 <= self.scan_cap_quantile < 1.0:
            raise ConfigError("pockets.scan_cap_quantile must be in [0, 1) (0 = no cap), "
                              f"got {self.scan_cap_quantile}")
        if self.scan_seed < 0:
            raise ConfigError(f"pockets.scan_seed must be >= 0, got {self.scan_seed}")
        if self.analysis_resolution != 0:
            check_resolution(self.analysis_resolution)
        if self.auto_median_households < 1:
            raise ConfigError("pockets.auto_median_households must be >= 1")
        if self.max_pocket_cells < 0:
            raise ConfigError("pockets.max_pocket_cells must be >= 0 (0 = no splitting)")
        if self.strategy_travel_min <= 0:
            raise ConfigError("pockets.strategy_travel_min must be > 0 minutes")
        for name in ("strategy_infrastructure_share", "strategy_assistance_gap_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"pockets.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.k_ring <= 5:
            raise ConfigError(f"pockets.k_ring must be in 1..5, got {self.k_ring}")
        if not 0.0 < self.fdr < 1.0:
            raise ConfigError(f"pockets.fdr must be in (0, 1), got {self.fdr}")
        if self.min_extreme_households < 1:
            raise ConfigError("pockets.min_extreme_households must be >= 1")
        if self.min_households < 0:
            raise ConfigError("pockets.min_households must be >= 0")


DEFAULT_WEIGHTS: Mapping[str, float] = {
    "extreme_households": 0.30,
    "extreme_rate": 0.20,
    "deprivation": 0.20,
    "travel": 0.20,
    "assistance_gap": 0.10,
}


#: Facility types that are not basic services: left out of score and strategy by default.
NOT_BASIC_SERVICE_TYPES: tuple[str, ...] = ("hospital", "rs", "rsu", "rsud", "rsia", "rsk",
                                            "rumah_sakit", "rumah_sakit_umum")


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """Weights of the composite priority score (normalised to sum to 1)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    #: Travel times at or above this many minutes get the full travel score (docs/pockets.md).
    travel_cap_min: float = 180.0
    #: Facility types whose travel times feed the score and the strategy (type slugs, as in
    #: ``travel_min_<type>``). Empty: the basic-service types, i.e. every type except
    #: hospitals (:data:`NOT_BASIC_SERVICE_TYPES`).
    travel_types: tuple[str, ...] = ()

    def counts_travel_type(self, slug: str) -> bool:
        """Return whether travel times to facility type ``slug`` feed score and strategy."""
        if self.travel_types:
            return slug in self.travel_types
        return slug not in NOT_BASIC_SERVICE_TYPES

    def __post_init__(self) -> None:
        types = self.travel_types
        if isinstance(types, str) or not all(isinstance(t, str) and t for t in types):
            raise ConfigError(f"score.travel_types must be a list of facility types, got {types!r}")
        object.__setattr__(self, "travel_types", tuple(t.strip().lower() for t in types))
        if not self.travel_cap_min > 0:
            raise ConfigError(f"score.travel_cap_min must be > 0, got {self.travel_cap_min}")
        if not self.weights:
            raise ConfigError("score.weights must name at least one indicator")
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ConfigError(f"score.weights: unknown indicator(s) {sorted(unknown)}; "
                              f"expected some of {', '.join(DEFAULT_WEIGHTS)}")
        bad = {k: v for k, v in self.weights.items() if not isinstance(v, int | float) or v < 0}
        if bad:
            raise ConfigError(f"score.weights must be non-negative numbers, got {bad}")
        if sum(self.weights.values()) <= 0:
            raise ConfigError("score.weights must not all be zero")


@dataclasses.dataclass(frozen=True)
class PrivacyConfig:
    """Small-count suppression applied to everything published."""

    min_households: int = DEFAULT_MIN_HOUSEHOLDS
    #: Threshold shown to logged-in staff for their own regency (docs/security.md).
    staff_min_households: int = 5

    def __post_init__(self) -> None:
        check_min_households(self.min_households)
        check_min_households(self.staff_min_households)


#: Objectives of ``kantong sites`` (docs/sites.md).
SITE_OBJECTIVES: tuple[str, ...] = ("max-coverage", "min-sites", "min-travel", "min-max-travel")


@dataclasses.dataclass(frozen=True)
class SitesConfig:
    """Parameters of ``kantong sites`` (:func:`kantong.engine.sites.run.plan_sites`).

    Zero or empty values mean "not given". CLI flags override the ``[sites]`` table.
    """

    #: Facility type to site; existing facilities of the type already serve their area.
    facility_type: str = "puskesmas"
    #: ``max-coverage``, ``min-sites``, ``min-travel`` or ``min-max-travel``.
    objective: str = "max-coverage"
    #: Coverage limit in minutes (max-coverage, min-sites); the travel-time horizon of
    #: min-travel and min-max-travel (trips longer count as this long; 0 = travel_horizon_min).
    max_minutes: float = 0.0
    #: Trips longer than this count as this long in min-travel / min-max-travel (minutes).
    travel_horizon_min: float = 120.0
    #: Number of new sites (0 = use budget / cost, or min-sites).
    count: int = 0
    #: Budget and cost of one site in Rupiah (0 = not given).
    budget: float = 0.0
    cost: float = 0.0
    #: Candidate sites file ("" = the populated cell centres, shortlisted).
    candidates: str = ""
    #: Most default candidates scored exactly.
    candidate_limit: int = 1000
    #: ``greedy`` or ``exact`` ("" = greedy for max-coverage, exact otherwise).
    method: str = ""
    #: Seconds for the exact solvers.
    time_limit: float = 60.0
    #: BPS 4-digit regency code restricting demand and default candidates ("" = all).
    regency: str = ""
    #: ``extreme`` or ``weighted`` demand.
    demand: str = "extreme"
    #: min-sites: share of the extreme-poor households to bring within reach (0-1].
    target_share: float = 1.0
    #: Capacity of a new site, in ``capacity_unit`` (0 = no capacity limit).
    capacity: float = 0.0
    #: Table of capacities per facility type (CSV ``type,capacity``; "" = none).
    capacity_table: str = ""
    #: ``persons`` (the cell's population) or ``households`` (registered households).
    capacity_unit: str = "persons"

    def __post_init__(self) -> None:
        if self.objective not in SITE_OBJECTIVES:
            raise ConfigError(f"sites.objective must be one of {', '.join(SITE_OBJECTIVES)}, "
                              f"got {self.objective!r}")
        if self.method not in ("", "greedy", "exact"):
            raise ConfigError(f"sites.method must be greedy or exact, got {self.method!r}")
        if self.demand not in ("extreme", "weighted"):
            raise ConfigError(f"sites.demand must be extreme or weighted, got {self.demand!r}")
        if self.capacity_unit not in ("persons", "households"):
            raise ConfigError("sites.capacity_unit must be persons or households, got "
                              f"{self.capacity_unit!r}")
        if not 0.0 < self.target_share <= 1.0:
            raise ConfigError(f"sites.target_share must be in (0, 1], got {self.target_share}")
        for name in ("max_minutes", "budget", "cost", "capacity"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sites.{name} must be >= 0 (0 = not given)")
        for name in ("travel_horizon_min", "time_limit"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"sites.{name} must be > 0, got {getattr(self, name)}")
        if self.count < 0:
            raise ConfigError(f"sites.count must be >= 0 (0 = not given), got {self.count}")
        if self.candidate_limit < 1:
            raise ConfigError("sites.candidate_limit must be >= 1")


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration of a run."""

    build: BuildConfig = dataclasses.field(default_factory=BuildConfig)
    pockets: PocketConfig = dataclasses.field(default_factory=PocketConfig)
    score: ScoreConfig = dataclasses.field(default_factory=ScoreConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    sites: SitesConfig = dataclasses.field(default_factory=SitesConfig)

    @classmethod
    def from_toml(cls, path: str | Path | None) -> Config:
        """Read a ``kantong.toml`` file; ``None`` gives the defaults."""
        if path is None:
            return cls()
        return cls.from_mapping(read_toml(path, what="config"), source=str(path))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "config") -> Config:
        """Build a configuration from nested mappings (as read from TOML)."""
        sections = {"build": BuildConfig, "pockets": PocketConfig, "score": ScoreConfig,
                    "privacy": PrivacyConfig, "sites": SitesConfig}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}")
        kwargs = {}
        for name, klass in sections.items():
            section = raw.get(name, {})
            if not isinstance(section, Mapping):
                raise ConfigError(f"{source}: {name} must be a table ([{name}]), "
                                  f"got {section!r}")
            values = dict(section)
            fields = {f.name for f in dataclasses.fields(klass)}
            bad = set(values) - fields
            if bad:
                raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [{name}]")
            _check_types(klass(), values, section=name, source=source)
            try:
                kwargs[name] = klass(**values)
            except TypeError as exc:
                raise ConfigError(f"{source}: [{name}] {exc}") from None
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        return cls(**kwargs)

    def replace(self, section: str, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied to one section (``None`` values ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        new_section = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: new_section})

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as plain JSON-serialisable data (for manifests)."""
        out = dataclasses.asdict(self)
        out["score"]["weights"] = dict(self.score.weights)
        out["score"]["travel_types"] = list(self.score.travel_types)
        return out


def _check_types(default: Any, values: Mapping[str, Any], *, section: str, source: str) -> None:
    """Raise ``ConfigError`` when a value's TOML type does not fit its field's default."""
    for key, value in values.items():
        expected = getattr(default, key)
        if isinstance(expected, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(expected, int):
            ok, what = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(expected, float):
            ok, what = isinstance(value, int | float) and not isinstance(value, bool), "a number"
        elif isinstance(expected, Mapping):
            ok, what = isinstance(value, Mapping), "a table"
        else:
            continue
        if not ok:
            raise ConfigError(f"{source}: {section}.{key} must be {what}, got {value!r}")


def read_toml(path: str | Path, *, what: str) -> dict[str, Any]:
    """Read a TOML file (config, schema, costs, speed table) with one-line errors.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file is, for messages (``"config"``, ``"schema"``, ``"costs"`` ...).

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, not UTF-8 text or not valid TOML.
    """
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML (the file is not UTF-8 text)") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ConfigError(f"{path}: cannot read {what} file ({exc.strerror})") from None


def check_resolution(resolution: int) -> int:
    """Return ``resolution`` if it is an accepted H3 resolution, else raise ``ConfigError``."""
    if not isinstance(resolution, int) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ConfigError(
            f"H3 resolution must be an integer in {MIN_RESOLUTION}..{MAX_RESOLUTION}, "
            f"got {resolution!r}"
        )
    return resolution


def check_min_households(k: int) -> int:
    """Return ``k`` if it is an allowed minimum household count, else raise ``ConfigError``."""
    if not isinstance(k, int) or k < LOWEST_MIN_HOUSEHOLDS:
        raise ConfigError(
            f"minimum household count must be an integer >= {LOWEST_MIN_HOUSEHOLDS}, got {k!r}"
        )
    return k
