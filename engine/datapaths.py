"""Where the bundled data lives. No literal paths elsewhere in the code.

The data root is ``$KANTONG_DATA_DIR`` when set, else the ``data/`` folder of the
source tree (the package is installed in editable mode from the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

from kantong.engine.errors import InputError

_ENV = "KANTONG_DATA_DIR"

PROVINCES = "boundaries/kalimantan_adm1_provinces_bps2020.geojson"
REGENCIES = "boundaries/kalimantan_adm2_regencies_bps2020.geojson"
DISTRICTS = "boundaries/kalimantan_adm3_districts_bps2020.geojson"
VILLAGES = "boundaries/kalimantan_adm4_villages_bps2020.geojson"
VILLAGE_POINTS = "boundaries/kalimantan_villages_bps2020_points.csv"
DESA_POINTS_KEMENDAGRI = "boundaries/kalimantan_desa_kemendagri2025_points.csv"
CODES_KEMENDAGRI = "boundaries/kalimantan_kode_wilayah_kemendagri2025.csv"
CROSSWALK_ADM2 = "boundaries/kalimantan_crosswalk_adm2_bps2020_kemendagri2025.csv"
CROSSWALK_ADM3 = "boundaries/kalimantan_crosswalk_adm3_bps2020_kemendagri2025.csv"
TOWNS = "boundaries/kalimantan_towns_geonames.csv"
CONTEXT_RIVERS = "context/kalimantan_rivers_naturalearth10m.geojson"
CONTEXT_PLACES = "context/kalimantan_places_naturalearth10m.geojson"
POPULATION_POINTS = "rasters/source/kalimantan_ghspop_1km_points.csv"
POPULATION_TIF = "rasters/kalimantan_ghspop_1km.tif"


def data_root() -> Path:
    """Return the data root folder (``$KANTONG_DATA_DIR`` or the repository's ``data/``)."""
    env = os.environ.get(_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def data_file(relative: str) -> Path:
    """Return the path of a bundled data file, or raise a clear error if it is missing.

    Parameters
    ----------
    relative
        Path below the data root, one of the module constants (e.g. ``REGENCIES``).
    """
    path = data_root() / relative
    if not path.exists():
        raise InputError(f"bundled data file not found: {path} (set {_ENV} to the data folder)")
    return path
