"""scikit-learn's classification metrics with its signatures: ``classification_report``,
``confusion_matrix``, ``accuracy_score``, ``f1_score`` and ``ConfusionMatrixDisplay``."""

from __future__ import annotations

import json
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _lmkit


def _ids(y_true: Any, y_pred: Any, labels: Optional[Sequence[Any]]) -> tuple:
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if len(t) != len(p):
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{len(t)}, {len(p)}]")
    classes = list(labels) if labels is not None else sorted(set(t.tolist()) | set(p.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError("labels has repeated values")
    try:
        ti = [index[v] for v in t.tolist()]
        pi = [index[v] for v in p.tolist()]
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not in labels={classes}") from None
    return ti, pi, classes


def _zero_division(z: Union[str, float]) -> float:
    if z == "warn":
        return 0.0
    if z in (0, 1, 0.0, 1.0):
        return float(z)
    raise ValueError(f"zero_division={z!r}: use 'warn', 0 or 1")


def _report(y_true: Any, y_pred: Any, labels: Any, target_names: Any, digits: int, zero_division: Any) -> tuple:
    ti, pi, classes = _ids(y_true, y_pred, labels)
    if target_names is not None:
        names = [str(n) for n in target_names]
        if len(names) != len(classes):
            raise ValueError(
                f"Number of classes, {len(classes)}, does not match size of target_names, {len(names)}. "
                "Try specifying the labels parameter"
            )
    else:
        names = [str(c) for c in classes]
    if zero_division == "warn":
        cm = np.asarray(_lmkit.confusion_matrix(ti, pi, len(classes)))
        if (cm.sum(axis=0) == 0).any() or (cm.sum(axis=1) == 0).any():
            warnings.warn("Precision or recall is ill-defined for a class with no predicted or true "
                          "samples and is set to 0.0; use zero_division to control this", stacklevel=3)
    text, js = _lmkit.classification_report(ti, pi, names, int(digits), _zero_division(zero_division))
    return text, json.loads(js)


def classification_report(y_true: Any, y_pred: Any, *, labels: Optional[Sequence[Any]] = None,
                          target_names: Optional[Sequence[str]] = None, sample_weight: Any = None,
                          digits: int = 2, output_dict: bool = False,
                          zero_division: Union[str, float] = "warn") -> Union[str, Dict[str, Any]]:
    """Per-class precision, recall, F1 and support, accuracy, macro and weighted averages:
    the same text (or dict) as scikit-learn."""
    if sample_weight is not None:
        raise ValueError("sample_weight is not supported")
    text, r = _report(y_true, y_pred, labels, target_names, digits, zero_division)
    if not output_dict:
        return text

    def row(s: Dict[str, Any]) -> Dict[str, float]:
        return {"precision": s["precision"], "recall": s["recall"], "f1-score": s["f1-score"], "support": float(s["support"])}

    out: Dict[str, Any] = {name: row(s) for name, s in r["classes"]}
    out["accuracy"] = r["accuracy"]
    out["macro avg"] = row(r["macro_avg"])
    out["weighted avg"] = row(r["weighted_avg"])
    return out


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Optional[Sequence[Any]] = None,
                     sample_weight: Any = None, normalize: Optional[str] = None) -> np.ndarray:
    """Rows are true classes, columns predicted ones (sorted labels, or ``labels``' order)."""
    if sample_weight is not None:
        raise ValueError("sample_weight is not supported")
    ti, pi, classes = _ids(y_true, y_pred, labels)
    cm = np.asarray(_lmkit.confusion_matrix(ti, pi, len(classes)))
    if normalize is None:
        return cm
    with np.errstate(all="ignore"):
        if normalize == "true":
            out = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            out = cm / cm.sum(axis=0, keepdims=True)
        elif normalize == "all":
            out = cm / cm.sum()
        else:
            raise ValueError("normalize must be one of {'true', 'pred', 'all', None}")
    return np.nan_to_num(out)


def accuracy_score(y_true: Any, y_pred: Any) -> float:
    """The fraction of predictions equal to the true labels."""
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if len(t) != len(p):
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{len(t)}, {len(p)}]")
    return float((t == p).mean()) if len(t) else 0.0


def f1_score(y_true: Any, y_pred: Any, *, labels: Optional[Sequence[Any]] = None, average: Optional[str] = "binary",
             pos_label: Any = 1, zero_division: Union[str, float] = "warn") -> Union[float, np.ndarray]:
    """F1 with sklearn's ``average``: 'binary', 'micro', 'macro', 'weighted' or None (per class)."""
    _, r = _report(y_true, y_pred, labels, None, 2, zero_division)
    per = np.array([s["f1-score"] for _, s in r["classes"]])
    if average is None:
        return per
    if average == "macro":
        return float(r["macro_avg"]["f1-score"])
    if average == "weighted":
        return float(r["weighted_avg"]["f1-score"])
    if average == "micro":
        return float(r["accuracy"])
    if average == "binary":
        names = [n for n, _ in r["classes"]]
        if len(names) > 2:
            raise ValueError("Target is multiclass but average='binary'. Please choose another average setting, "
                             "one of [None, 'micro', 'macro', 'weighted'].")
        key = str(pos_label)
        if key not in names:
            raise ValueError(f"pos_label={pos_label!r} is not a valid label: {names}")
        return float(per[names.index(key)])
    raise ValueError(f"average={average!r}: use 'binary', 'micro', 'macro', 'weighted' or None")


class ConfusionMatrixDisplay:
    """``ConfusionMatrixDisplay(confusion_matrix=cm, display_labels=classes).plot()``: the
    figure is ``.figure_`` and shows itself in Jupyter."""

    def __init__(self, confusion_matrix: Any, *, display_labels: Optional[Sequence[str]] = None):
        self.confusion_matrix = np.asarray(confusion_matrix)
        n = self.confusion_matrix.shape[0]
        self.display_labels = list(display_labels) if display_labels is not None else [str(i) for i in range(n)]
        self.figure_: Any = None

    @classmethod
    def from_predictions(cls, y_true: Any, y_pred: Any, *, labels: Optional[Sequence[Any]] = None,
                         display_labels: Optional[Sequence[str]] = None, **plot_kw: Any) -> "ConfusionMatrixDisplay":
        _, _, classes = _ids(y_true, y_pred, labels)
        cm = confusion_matrix(y_true, y_pred, labels=labels)
        d = cls(cm, display_labels=display_labels if display_labels is not None else [str(c) for c in classes])
        return d.plot(**plot_kw)

    def plot(self, *, cmap: Any = None, colorbar: bool = False, title: str = "Confusion matrix", **kw: Any) -> "ConfusionMatrixDisplay":
        """Draws the matrix (matplotlib's Blues; ``cmap`` and ``colorbar`` are accepted and ignored)."""
        from .plots import confusion_matrix as draw

        self.figure_ = draw(self.confusion_matrix, self.display_labels, title)
        return self

    def _repr_png_(self) -> Optional[bytes]:
        return self.figure_.png if self.figure_ is not None else None
