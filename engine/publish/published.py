"""The one gate between a (sensitive) run directory and anything published.

:class:`PublishedRun` is a read-only, privacy-safe view of a run: the web map, the tile
server, the API and ``kantong export`` read a run only through it. It applies the rules of
:mod:`kantong.engine.publish.privacy` (minimum household count ``K``, complementary suppression
over every
H3 resolution, atom-consistent regency and pocket totals, withheld small site counts) and
an allow-list of columns (:data:`PUBLIC_CELL_COLUMNS`): nothing else leaves the run.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from kantong.engine.config import check_min_households
from kantong.engine.constants import (
    CELLS_FILE,
    DEFAULT_MIN_HOUSEHOLDS,
    DEPRIVATIONS,
    FACILITIES_FILE,
    HOUSEHOLD_ID,
    PERSONAL_FIELDS,
    POCKETS_FILE,
    ROLLUP_DIR,
    SITES_DIR,
    WGS84,
)
from kantong.engine.errors import InputError, PrivacyError, RunError, first_line
from kantong.engine.h3ids import canonical_cell
from kantong.engine.publish import privacy
from kantong.engine.publish.totals import pocket_group_totals, regency_exactness
from kantong.engine.publish.validate import COUNT_COLUMNS, check_rollup, validate_cells
from kantong.engine.rundir import verify_run

logger = logging.getLogger(__name__)

#: Cell columns that may be published (when present in the run), in publication order.
PUBLIC_CELL_COLUMNS: tuple[str, ...] = (
    "h3", "resolution", "lon", "lat",
    "province_code", "province_name", "regency_code", "regency_name", "regency_kemendagri_code",
    "district_code", "district_name",
    "households", "persons", "extreme_households", "extreme_persons", "extreme_rate",
    "households_desil_1", "households_desil_2", "households_desil_3", "households_desil_4",
    "households_village_located",
    *(count for _, count, _ in DEPRIVATIONS.values()),
    *(share for _, _, share in DEPRIVATIONS.values()),
    "assistance_gap", "population",
    "hot", "pocket_id", "priority", "rank_province", "rank_regency",
    "geometry",
)
#: Column-name patterns that may also be published (run-dependent names).
PUBLIC_CELL_PATTERNS: tuple[str, ...] = (
    r"travel_min_[a-z0-9_]+",  # minutes to the nearest facility of a type
    r"[a-z][a-z0-9_]*_mean",  # mean of a --raster NAME=TIF over the cell
    r"contrib_[a-z0-9_]+",  # contribution of an indicator to the priority score
)
#: Public cell columns that are identifiers or positions, not map indicators.
NON_INDICATORS = frozenset({"resolution", "lon", "lat", "pocket_id", "rank_province",
                            "rank_regency"})
#: Count columns of cells summed into published pocket totals (when present).
POCKET_COUNT_COLUMNS: tuple[str, ...] = (
    "households", "persons", "extreme_households", "extreme_persons",
    "households_desil_1", "households_desil_2", "households_desil_3", "households_desil_4",
    *(count for _, count, _ in DEPRIVATIONS.values()), "assistance_gap",
)
#: Columns of published pockets (run-dependent ``travel_min_<type>`` columns follow ``cells``).
PUBLIC_POCKET_COLUMNS: tuple[str, ...] = (
    "pocket_id", "regency_code", "regency_name", "cells", *POCKET_COUNT_COLUMNS,
    "extreme_rate", *(share for _, _, share in DEPRIVATIONS.values()),
    "strategy", "strategy_label", "priority", "rank", "rank_province", "rank_regency",
    "pocket_p", "confidence", "totals", "villages", "n_villages", "lon", "lat", "geometry",
)
#: Pocket attributes taken as they are from pockets.parquet (labels and scores, not counts).
_POCKET_PASSTHROUGH = ("strategy", "strategy_label", "priority", "rank", "rank_province",
                       "rank_regency", "pocket_p", "confidence",
                       "villages", "n_villages")  # names of the pocket's villages (issue 19)
#: Columns of published sites.
PUBLIC_SITE_COLUMNS: tuple[str, ...] = (
    "type", "rank", "new_extreme_households", "cumulative_extreme_households",
    "covered_persons", "regency_code", "regency_name", "lon", "lat", "max_minutes", "geometry",
)
#: Columns of published existing facilities (public infrastructure points, no households).
PUBLIC_FACILITY_COLUMNS: tuple[str, ...] = ("facility_id", "type", "name", "lon", "lat",
                                            "geometry")
#: Columns of the regency summary.
REGENCY_COLUMNS: tuple[str, ...] = (
    "regency_code", "regency_name", "households", "persons", "extreme_households",
    "extreme_persons", "extreme_rate", "pockets", "cells", "totals",
)

_ROLLUP_RE = re.compile(r"cells_r(\d+)\.parquet")
_SITES_RE = re.compile(r"sites_(.+)\.parquet")
_BASE_COLUMNS = ("h3", "regency_code", "regency_name", "pocket_id", *POCKET_COUNT_COLUMNS)


def is_public_cell_column(name: str) -> bool:
    """Return whether a cell column may be published (allow-list plus patterns).

    Examples
    --------
    >>> is_public_cell_column("travel_min_puskesmas"), is_public_cell_column("gi_z")
    (True, False)
    """
    # pragma below: defence in depth; no personal field nor household_id matches the
    # allow-list or a pattern, so `or` -> `and` cannot be told apart (an equivalent mutant)
    if name in PERSONAL_FIELDS or name == HOUSEHOLD_ID:  # pragma: no mutate
        return False
    if name in PUBLIC_CELL_COLUMNS:
        return True
    return any(re.fullmatch(p, name) for p in PUBLIC_CELL_PATTERNS)


class PublishedRun:
    """Privacy-safe view of a run directory; the only way webmap and exports read a run.

    Parameters
    ----------
    run_dir
        A run directory written by ``kantong build`` (see docs/architecture.md).
    min_households
        The minimum household count ``K``. Default: ``config.privacy.min_households`` in the
        manifest (the run's ``K``), else
        :data:`~kantong.engine.constants.DEFAULT_MIN_HOUSEHOLDS`. Never below
        :data:`~kantong.engine.constants.LOWEST_MIN_HOUSEHOLDS` (``ConfigError``).
    allow_lower_k
        Allow ``min_households`` below the run's ``K`` (``--allow-lower-k``; logged as a
        warning). Without it a lower value is a ``PrivacyError``.
    trust_run
        Skip the SHA-256 check of the run's files (``--trust-run``); cells are validated
        either way.

    Raises
    ------
    RunError
        If ``run_dir`` holds no ``cells.parquet``, does not match the hashes of its
        manifest, or its files break the contract (invalid or duplicated cell ids,
        negative counts, rollups that are not exact sums).
    PrivacyError
        ``min_households`` below the run's ``K`` without ``allow_lower_k``.

    Examples
    --------
    >>> pub = PublishedRun("run")  # doctest: +SKIP
    >>> pub.cells(7, regency="6105").shape  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, *, min_households: int | None = None,
                 allow_lower_k: bool = False, trust_run: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self._cells_path = self.run_dir / CELLS_FILE
        if not self._cells_path.is_file():
            raise RunError(f"{self.run_dir}: not a run directory ({CELLS_FILE} missing)")
        self.manifest = verify_run(self.run_dir, trust=trust_run)
        self.run_id = str(self.manifest.get("run_id") or self.run_dir.name)
        #: The run's own ``K`` (its configuration); publishing below it needs allow_lower_k.
        self.run_min_households = check_min_households(_manifest_min_households(self.manifest))
        k = self.run_min_households if min_households is None else min_households
        self.min_households = check_min_households(k)
        if self.min_households < self.run_min_households:
            if not allow_lower_k:
                raise PrivacyError(
                    f"{self.run_dir}: min households {self.min_households} is below this "
                    f"run's K={self.run_min_households}; pass --allow-lower-k to publish "
                    "that much detail (it is logged)")
            logger.warning("%s: publishing at K=%d, below the run's K=%d (--allow-lower-k)",
                           self.run_dir, self.min_households, self.run_min_households)
        self.base_resolution = _base_resolution(self._cells_path)
        self._paths = {self.base_resolution: self._cells_path}
        rollups = self.run_dir / ROLLUP_DIR
        for path in sorted(rollups.glob("cells_r*.parquet")):  # none without the folder
            m = _ROLLUP_RE.fullmatch(path.name)
            if m and int(m.group(1)) < self.base_resolution:
                self._paths[int(m.group(1))] = path
        self.resolutions = sorted(self._paths)
        self._lock = threading.RLock()
        self._plan: privacy.SuppressionPlan | None = None
        self._levels: dict[int, pd.DataFrame] = {}
        self._cells: dict[int, gpd.GeoDataFrame] = {}
        self._index: dict[int, pd.Index] = {}
        self._pockets: gpd.GeoDataFrame | None = None
        self._pocket_totals: pd.DataFrame | None = None
        self._sites: gpd.GeoDataFrame | None = None
        self._facilities: gpd.GeoDataFrame | None = None
        self._regencies: pd.DataFrame | None = None
        logger.info("published view of %s: resolutions %s, K=%d", self.run_dir,
                    self.resolutions, self.min_households)

    def __repr__(self) -> str:
        return f"PublishedRun({str(self.run_dir)!r}, min_households={self.min_households})"

    # ---- the plan -------------------------------------------------------------------------
    @property
    def plan(self) -> privacy.SuppressionPlan:
        """The suppression plan of this run at this ``K`` (computed once, lazily)."""
        with self._lock:
            if self._plan is None:
                ids = {}
                for res in self.resolutions:
                    path = self._paths[res]
                    names = _schema_names(path)
                    cols = ["h3", "households", "regency_code"]
                    cols += [c for c in COUNT_COLUMNS if c in names and c not in cols]
                    if res == self.base_resolution:
                        cols = [c for c in names if c in _BASE_COLUMNS or c in cols
                                or _is_derived(c)]
                    frame = _read_columns(path, cols)
                    ids[res] = validate_cells(frame, source=path, resolution=res,
                                              require=("h3", "households", "regency_code"))
                    self._levels[res] = frame
                base = self._levels[self.base_resolution]
                for res in self.resolutions[:-1]:  # every count of a rollup: exact sums
                    check_rollup(ids[self.base_resolution], base, ids[res],
                                 self._levels[res], resolution=res, source=self._paths[res],
                                 columns=COUNT_COLUMNS)
                self._plan = privacy.plan_suppression(self._levels,
                                                      min_households=self.min_households)
            return self._plan

    def _base_frame(self) -> pd.DataFrame:
        self.plan  # noqa: B018 (loads the frames)
        return self._levels[self.base_resolution]

    # ---- cells ----------------------------------------------------------------------------
    def cells(self, resolution: int | None = None, *, regency: str | None = None
              ) -> gpd.GeoDataFrame:
        """Return the published cells at ``resolution`` (default: the base resolution).

        Parameters
        ----------
        resolution
            One of :attr:`resolutions`.
        regency
            Keep only cells whose ``regency_code`` is this BPS code.

        Returns
        -------
        geopandas.GeoDataFrame
            EPSG:4326, only public columns, withheld cells absent (a copy).

        Raises
        ------
        InputError
            Unknown resolution or regency.
        """
        res = self._check_resolution(resolution)
        with self._lock:
            if res not in self._cells:
                self._cells[res] = self._load_cells(res)
            frame = self._cells[res]
        if regency is not None:
            frame = frame[frame["regency_code"] == self.check_regency(regency)]
        return frame.copy()

    def _load_cells(self, res: int) -> gpd.GeoDataFrame:
        plan = self.plan
        gdf = _read_geo(self._paths[res])
        gdf = gdf[gdf["h3"].isin(plan.published_ids(res))]
        if res != self.base_resolution:
            gdf = self._published_derived(gdf, res)
        cols = [c for c in PUBLIC_CELL_COLUMNS if c in gdf.columns]
        cols += [c for c in gdf.columns if c not in cols and is_public_cell_column(c)]
        cols = [c for c in cols if c != "geometry"] + ["geometry"]
        gdf = gdf[cols].reset_index(drop=True)
        if "pocket_id" in gdf.columns:
            published = self._pocket_table().index
            pid = gdf["pocket_id"].astype("Int64")
            gdf["pocket_id"] = pid.where(pid.isin(published))
        for col, group in (("rank_province", "province_code"), ("rank_regency", "regency_code")):
            if col in gdf.columns:  # ranks among the published cells only
                ranks = gdf.groupby(group)[col] if group in gdf.columns else gdf[col]
                gdf[col] = ranks.rank(method="min").astype("Int64")
        logger.info("r%d: %d cells published, %d withheld (K=%d)", res, len(gdf),
                    plan.withheld_count(res), self.min_households)
        return gdf

    def _published_derived(self, gdf: gpd.GeoDataFrame, res: int) -> gpd.GeoDataFrame:
        """Replace derived columns of rollup cells by values over published base cells only.

        ``<raster>_mean``, ``travel_min_*`` and ``population`` of a rollup cell computed over
        all its children would let withheld counts be solved for (docs/privacy.md).
        """
        base = self._base_frame()
        derived = [c for c in gdf.columns if _is_derived(c)]
        safe = [c for c in derived if c in base.columns]  # others cannot be recomputed
        sums = tuple(c for c in safe if c == "population")
        means = tuple(c for c in safe if c not in sums)
        values = privacy.published_rollup_values(base, self.plan, res, means=means, sums=sums)
        values = values.reindex(gdf["h3"])
        gdf = gdf.drop(columns=[c for c in derived if c not in safe])
        for col in safe:
            gdf[col] = values[col].to_numpy()
        return gdf

    def cell(self, h3_id: str) -> dict | None:
        """Return one published cell's attributes (no geometry), or ``None``.

        Parameters
        ----------
        h3_id
            An H3 cell id at any available resolution.

        Returns
        -------
        dict or None
            Column -> value with NaN/NA as ``None``; ``None`` if the id is invalid, at an
            unavailable resolution, holds no households or is withheld.
        """
        h3_id = canonical_cell(h3_id)
        if h3_id is None:
            return None
        res = h3.get_resolution(h3_id)
        if res not in self._paths:
            return None
        if self.plan.status[res].get(h3_id) != privacy.PUBLISHED:
            return None
        with self._lock:
            if res not in self._cells:
                self._cells[res] = self._load_cells(res)
            frame = self._cells[res]
            if res not in self._index:
                self._index[res] = pd.Index(frame["h3"].astype(str))
            pos = self._index[res].get_indexer([h3_id])[0]
        if pos < 0:
            return None
        row = frame.iloc[pos]
        return {k: _plain(v) for k, v in row.items() if k != "geometry"}

    def withheld(self, resolution: int | None = None, *, regency: str | None = None) -> int:
        """Return how many cells holding households are withheld at ``resolution``.

        Only the number is reported (for export summaries), never which cells.
        """
        res = self._check_resolution(resolution)
        status = self.plan.status[res]
        hidden = status.to_numpy() != privacy.PUBLISHED
        if regency is not None:
            code = self.check_regency(regency)
            level = self._levels[res]
            hidden &= level["regency_code"].astype("string").fillna("").to_numpy() == code
        return int(hidden.sum())

    def indicators(self) -> list[str]:
        """Return the numeric public cell columns usable as map indicators (base resolution)."""
        frame = self.cells()  # the base resolution; geometry is not numeric
        return [c for c in frame.columns if c not in NON_INDICATORS
                and pd.api.types.is_numeric_dtype(frame[c])
                and not pd.api.types.is_bool_dtype(frame[c])]

    # ---- pockets --------------------------------------------------------------------------
    def _pocket_table(self) -> pd.DataFrame:
        with self._lock:
            if self._pocket_totals is None:
                base = self._base_frame()
                travel = [c for c in base.columns if c.startswith("travel_min_")]
                weighted = base.assign(**{c: base[c] * base["households"] for c in travel})
                counts = tuple(c for c in POCKET_COUNT_COLUMNS if c in base.columns)
                totals = privacy.pocket_totals(weighted, self.plan, columns=(*counts, *travel))
                for c in travel:  # household-weighted mean over the published cells
                    totals[c] = totals[c] / totals["households"]
                # counts: true totals where the withheld part is safe (engine/publish/totals.py)
                true = pocket_group_totals(base, self.plan, columns=counts).reindex(totals.index)
                for c in (*counts, "totals"):
                    totals[c] = true[c].to_numpy()
                src = self.run_dir / POCKETS_FILE
                if src.is_file():
                    ids = _read_columns(src, ["pocket_id"])["pocket_id"]
                    totals = totals[totals.index.isin(ids)]
                self._pocket_totals = totals
            return self._pocket_totals

    def pockets(self) -> gpd.GeoDataFrame:
        """Return the published pockets: at least ``K`` households in published cells.

        Counts are the pocket's true totals when what is withheld inside it cannot be
        recovered (``totals = "exact"``), else the sums over its safe units
        (``totals = "protected"``; docs/privacy.md, "Pocket and regency totals"). The
        outline is the union of the pocket's published cells; travel times are
        household-weighted over them. ``pocket_p`` and ``confidence`` come from the run.

        Returns
        -------
        geopandas.GeoDataFrame
            :data:`PUBLIC_POCKET_COLUMNS` (those available), EPSG:4326 (a copy).
        """
        with self._lock:
            if self._pockets is None:
                self._pockets = self._load_pockets()
            return self._pockets.copy()

    def _load_pockets(self) -> gpd.GeoDataFrame:
        totals = self._pocket_table()
        cells = self.cells()
        if totals.empty or "pocket_id" not in cells.columns:
            return _empty_geo(PUBLIC_POCKET_COLUMNS)
        cells = cells[cells["pocket_id"].notna()][["pocket_id", "geometry"]]
        out = totals.copy()
        out["geometry"] = cells.dissolve(by="pocket_id").geometry  # aligned on the pocket id
        # published pockets hold >= K households (and persons >= households): no 0 below
        out["extreme_rate"] = out["extreme_persons"] / out["persons"]
        for _, count, share in DEPRIVATIONS.values():
            if count in out.columns:
                out[share] = out[count] / out["households"]
        names = self._regency_names()
        out["regency_name"] = out["regency_code"].map(names).astype("string")
        src = self.run_dir / POCKETS_FILE
        if src.is_file():
            names_in = _schema_names(src)
            extra = [c for c in _POCKET_PASSTHROUGH if c in names_in]
            attrs = _read_columns(src, ["pocket_id", *extra]).dropna(subset=["pocket_id"])
            attrs = attrs.astype({"pocket_id": "int64"}).set_index("pocket_id")
            out = out.join(attrs)  # a left join: the published pockets
            if "rank" in out.columns:  # ranks among the published pockets only
                out["rank"] = out["rank"].rank(method="min").astype("Int64")
            if "rank_province" in out.columns:  # province = first two digits of the BPS code
                province = out["regency_code"].astype("string").str[:2].fillna("")
                out["rank_province"] = (out.groupby(province)["rank_province"]
                                        .rank(method="min").astype("Int64"))
            if "rank_regency" in out.columns:
                order = "rank_province" if "rank_province" in out.columns else "rank_regency"
                out["rank_regency"] = (out.groupby("regency_code")[order]
                                       .rank(method="min").astype("Int64"))
        gdf = gpd.GeoDataFrame(out.reset_index())  # its "geometry": EPSG:4326 as the cells
        rep = gdf.geometry.representative_point()
        gdf["lon"], gdf["lat"] = rep.x.to_numpy(), rep.y.to_numpy()
        cols = [c for c in PUBLIC_POCKET_COLUMNS if c in gdf.columns and c != "geometry"]
        cols += [c for c in gdf.columns if c.startswith("travel_min_")] + ["geometry"]
        return gdf[cols].sort_values("pocket_id").reset_index(drop=True)

    def pockets_withheld(self, *, regency: str | None = None) -> int:
        """Return how many pockets of the run are withheld (fewer than ``K`` households).

        With ``regency``, count only pockets whose households lie mostly in that regency.
        Only the number is reported (for export summaries), never which pockets.
        """
        base = self._base_frame()
        published = set(self._pocket_table().index)
        if "pocket_id" not in base.columns:
            return 0
        cells = base.loc[base["pocket_id"].notna(), ["pocket_id", "regency_code", "households"]]
        src = self.run_dir / POCKETS_FILE
        if src.is_file():  # only the run's pockets (a null id in the file matches no cell)
            cells = cells[cells["pocket_id"].isin(_read_columns(src, ["pocket_id"])["pocket_id"])]
        households = cells.groupby(["pocket_id", "regency_code"])["households"].sum()
        # pocket -> the regency holding most of its households (a tie: the lowest code)
        major = households.groupby(level="pocket_id").idxmax().map(lambda key: key[1])
        if regency is not None:
            major = major[major == self.check_regency(regency)]
        return int((~major.index.isin(published)).sum())

    # ---- sites ----------------------------------------------------------------------------
    def sites(self) -> gpd.GeoDataFrame:
        """Return all ``sites/sites_<type>.parquet`` concatenated, small counts withheld.

        Returns
        -------
        geopandas.GeoDataFrame
            :data:`PUBLIC_SITE_COLUMNS` (those available) with ``type`` from the file name;
            counts below ``K`` (and cumulative counts from the first withheld rank on) are
            null. Empty (with those columns) when the run has no sites.
        """
        with self._lock:
            if self._sites is None:
                self._sites = self._load_sites()
            return self._sites.copy()

    def _load_sites(self) -> gpd.GeoDataFrame:
        folder = self.run_dir / SITES_DIR
        frames = []
        for path in sorted(folder.glob("sites_*.parquet")):  # none when there is no folder
            m = _SITES_RE.fullmatch(path.name)
            if not m:
                continue
            gdf = _read_geo(path)
            gdf["type"] = m.group(1)
            frames.append(gdf[[c for c in PUBLIC_SITE_COLUMNS if c in gdf.columns]])
        if not frames:
            return _empty_geo(PUBLIC_SITE_COLUMNS)
        sites = pd.concat(frames)  # withhold_site_counts sorts and renumbers the rows
        if "rank" not in sites.columns:
            raise RunError(f"{folder}: sites files have no 'rank' column")
        # still a GeoDataFrame in EPSG:4326: every layer was read (and reprojected) by _read_geo
        return privacy.withhold_site_counts(sites, min_households=self.min_households)

    # ---- existing facilities ----------------------------------------------------------------
    def facilities(self) -> gpd.GeoDataFrame:
        """Return the run's existing facilities (``facilities.parquet``), points in EPSG:4326.

        Facilities are public infrastructure (health centres, schools, water points), not
        households: they are published as they are, restricted to
        :data:`PUBLIC_FACILITY_COLUMNS` (``lon``/``lat`` from the points).

        Returns
        -------
        geopandas.GeoDataFrame
            ``facility_id``, ``type``, ``name``, ``lon``, ``lat`` (those available) and the
            points; empty (with those columns) when the run was built without facilities.
        """
        with self._lock:
            if self._facilities is None:
                path = self.run_dir / FACILITIES_FILE
                if not path.is_file():
                    self._facilities = _empty_geo(PUBLIC_FACILITY_COLUMNS)
                else:
                    gdf = _read_geo(path)
                    # no point, or an empty one (GeoSeries.notna() warns on empty points)
                    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
                    gdf["lon"] = gdf.geometry.x.round(6)
                    gdf["lat"] = gdf.geometry.y.round(6)
                    cols = [c for c in PUBLIC_FACILITY_COLUMNS if c in gdf.columns]
                    self._facilities = gdf[cols].reset_index(drop=True)
            return self._facilities.copy()

    # ---- regencies ------------------------------------------------------------------------
    def regencies(self) -> pd.DataFrame:
        """Return the per-regency summary, consistent with the published cells.

        Totals are sums of released atoms (published cells, residuals of published cells,
        regency remainders of at least ``K`` households over at least two cells), so no
        subtraction of published numbers isolates a withheld cell. They can be below the
        administrative total by the households of unreleasable remainders.

        Returns
        -------
        pandas.DataFrame
            :data:`REGENCY_COLUMNS`, one row per regency with released households.
        """
        with self._lock:
            if self._regencies is None:
                self._regencies = self._load_regencies()
            return self._regencies.copy()

    def _load_regencies(self) -> pd.DataFrame:
        # every released atom holds >= K households: no regency row without households
        sums = privacy.released_regency_totals(self._base_frame(), self.plan)
        pockets = self._pocket_table()["regency_code"].value_counts()
        out = sums.reset_index()
        out["regency_name"] = out["regency_code"].map(self._regency_names()).astype("string")
        out["regency_code"] = out["regency_code"].astype("string")
        out["extreme_rate"] = out["extreme_persons"] / out["persons"]  # persons >= K
        out["pockets"] = out["regency_code"].map(pockets).fillna(0).astype("int64")
        out["totals"] = regency_exactness(self._base_frame(), sums).to_numpy()
        return out[list(REGENCY_COLUMNS)].sort_values("regency_code").reset_index(drop=True)

    def regency_totals(self, columns: Sequence[str]) -> pd.DataFrame:
        """Return released per-regency totals of any count ``columns`` of the base cells.

        The same rule as :meth:`regencies` (sums of released atoms), for counts that
        :meth:`regencies` does not carry, such as the deprivation counts of the programme
        targets. Columns absent from the run are left out.

        Parameters
        ----------
        columns : sequence of str
            Count columns of the base cells (``households`` first is customary).

        Returns
        -------
        pandas.DataFrame
            Index ``regency_code``: one column per available count and ``cells``
            (published base cells of the regency).
        """
        path = self._paths[self.base_resolution]
        cols = tuple(c for c in columns if c in _schema_names(path))
        base = _read_columns(path, ["h3", "regency_code", *cols])
        return privacy.released_regency_totals(base, self.plan, columns=cols)

    def regency_codes(self) -> list[str]:
        """Return the regency codes present in the run (valid ``regency=`` filters)."""
        codes = self._base_frame()["regency_code"].dropna().astype(str)
        return sorted(set(codes))

    def _regency_names(self) -> pd.Series:
        base = self._base_frame()
        # a run without names gives an empty mapping; the first name of a regency counts
        pairs = base.reindex(columns=["regency_code", "regency_name"]).dropna()
        return pairs.drop_duplicates("regency_code").set_index("regency_code")["regency_name"]

    # ---- checks ---------------------------------------------------------------------------
    def _check_resolution(self, resolution: int | None) -> int:
        res = self.base_resolution if resolution is None else resolution
        if res not in self._paths:
            raise InputError(f"{self.run_dir}: resolution {resolution!r} not in this run "
                             f"(available: {', '.join(map(str, self.resolutions))})")
        return int(res)

    def check_regency(self, regency: str) -> str:
        """Return the normalised regency code, or raise ``InputError`` if not in the run."""
        code = str(regency).strip()
        known = self.regency_codes()
        if code not in known:  # the message names at most 12 codes
            raise InputError(f"{self.run_dir}: regency {regency!r} not in this run (known: "
                             f"{', '.join(known[:12])}{' ...' if len(known) > 12 else ''})")
        return code



def _is_derived(name: str) -> bool:
    """Whether a cell column is a per-cell value aggregated by rollups (not a count)."""
    return name == "population" or name.startswith("travel_min_") or name.endswith("_mean")


def _manifest_min_households(manifest: dict) -> int:
    for section in ("config", "parameters"):
        block = manifest.get(section)
        if isinstance(block, dict):
            priv = block.get("privacy")
            if isinstance(priv, dict) and "min_households" in priv:
                return priv["min_households"]
    return DEFAULT_MIN_HOUSEHOLDS


def _base_resolution(path: Path) -> int:
    ids = _read_columns(path, ["h3"])["h3"]
    if ids.empty:
        raise RunError(f"{path}: holds no cells")
    first = str(ids.iloc[0])
    if not h3.is_valid_cell(first):
        raise RunError(f"{path}: column h3 holds invalid cell id {first!r}")
    return h3.get_resolution(first)


def _schema_names(path: Path) -> list[str]:
    """Column names of a Parquet file; a corrupt or unreadable file is a ``RunError``."""
    try:
        return pq.read_schema(path).names
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise RunError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None



def _read_columns(path: Path, columns: list[str]) -> pd.DataFrame:
    names = _schema_names(path)
    missing = [c for c in columns if c not in names]
    if missing:
        raise RunError(f"{path}: missing column(s) {missing}")
    try:
        return pd.read_parquet(path, columns=columns)
    except (ValueError, OSError) as exc:
        raise RunError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None


def _read_geo(path: Path) -> gpd.GeoDataFrame:
    try:
        gdf = gpd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise RunError(f"{path}: not a readable GeoParquet file ({exc})") from None
    if gdf.crs is None:
        raise RunError(f"{path}: layer has no CRS")
    if gdf.crs != WGS84:  # pyproj compares a CRS with "EPSG:4326" as a CRS
        logger.info("reprojecting %s from %s to %s", path, gdf.crs, WGS84)
        gdf = gdf.to_crs(WGS84)
    return gdf


def _empty_geo(columns: tuple[str, ...]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=list(columns), crs=WGS84)  # "geometry": the geometry


def _plain(value: object) -> object:
    """Convert numpy/pandas scalars to plain Python; NaN/NA to None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
