"""Translations of the web map: Bahasa Indonesia first, English second.

Every text the viewer shows (page controls, popups, legends, errors shown in the page, the
compare table) comes from :data:`MESSAGES`, one row per key with its Indonesian and English
text. The page is rendered per language (``?lang=id``, the default, or ``?lang=en``); the
texts the browser script needs are handed to it in the page (:func:`js_messages`), so the
script holds no text of its own. Numbers are formatted for the language: ``12.345`` and
``0,25`` in Indonesian, ``12,345`` and ``0.25`` in English.

The browser test checks that no English text of the table is left in the Indonesian page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

import pandas as pd

from kantong.engine.errors import InputError

#: Languages of the interface; the first one is the default (``<html lang="id">``).
LANGUAGES: Final = ("id", "en")
DEFAULT_LANGUAGE: Final = "id"
#: Locale tags for the browser's number formatting (``Number.toLocaleString``).
LOCALES: Final = {"id": "id-ID", "en": "en-GB"}

#: key -> (Bahasa Indonesia, English). ``{name}`` placeholders are filled by :func:`t`.
MESSAGES: Final[Mapping[str, tuple[str, str]]] = {
    # page frame and panel
    "title": ("Kantong — kantong kemiskinan {province}", "Kantong — poverty pockets of {province}"),
    "run": ("Analisis {run_id}", "Run {run_id}"),
    "synthetic": ("data demo SINTETIS", "SYNTHETIC demo data"),
    "absent_indicators": ("tidak ada di register ini: {names}", "not in this register: {names}"),
    "location_precision": ("lokasi: {point}% dari koordinat, {village}% dari kode desa saja "
                           "(jumlah per sel dari kode desa = perkiraan)",
                           "located: {point}% by coordinates, {village}% by village code only "
                           "(their cell counts are expected values)"),
    "language_switch": ("English", "Bahasa Indonesia"),
    "language_switch_title": ("Tampilkan peta dalam bahasa Inggris",
                              "Show the map in Bahasa Indonesia"),
    "zoom_regency": ("Perbesar ke kabupaten/kota", "Zoom to regency"),
    "all_regencies": ("Semua kabupaten/kota dalam analisis ini", "All regencies of this run"),
    "regency_option": ("{name} ({n} RT miskin ekstrem)", "{name} ({n} extreme-poor households)"),
    "menu": ("Menu", "Menu"),
    "search_label": ("Cari desa, kecamatan, kabupaten atau kantong",
                     "Search a village, kecamatan, regency or pocket"),
    "search_placeholder": ("mis. nama desa", "e.g. a village name"),
    "search_none": ("Tidak ditemukan", "Nothing found"),
    "search_error": ("Pencarian gagal", "Search failed"),
    "pocket_list": ("Daftar kantong menurut peringkat", "Pockets by rank"),
    "pocket_list_item": ("#{rank} Kantong {id}: {n} RT miskin ekstrem",
                         "#{rank} Pocket {id}: {n} extreme-poor households"),
    "downloads": ("Unduh data", "Download data"),
    "download_scope": ("Wilayah unduhan", "Download area"),
    "dl_cells": ("Sel H3", "H3 cells"),
    "dl_pockets": ("Kantong kemiskinan", "Poverty pockets"),
    "dl_sites": ("Lokasi usulan", "Proposed sites"),
    "download_all": ("seluruh analisis", "the whole run"),
    "download_hint": ("Ukuran ditampilkan setelah dihitung; GeoPackage dan CSV untuk QGIS/Excel.",
                      "Sizes appear once computed; GeoPackage and CSV for QGIS/Excel."),
    "size_unknown": ("ukuran belum diketahui", "size not known yet"),
    "print": ("Cetak peta", "Print map"),
    "print_title": ("Dicetak {date} · analisis {run_id} · sumber: {source}",
                    "Printed {date} · run {run_id} · source: {source}"),
    "data_source": ("Kantong (agregat sel H3 yang aman privasi); batas wilayah BPS 2020; "
                    "Natural Earth",
                    "Kantong (privacy-safe H3 aggregates); boundaries BPS 2020; Natural Earth"),
    "copy_link": ("Salin tautan tampilan ini", "Copy a link to this view"),
    "link_copied": ("Tautan disalin", "Link copied"),
    "legend": ("Legenda", "Legend"),
    "zoom_in": ("Perbesar", "Zoom in"),
    "zoom_out": ("Perkecil", "Zoom out"),
    "layers": ("Lapisan peta", "Map layers"),
    "close": ("Tutup", "Close"),
    # layers
    "layer_regencies": ("Batas kabupaten/kota", "Regency boundaries"),
    "layer_districts": ("Batas kecamatan", "Kecamatan boundaries"),
    "layer_coast": ("Garis pantai rinci", "Detailed coastline"),
    "layer_pockets": ("Kantong kemiskinan ({n})", "Poverty pockets ({n})"),
    "layer_sites": ("Lokasi usulan ({n})", "Proposed sites ({n})"),
    "layer_facilities": ("Fasilitas yang ada ({n})", "Existing facilities ({n})"),
    "layer_context": ("Sungai dan kota", "Rivers and towns"),
    "layer_villages": ("Nama desa", "Village names"),
    # legend
    "no_data": ("Tidak ada data", "No data"),
    "zero": ("Nol", "Zero"),
    "legend_pocket": ("Kantong kemiskinan", "Poverty pocket"),
    "legend_site": ("Lokasi usulan", "Proposed site"),
    "legend_facility": ("Fasilitas yang ada", "Existing facility"),
    "legend_regency": ("Batas kabupaten/kota", "Regency boundary"),
    "legend_below": ("Sel dengan kurang dari {k} rumah tangga tidak ditampilkan.",
                     "Cells with fewer than {k} households are not shown."),
    "legend_unavailable": ("Legenda tidak tersedia", "Legend unavailable"),
    "legend_more": ("… dan {n} lagi", "… and {n} more"),
    "legend_nothing": ("Tidak ada yang ditampilkan", "Nothing to show"),
    "legend_pocket_value": ("Kantong {n}", "Pocket {n}"),
    "legend_open_low": ("≤", "≤"),
    "unit_households": ("rumah tangga", "households"),
    "unit_persons": ("jiwa", "persons"),
    "unit_minutes": ("menit", "minutes"),
    "unit_share_households": ("% rumah tangga", "% of households"),
    "unit_share_persons": ("% penduduk", "% of persons"),
    "unit_score": ("skor 0-1", "score 0-1"),
    "unit_change_households": ("rumah tangga (sesudah − sebelum)",
                               "households (later − earlier)"),
    "unit_change_rate": ("poin persen", "percentage points"),
    # indicators
    "ind_priority": ("Skor prioritas", "Priority score"),
    "ind_extreme_households": ("Rumah tangga miskin ekstrem", "Extreme-poor households"),
    "ind_extreme_persons": ("Jiwa miskin ekstrem", "Extreme-poor persons"),
    "ind_extreme_rate": ("Tingkat kemiskinan ekstrem", "Extreme-poverty rate"),
    "ind_pocket": ("Kantong kemiskinan", "Poverty pockets"),
    "ind_assistance_gap": ("RT miskin ekstrem tanpa bantuan sosial",
                           "Extreme-poor households without assistance"),
    "ind_households": ("Rumah tangga", "Households"),
    "ind_persons": ("Jiwa", "Persons"),
    "ind_population": ("Penduduk (raster)", "Population (raster)"),
    "ind_travel": ("Waktu tempuh ke {facility}", "Travel time to {facility}"),
    "ind_share": ("Porsi RT: {what}", "Share of households: {what}"),
    "ind_contrib": ("Sumbangan skor: {what}", "Score contribution: {what}"),
    "ind_change_extreme_households": ("Perubahan RT miskin ekstrem",
                                      "Change in extreme-poor households"),
    "ind_change_extreme_rate": ("Perubahan tingkat kemiskinan ekstrem",
                                "Change in the extreme-poverty rate"),
    "change_nodata": ("Hanya diterbitkan di satu analisis (perubahan disembunyikan)",
                      "Published in one run only (change withheld)"),
    # deprivations and components
    "dep_no_improved_water": ("tanpa air minum layak", "no improved water"),
    "dep_no_improved_sanitation": ("tanpa sanitasi layak", "no improved sanitation"),
    "dep_no_electricity": ("tanpa listrik", "no electricity"),
    "dep_inadequate_housing": ("rumah tidak layak", "inadequate housing"),
    "dep_child_out_of_school": ("anak tidak sekolah", "child out of school"),
    "dep_no_assistance": ("tanpa bantuan sosial", "no social assistance"),
    "comp_extreme_households": ("Jumlah RT miskin ekstrem", "Number of extreme-poor households"),
    "comp_extreme_rate": ("Tingkat kemiskinan ekstrem", "Extreme-poverty rate"),
    "comp_deprivation": ("Kekurangan air, sanitasi, listrik, rumah",
                         "Lack of water, sanitation, electricity, housing"),
    "comp_travel": ("Waktu tempuh ke layanan", "Travel time to services"),
    "comp_assistance_gap": ("Miskin ekstrem tanpa bantuan sosial",
                            "Extreme poor without social assistance"),
    # facility types
    "fac_puskesmas": ("puskesmas", "health centre (puskesmas)"),
    "fac_posyandu": ("posyandu", "village health post (posyandu)"),
    "fac_school": ("sekolah", "school"),
    "fac_water_point": ("sarana air bersih", "water point"),
    # strategies (Inpres 4/2022)
    "strategy_1": ("Mengurangi beban pengeluaran", "Reduce expenditure burden"),
    "strategy_2": ("Meningkatkan pendapatan", "Raise income"),
    "strategy_3": ("Menghapus kantong kemiskinan: infrastruktur dasar",
                   "Eliminate the pocket: basic infrastructure"),
    # popups
    "pocket_title": ("Kantong kemiskinan {id}", "Poverty pocket {id}"),
    "pocket_short": ("Kantong {id}", "Pocket {id}"),
    "site_title": ("Lokasi #{rank}: {kind} baru", "Site #{rank}: new {kind}"),
    "cell_title": ("Sel H3 {id}", "H3 cell {id}"),
    "facility_title": ("{kind}", "{kind}"),
    "f_households": ("Rumah tangga", "Households"),
    "f_persons": ("Jiwa", "Persons"),
    "f_extreme_households": ("RT miskin ekstrem", "Extreme-poor households"),
    "f_extreme_rate": ("Tingkat kemiskinan ekstrem", "Extreme-poverty rate"),
    "f_priority": ("Skor prioritas", "Priority score"),
    "f_rank": ("Peringkat di provinsi", "Rank in the province"),
    "f_cells": ("Jumlah sel", "Cells"),
    "f_confidence": ("Keyakinan", "Confidence"),
    "confidence_high": ("tinggi", "high"),
    "confidence_medium": ("sedang", "medium"),
    "confidence_low": ("rendah", "low"),
    "totals_protected": ("Angka dilindungi: rumah tangga yang dirahasiakan dan dapat dikenali "
                         "tidak dihitung", "Figures protected: withheld households that could "
                         "be identified are not counted"),
    "f_regency": ("Kabupaten/kota", "Regency"),
    "f_district": ("Kecamatan", "Kecamatan"),
    "f_pocket": ("Kantong", "Pocket"),
    "f_none": ("tidak ada", "none"),
    "f_coordinates": ("Koordinat", "Coordinates"),
    "f_type": ("Jenis", "Type"),
    "f_name": ("Nama", "Name"),
    "f_new_in_reach": ("RT miskin ekstrem baru terjangkau",
                       "New extreme-poor households in reach"),
    "f_cumulative": ("Kumulatif (lokasi 1 sampai ini)", "Cumulative (sites 1 to this one)"),
    "f_threshold": ("Batas waktu tempuh", "Travel-time threshold"),
    "f_minutes": ("{n} menit", "{n} min"),
    "h_deprivations": ("Kekurangan (porsi RT)", "Deprivations (share of households)"),
    "h_travel": ("Waktu tempuh", "Travel times"),
    "h_contrib": ("Sumbangan terhadap skor prioritas", "Contributions to the priority score"),
    "strategy_label": ("Strategi yang disarankan:", "Recommended strategy:"),
    "top_indicators": ("Indikator penyumbang terbesar", "Top contributing indicators"),
    "zoom_to": ("Perbesar ke sini", "Zoom here"),
    "inspect_here": ("Lihat sel di titik ini", "Inspect the cell here"),
    "download_pocket": ("Unduh data kantong ini", "Download this pocket"),
    "loading": ("Memuat…", "Loading…"),
    "cell_withheld": ("Tidak ada data yang diterbitkan di sini (tanpa rumah tangga atau kurang "
                      "dari {k} rumah tangga).",
                      "No published data here (no households or fewer than {k})."),
    "cell_error": ("Data sel tidak dapat dimuat", "The cell's data could not be loaded"),
    "kind_regency": ("kabupaten/kota", "regency"),
    "kind_district": ("kecamatan", "kecamatan"),
    "kind_village": ("desa", "village"),
    "kind_pocket": ("kantong", "pocket"),
    # compare mode
    "compare_summary": ("Perubahan sejak analisis sebelumnya: tabel kabupaten/kota",
                        "Change since the earlier run: regency table"),
    "compare_pockets": ("Kantong: {status}", "Pockets: {status}"),
    "compare_none": ("tidak ada yang diterbitkan", "none published"),
    "compare_regency": ("Kabupaten/kota", "Regency"),
    "compare_extreme_before": ("% ekstrem<br>sebelum", "Extreme %<br>earlier"),
    "compare_after": ("sesudah", "later"),
    "compare_change": ("perubahan pp", "change pp"),
    "compare_water": ("% air", "Water %"),
    "compare_school": ("% sekolah*", "School* %"),
    "compare_note": ("* proksi tamat sekolah. Target: kemiskinan ekstrem 0 %, air dan sanitasi "
                     "80 %, sekolah 90 %.",
                     "* school-completion proxy. Targets: extreme poverty 0 %, water and "
                     "sanitation 80 %, school 90 %."),
    "compare_table_json": ("tabel kabupaten/kota (JSON)", "regency table (JSON)"),
    "compare_pockets_geojson": ("perubahan kantong (GeoJSON)", "pocket changes (GeoJSON)"),
    "compare_layer": ("Perubahan kantong ({n})", "Pocket changes ({n})"),
    "change_title": ("Perubahan kantong {id}", "Pocket change {id}"),
    "change_status": ("Status", "Status"),
    "change_before": ("Kantong sebelum", "Pockets earlier"),
    "change_after": ("Kantong sesudah", "Pockets later"),
    "change_extreme_before": ("RT miskin ekstrem sebelum", "Extreme-poor households earlier"),
    "change_extreme_after": ("RT miskin ekstrem sesudah", "Extreme-poor households later"),
    "status_persisting": ("bertahan", "persisting"),
    "status_shrinking": ("menyusut", "shrinking"),
    "status_growing": ("membesar", "growing"),
    "status_new": ("baru", "new"),
    "status_resolved": ("teratasi", "resolved"),
    "legend_status": ("Kantong {status}", "Pocket {status}"),
}

_PLACEHOLDER: Final = re.compile(r"\{([a-z_]+)\}")


def check_language(lang: str | None) -> str:
    """Return the interface language for a ``?lang=`` value (``None``/empty: the default).

    Raises
    ------
    InputError
        If ``lang`` is not one of :data:`LANGUAGES`.

    Examples
    --------
    >>> check_language(None), check_language("EN")
    ('id', 'en')
    """
    if lang is None or lang == "":
        return DEFAULT_LANGUAGE
    code = lang.strip().lower()[:8]
    if code not in LANGUAGES:
        raise InputError(f"unknown language {lang[:8]!r}: use lang=id or lang=en")
    return code


def t(key: str, lang: str, **values: Any) -> str:
    """Return the text of ``key`` in ``lang`` with ``{name}`` placeholders filled.

    Examples
    --------
    >>> t("legend_below", "id", k=10)
    'Sel dengan kurang dari 10 rumah tangga tidak ditampilkan.'
    """
    text = MESSAGES[key][LANGUAGES.index(lang)]
    return _PLACEHOLDER.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], text)


#: Message groups only the server uses (labels it puts into the page itself).
_SERVER_ONLY: Final = ("ind_", "comp_", "dep_", "fac_", "strategy_", "compare_", "status_",
                       "change_title", "change_status", "change_before", "change_after",
                       "change_extreme")


def js_messages(lang: str) -> dict[str, str]:
    """Return the messages of the browser scripts in ``lang`` (placeholders left in)."""
    i = LANGUAGES.index(lang)
    return {key: pair[i] for key, pair in MESSAGES.items() if not key.startswith(_SERVER_ONLY)}


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:  # pragma: no cover
        return False


def fmt_number(value: Any, lang: str, digits: int = 0) -> str:
    """Format a number with the language's separators (``–`` when missing).

    Examples
    --------
    >>> fmt_number(12345.678, "id", 1), fmt_number(12345.678, "en", 1), fmt_number(None, "id")
    ('12.345,7', '12,345.7', '–')
    """
    if _missing(value):
        return "–"
    text = f"{float(value):,.{digits}f}"
    if lang == "id":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def fmt_int(value: Any, lang: str) -> str:
    """Format a count (rounded) with the language's thousands separator."""
    return fmt_number(value if _missing(value) else round(float(value)), lang, 0)


def fmt_pct(value: Any, lang: str, digits: int = 1) -> str:
    """Format a share 0..1 as a percentage, e.g. ``25,0 %`` (id) or ``25.0%`` (en)."""
    if _missing(value):
        return "–"
    return fmt_number(100 * float(value), lang, digits) + (" %" if lang == "id" else "%")


def facility_label(kind: str, lang: str) -> str:
    """Return the name of a facility type (``school`` -> ``sekolah``); others as written."""
    key = f"fac_{kind}"
    return t(key, lang) if key in MESSAGES else kind.replace("_", " ")


def _what(name: str, lang: str) -> str:
    key = f"dep_{name}"
    return t(key, lang) if key in MESSAGES else name.replace("_", " ")


def indicator_label(name: str, lang: str) -> str:
    """Return the label of an indicator (tile layer or cell column) in ``lang``.

    Examples
    --------
    >>> indicator_label("travel_min_school", "id"), indicator_label("priority", "en")
    ('Waktu tempuh ke sekolah', 'Priority score')
    """
    key = f"ind_{name}"
    if key in MESSAGES:
        return t(key, lang)
    if name.startswith("travel_min_"):
        return t("ind_travel", lang, facility=facility_label(name.removeprefix("travel_min_"),
                                                             lang))
    if name.startswith("share_"):
        return t("ind_share", lang, what=_what(name.removeprefix("share_"), lang))
    if name.startswith("contrib_"):
        comp = name.removeprefix("contrib_")
        return t(f"comp_{comp}", lang) if f"comp_{comp}" in MESSAGES else \
            t("ind_contrib", lang, what=comp.replace("_", " "))
    text = name.removeprefix("n_").replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name


def component_label(name: str, lang: str) -> str:
    """Return the label of a priority-score component (``contrib_<name>``)."""
    key = f"comp_{name}"
    return t(key, lang) if key in MESSAGES else indicator_label(name, lang)


def strategy_text(strategy: Any, label: Any, lang: str) -> str:
    """Return the recommended strategy in ``lang`` (by its number; else the run's label)."""
    try:
        key = f"strategy_{int(strategy)}"
    except (TypeError, ValueError):
        key = ""
    if key in MESSAGES:
        return t(key, lang)
    return "–" if _missing(label) or not label else str(label)


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LOCALES", "MESSAGES", "check_language",
           "component_label", "facility_label", "fmt_int", "fmt_number", "fmt_pct",
           "indicator_label", "js_messages", "strategy_text", "t"]
