"""docs/examples/quickstart.ipynb, executed with a real Jupyter kernel (nbclient) on a short budget."""

from __future__ import annotations

import pytest
from conftest import REPO

NOTEBOOK = REPO / "docs" / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_the_quickstart_notebook_runs(tmp_path):
    """Every cell runs without an error; the run, the sweep and the report show what the text says."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    budget = notebook.cells[1]
    assert "ITERATIONS = 1000" in budget.source
    budget.source = "ITERATIONS = 40\nEVAL_EVERY = 20"  # the short budget CI runs it on
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = {i: cell.get("outputs", []) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    assert not [o for cell in outputs.values() for o in cell if o.output_type == "error"]

    def html(i: int) -> str:
        return "".join(o.get("data", {}).get("text/html", "") for o in outputs[i])

    assert "optbench run in" in html(2) and "completed" in html(2)
    assert "<table" in html(4)  # result.test
    assert any("image/png" in o.get("data", {}) for o in outputs[5])  # the loss plot
    assert html(7).count("<tr") == 9  # the header + the sweep's 8 runs
    assert "optbench report of 8 runs" in html(9) and "data:image/png;base64," in html(9)
    printed = "".join(o.get("text", "") for o in outputs[11])
    assert "iterations=0 must be a positive whole number" in printed
    assert list((tmp_path / "outputs").rglob("summary.json")) and list((tmp_path / "multirun").rglob("summary.json"))
