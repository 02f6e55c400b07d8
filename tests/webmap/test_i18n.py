"""The translation table of the web map and number formats per language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kantong.engine.errors import InputError
from kantong.webmap.i18n import (
    LANGUAGES,
    MESSAGES,
    check_language,
    fmt_int,
    fmt_number,
    fmt_pct,
    indicator_label,
    js_messages,
    t,
)

STATIC = Path(__file__).resolve().parents[2] / "webmap" / "static"


def test_every_message_in_both_languages_with_the_same_placeholders() -> None:
    for key, texts in MESSAGES.items():
        assert len(texts) == len(LANGUAGES), key
        assert all(text.strip() for text in texts), key
        holes = [sorted(re.findall(r"\{([a-z_]+)\}", text)) for text in texts]
        assert holes[0] == holes[1], key


def test_the_scripts_hold_no_text_of_their_own() -> None:
    """Every msg(...) key used by the browser scripts is in the table."""
    for name in ("viewer.js", "viewer-tools.js", "viewer-legend.js"):
        source = (STATIC / name).read_text(encoding="utf-8")
        keys = set(re.findall(r"msg\((?:config, )?\"([a-z_0-9]+)\"", source))
        keys |= set(re.findall(r"\"(kind_|unit_)\" \+", source))  # built keys: checked below
        assert keys, name
        missing = {k for k in keys if k not in js_messages("id") and not k.endswith("_")}
        assert not missing, (name, missing)
    for kind in ("regency", "district", "village", "pocket"):
        assert f"kind_{kind}" in js_messages("en")
    assert set(js_messages("en")) == set(js_messages("id")) < set(MESSAGES)


def test_numbers_follow_the_language() -> None:
    assert fmt_int(1234567, "id") == "1.234.567" and fmt_int(1234567, "en") == "1,234,567"
    assert fmt_number(0.8123, "id", 2) == "0,81" and fmt_number(0.8123, "en", 2) == "0.81"
    assert fmt_pct(0.255, "id") == "25,5 %" and fmt_pct(0.255, "en") == "25.5%"
    assert fmt_int(None, "id") == "–" and fmt_pct(float("nan"), "en") == "–"


def test_texts_and_labels() -> None:
    assert t("legend_below", "en", k=10) == "Cells with fewer than 10 households are not shown."
    assert t("title", "id", province="Kalimantan Barat") == \
        "Kantong — kantong kemiskinan Kalimantan Barat"
    assert indicator_label("travel_min_puskesmas", "id") == "Waktu tempuh ke puskesmas"
    assert indicator_label("share_no_electricity", "id") == "Porsi RT: tanpa listrik"
    assert indicator_label("contrib_travel", "en") == "Travel time to services"
    assert indicator_label("mystery_mean", "en") == "Mystery mean"


def test_language_parameter() -> None:
    assert check_language(None) == "id" and check_language("") == "id"
    assert check_language("EN") == "en"
    with pytest.raises(InputError, match="lang=id or lang=en"):
        check_language("fr")
