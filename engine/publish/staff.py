"""What a logged-in regency staff account may see beyond the public map.

Staff of regency A hold A's by-name register, so they may see A's cells at a lower
threshold ``staff_min_households`` (never below :data:`~kantong.engine.constants.
LOWEST_MIN_HOUSEHOLDS`). They must learn nothing finer about any other regency B, also by
combining staff numbers with the public ones. The public release is a set of sums of
*atoms* (:mod:`kantong.engine.publish.privacy`): an atom that mixes A and B cells is
published only as a total, so revealing its A cells would reveal its B part by subtraction.

:class:`StaffView` therefore shows, from the suppression plan at the staff threshold,
only cells whose base cells all lie in A **and** in public atoms lying entirely in A. An
admin account (``regency=None``) sees every cell of the staff-threshold plan.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd

from kantong.engine.config import check_min_households
from kantong.engine.h3ids import cells_to_uint64, parent_cells, uint64_to_cells
from kantong.engine.publish.published import PublishedRun

logger = logging.getLogger(__name__)


class StaffView:
    """Cells of a run at the staff threshold, restricted per regency.

    Parameters
    ----------
    public
        The public view of the run (its plan at the public ``K`` defines the atoms).
    min_households
        The staff threshold (``[privacy] staff_min_households``); at most the public ``K``.

    Examples
    --------
    >>> view = StaffView(PublishedRun("run"), min_households=5)  # doctest: +SKIP
    >>> view.cells(8, regency="6105")  # doctest: +SKIP
    """

    def __init__(self, public: PublishedRun, *, min_households: int) -> None:
        k = min(check_min_households(min_households), public.min_households)
        self.public = public
        self.min_households = k
        self.detail = PublishedRun(public.run_dir, min_households=k, allow_lower_k=True,
                                   trust_run=True)
        self._allowed: dict[tuple[int, str], pd.Index] = {}

    def allowed_ids(self, resolution: int, regency: str) -> pd.Index:
        """Return the H3 ids at ``resolution`` a staff account of ``regency`` may see."""
        key = (resolution, regency)
        if key not in self._allowed:
            plan = self.public.plan
            base = self.public._base_frame()
            h3s = base["h3"].astype(str).to_numpy()
            reg = base["regency_code"].astype("string").fillna("").to_numpy(dtype=object)
            atom = plan.atoms["atom"].reindex(h3s).to_numpy()
            pure = pd.Series(reg).groupby(atom).transform("nunique").to_numpy() == 1
            ok = (reg == regency) & pure
            if resolution == plan.base_resolution:
                ids = pd.Index(h3s[ok])
            else:
                parents = parent_cells(cells_to_uint64(h3s), resolution)
                all_ok = pd.Series(ok).groupby(parents).all()
                good = all_ok.index.to_numpy(dtype="uint64")[all_ok.to_numpy()]
                ids = pd.Index(uint64_to_cells(good))
            self._allowed[key] = ids
        return self._allowed[key]

    def cells(self, resolution: int | None = None, *, regency: str | None = None
              ) -> gpd.GeoDataFrame:
        """Return the staff cells at ``resolution`` of ``regency`` (``None``: admin, all)."""
        frame = self.detail.cells(resolution)
        if regency is None:
            return frame
        code = self.public.check_regency(regency)
        res = self.detail._check_resolution(resolution)
        keep = frame["h3"].astype(str).isin(self.allowed_ids(res, code)).to_numpy()
        return frame.loc[keep].reset_index(drop=True)


__all__ = ["StaffView"]
