"""Sites: travel-time coverage, site selection solvers and the ``kantong sites`` stage.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

_EXPORTS = {
    "plan_sites": "kantong.engine.sites.run",
    "SitesPlan": "kantong.engine.sites.run",
    "Coverage": "kantong.engine.sites.coverage",
    "FrictionSurface": "kantong.engine.sites.coverage",
    "travel_coverage": "kantong.engine.sites.coverage",
    "straight_line_coverage": "kantong.engine.sites.coverage",
    "greedy_cover": "kantong.engine.sites.solvers",
    "exact_cover": "kantong.engine.sites.solvers",
    "SitingResult": "kantong.engine.sites.solvers",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
