"""examples/course.ipynb runs headless, every cell, on the quick setting (a 256-example subset)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO


def test_course_notebook_runs_every_cell():
    nb = nbformat.read(REPO / "examples" / "course.ipynb", as_version=4)
    kernel = os.environ.get("LMKIT_NOTEBOOK_KERNEL", "python3")
    os.environ["LMKIT_COURSE_QUICK"] = "1"
    client = NotebookClient(nb, timeout=900, kernel_name=kernel, resources={"metadata": {"path": str(REPO)}})
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "a cell did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    pngs = [c for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    # class counts, two words-per-text charts, training curves, confusion matrix
    assert len(pngs) == 5
    report = "".join(o.get("text", "") for c in code for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert "weighted avg" in report
