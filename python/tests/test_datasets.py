"""load_dataset / Dataset / DatasetDict: datasets' names and shapes, lmkit's seeded order."""

import numpy as np
import pytest

from lmkit import ClassLabel, Dataset, DatasetDict, load_dataset


def test_folder_of_splits(splits):
    dd = load_dataset(str(splits))
    assert isinstance(dd, DatasetDict)
    assert list(dd) == ["train", "validation", "test"]
    tr = dd["train"]
    assert len(tr) == 24 and tr.column_names == ["text", "label"]
    cl = tr.features["label"]
    assert isinstance(cl, ClassLabel) and cl.names == ["neg", "pos"]
    assert cl.int2str(tr[0]["label"]) == "pos"
    assert cl.str2int("neg") == 0
    assert isinstance(tr["label"], np.ndarray) and tr["label"].dtype == np.int64
    assert tr["text"][0].startswith("what a lovely")
    assert list(tr[:3]) == ["text", "label"] and len(tr[:3]["text"]) == 3


def test_emotion_features():
    em = load_dataset("emotion")
    assert em["train"].features["label"].names == ["sadness", "joy", "love", "anger", "fear", "surprise"]
    assert (len(em["train"]), len(em["validation"]), len(em["test"])) == (16000, 2000, 2000)


def test_shuffle_select_split_are_seeded(splits):
    tr = load_dataset(str(splits), split="train")
    a, b = tr.shuffle(seed=3), tr.shuffle(seed=3)
    assert list(a["text"]) == list(b["text"])
    assert list(a["text"]) != list(tr["text"])
    assert sorted(a["text"]) == sorted(tr["text"])
    sub = tr.select([5, 1])
    assert list(sub["text"]) == [tr["text"][5], tr["text"][1]]
    parts = tr.train_test_split(test_size=0.25, seed=0, stratify_by_column="label")
    assert (len(parts["train"]), len(parts["test"])) == (18, 6)
    assert sorted(parts["test"]["label"].tolist()) == [0, 0, 0, 1, 1, 1]


def test_map_batched_and_per_row(splits):
    tr = load_dataset(str(splits), split="train")
    seen = []

    def lengths(batch):
        seen.append(len(batch["text"]))
        return {"n_chars": [len(t) for t in batch["text"]]}

    out = tr.map(lengths, batched=True, batch_size=10)
    assert seen == [10, 10, 4]
    assert out["n_chars"].tolist() == [len(t) for t in tr["text"]]
    whole = tr.map(lambda b: {"upper": [t.upper() for t in b["text"]]}, batched=True, batch_size=None)
    assert whole["upper"][0] == tr["text"][0].upper()
    rows = tr.map(lambda r: {"twice": r["label"] * 2})
    assert rows["twice"].tolist() == (tr["label"] * 2).tolist()
    dropped = tr.map(lambda b: {"x": [1] * len(b["text"])}, batched=True, remove_columns=["text"])
    assert dropped.column_names == ["label", "x"]
    # a ClassLabel column that map rewrites with ids keeps its names
    kept = tr.map(lambda b: {"label": list(b["label"])}, batched=True)
    assert kept.features["label"].names == ["neg", "pos"]


def test_from_dict_and_pandas():
    ds = Dataset.from_dict({"text": ["a", "b"], "label": [1, 0]}, features={"label": ClassLabel(names=["x", "y"])})
    assert ds.features["label"].names == ["x", "y"]
    pd = pytest.importorskip("pandas")
    df = ds.to_pandas()
    assert list(df.columns) == ["text", "label"] and df["label"].tolist() == [1, 0]
    assert Dataset.from_pandas(df)["text"] == ["a", "b"]
    del pd


def test_bad_inputs(splits):
    tr = load_dataset(str(splits), split="train")
    with pytest.raises(KeyError, match="nope"):
        tr["nope"]
    with pytest.raises(IndexError):
        tr[1000]
    with pytest.raises(ValueError, match="rows"):
        tr.map(lambda b: {"x": [1]}, batched=True, batch_size=5)
    with pytest.raises(TypeError, match='column "x"'):
        Dataset.from_dict({"x": [object(), object()]})
    with pytest.raises(ValueError, match="out of range"):
        Dataset.from_dict({"label": [0, 3]}, features={"label": ClassLabel(names=["a", "b"])})
    with pytest.raises(ValueError, match="test_size"):
        tr.train_test_split(test_size=1.5, seed=0)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset("/no/such/folder")
    with pytest.raises(ValueError, match="no split"):
        load_dataset(str(splits), split="dev")
