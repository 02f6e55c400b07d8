"""Speed tables for ``kantong friction``: km/h per road class, boat speed, walking by land cover.

A table has three parts (AccessMod's *scenario table*, reduced to three travel modes):

``roads``
    road class -> km/h on foot (``walking``) and by vehicle (``motorised``: car, motorbike,
    ojek). Classes are the values of the roads layer's class column.
``rivers``
    ``boat``: km/h of boats (klotok, longboat, speedboat) on rivers marked navigable.
``landcover``
    land-cover class (code or name) -> off-road walking km/h, or ``barrier`` (open water:
    impassable on foot). ``default`` is used where no land-cover layer is given.

Defaults (:data:`DEFAULT_TABLE`) are documented in ``docs/friction.md``: OpenStreetMap
``highway`` classes and the Indonesian road status classes (*jalan nasional, provinsi,
kabupaten, desa, setapak*), boats at 12 km/h (a loaded klotok upstream is slower, a
speedboat faster), and walking speeds for the ESA WorldCover 2021 classes (codes 10-100;
peat-swamp forest and mangrove slowest). They are planning assumptions, not measurements:
replace them with local knowledge through ``--speeds``.

File formats
    TOML: ``[roads.<class>] walking = .. motorised = ..``, ``[rivers] boat = ..``,
    ``[landcover] <class> = <km/h> | "barrier"``.
    CSV: columns ``layer,class,walking_kmh,motorised_kmh`` with ``layer`` one of ``road``,
    ``river`` (class ``boat``, speed in ``motorised_kmh``) and ``landcover`` (speed in
    ``walking_kmh``, or ``barrier``).
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kantong.engine.errors import InputError

#: Travel modes of ``kantong friction --mode``.
MODES = ("walking", "motorised", "mixed")
#: Keyword of an impassable land-cover class.
BARRIER = "barrier"

_ROADS: dict[str, tuple[float, float]] = {  # class: (walking, motorised) km/h
    # OpenStreetMap highway=*
    "motorway": (5.0, 80.0), "trunk": (5.0, 60.0), "primary": (5.0, 50.0),
    "secondary": (5.0, 40.0), "tertiary": (5.0, 30.0), "unclassified": (5.0, 20.0),
    "residential": (5.0, 20.0), "service": (5.0, 15.0), "track": (4.5, 10.0),
    "path": (4.0, 8.0), "footway": (4.5, 4.5),
    # Indonesian road status (UU 38/2004): national, provincial, regency, village roads
    "jalan_nasional": (5.0, 60.0), "jalan_provinsi": (5.0, 45.0),
    "jalan_kabupaten": (5.0, 30.0), "jalan_desa": (5.0, 15.0), "jalan_setapak": (4.0, 8.0),
}
_LANDCOVER: dict[str, float | None] = {  # ESA WorldCover 2021 codes: off-road walking km/h
    "10": 2.5,   # tree cover (lowland forest)
    "20": 3.0,   # shrubland
    "30": 4.0,   # grassland
    "40": 4.0,   # cropland (ladang, kebun)
    "50": 5.0,   # built-up
    "60": 4.0,   # bare / sparse vegetation
    "70": 1.0,   # snow and ice (none in Kalimantan)
    "80": None,  # permanent water: a barrier on foot
    "90": 1.5,   # herbaceous wetland (peat swamp)
    "95": 1.0,   # mangroves
    "100": 3.0,  # moss and lichen
    "default": 3.0,
}


@dataclass(frozen=True)
class SpeedTable:
    """Speeds (km/h) per road class and mode, boat speed, and walking speed per land cover.

    Attributes
    ----------
    roads
        ``{class: {"walking": km/h, "motorised": km/h}}``.
    boat_kmh
        Speed on navigable rivers.
    landcover
        ``{class: km/h or None}``; ``None`` is a barrier on foot.
    source
        Where the table came from (``"default"`` or a path).
    """

    roads: dict[str, dict[str, float]]
    boat_kmh: float
    landcover: dict[str, float | None]
    source: str = "default"

    def __post_init__(self) -> None:
        """Refuse zero, negative or non-numeric speeds with a one-line error."""
        bad = [f"roads {c} {m}" for c, s in self.roads.items() for m, v in s.items()
               if not _positive(v)]
        bad += [f"landcover {c}" for c, v in self.landcover.items()
                if v is not None and not _positive(v)]
        if not _positive(self.boat_kmh):
            bad.append("rivers boat")
        if bad:
            raise InputError(f"{self.source}: speeds must be positive km/h (or 'barrier' for "
                             f"land cover): {', '.join(bad)}")

    def road_speed(self, road_class: str, mode: str) -> float:
        """Return km/h on a road class in a mode (``walking`` or a vehicle mode)."""
        return self.roads[road_class]["walking" if mode == "walking" else "motorised"]

    def as_dict(self) -> dict[str, Any]:
        """Return the table as plain data (written into the friction raster's tags)."""
        return {"source": self.source, "roads": self.roads, "rivers": {"boat": self.boat_kmh},
                "landcover": {k: (BARRIER if v is None else v) for k, v in
                              self.landcover.items()}}


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


#: The documented default table (see the module docstring and docs/friction.md).
DEFAULT_TABLE = SpeedTable(
    roads={c: {"walking": w, "motorised": m} for c, (w, m) in _ROADS.items()},
    boat_kmh=12.0, landcover=dict(_LANDCOVER))


def _speed(text: object, where: str) -> float | None:
    if isinstance(text, str):
        if text.strip().lower() == BARRIER:
            return None
        try:
            return float(text)
        except ValueError:
            raise InputError(f"{where}: speed {text!r} is not a number of km/h") from None
    if isinstance(text, int | float):
        return float(text)
    raise InputError(f"{where}: speed {text!r} is not a number of km/h")


def _from_toml(path: Path) -> SpeedTable:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"roads", "rivers", "landcover"}
    if unknown:
        raise InputError(f"{path}: unknown sections {sorted(unknown)}; expected roads, rivers, "
                         "landcover")
    roads = {}
    for cls, speeds in data.get("roads", {}).items():
        if not isinstance(speeds, dict) or set(speeds) != {"walking", "motorised"}:
            raise InputError(f"{path}: roads.{cls} needs exactly walking and motorised km/h")
        roads[str(cls)] = {m: _speed(speeds[m], f"{path}: roads.{cls}") for m in speeds}
    boat = _speed(data.get("rivers", {}).get("boat", DEFAULT_TABLE.boat_kmh),
                  f"{path}: rivers.boat")
    landcover = {str(c): _speed(v, f"{path}: landcover.{c}")
                 for c, v in data.get("landcover", {}).items()}
    return SpeedTable(roads=roads, boat_kmh=boat, landcover=landcover, source=str(path))


def _from_csv(path: Path) -> SpeedTable:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"layer", "class", "walking_kmh", "motorised_kmh"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise InputError(f"{path}: speed table needs columns {sorted(need)}")
        roads, landcover, boat = {}, {}, DEFAULT_TABLE.boat_kmh
        for line, row in enumerate(reader, start=2):
            where = f"{path} line {line}"
            layer, cls = row["layer"].strip().lower(), row["class"].strip()
            if layer == "road":
                roads[cls] = {"walking": _speed(row["walking_kmh"], where),
                              "motorised": _speed(row["motorised_kmh"], where)}
            elif layer == "river" and cls.lower() == "boat":
                boat = _speed(row["motorised_kmh"], where)
            elif layer == "landcover":
                landcover[cls] = _speed(row["walking_kmh"], where)
            else:
                raise InputError(f"{where}: layer must be road, river (class boat) or landcover, "
                                 f"got {row['layer']!r}/{cls!r}")
    return SpeedTable(roads=roads, boat_kmh=boat, landcover=landcover, source=str(path))


def read_speed_table(path: str | Path | None) -> SpeedTable:
    """Read a speed table (``.toml`` or ``.csv``); ``None`` gives :data:`DEFAULT_TABLE`.

    Sections missing from the file keep their defaults (a file with only ``[roads]`` still
    walks off-road at the default land-cover speeds).

    Raises
    ------
    InputError
        Missing file, unknown format or section, a zero, negative or non-numeric speed.

    Examples
    --------
    >>> read_speed_table(None).road_speed("primary", "mixed")
    50.0
    """
    if path is None:
        return DEFAULT_TABLE
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: speed table not found")
    if path.suffix.lower() == ".toml":
        table = _from_toml(path)
    elif path.suffix.lower() == ".csv":
        table = _from_csv(path)
    else:
        raise InputError(f"{path}: speed table must be .toml or .csv")
    return SpeedTable(roads=table.roads or DEFAULT_TABLE.roads, boat_kmh=table.boat_kmh,
                      landcover=table.landcover or DEFAULT_TABLE.landcover, source=table.source)


__all__ = ["BARRIER", "DEFAULT_TABLE", "MODES", "SpeedTable", "read_speed_table"]
