"""``AutoTokenizer``: transformers' fast tokenizer call shape over the ``tokenizers`` crate."""

from __future__ import annotations

import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _lmkit

TextInput = Union[str, Sequence[str]]


class BatchEncoding(dict):
    """What a tokenizer call returns: a dict of ``input_ids``, ``attention_mask`` (and
    ``token_type_ids`` where the model takes them), also readable as attributes."""

    def __init__(self, data: Dict[str, Any], tokens: Optional[List[List[str]]] = None):
        super().__init__(data)
        self._tokens = tokens

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def tokens(self, batch_index: int = 0) -> List[str]:
        """The tokens of one encoded text (special tokens and padding included)."""
        if self._tokens is None:
            raise ValueError("this encoding has no tokens")
        return self._tokens[batch_index]


def _padding_name(padding: Union[bool, str]) -> str:
    if padding is True or padding == "longest":
        return "longest"
    if padding is False or padding is None or padding == "do_not_pad":
        return "do_not_pad"
    if padding == "max_length":
        return "max_length"
    raise ValueError(f"padding={padding!r}: use True / 'longest', 'max_length' or False")


class PreTrainedTokenizerFast:
    """A loaded tokenizer (transformers' ``PreTrainedTokenizerFast``)."""

    def __init__(self, native: "_lmkit.Tokenizer"):
        self._t = native

    @property
    def model_input_names(self) -> List[str]:
        """What the model takes, in transformers' order."""
        return list(self._t.model_input_names)

    @property
    def model_max_length(self) -> int:
        """The length ``truncation=True`` cuts to when no ``max_length`` is given."""
        return self._t.model_max_length

    @property
    def pad_token_id(self) -> int:
        """The id padding uses."""
        return self._t.pad_token_id

    @property
    def vocab_size(self) -> int:
        """The number of tokens in the vocabulary."""
        return self._t.vocab_size

    @property
    def name_or_path(self) -> str:
        """The folder the tokenizer was loaded from."""
        return self._t.name_or_path

    def __len__(self) -> int:
        return self._t.vocab_size

    def __repr__(self) -> str:
        return (
            f"PreTrainedTokenizerFast(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, model_input_names={self.model_input_names})"
        )

    def __call__(
        self,
        text: TextInput,
        text_pair: Optional[TextInput] = None,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        return_tensors: Optional[str] = None,
        add_special_tokens: bool = True,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
    ) -> BatchEncoding:
        """Encodes one text or a batch, as ``tokenizer(texts, padding=True, truncation=True)``.

        ``return_tensors="np"`` gives int64 arrays (rows must have equal lengths: pad).
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("text must be a string or a list of strings")
        pairs = None
        if text_pair is not None:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
        pad = _padding_name(padding)
        if pad == "max_length" and max_length is None:
            max_length = self.model_max_length
        # transformers truncates only when asked; truncation=None with max_length means True.
        trunc = bool(truncation) if truncation is not None else max_length is not None
        if truncation not in (None, True, False, "longest_first", "do_not_truncate"):
            raise ValueError(f"truncation={truncation!r}: use True / 'longest_first' or False")
        if truncation == "do_not_truncate":
            trunc = False
        if max_length is not None and max_length < 1:
            raise ValueError("max_length must be at least 1")
        enc = self._t.encode(texts, pairs, pad, trunc, max_length, add_special_tokens)
        names = self.model_input_names
        keys = ["input_ids"]
        want_types = return_token_type_ids if return_token_type_ids is not None else "token_type_ids" in names
        if want_types:
            keys.append("token_type_ids")
        want_mask = return_attention_mask if return_attention_mask is not None else True
        if want_mask:
            keys.append("attention_mask")
        data: Dict[str, Any] = {k: enc[k] for k in keys}
        if return_tensors is not None:
            if return_tensors != "np":
                raise ValueError(
                    f"return_tensors={return_tensors!r}: lmkit returns numpy arrays (return_tensors='np'); "
                    "there is no torch or tensorflow here"
                )
            lens = {len(r) for r in data["input_ids"]}
            if len(lens) > 1:
                raise ValueError(
                    "Unable to create tensor: the rows have different lengths. Use padding=True "
                    "(and truncation=True) to make a batch of equal lengths."
                )
            data = {k: np.asarray(v, dtype=np.int64).reshape(len(texts), -1) for k, v in data.items()}
        elif single:
            data = {k: v[0] for k, v in data.items()}
        return BatchEncoding(data, enc["tokens"])

    def encode(self, text: str, text_pair: Optional[str] = None, add_special_tokens: bool = True, **kw: Any) -> List[int]:
        """Token ids of one text."""
        return list(self(text, text_pair, add_special_tokens=add_special_tokens, **kw)["input_ids"])

    def tokenize(self, text: str) -> List[str]:
        """Tokens of one text, without special tokens."""
        return self._t.encode([text], None, "do_not_pad", False, None, False)["tokens"][0]

    def decode(self, token_ids: Any, skip_special_tokens: bool = False) -> str:
        """Text of token ids; ``skip_special_tokens`` drops [CLS], [SEP], padding..."""
        ids = np.asarray(token_ids).reshape(-1).tolist()
        return self._t.decode([int(i) for i in ids], skip_special_tokens)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False) -> List[str]:
        """``decode`` for each row."""
        return [self.decode(s, skip_special_tokens) for s in sequences]

    def convert_ids_to_tokens(self, ids: Union[int, Sequence[int]]) -> Union[Optional[str], List[Optional[str]]]:
        """Token strings of ids (None for an id outside the vocabulary)."""
        if isinstance(ids, (int, np.integer)):
            return self._t.id_to_token(int(ids))
        return [self._t.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[Optional[int], List[Optional[int]]]:
        """Ids of token strings (None for a token outside the vocabulary)."""
        if isinstance(tokens, str):
            return self._t.token_to_id(tokens)
        return [self._t.token_to_id(t) for t in tokens]

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> List[str]:
        """Copies the tokenizer's files into ``save_directory``."""
        os.makedirs(save_directory, exist_ok=True)
        out = []
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
            src = os.path.join(self.name_or_path, name)
            if os.path.isfile(src):
                dst = os.path.join(save_directory, name)
                shutil.copyfile(src, dst)
                out.append(dst)
        return out


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(id)``: a store id (fetched on first use) or a folder."""

    def __init__(self) -> None:
        raise TypeError("use AutoTokenizer.from_pretrained(id)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, os.PathLike], **kwargs: Any) -> PreTrainedTokenizerFast:
        """Loads the tokenizer of a store id (fetched on first use) or a model folder."""
        return PreTrainedTokenizerFast(_lmkit.Tokenizer.from_pretrained(os.fspath(pretrained_model_name_or_path)))
