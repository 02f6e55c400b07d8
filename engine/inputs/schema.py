"""Schema files: map a register's own columns and answer labels to Kantong's fields.

A schema is a TOML file (or a shipped preset such as ``p3ke``) that says which column
of a file holds each Kantong field, and which answer labels mean true or false for
each deprivation indicator - including indicators derived from several columns
(housing from roof, wall and floor; assistance from any ``penerima_*``). Labels are
compared after trimming, case folding and collapsing spaces (``" Ledeng / PAM"`` matches
``ledeng/pam``). The format is documented in ``docs/input-schema.md``.

Example::

    [households.columns]
    household_id = ["id_keluarga_p3ke", "id_keluarga"]
    village_code = "kode_kemdagri"

    [households.indicators.electricity]
    column = "sumber_penerangan"
    true = ["Listrik PLN", "Listrik Bukan PLN"]
    false = ["Non Listrik"]

Without a schema the built-in one applies (:meth:`Schema.default`): canonical names and
a few aliases, booleans spelled ``true/false``, ``ya/tidak``, ``1/0`` ...
"""

from __future__ import annotations

import difflib
import importlib.resources
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kantong.engine.config import read_toml
from kantong.engine.constants import DEPRIVATION_FIELDS, PERSONAL_FIELDS
from kantong.engine.errors import ConfigError, MissingColumnError

logger = logging.getLogger(__name__)

#: Spellings of booleans used when an indicator names no labels (compared normalised).
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "ya", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "tidak", "0", "0.0"})
#: Household fields a schema can map to a column (deprivation indicators come separately).
HOUSEHOLD_FIELDS = ("household_id", "lon", "lat", "desil", "members", "village_code")
#: Built-in household column spellings (matched after normalising names, first present wins).
HOUSEHOLD_ALIASES: dict[str, tuple[str, ...]] = {
    "household_id": ("household_id", "hh_id", "id_rumah_tangga", "id_keluarga", "idrt"),
    "lon": ("lon", "longitude", "lng", "long", "x", "bujur"),
    "lat": ("lat", "latitude", "y", "lintang"),
    "desil": ("desil", "decile", "desil_kesejahteraan"),
    "members": ("members", "jumlah_art", "household_size", "hh_size", "jumlah_anggota",
                "jumlah_anggota_keluarga"),
    "village_code": ("village_code", "kode_desa", "kode_kelurahan", "kode_desa_kelurahan",
                     "desa_code", "kode_kemdagri", "kode_wilayah"),
}
#: Built-in facility column spellings (real Kemenkes / Kemendikbud list headers included).
FACILITY_FIELDS = ("facility_id", "type", "name", "lon", "lat", "capacity")
FACILITY_ALIASES: dict[str, tuple[str, ...]] = {
    "facility_id": ("facility_id", "id", "osm_id", "kode_fasilitas", "fasilitas_id", "npsn",
                    "kode_faskes", "kode_puskesmas", "kode_rs"),
    "type": ("type", "facility_type", "jenis", "amenity", "jenis_faskes", "jenis_fasilitas",
             "bentuk_pendidikan", "jenjang"),
    "name": ("name", "nama", "nama_fasilitas", "nama_faskes", "nama_sekolah", "nama_puskesmas"),
    "lon": ("lon", "longitude", "lng", "long", "long_", "x", "bujur"),
    "lat": ("lat", "latitude", "lat_", "y", "lintang"),
    # optional: persons (or households) a facility can serve, for kantong sites --capacity
    "capacity": ("capacity", "kapasitas", "daya_tampung"),
}
_PACKAGE = "kantong.engine.inputs"
_KINDS = ("label", "count")
_COMBINES = ("any", "all")


def normalise_label(text: str) -> str:
    """Return a label in comparable form: case-folded, trimmed, single spaces.

    Spaces around ``/`` and ``,`` are removed, so ``"Jerami/Ijuk/Rumbia/ Daun-daunan"``
    and ``"jerami/ijuk/rumbia/daun-daunan"`` compare equal.

    Examples
    --------
    >>> normalise_label("  Ya, dengan  Septic Tank ")
    'ya,dengan septic tank'
    """
    text = re.sub(r"\s+", " ", str(text).strip().casefold())
    return re.sub(r" ?([/,]) ?", r"\1", text)


def normalise_name(name: str) -> str:
    """Return a column name in comparable form (``"Kode Kemdagri "`` -> ``kode_kemdagri``)."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().casefold()).strip("_")


def _normalised_labels(values: pd.Series) -> pd.Series:
    """Vectorised :func:`normalise_label` over a string Series (NA stays NA)."""
    out = values.astype("string").str.strip().str.casefold()
    out = out.str.replace(r"\s+", " ", regex=True)
    return out.str.replace(r" ?([/,]) ?", r"\1", regex=True)


@dataclass(frozen=True)
class Part:
    """One source column of an indicator and how its answers read.

    Attributes
    ----------
    spellings
        Alternative names of the column (the first present in the file is used).
    true, false
        Normalised labels meaning true / false. Both empty: the boolean spellings
        :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (and native booleans or 1/0).
    kind
        ``"label"`` (answers are labels) or ``"count"`` (a number; > 0 is true).
    """

    spellings: tuple[str, ...]
    true: frozenset[str] = frozenset()
    false: frozenset[str] = frozenset()
    kind: str = "label"


@dataclass(frozen=True)
class Indicator:
    """How one deprivation field is read: one or several parts and how they combine.

    ``combine="any"``: true when any part is true (assistance from any programme);
    ``"all"``: true when every part is true (housing adequate when roof, wall and floor
    are). ``optional``: the register may lack the column(s); the field is then absent
    from the build (never filled in as false).
    """

    parts: tuple[Part, ...]
    combine: str = "any"
    optional: bool = False


@dataclass(frozen=True)
class Reading:
    """The values an indicator (or a field) takes on a batch of rows."""

    values: np.ndarray
    blank: np.ndarray
    invalid: np.ndarray
    example: str | None = None


@dataclass(frozen=True)
class Schema:
    """Column and label mapping of one kind of register (see the module docs).

    Build it with :meth:`default`, :meth:`from_toml`, :meth:`preset` or :meth:`load`.
    """

    name: str
    columns: Mapping[str, tuple[str, ...]]
    indicators: Mapping[str, Indicator]
    desil_labels: Mapping[str, int] = field(default_factory=dict)
    personal: frozenset[str] = frozenset()
    facility_columns: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(FACILITY_ALIASES))
    facility_types: Mapping[str, str] = field(default_factory=dict)
    source: str = "built-in"

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def default(cls) -> Schema:
        """Return the built-in schema: canonical names, aliases, boolean spellings."""
        return _DEFAULT

    @classmethod
    def preset(cls, name: str) -> Schema:
        """Return a shipped preset (``p3ke``) by name."""
        try:
            text = importlib.resources.files(_PACKAGE).joinpath("presets", f"{name}.toml"
                                                               ).read_text(encoding="utf-8")
        except (FileNotFoundError, OSError):
            raise ConfigError(f"unknown schema preset {name!r}; shipped presets: "
                              f"{', '.join(preset_names())}") from None
        return cls.from_mapping(tomllib.loads(text), source=f"preset {name}")

    @classmethod
    def from_toml(cls, path: str | Path) -> Schema:
        """Read a schema file (TOML)."""
        return cls.from_mapping(read_toml(path, what="schema"), source=str(path))

    @classmethod
    def load(cls, spec: str | Path | Schema | None) -> Schema:
        """Return the schema named by ``spec``: a preset name, a TOML path, or ``None``.

        Examples
        --------
        >>> Schema.load("p3ke").name
        'p3ke'
        """
        if spec is None:
            return cls.default()
        if isinstance(spec, Schema):
            return spec
        text = str(spec)
        if text in preset_names() and not Path(text).is_file():
            return cls.preset(text)
        if not Path(text).suffix and not Path(text).exists():
            return cls.preset(text)  # raises with the list of presets
        return cls.from_toml(text)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "schema") -> Schema:
        """Build a schema from nested mappings as read from TOML (validated strictly)."""
        _only(raw, {"name", "description", "households", "facilities"}, source, "top level")
        hh = _table(raw.get("households", {}), source, "households")
        _only(hh, {"columns", "indicators", "desil", "personal"}, source, "[households]")
        columns = dict(HOUSEHOLD_ALIASES)
        for key, value in _table(hh.get("columns", {}), source, "households.columns").items():
            if key not in HOUSEHOLD_FIELDS:
                raise ConfigError(f"{source}: [households.columns] unknown field {key!r}; "
                                  f"expected some of {', '.join(HOUSEHOLD_FIELDS)}")
            columns[key] = _spellings(value, source, f"households.columns.{key}") \
                + columns[key]
        indicators = dict(_DEFAULT_INDICATORS)
        for key, value in _table(hh.get("indicators", {}), source,
                                 "households.indicators").items():
            if key not in DEPRIVATION_FIELDS:
                raise ConfigError(f"{source}: [households.indicators] unknown field {key!r}; "
                                  f"expected some of {', '.join(DEPRIVATION_FIELDS)}")
            indicators[key] = _indicator(key, _table(value, source, key), source)
        desil = {}
        for label, value in _table(hh.get("desil", {}), source, "households.desil").items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4:
                raise ConfigError(f"{source}: households.desil.{label!r} must be 1..4, "
                                  f"got {value!r}")
            desil[normalise_label(label)] = value
        personal = frozenset(normalise_name(p) for p in _strings(
            hh.get("personal", []), source, "households.personal"))
        fac = _table(raw.get("facilities", {}), source, "facilities")
        _only(fac, {"columns", "types"}, source, "[facilities]")
        fcols = dict(FACILITY_ALIASES)
        for key, value in _table(fac.get("columns", {}), source, "facilities.columns").items():
            if key not in FACILITY_FIELDS:
                raise ConfigError(f"{source}: [facilities.columns] unknown field {key!r}; "
                                  f"expected some of {', '.join(FACILITY_FIELDS)}")
            fcols[key] = _spellings(value, source, f"facilities.columns.{key}") + fcols[key]
        types = {}
        for kantong_type, labels in _table(fac.get("types", {}), source,
                                           "facilities.types").items():
            for label in _strings(labels, source, f"facilities.types.{kantong_type}"):
                types[normalise_label(label)] = normalise_label(kantong_type).replace(" ", "_")
        name = raw.get("name", Path(source).stem)
        return cls(name=str(name), columns={k: _dedupe(v) for k, v in columns.items()},
                   indicators=indicators, desil_labels=desil, personal=personal,
                   facility_columns={k: _dedupe(v) for k, v in fcols.items()},
                   facility_types=types, source=source)

    # -- column resolution ---------------------------------------------------------------
    def part_key(self, field_name: str, index: int) -> str:
        """Return the batch column name of part ``index`` of an indicator."""
        ind = self.indicators[field_name]
        return field_name if len(ind.parts) == 1 else f"{field_name}:{index}"

    def wanted(self) -> dict[str, tuple[str, ...]]:
        """Return ``{batch column: spellings}`` for every column the schema can read."""
        out = {k: v for k, v in self.columns.items()}
        for name, ind in self.indicators.items():
            for i, part in enumerate(ind.parts):
                out[self.part_key(name, i)] = part.spellings
        return out

    def resolve(self, names: Sequence[str]) -> dict[str, str]:
        """Map a file's columns to batch column names; others (and personal ones) are left out.

        Parameters
        ----------
        names
            Column names as read.

        Returns
        -------
        dict
            ``{name as read: batch column}``: canonical fields (``household_id`` ...) and
            indicator parts (``water_improved``, or ``housing_adequate:0`` ... for derived
            ones). One file column may feed several batch columns only through
            :meth:`resolve_all`; here the first claim wins.
        """
        return {src: keys[0] for src, keys in self.resolve_all(names).items()}

    def resolve_all(self, names: Sequence[str]) -> dict[str, list[str]]:
        """Return ``{name as read: [batch columns it feeds]}`` (first spelling present wins)."""
        lookup: dict[str, str] = {}
        for name in names:
            lookup.setdefault(normalise_name(name), name)
        out: dict[str, list[str]] = {}
        for key, spellings in self.wanted().items():
            for spelling in spellings:
                src = lookup.get(normalise_name(spelling))
                if src is not None and normalise_name(src) not in self.personal:
                    out.setdefault(src, []).append(key)
                    break
        return out

    def present_fields(self, keys: set[str]) -> tuple[set[str], list[str]]:
        """Return (fields fully present, indicators absent) from resolved batch columns."""
        fields = {k for k in self.columns if k in keys}
        absent = []
        for name, ind in self.indicators.items():
            have = [self.part_key(name, i) in keys for i in range(len(ind.parts))]
            if all(have):
                fields.add(name)
            else:
                absent.append(name)
        return fields, absent

    def check(self, present: set[str], *, source: str,
              columns: Sequence[str] | None = None) -> None:
        """Raise :class:`MissingColumnError` when the resolved columns cannot make a register.

        Parameters
        ----------
        present
            Batch column names resolved (``"geometry"`` when the source has a geometry).
        source
            File name for the message.
        columns
            The file's own column names: listed in the message with the closest matches.
        """
        fields, absent = self.present_fields(set(present))
        missing = [f for f in ("household_id", "desil", "members") if f not in fields]
        required = [f for f in absent if not self.indicators[f].optional]
        partial = {f for f in absent if any(
            self.part_key(f, i) in present for i in range(len(self.indicators[f].parts)))}
        missing += [f for f in DEPRIVATION_FIELDS if f in required or f in partial]
        if missing:
            raise MissingColumnError(
                f"{source}: missing required column(s) {', '.join(missing)}"
                + self.suggestions(missing, columns) + " (see docs/input-schema.md)")
        if ("lon" in present) != ("lat" in present):
            have, lack = ("lon", "lat") if "lon" in present else ("lat", "lon")
            raise MissingColumnError(f"{source}: has a {have} column but no {lack} column"
                                     + self.suggestions([lack], columns))
        if not {"lon", "geometry", "village_code"} & set(present):
            raise MissingColumnError(
                f"{source}: no location: needs lon/lat columns, a point geometry or "
                "village_code" + self.suggestions(["village_code", "lon", "lat"], columns))

    def suggestions(self, fields: Sequence[str], columns: Sequence[str] | None) -> str:
        """Return ``"; closest: ...; file columns: ..."`` for an error message."""
        if columns is None:
            return ""
        wanted = self.wanted()
        hints = []
        for f in fields:
            keys = [k for k in wanted if k == f or k.startswith(f + ":")]
            spellings = [s for k in keys for s in wanted[k]][:12] or [f]
            close = near_matches(spellings, columns)
            if close:
                hints.append(f"{f} ~ {', '.join(close)}")
        shown = [str(c) for c in columns[:40]]
        more = f", ... ({len(columns)} in all)" if len(columns) > 40 else ""
        text = "; closest: " + "; ".join(hints) if hints else "; no close match"
        return f"{text}; file columns: {', '.join(shown)}{more}"

    # -- values -------------------------------------------------------------------------------
    def read_indicator(self, frame: pd.DataFrame, name: str) -> Reading:
        """Read one indicator from a batch (``frame`` holds its resolved part columns)."""
        ind = self.indicators[name]
        readings = [_read_part(frame[self.part_key(name, i)], part)
                    for i, part in enumerate(ind.parts)]
        if len(readings) == 1:
            return readings[0]
        vals = np.vstack([r.values for r in readings])
        blank = np.vstack([r.blank for r in readings])
        invalid = np.vstack([r.invalid for r in readings]).any(axis=0)
        if ind.combine == "any":
            values = (vals & ~blank).any(axis=0)
            blank_out = ~values & blank.any(axis=0)
        else:
            false_any = (~vals & ~blank).any(axis=0)
            values = ~false_any & ~blank.any(axis=0)
            blank_out = ~false_any & blank.any(axis=0)
        example = next((r.example for r in readings if r.example is not None), None)
        return Reading(values=values & ~invalid, blank=blank_out & ~invalid, invalid=invalid,
                       example=example)

    def read_desil(self, s: pd.Series) -> Reading:
        """Read welfare deciles: numbers, ``Desil 1`` style labels, or the schema's labels."""
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            v = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
            blank = np.isnan(v)
            bad = ~blank & ~np.isin(v, (1, 2, 3, 4))
            return Reading(v, blank, bad, _first(s, bad))
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        norm = _normalised_labels(pd.Series(uniques, dtype=object).astype("string"))
        mapped = norm.map(lambda x: self.desil_labels.get(x, np.nan) if isinstance(x, str)
                          else np.nan).to_numpy(dtype=np.float64, na_value=np.nan)
        found = norm.str.extract(r"^(?:desil\s*(?:ke)?\s*-?\s*)?([1-4])(?:[.,]0+)?$")[0]
        numbers = pd.to_numeric(found, errors="coerce").to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)
        parsed = np.where(np.isnan(mapped), numbers, mapped)
        blank_u = (norm.isna() | (norm == "")).to_numpy(dtype=bool, na_value=True)
        values = np.append(parsed, np.nan)[codes]
        blank = np.append(blank_u, True)[codes]
        bad = ~blank & np.isnan(values)
        return Reading(values, blank, bad, _first(s, bad))

    def facility_type(self, types: pd.Series) -> pd.Series:
        """Return Kantong facility types: the schema's label mapping, else the label itself.

        Unmapped labels are kept lower-cased and stripped (``Pustu`` -> ``pustu``).
        """
        plain = types.astype("string").str.strip().str.lower()
        if not self.facility_types:
            return plain
        norm = _normalised_labels(types)
        mapped = norm.map(lambda x: self.facility_types.get(x, pd.NA) if isinstance(x, str)
                          else pd.NA).astype("string")
        return mapped.fillna(plain)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description of the schema (for manifests)."""
        return {"name": self.name, "source": self.source}


def preset_names() -> list[str]:
    """Return the names of the shipped schema presets."""
    folder = importlib.resources.files(_PACKAGE).joinpath("presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def near_matches(spellings: Sequence[str], columns: Sequence[str], *, n: int = 3) -> list[str]:
    """Return up to ``n`` file columns closest to any of ``spellings`` (difflib ratio >= 0.6)."""
    norm = {normalise_name(c): str(c) for c in columns}
    scores: dict[str, float] = {}
    for spelling in spellings:
        target = normalise_name(spelling)
        for key, original in norm.items():
            ratio = difflib.SequenceMatcher(None, target, key).ratio()
            if min(len(target), len(key)) < 5:
                ratio = 0.0  # short names: only containment counts
            if target and key and (target in key or key in target) \
                    and min(len(target), len(key)) >= 3:
                ratio = max(ratio, 0.8)
            if ratio >= 0.6:
                scores[original] = max(scores.get(original, 0.0), ratio)
    return [c for c, _ in sorted(scores.items(), key=lambda kv: -kv[1])[:n]]


def is_personal(name: str, schema: Schema | None = None) -> bool:
    """Return True for a personal column (name, NIK, address ...): never read or shown."""
    key = normalise_name(name)
    extra = schema.personal if schema is not None else frozenset()
    return key in PERSONAL_FIELDS or key in extra or key in _PERSONAL_EXTRA


_PERSONAL_EXTRA = frozenset({"jenis_kelamin", "tanggal_lahir", "tempat_lahir",
                             "nama_kepala_keluarga", "no_kartu_keluarga", "nomor_nik",
                             "nik_kepala_keluarga", "no_telp", "nama_ibu_kandung"})


def _first(s: pd.Series, mask: np.ndarray) -> str | None:
    """Return the first value of ``s`` where ``mask`` holds, stripped (the example value)."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    return str(s.iloc[int(idx[0])]).strip()[:60]


def _read_part(s: pd.Series, part: Part) -> Reading:
    """Read one column into true/false with blank and invalid masks (vectorised on uniques)."""
    n = len(s)
    if part.kind == "count":
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            text = s.astype("string").str.strip().str.replace(",", ".", regex=False)
            v = pd.to_numeric(text.mask(text == ""), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
            raw_blank = s.astype("string").str.strip().fillna("").eq("").to_numpy()
            bad = np.isnan(v) & ~raw_blank
            with np.errstate(invalid="ignore"):
                bad |= v < 0
            return Reading(np.nan_to_num(v) > 0, raw_blank, bad, _first(s, bad))
        blank = np.isnan(v)
        with np.errstate(invalid="ignore"):
            bad = ~blank & (v < 0)
        return Reading(np.nan_to_num(v) > 0, blank, bad, _first(s, bad))
    labelled = bool(part.true or part.false)
    if not labelled and pd.api.types.is_bool_dtype(s.dtype):
        blank = s.isna().to_numpy()
        return Reading(s.fillna(False).to_numpy(dtype=bool), blank, np.zeros(n, dtype=bool))
    if not labelled and pd.api.types.is_numeric_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        blank = np.isnan(v)
        bad = ~blank & (v != 1) & (v != 0)
        return Reading(v == 1, blank, bad, _first(s, bad))
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    norm = _normalised_labels(pd.Series(uniques, dtype=object).astype("string"))
    true, false = (part.true, part.false) if labelled else (TRUE_WORDS, FALSE_WORDS)
    truth = np.append(norm.isin(true).to_numpy(dtype=bool, na_value=False), False)
    falsity = np.append(norm.isin(false).to_numpy(dtype=bool, na_value=False), False)
    blank_u = np.append((norm.isna() | (norm == "")).to_numpy(dtype=bool, na_value=True), True)
    values, blank = truth[codes], blank_u[codes]
    bad = ~blank & ~values & ~falsity[codes]
    return Reading(values, blank, bad, _first(s, bad))


def _only(raw: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} in {where}; "
                          f"expected some of {', '.join(sorted(allowed))}")


def _table(value: Any, source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {where} must be a table, got {value!r}")
    return value


def _strings(value: Any, source: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{source}: {where} must be a string or a list of strings, got {value!r}")


def _spellings(value: Any, source: str, where: str) -> tuple[str, ...]:
    out = _strings(value, source, where)
    if not out:
        raise ConfigError(f"{source}: {where} names no column")
    return out


def _dedupe(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _part(raw: Mapping[str, Any], source: str, where: str, *, column_key: str = "column"
          ) -> Part:
    _only(raw, {column_key, "true", "false", "kind"}, source, where)
    if column_key not in raw:
        raise ConfigError(f"{source}: {where} needs {column_key} = \"...\"")
    kind = raw.get("kind", "label")
    if kind not in _KINDS:
        raise ConfigError(f"{source}: {where}.kind must be one of {', '.join(_KINDS)}")
    true = frozenset(normalise_label(v) for v in _strings(raw.get("true", []), source, where))
    false = frozenset(normalise_label(v) for v in _strings(raw.get("false", []), source, where))
    if true & false:
        raise ConfigError(f"{source}: {where}: label(s) {sorted(true & false)} are both true "
                          "and false")
    if bool(true) != bool(false):
        raise ConfigError(f"{source}: {where}: give both true = [...] and false = [...] labels "
                          "(or neither, for boolean spellings)")
    return Part(spellings=_spellings(raw[column_key], source, f"{where}.{column_key}"),
                true=true, false=false, kind=kind)


def _indicator(name: str, raw: Mapping[str, Any], source: str) -> Indicator:
    where = f"households.indicators.{name}"
    combine = raw.get("combine", "any")
    if combine not in _COMBINES:
        raise ConfigError(f"{source}: {where}.combine must be one of {', '.join(_COMBINES)}")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"{source}: {where}.optional must be true or false")
    shapes = [k for k in ("column", "columns", "parts") if k in raw]
    if len(shapes) != 1:
        raise ConfigError(f"{source}: {where} needs exactly one of column, columns or parts")
    rest = {k: v for k, v in raw.items() if k not in ("combine", "optional")}
    if shapes[0] == "column":
        parts: tuple[Part, ...] = (_part(rest, source, where),)
    elif shapes[0] == "columns":
        labels = {k: v for k, v in rest.items() if k != "columns"}
        parts = tuple(_part({"column": c, **labels}, source, where)
                      for c in _spellings(rest["columns"], source, f"{where}.columns"))
    else:
        _only(rest, {"parts"}, source, where)
        items = rest["parts"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{source}: {where}.parts must be a non-empty array of tables")
        parts = tuple(_part(_table(p, source, f"{where}.parts"), source, f"{where}.parts[{i}]")
                      for i, p in enumerate(items))
    return Indicator(parts=parts, combine=combine, optional=optional)


_DEFAULT_INDICATORS = {f: Indicator(parts=(Part(spellings=(f,)),)) for f in DEPRIVATION_FIELDS}
_DEFAULT = Schema(name="default", columns=dict(HOUSEHOLD_ALIASES),
                  indicators=dict(_DEFAULT_INDICATORS))

__all__ = ["FACILITY_ALIASES", "FALSE_WORDS", "HOUSEHOLD_ALIASES", "Indicator", "Part",
           "Reading", "Schema", "TRUE_WORDS", "is_personal", "near_matches", "normalise_label",
           "normalise_name", "preset_names"]
