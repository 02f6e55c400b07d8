"""Execute the analyst notebook (notebooks/walkthrough.ipynb) on a small demo with nbclient."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    source = "\n".join(c.source for c in code)
    assert "KANTONG_NB_HOUSEHOLDS" in source
    # the notebook drives the engine API; it does not re-implement it
    for api in ("make_demo", "build_run", "plan_sites", "compare_runs", "export_layer",
                "PublishedRun"):
        assert api in source, api


@pytest.mark.slow
def test_notebook_runs_on_a_small_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANTONG_NB_HOUSEHOLDS", "20000")
    monkeypatch.setenv("KANTONG_NB_SEED", "7")
    monkeypatch.setenv("KANTONG_NB_WORKDIR", "work")
    # a kernel spec named python3 that runs *this* interpreter (a fresh CI machine has no
    # registered kernel; a stale one could point at another Python)
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # pocket map, regency ranking, coverage curve, targets, change map
    work = tmp_path / "work"
    assert (work / "run-year1" / "cells.parquet").is_file()
    assert (work / "run-year2" / "pockets.parquet").is_file()
    assert (work / "run-year1" / "sites" / "sites_puskesmas.geojson").is_file()
    record = json.loads((work / "compare" / "compare.json").read_text())
    assert record["resolution"] == 6 and record["cells"]["both"] > 0
    cells = json.loads((work / "export" / "cells_year2.geojson").read_text())
    assert cells["type"] == "FeatureCollection" and cells["features"]
    assert all("household_id" not in f["properties"] for f in cells["features"])
    # the comparison table shows the planted improvement near the new facilities
    text = [o for c in nb.cells if c.cell_type == "code" and "km_to_nearest" in c.source
            for o in c.outputs if o.output_type == "execute_result"]
    assert text and "within" in text[0]["data"]["text/plain"]
