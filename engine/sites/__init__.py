"""Sites: travel-time coverage, the site models and the ``kantong sites`` stage.

Public names load lazily from their modules; see ``__all__``.
"""

from kantong.engine._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__, run="plan_sites SitesPlan resolve_settings",
    coverage="Coverage FrictionSurface travel_coverage straight_line_coverage",
    solvers="greedy_cover exact_cover SitingResult",
    lscp="greedy_min_sites exact_min_sites",
    pmedian="greedy_min_travel exact_min_travel",
    pcenter="greedy_min_max_travel exact_min_max_travel",
    capacity="Allocation allocate greedy_capacitated exact_capacitated",
    places="name_places", plan="plan_budget BudgetPlan", plan_costs="PlanCosts")
