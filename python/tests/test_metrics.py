"""classification_report / confusion_matrix / f1 against scikit-learn's own outputs, committed
in tests/fixtures/metrics.json (made by tests/fixtures/make_stats_fixtures.py)."""

import json

import numpy as np
import pytest

from conftest import FIXTURES
from lmkit.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

CASES = json.loads((FIXTURES / "metrics.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_report_text_equals_sklearn(case):
    got = classification_report(case["y_true"], case["y_pred"], labels=case["labels"],
                                target_names=case["target_names"], digits=case["digits"],
                                zero_division=case["zero_division"])
    assert got == case["report_text"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_report_dict_equals_sklearn(case):
    got = classification_report(case["y_true"], case["y_pred"], labels=case["labels"],
                                target_names=case["target_names"], output_dict=True,
                                zero_division=case["zero_division"])
    want = case["report_dict"]
    assert got.keys() == want.keys()
    for k, v in want.items():
        if isinstance(v, dict):
            for m, x in v.items():
                # Both sides are the same ratios of integer counts in float64.
                assert got[k][m] == pytest.approx(x, rel=1e-12, abs=0), (k, m)
        else:
            assert got[k] == pytest.approx(v, rel=1e-12, abs=0)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_confusion_and_scores_equal_sklearn(case):
    cm = confusion_matrix(case["y_true"], case["y_pred"], labels=case["labels"])
    assert cm.tolist() == case["confusion_matrix"]
    assert accuracy_score(case["y_true"], case["y_pred"]) == pytest.approx(case["accuracy"], rel=1e-12)
    f1 = f1_score(case["y_true"], case["y_pred"], labels=case["labels"], average="macro", zero_division=0)
    assert f1 == pytest.approx(case["f1_macro"], rel=1e-12)


def test_string_labels_sort_as_sklearn():
    # sklearn orders classes by sorted unique label: "cat" < "dog".
    cm = confusion_matrix(["dog", "cat", "dog"], ["dog", "dog", "cat"])
    assert cm.tolist() == [[0, 1], [1, 1]]
    text = classification_report(["dog", "cat"], ["dog", "cat"])
    assert text.splitlines()[2].strip().startswith("cat")


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="does not match size of target_names"):
        classification_report([0, 1], [0, 1], target_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="not in labels"):
        confusion_matrix([0, 5], [0, 1], labels=[0, 1])
    with pytest.raises(ValueError, match="multiclass"):
        f1_score([0, 1, 2], [0, 1, 2])


def test_normalize_rows_sum_to_one():
    cm = confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], normalize="true")
    assert np.allclose(cm.sum(axis=1), 1.0)
