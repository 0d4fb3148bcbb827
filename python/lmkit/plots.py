"""Charts drawn in Rust (plotters): each is a ``Figure`` that shows itself in Jupyter and
saves as PNG or SVG."""

from __future__ import annotations

import json
import os
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


def _draw(name: str, draw: Any) -> Figure:
    """Runs ``draw(stem)`` (a native plot writing ``stem``.png and .svg) in a temp folder and
    reads the chart back."""
    with tempfile.TemporaryDirectory(prefix="lmkit-plot-") as d:
        files = draw(os.path.join(d, name))
        return Figure._from_files([str(f) for f in files], name)


def confusion_matrix(matrix: Any, display_labels: Sequence[str], title: str = "Confusion matrix") -> Figure:
    """A confusion matrix (rows true, columns predicted) in matplotlib's Blues."""
    m = np.asarray(matrix)
    if m.dtype.kind not in "iu":
        raise ValueError("the matrix must hold counts (integers)")
    labels = [str(l) for l in display_labels]
    return _draw("confusion_matrix", lambda stem: _lmkit.confusion_matrix_plot(m.tolist(), labels, stem, title))


def bar(values: Dict[str, float], title: str = "", x_label: str = "", y_label: str = "count") -> Figure:
    """A bar chart of named values (e.g. a class distribution)."""
    bars = [(str(k), float(v)) for k, v in values.items()]
    return _draw("bar", lambda stem: _lmkit.bar_plot(bars, title, x_label, y_label, stem))


def eda(dataset: Any, text_column: str = "text", label_column: str = "label") -> Dict[str, Figure]:
    """The course's EDA of a split: class counts, a histogram of words per text and its
    density per class. Keys: class_counts, words_per_text_hist, words_per_text_kde."""
    with tempfile.TemporaryDirectory(prefix="lmkit-plot-") as d:
        files = [str(f) for f in _lmkit.eda_plots(dataset._d, text_column, label_column, d)]
        by_stem: Dict[str, List[str]] = {}
        for f in files:
            by_stem.setdefault(os.path.splitext(os.path.basename(f))[0], []).append(f)
        return {stem: Figure._from_files(fs, stem) for stem, fs in sorted(by_stem.items())}


def training_curves(history: List[Dict[str, Any]]) -> Figure:
    """Train / validation loss and validation accuracy per epoch (``History.run["history"]``
    or ``trainer.state["log_history"]``)."""
    return _draw("training_curves", lambda stem: _lmkit.curves_plot(json.dumps(history), stem))
