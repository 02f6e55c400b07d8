"""How ``kantong build`` reads its register and facility layer: schema, sheet, codes, buffer.

One frozen value object carries the reading options of a build from the CLI
(``--schema``, ``--sheet``, ``--header-row``, ``--village-codes``,
``--facility-type-column``, ``--facility-buffer-km``) to the readers, so the build stage
passes them on without knowing each one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kantong.engine.errors import InputError
from kantong.engine.inputs.facilities import DEFAULT_BUFFER_KM
from kantong.engine.inputs.schema import Schema
from kantong.engine.inputs.village_codes import SYSTEMS


@dataclass(frozen=True)
class ReadOptions:
    """Reading options of one build (defaults: the built-in schema, everything detected).

    Attributes
    ----------
    schema
        Preset name (``"p3ke"``) or schema file; ``None`` for the built-in schema.
    sheet, header_row
        Workbooks: sheet name or 0-based index, 1-based header row (``None``: detected).
    village_codes
        ``"auto"``, ``"bps"`` or ``"kemendagri"`` (:mod:`kantong.engine.inputs.village_codes`).
    facility_type_column
        Column of the facility type (``None``: the schema's spellings).
    facility_buffer_km
        Facilities up to this far beyond the study area are kept.
    """

    schema: str | Path | None = None
    sheet: str | int | None = None
    header_row: int | None = None
    village_codes: str = "auto"
    facility_type_column: str | None = None
    facility_buffer_km: float = DEFAULT_BUFFER_KM

    def __post_init__(self) -> None:
        if self.village_codes not in SYSTEMS:
            raise InputError(f"village codes must be one of {', '.join(SYSTEMS)}, "
                             f"got {self.village_codes!r}")
        if not self.facility_buffer_km >= 0:
            raise InputError(f"facility buffer must be >= 0 km, got {self.facility_buffer_km}")
        if self.header_row is not None and self.header_row < 1:
            raise InputError(f"header row must be >= 1, got {self.header_row}")

    @functools.cached_property
    def loaded_schema(self) -> Schema:
        """The schema (loaded once; a bad file raises here, before any work)."""
        return Schema.load(self.schema)

    def batch_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the household batch readers."""
        return {"schema": self.loaded_schema, "sheet": self.sheet, "header_row": self.header_row}

    def facility_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~kantong.engine.inputs.facilities.read_facilities`."""
        return {"schema": self.loaded_schema, "type_column": self.facility_type_column,
                "buffer_km": self.facility_buffer_km}

    def grow(self, bounds: tuple[float, float, float, float]
             ) -> tuple[float, float, float, float]:
        """Return ``bounds`` (EPSG:4326) grown by the facility buffer (a generous degree box).

        Used to read a friction surface far enough out that facilities kept in the buffer
        are on it.
        """
        west, south, east, north = bounds
        dlat = self.facility_buffer_km / 110.574
        widest = max(abs(south), abs(north)) + dlat
        dlon = self.facility_buffer_km / (111.320 * max(math.cos(math.radians(widest)), 0.05))
        return west - dlon, south - dlat, east + dlon, north + dlat

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest record of these options."""
        return {"schema": self.loaded_schema.name, "schema_source": self.loaded_schema.source,
                "sheet": self.sheet, "header_row": self.header_row,
                "village_codes": self.village_codes,
                "facility_type_column": self.facility_type_column,
                "facility_buffer_km": self.facility_buffer_km}


__all__ = ["ReadOptions"]
