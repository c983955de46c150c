"""The Colab TPU notebook runs top to bottom on this CPU with the quick configurations, so it
cannot rot: it prints the devices, runs the chosen experiments through the tour, and shows each
one's claim table and figures."""
from __future__ import annotations

import os
import re

import pytest

from helpers import REPO_ROOT

NOTEBOOK = os.path.join(REPO_ROOT, "experiments", "colab_tpu.ipynb")


def test_the_colab_notebook_runs_on_cpu_with_the_quick_sizes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("JAXDL_NOTEBOOK_SIZE", "quick")
    monkeypatch.setenv("JAXDL_NOTEBOOK_ONLY", "parametrization")
    monkeypatch.setenv("JAXDL_NOTEBOOK_WORKDIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # Raises CellExecutionError, naming the cell, if any cell fails.
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": REPO_ROOT}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "device(s), backend 'cpu'" in text and "every experiment ran" in text
    markdown = [output["data"]["text/markdown"] for output in outputs if "text/markdown" in output.get("data", {})]
    # The tables pad their columns, so the header is matched with any run of spaces.
    assert any(m.startswith("## parametrization:") and re.search(r"\| Paper +\| Claim +\|", m) and "Checks" in m
               for m in markdown), markdown
    assert any("image/png" in output.get("data", {}) for output in outputs)
    assert (tmp_path / "runs" / "report.md").exists()
