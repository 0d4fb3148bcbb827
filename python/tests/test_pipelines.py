"""pipeline(): transformers' call shapes, and the same numbers as the CLI on the same models."""

import numpy as np
import pytest

from conftest import cli_json
import lmkit
from lmkit import pipeline

TEXTS = ["I've been waiting for a HuggingFace course my whole life.", "I hate this so much!",
         "I have a dream.", "She was so happy."]


def f32(x):
    return np.float32(x)


def test_sentiment_equals_the_cli():
    clf = pipeline("sentiment-analysis")
    got = clf(TEXTS)
    want = cli_json("pipeline", "sentiment-analysis", "--json", *TEXTS)
    assert [g["label"] for g in got] == [w["label"] for w in want]
    # The same model, batch and kernels: the same f32 scores.
    assert [f32(g["score"]) for g in got] == [f32(w["score"]) for w in want]
    one = clf("I have a dream.")
    assert isinstance(one, list) and set(one[0]) == {"label", "score"}
    both = clf("I have a dream.", top_k=None)
    assert [d["label"] for d in both] == ["POSITIVE", "NEGATIVE"]
    assert sum(d["score"] for d in both) == pytest.approx(1.0, abs=1e-6)


def test_zero_shot_equals_the_cli():
    zs = pipeline("zero-shot-classification")
    got = zs(TEXTS[:2], candidate_labels=["education", "politics", "emotion"])
    want = cli_json("pipeline", "zero-shot-classification", "--json", "--labels", "education,politics,emotion",
                    *TEXTS[:2])
    for g, w in zip(got, want):
        assert g["sequence"] == w["sequence"] and g["labels"] == w["labels"]
        assert [f32(s) for s in g["scores"]] == [f32(s) for s in w["scores"]]
    single = zs(TEXTS[0], candidate_labels="education, politics")
    assert isinstance(single, dict) and set(single["labels"]) == {"education", "politics"}


def test_feature_extraction_equals_the_cli():
    fe = pipeline("feature-extraction")
    pooled = fe.encode(TEXTS[:2])
    want = cli_json("embed", "--json", *TEXTS[:2])
    assert pooled.dtype == np.float32 and pooled.shape == (2, 384)
    assert np.array_equal(pooled, np.array([w["embedding"] for w in want], dtype=np.float32))
    tok_level = fe(TEXTS[2], return_tensors=True)
    want_tok = cli_json("pipeline", "feature-extraction", "--token-level", "--json", TEXTS[2])[0]
    assert tok_level.shape == (1, len(want_tok["tokens"]), 384)
    assert np.array_equal(tok_level[0], np.array(want_tok["embeddings"], dtype=np.float32))
    assert isinstance(fe(TEXTS[2]), list)  # nested lists, as transformers without return_tensors


def test_text_generation_greedy_equals_the_cli():
    gen = pipeline("text-generation")
    prompt = "The capital of France is"
    got = gen(prompt, max_new_tokens=6)
    want = cli_json("pipeline", "text-generation", "--json", "--max-new-tokens", "6", prompt)[0]
    assert got == [{"generated_text": prompt + want["generated_text"]}]
    assert gen(prompt, max_new_tokens=6, return_full_text=False)[0]["generated_text"] == want["generated_text"]


def test_bad_input_raises_the_right_exception():
    with pytest.raises(ValueError, match="unknown task"):
        pipeline("telepathy")
    with pytest.raises(FileNotFoundError, match="not found"):
        pipeline("sentiment-analysis", model="no-such-org/no-such-model")
    with pytest.raises(ValueError, match="precision"):
        pipeline("sentiment-analysis", precision="fp7")
    clf = pipeline("sentiment-analysis")
    with pytest.raises(ValueError, match="empty"):
        clf(["fine", "  "])
    with pytest.raises(ValueError, match="top_k"):
        clf("fine", top_k=0)
    with pytest.raises(ValueError, match="string"):
        clf([1, 2])
    zs = pipeline("zero-shot-classification")
    with pytest.raises(ValueError, match="candidate_labels"):
        zs("hello")
    with pytest.raises(ValueError, match="template"):
        zs("hello", candidate_labels=["a"], hypothesis_template="no slot")


def test_sentence_transformer_and_int8():
    st = lmkit.SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    v = st.encode(["a cat", "a kitten", "stock markets"])
    assert v.shape == (3, st.get_sentence_embedding_dimension())
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    q = pipeline("sentiment-analysis", precision="int8")
    assert {d["label"] for d in q(TEXTS)} <= {"POSITIVE", "NEGATIVE"}


def test_the_gil_is_released_while_rust_works():
    import threading
    import time

    clf = pipeline("sentiment-analysis")
    texts = ["I've been waiting for a HuggingFace course my whole life."] * 256
    ticks, stop = [0], threading.Event()

    def count():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=count)
    t.start()
    t0, c0 = time.perf_counter(), ticks[0]
    time.sleep(0.3)  # the counting thread alone: its rate
    rate = (ticks[0] - c0) / (time.perf_counter() - t0)
    t0, c0 = time.perf_counter(), ticks[0]
    clf(texts)
    secs, during = time.perf_counter() - t0, ticks[0] - c0
    stop.set()
    t.join()
    assert secs > 0.2, "too short a call to tell"
    # Held through the Rust call, the GIL would let the counter run only in the call's few
    # milliseconds of Python (about rate x 0.005); released, it counts through the whole call,
    # at a tenth of its solo rate even with both cores busy in Rust.
    assert during > 0.1 * rate * secs, (during, rate, secs)
