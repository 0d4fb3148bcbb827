"""AutoModel / AutoModelForSequenceClassification forward passes, and the plot objects."""

import numpy as np
import pytest

from conftest import cli_json
from lmkit import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline
from lmkit import plots
from lmkit.metrics import ConfusionMatrixDisplay

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_automodel_mean_pooled_is_the_cli_embedding():
    tok, model = AutoTokenizer.from_pretrained(MINILM), AutoModel.from_pretrained(MINILM)
    texts = ["I have a dream.", "She was so happy."]
    enc = tok(texts, padding=True, return_tensors="np")
    h = model(**enc).last_hidden_state
    assert h.shape == (*enc["input_ids"].shape, 384) and h.dtype == np.float32
    m = enc["attention_mask"][..., None].astype(np.float32)
    pooled = (h * m).sum(1) / m.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    want = np.array([w["embedding"] for w in cli_json("embed", "--json", *texts)], dtype=np.float32)
    # Sentence-transformers' pooling redone in numpy: a mean of <= 9 f32 values of |x| < 2 and
    # a norm differ from Rust's summation order by a few ulps of values ~0.1: 1e-6 bounds that.
    assert np.abs(pooled - want).max() < 1e-6


def test_classifier_softmax_is_the_pipeline_score():
    model = AutoModelForSequenceClassification.from_pretrained("lmkit/sentiment-sst2")
    tok = AutoTokenizer.from_pretrained("lmkit/sentiment-sst2")
    assert model.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    logits = model(**tok(["I have a dream."], return_tensors="np")).logits
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = pipeline("sentiment-analysis")("I have a dream.")[0]
    assert model.id2label[int(p.argmax())] == best["label"]
    # One text, no padding: the same forward pass; only numpy's softmax differs (1 ulp).
    assert p.max() == pytest.approx(best["score"], rel=1e-6)


def test_forward_bad_inputs():
    model = AutoModel.from_pretrained(MINILM)
    with pytest.raises(ValueError, match="input_ids"):
        model()
    with pytest.raises(ValueError, match="vocabulary"):
        model(input_ids=np.array([[101, 10**6]]))
    with pytest.raises(ValueError, match="must match"):
        model(input_ids=np.array([[101, 102]]), attention_mask=np.array([[1, 1, 1]]))
    with pytest.raises(ValueError, match="integer"):
        model(input_ids=np.array([[1.5]]))


def test_figures_show_and_save(tmp_path):
    d = ConfusionMatrixDisplay(confusion_matrix=[[3, 1], [0, 4]], display_labels=["neg", "pos"]).plot()
    png = d._repr_png_()
    assert png.startswith(b"\x89PNG")
    out = d.figure_.save(str(tmp_path / "cm.svg"))
    assert open(out).read().lstrip().startswith("<svg")
    with pytest.raises(ValueError, match=".png or .svg"):
        d.figure_.save(str(tmp_path / "cm.jpg"))
    bars = plots.bar({"neg": 3, "pos": 5}, title="classes")
    assert bars._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="x 2"):
        plots.confusion_matrix([[1, 2, 3]], ["a", "b"])
