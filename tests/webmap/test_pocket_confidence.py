"""Pocket significance and honest totals reach the API and the viewer's pocket popup."""

import geopandas as gpd

from kantong.webmap import create_app
from kantong.webmap.page.popups import pocket_popup_html


def test_api_pockets_carry_confidence_and_totals(pipeline_run):
    client = create_app({"TESTING": True, "RUN_DIR": str(pipeline_run),
                         "MIN_HOUSEHOLDS": 10}).test_client()
    doc = client.get("/api/pockets").json
    assert doc["features"]
    raw = gpd.read_parquet(pipeline_run / "pockets.parquet").set_index("pocket_id")
    for feature in doc["features"]:
        props = feature["properties"]
        pid = props["pocket_id"]
        assert props["confidence"] == raw.loc[pid, "confidence"]
        assert props["pocket_p"] == raw.loc[pid, "pocket_p"]
        assert props["totals"] in ("exact", "protected")
        if props["totals"] == "exact":  # the run's own totals
            assert props["households"] == raw.loc[pid, "households"]


def test_popup_shows_confidence_and_protected_totals():
    pocket = {"pocket_id": 4, "households": 300, "extreme_households": 60, "priority": 0.5,
              "confidence": "medium", "pocket_p": 0.0042, "totals": "protected"}
    html = pocket_popup_html(pocket, "en")
    assert "<th>Confidence</th><td>medium (p = 0.0042)</td>" in html
    assert "Figures protected" in html
    html_id = pocket_popup_html({**pocket, "confidence": "high", "totals": "exact"}, "id")
    assert "<th>Keyakinan</th><td>tinggi (p = 0.0042)</td>" in html_id
    assert "dilindungi" not in html_id
    assert "Confidence" not in pocket_popup_html({"pocket_id": 1, "households": 10}, "en")
