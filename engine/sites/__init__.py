"""Sites: travel-time coverage, site selection solvers and the ``kantong sites`` stage.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, run="plan_sites SitesPlan",
    coverage="Coverage FrictionSurface travel_coverage straight_line_coverage",
    solvers="greedy_cover exact_cover SitingResult")
