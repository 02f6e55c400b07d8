"""A register in the shape of a real P3KE family export: Indonesian columns, labels, workbook.

:func:`register_to_p3ke` rewrites a canonical register (``household_id, desil, members,
village_code`` and the six indicators) the way P3KE exports look
(``docs/input-schema.md``, "P3KE preset"): ``id_keluarga_p3ke``, Kemendagri village codes
(dotted, some without dots), ``Desil 1`` or ``1``, answers as text labels with stray
spaces and mixed case, housing split into roof / wall / floor, assistance into five
``penerima_*`` columns, no coordinates, and synthetic personal columns (names, NIK,
address) that ingest must drop. :func:`write_p3ke_workbook` writes it as an ``.xlsx``
with a summary sheet (*Rekap*) first and title rows above the header of the data sheet.
Reading it back with ``--schema p3ke`` gives the canonical values exactly.

Every value is synthetic; the personal columns are made-up placeholders.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from kantong.engine import datapaths
from kantong.engine.constants import SYNTHETIC_LABEL
from kantong.engine.demo.xlsx import SharedStrings, sheet_xml, write_xlsx
from kantong.engine.errors import InputError
from kantong.engine.inputs import boundaries

logger = logging.getLogger(__name__)

#: Name of the data sheet (the summary sheet ``Rekap`` comes first).
DATA_SHEET = "Data Keluarga"
#: Rows above the header of the data sheet (title block + one blank row).
TITLE_ROWS = 4
#: Share of Kemendagri codes written without their dots.
UNDOTTED_SHARE = 0.3
#: Share of labels written with stray spaces or another letter case.
MESSY_SHARE = 0.25

_WATER = (["Ledeng/PAM", "Sumur Bor", "Sumur Terlindung", "Air Kemasan/Isi Ulang", "Air Hujan"],
          ["Sumur Tidak Terlindung", "Air Permukaan (Sungai, Danau, dll)", "Lainnya"])
_SANITATION = (["Ya, dengan Septic Tank"],
               ["Ya, tanpa Septic Tank", "Tidak, Jamban Umum/Bersama", "Lainnya"])
_LIGHT = (["Listrik PLN", "Listrik Bukan PLN"], ["Non Listrik"])
_ROOF = (["Genteng", "Beton", "Asbes/Seng"], ["Jerami/Ijuk/Rumbia/ Daun-daunan", "Bambu"])
_WALL = (["Tembok", "Kayu/Papan"], ["Bambu", "Plesteran anyaman bambu/kawat/Lainnya"])
_FLOOR = (["Keramik/Granit/Marmer/Ubin/Tegel/Teraso", "Semen", "Kayu/Papan"],
          ["Tanah", "Bambu"])
_PROGRAMMES = ("bpnt", "bpum", "bst", "pkh", "sembako")
_FILLER = {
    "pekerjaan": ["Petani/Pekebun", "Nelayan", "Buruh Harian Lepas", "Wiraswasta",
                  "Tidak Bekerja"],
    "pendidikan": ["Tidak/Belum Sekolah", "Tamat SD", "Tamat SMP", "Tamat SMA"],
    "kepemilikan_rumah": ["Milik Sendiri", "Kontrak/Sewa", "Bebas/Sewa/Menumpang"],
    "bahan_bakar_memasak": ["Listrik/Gas", "Minyak Tanah", "Arang/Kayu"],
    "resiko_stunting": ["Beresiko Stunting", "Tidak Beresiko Stunting", "Bukan Target Sasaran"],
}


def _pick(rng: np.random.Generator, options: list[str], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _answer(rng: np.random.Generator, flag: np.ndarray, labels: tuple[list[str], list[str]]
            ) -> np.ndarray:
    """Return a true label where ``flag`` holds, else a false label (random among each)."""
    return np.where(flag, _pick(rng, labels[0], flag.size), _pick(rng, labels[1], flag.size))


def _messy(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Give about :data:`MESSY_SHARE` of the labels stray spaces or another letter case."""
    out = values.astype(object).copy()
    hit = np.flatnonzero(rng.random(values.size) < MESSY_SHARE)
    kind = rng.integers(0, 4, hit.size)
    s = pd.Series(out[hit], dtype="string")
    out[hit[kind == 0]] = s[kind == 0].str.upper().to_numpy(dtype=object)
    out[hit[kind == 1]] = s[kind == 1].str.lower().to_numpy(dtype=object)
    out[hit[kind == 2]] = (" " + s[kind == 2] + "  ").to_numpy(dtype=object)
    out[hit[kind == 3]] = s[kind == 3].str.replace("/", " / ", regex=False).to_numpy(dtype=object)
    return out


def kemendagri_codes(bps: pd.Series) -> pd.Series:
    """Return the Kemendagri desa code of each BPS village code that has one (else NA).

    The code chosen is one whose crosswalk leads back to the same BPS village, so a
    register written with it is placed exactly where the BPS code would place it.
    """
    cw = boundaries.kemendagri_village_crosswalk()
    inverse = pd.Series(cw.index.to_numpy(), index=cw.to_numpy()).sort_values(kind="stable")
    inverse = inverse[~inverse.index.duplicated(keep="first")]
    return bps.astype("string").map(inverse).astype("string")


def register_to_p3ke(register: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Rewrite a canonical register as a P3KE family export (see the module docs).

    Parameters
    ----------
    register
        ``household_id``, ``desil``, ``members``, ``village_code`` (BPS codes, or
        Kemendagri dotted codes) and the six indicator columns (booleans). Rows whose
        village has no Kemendagri code are left out (P3KE locates families by that code).
    seed
        Seed of the label choices.

    Returns
    -------
    pandas.DataFrame
        P3KE columns in export order; ``attrs["kept"]`` is the boolean mask of the input
        rows written.

    Examples
    --------
    >>> p3ke = register_to_p3ke(register)  # doctest: +SKIP
    >>> p3ke["sumber_air_minum"].iloc[0]    # doctest: +SKIP
    'Ledeng/PAM'
    """
    missing = {"household_id", "desil", "members", "village_code"} - set(register.columns)
    if missing:
        raise InputError(f"register: missing column(s) {sorted(missing)}")
    rng = np.random.default_rng(seed)
    code = register["village_code"].astype("string").str.strip()
    dotted = code.str.fullmatch(r"\d{2}\.\d{2}\.\d{2}\.\d{4}").fillna(False)
    kem = kemendagri_codes(code).where(~dotted, code)
    kept = kem.notna().to_numpy()
    reg = register[kept].reset_index(drop=True)
    kem = kem[kept].reset_index(drop=True)
    n = len(reg)
    names = _region_names(kem)
    undotted = rng.random(n) < UNDOTTED_SHARE
    kode = kem.to_numpy(dtype=object).copy()
    kode[undotted] = kem[undotted].str.replace(".", "", regex=False).to_numpy(dtype=object)
    desil = reg["desil"].to_numpy(np.int64)
    desil_text = np.where(rng.random(n) < 0.5, pd.Series(desil).astype(str).to_numpy(),
                          np.char.add("Desil ", desil.astype(str)))
    row = np.arange(1, n + 1)
    out = pd.DataFrame({
        "id_keluarga_p3ke": reg["household_id"].astype(str).to_numpy(),
        "provinsi": names["provinsi"], "kabupaten_kota": names["kabupaten_kota"],
        "kecamatan": names["kecamatan"], "desa_kelurahan": names["desa_kelurahan"],
        "kode_kemdagri": kode,
        "desil_kesejahteraan": desil_text,
        "alamat": np.char.add("JL. SINTETIS NO. ", row.astype(str)),
        "kepala_keluarga": np.char.add("NAMA SINTETIS ", row.astype(str)),
        "nik": np.char.add("99", np.char.zfill(row.astype(str), 14)),
        "tanggal_lahir": "1970-01-01",
        "jenis_kelamin": _pick(rng, ["Laki-laki", "Perempuan"], n),
        "padan_dukcapil": _pick(rng, ["Padan", "Tidak Padan"], n),
        **{k: _pick(rng, v, n) for k, v in list(_FILLER.items())[:3]},
    })
    flags = {f: reg[f].to_numpy(bool) for f in ("water_improved", "sanitation_improved",
                                                "electricity", "housing_adequate",
                                                "receives_assistance", "child_out_of_school")
             if f in reg.columns}
    if "housing_adequate" in flags:
        ok = flags["housing_adequate"]
        bad_parts = rng.random((3, n)) < 0.5
        none_bad = ~bad_parts.any(axis=0)
        bad_parts[rng.integers(0, 3, n), np.arange(n)] |= none_bad  # at least one part
        for k, (col, labels) in enumerate((("jenis_atap", _ROOF), ("jenis_dinding", _WALL),
                                           ("jenis_lantai", _FLOOR))):
            out[col] = _messy(rng, _answer(rng, ok | ~bad_parts[k], labels))
    out["sumber_penerangan"] = _messy(rng, _answer(rng, flags["electricity"], _LIGHT))
    out["bahan_bakar_memasak"] = _pick(rng, _FILLER["bahan_bakar_memasak"], n)
    out["sumber_air_minum"] = _messy(rng, _answer(rng, flags["water_improved"], _WATER))
    out["memiliki_fasilitas_buang_air_besar"] = _messy(
        rng, _answer(rng, flags["sanitation_improved"], _SANITATION))
    yes = rng.random((len(_PROGRAMMES), n)) < 0.4
    gets = flags["receives_assistance"]
    yes[rng.integers(0, len(_PROGRAMMES), n), np.arange(n)] |= gets & ~yes.any(axis=0)
    yes &= gets
    for k, programme in enumerate(_PROGRAMMES):
        out[f"penerima_{programme}"] = _messy(rng, np.where(yes[k], "Ya", "Tidak"))
    out["resiko_stunting"] = _pick(rng, _FILLER["resiko_stunting"], n)
    if "child_out_of_school" in flags:
        out["jumlah_anak_tidak_sekolah"] = np.where(flags["child_out_of_school"],
                                                    rng.integers(1, 3, n), 0)
    out["jumlah_art"] = reg["members"].to_numpy(np.int64)
    out.attrs["kept"] = kept
    return out


def _region_names(kem: pd.Series) -> dict[str, np.ndarray]:
    """Upper-case province, regency, district and village names of Kemendagri codes."""
    table = pd.read_csv(datapaths.data_file(datapaths.CODES_KEMENDAGRI), dtype=str)
    name = pd.Series(table["nama"].str.upper().to_numpy(), index=table["kode"].to_numpy())
    kem = kem.astype("string")  # dotted codes are fixed-width: 61.01.02.2001
    keys = {"provinsi": kem.str.slice(0, 2), "kabupaten_kota": kem.str.slice(0, 5),
            "kecamatan": kem.str.slice(0, 8), "desa_kelurahan": kem}
    return {k: v.map(name).fillna("").to_numpy(dtype=object) for k, v in keys.items()}


def write_p3ke_workbook(frame: pd.DataFrame, path: str | Path, *,
                        title: str = "DATA P3KE KELUARGA") -> Path:
    """Write a P3KE frame as an ``.xlsx`` like the portal's: *Rekap* sheet, title rows.

    Parameters
    ----------
    frame
        Output of :func:`register_to_p3ke`.
    path
        Workbook to write (atomically).
    title
        First title line of the data sheet.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    desil = frame["desil_kesejahteraan"].astype("string").str.extract(r"(\d)")[0]
    counts = desil.value_counts().sort_index()
    rekap = pd.DataFrame({"desil": counts.index.astype(int), "jumlah_keluarga": counts.to_numpy()})
    top = [[title], [SYNTHETIC_LABEL], [f"Jumlah keluarga: {len(frame)}"], []]
    sst = SharedStrings([frame])  # text cells as Excel writes them
    write_xlsx(path, [("Rekap", sheet_xml(rekap, top=[["REKAP P3KE PER DESIL"],
                                                      [SYNTHETIC_LABEL], []])),
                      (DATA_SHEET, sheet_xml(frame, top=top[:TITLE_ROWS], sst=sst))], sst=sst)
    logger.info("wrote %s: %d families (sheets Rekap, %s)", path, len(frame), DATA_SHEET)
    return Path(path)


def register_file_to_p3ke(register: str | Path, out: str | Path, *, seed: int = 0) -> int:
    """Write a canonical register file (CSV or Parquet) as a P3KE-shaped workbook.

    Parameters
    ----------
    register
        A register written by ``kantong demo-data`` (or any canonical register).
    out
        The ``.xlsx`` to write.
    seed
        Seed of the label choices.

    Returns
    -------
    int
        Families written (rows whose village has a Kemendagri code and a valid decile).
    """
    path = Path(register)
    frame = (pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq")
             else pd.read_csv(path, dtype={"household_id": str, "village_code": str}))
    frame = frame[pd.to_numeric(frame["desil"], errors="coerce").isin([1, 2, 3, 4])]
    frame = frame.drop_duplicates("household_id", keep="first")
    p3ke = register_to_p3ke(frame.reset_index(drop=True), seed=seed)
    write_p3ke_workbook(p3ke, out)
    return len(p3ke)


__all__ = ["DATA_SHEET", "TITLE_ROWS", "kemendagri_codes", "register_file_to_p3ke",
           "register_to_p3ke", "write_p3ke_workbook"]
