"""Charts drawn in Rust (plotters): each is a ``Figure`` that shows itself in Jupyter and
saves as PNG or SVG."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import _lmkit


class Figure:
    """A drawn chart: ``_repr_png_`` for Jupyter, ``save(path)`` by extension (.png or .svg)."""

    def __init__(self, png: bytes, svg: str, name: str = "figure"):
        self.png, self.svg, self.name = png, svg, name

    @classmethod
    def _from_files(cls, files: Sequence[str], name: str) -> "Figure":
        png = next((f for f in files if str(f).endswith(".png")), None)
        svg = next((f for f in files if str(f).endswith(".svg")), None)
        if png is None or svg is None:
            raise ValueError(f"{name}: nothing to draw (no finite values)")
        with open(png, "rb") as f:
            p = f.read()
        with open(svg, encoding="utf-8") as f:
            s = f.read()
        return cls(p, s, name)

    def _repr_png_(self) -> bytes:
        return self.png

    def save(self, path: str) -> str:
        """Writes the chart; the extension picks the format. Written to a temp file, then renamed."""
        ext = os.path.splitext(path)[1].lower()
        if ext not in (".png", ".svg"):
            raise ValueError(f"{path}: save as .png or .svg")
        data = self.png if ext == ".png" else self.svg.encode("utf-8")
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def __repr__(self) -> str:
        return f"Figure({self.name!r}, {len(self.png)} bytes of PNG)"


def confusion_matrix(matrix: Any, display_labels: Sequence[str], title: str = "Confusion matrix") -> Figure:
    """A confusion matrix (rows true, columns predicted) in matplotlib's Blues."""
    m = np.asarray(matrix)
    if m.dtype.kind not in "iu":
        raise ValueError("the matrix must hold counts (integers)")
    d = tempfile.mkdtemp(prefix="lmkit-plot-")
    try:
        files = _lmkit.confusion_matrix_plot(m.tolist(), [str(l) for l in display_labels],
                                             os.path.join(d, "confusion_matrix"), title)
        return Figure._from_files([str(f) for f in files], "confusion_matrix")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bar(values: Dict[str, float], title: str = "", x_label: str = "", y_label: str = "count") -> Figure:
    """A bar chart of named values (e.g. a class distribution)."""
    d = tempfile.mkdtemp(prefix="lmkit-plot-")
    try:
        files = _lmkit.bar_plot([(str(k), float(v)) for k, v in values.items()], title, x_label, y_label,
                                os.path.join(d, "bar"))
        return Figure._from_files([str(f) for f in files], "bar")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def eda(dataset: Any, text_column: str = "text", label_column: str = "label") -> Dict[str, Figure]:
    """The course's EDA of a split: class counts, a histogram of words per text and its
    density per class. Keys: class_counts, words_per_text_hist, words_per_text_kde."""
    d = tempfile.mkdtemp(prefix="lmkit-plot-")
    try:
        files = [str(f) for f in _lmkit.eda_plots(dataset._d, text_column, label_column, d)]
        stems = sorted({os.path.splitext(os.path.basename(f))[0] for f in files})
        return {s: Figure._from_files([f for f in files if os.path.splitext(os.path.basename(f))[0] == s], s)
                for s in stems}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def training_curves(history: List[Dict[str, Any]]) -> Figure:
    """Train / validation loss and validation accuracy per epoch (``History.run["history"]``
    or ``trainer.state["log_history"]``)."""
    d = tempfile.mkdtemp(prefix="lmkit-plot-")
    try:
        files = _lmkit.curves_plot(json.dumps(history), os.path.join(d, "training_curves"))
        return Figure._from_files([str(f) for f in files], "training_curves")
    finally:
        shutil.rmtree(d, ignore_errors=True)
