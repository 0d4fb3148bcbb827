"""AutoTokenizer: ids equal to the CLI's, and transformers' padding / truncation / tensors rules."""

import numpy as np
import pytest

from conftest import cli_json
from lmkit import AutoTokenizer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["Hello world", "I have a dream.", "She was so happy, wasn't she?", "한국어 문장도 됩니다"]


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(MODEL)


def test_ids_equal_the_cli(tok):
    want = cli_json("tokenize", "--json", "--model", MODEL, *TEXTS)
    got = tok(TEXTS)
    for i, w in enumerate(want):
        assert got["input_ids"][i] == w["input_ids"]
        assert got["attention_mask"][i] == w["attention_mask"]
        assert got.tokens(i) == w["tokens"]


def test_single_text_gives_flat_lists(tok):
    enc = tok("Hello world")
    assert enc["input_ids"] == [101, 7592, 2088, 102]
    assert enc.input_ids == enc["input_ids"]
    assert tok.decode(enc["input_ids"], skip_special_tokens=True) == "hello world"
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "hello", "world", "[SEP]"]


def test_padding_and_truncation_follow_transformers(tok):
    # No padding, no truncation by default: rows keep their lengths.
    plain = tok(TEXTS)
    lens = [len(r) for r in plain["input_ids"]]
    assert len(set(lens)) > 1
    padded = tok(TEXTS, padding=True)
    assert {len(r) for r in padded["input_ids"]} == {max(lens)}
    assert padded["input_ids"][0][lens[0]:] == [tok.pad_token_id] * (max(lens) - lens[0])
    assert padded["attention_mask"][0] == [1] * lens[0] + [0] * (max(lens) - lens[0])
    fixed = tok(TEXTS, padding="max_length", max_length=6, truncation=True)
    assert all(len(r) == 6 for r in fixed["input_ids"])
    assert all(r[-1] in (102, tok.pad_token_id) for r in fixed["input_ids"])
    # padding to a length without truncation pads the short rows and leaves the long ones.
    loose = tok(TEXTS, padding="max_length", max_length=6, truncation=False)
    assert [len(r) for r in loose["input_ids"]] == [max(l, 6) for l in lens]


def test_numpy_tensors(tok):
    enc = tok(TEXTS, padding=True, truncation=True, return_tensors="np")
    assert set(enc) == {"input_ids", "token_type_ids", "attention_mask"}
    assert enc["input_ids"].dtype == np.int64 and enc["input_ids"].shape[0] == len(TEXTS)
    with pytest.raises(ValueError, match="padding=True"):
        tok(TEXTS, return_tensors="np")
    with pytest.raises(ValueError, match="numpy"):
        tok(TEXTS, padding=True, return_tensors="pt")


def test_pairs(tok):
    enc = tok("A man is eating.", "Someone eats.")
    sep = enc["input_ids"].index(102)
    assert enc["token_type_ids"][: sep + 1] == [0] * (sep + 1)
    assert set(enc["token_type_ids"][sep + 1 :]) == {1}


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="padding"):
        tok("x", padding="sideways")
    with pytest.raises(ValueError, match="max_length"):
        tok("x", max_length=0, truncation=True)
    with pytest.raises(ValueError, match="string"):
        tok([1, 2])
    with pytest.raises(FileNotFoundError, match="not found"):
        AutoTokenizer.from_pretrained("no-such-org/no-such-model")
