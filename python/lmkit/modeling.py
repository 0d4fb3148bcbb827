"""``AutoModel``, ``AutoModelForSequenceClassification`` (with the Keras ``compile`` / ``fit``
/ ``predict`` shape of the course's TF cells) and sentence-transformers' ``SentenceTransformer``."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _lmkit, _training
from .datasets import BatchedView, Dataset


class ModelOutput(dict):
    """A dict whose keys are also attributes (transformers' ModelOutput)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class BaseModelOutput(ModelOutput):
    """``last_hidden_state``: (batch, seq, hidden) float32."""


class SequenceClassifierOutput(ModelOutput):
    """``logits``: (batch, num_labels) float32; ``loss`` when labels were given."""


def _inputs(input_ids: Any, attention_mask: Any, token_type_ids: Any, kwargs: Dict[str, Any]):
    if input_ids is None:
        raise ValueError("give input_ids (e.g. model(**tokenizer(texts, padding=True, return_tensors='np')))")
    extra = set(kwargs) - {"return_dict", "output_hidden_states", "output_attentions"}
    if extra:
        raise ValueError(f"unexpected inputs: {sorted(extra)}")

    def arr(x: Any, name: str) -> Optional[np.ndarray]:
        if x is None:
            return None
        a = np.asarray(x)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D (batch, seq), got shape {a.shape}")
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer ids, got dtype {a.dtype}")
        return np.ascontiguousarray(a, dtype=np.int64)

    return arr(input_ids, "input_ids"), arr(attention_mask, "attention_mask"), arr(token_type_ids, "token_type_ids")


class _BaseModel:
    def __init__(self, native: "_lmkit.Encoder"):
        self._m = native

    @property
    def config(self) -> Dict[str, Any]:
        return json.loads(self._m.config)

    @property
    def name_or_path(self) -> str:
        return self._m.name_or_path

    def __call__(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None, **kw: Any) -> BaseModelOutput:
        ids, mask, types = _inputs(input_ids, attention_mask, token_type_ids, kw)
        return BaseModelOutput(last_hidden_state=self._m.forward(ids, mask, types))

    def __repr__(self) -> str:
        return f"AutoModel({self.name_or_path!r})"


class AutoModel:
    """``AutoModel.from_pretrained(id)``: the bare encoder; calling it gives ``last_hidden_state``."""

    def __init__(self) -> None:
        raise TypeError("use AutoModel.from_pretrained(id)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, os.PathLike], precision: str = "fp32", **kwargs: Any) -> _BaseModel:
        """Loads an encoder from the store or a folder; ``precision='bf16'`` or ``'int8'`` speeds up inference."""
        return _BaseModel(_lmkit.Encoder.from_pretrained(os.fspath(pretrained_model_name_or_path), precision))


class History:
    """What Keras' ``fit`` returns: ``history`` maps a metric to its value per epoch."""

    def __init__(self, history: Dict[str, List[float]], run: Dict[str, Any], output_dir: str):
        self.history, self.run, self.output_dir = history, run, output_dir

    def __repr__(self) -> str:
        return f"History({self.history})"


def _split(x: Any) -> tuple:
    if isinstance(x, BatchedView):
        return x.dataset, x.batch_size
    if isinstance(x, Dataset):
        return x, None
    raise TypeError(f"expected a tokenized lmkit Dataset (or dataset.to_tf_dataset(...)), got {type(x).__name__}")


class SequenceClassificationModel:
    """A classifier: an encoder with a classification head (``AutoModelForSequenceClassification``)."""

    def __init__(self, native: "_lmkit.SequenceClassifier", seed: int):
        self._m = native
        self.seed = seed
        self._compiled: Optional[Dict[str, Any]] = None

    # -- transformers ---------------------------------------------------------------------
    @property
    def config(self) -> Dict[str, Any]:
        """The config.json a save writes (labels included)."""
        return json.loads(self._m.config)

    @property
    def num_labels(self) -> int:
        """The number of classes."""
        return len(self._m.labels)

    @property
    def id2label(self) -> Dict[int, str]:
        """Class id to name."""
        return dict(enumerate(self._m.labels))

    @property
    def name_or_path(self) -> str:
        """The folder the model was loaded from."""
        return self._m.name_or_path

    def set_labels(self, names: Sequence[str]) -> None:
        """Names the classes (saved as id2label)."""
        self._m.labels = list(names)

    def __call__(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
                 labels: Any = None, **kw: Any) -> SequenceClassifierOutput:
        """A forward pass: ``SequenceClassifierOutput(logits)``, with the mean cross-entropy ``loss`` when ``labels`` are given."""
        ids, mask, types = _inputs(input_ids, attention_mask, token_type_ids, kw)
        logits = self._m.forward(ids, mask, types)
        out = SequenceClassifierOutput(logits=logits)
        if labels is not None:
            y = np.asarray(labels).reshape(-1)
            if len(y) != len(logits):
                raise ValueError(f"{len(y)} labels for {len(logits)} rows")
            z = logits - logits.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            out["loss"] = float(-logp[np.arange(len(y)), y.astype(int)].mean())
        return out

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> None:
        """config.json, model.safetensors and the tokenizer files; each written atomically."""
        self._m.save_pretrained(os.fspath(save_directory))

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every weight by its checkpoint name, as float32 arrays (copies)."""
        return dict(self._m.state_dict())

    def __repr__(self) -> str:
        return f"AutoModelForSequenceClassification({self.name_or_path!r}, num_labels={self.num_labels})"

    # -- Keras ----------------------------------------------------------------------------
    def compile(self, optimizer: Any = None, loss: Any = None, metrics: Optional[List[str]] = None, **kw: Any) -> None:
        """Keras' compile. The loss is always cross-entropy on the logits (what
        ``sparse_categorical_crossentropy`` with ``from_logits=True`` computes)."""
        from .optimizers import Adam

        if optimizer is None or optimizer == "adam":
            optimizer = Adam()
        if not isinstance(optimizer, Adam):
            raise ValueError(f"optimizer must be lmkit.optimizers.Adam / AdamW, got {optimizer!r}")
        for m in metrics or []:
            if m not in ("accuracy", "acc"):
                raise ValueError(f"metric {m!r}: lmkit's fit reports accuracy (metrics=['accuracy'])")
        self._compiled = {"optimizer": optimizer, "metrics": list(metrics or [])}

    def fit(self, x: Any, validation_data: Any = None, epochs: int = 1, batch_size: Optional[int] = None,
            shuffle: bool = True, output_dir: Optional[str] = None, verbose: Union[int, str] = "auto",
            **kw: Any) -> History:
        """Trains as ``lmkit finetune`` does (seeded shuffles, batches grouped by length). A
        batched view's batch size wins over ``batch_size``; 32 when neither is given."""
        if self._compiled is None:
            self.compile()
        assert self._compiled is not None
        train, view_bs = _split(x)
        val = _split(validation_data)[0] if validation_data is not None else None
        bs = view_bs or batch_size or 32
        out_dir = output_dir or tempfile.mkdtemp(prefix="lmkit-fit-")
        cfg = _training.train_config(
            epochs=int(epochs), batch_size=int(bs), eval_batch_size=max(int(bs), 128),
            optimizer=self._compiled["optimizer"].config(), seed=self.seed, overwrite=True,
        )
        run = _training.run(self._m, train._d, val._d if val else None, cfg, out_dir, False,
                            disable_progress=verbose == 0)
        h: Dict[str, List[float]] = {"loss": []}
        for e in run["history"]:
            h["loss"].append(e["train_loss"])
            for k in ("val_loss", "val_accuracy", "val_f1_macro"):
                if e.get(k) is not None:
                    h.setdefault(k, []).append(e[k])
        return History(h, run, out_dir)

    def predict(self, x: Any, batch_size: Optional[int] = None, **kw: Any) -> SequenceClassifierOutput:
        """Logits for every row, in order."""
        ds, view_bs = _split(x)
        logits, _ = _lmkit.predict(self._m, ds._d, int(view_bs or batch_size or 128))
        return SequenceClassifierOutput(logits=logits)

    def evaluate(self, x: Any, batch_size: Optional[int] = None, **kw: Any) -> Union[float, List[float]]:
        """The loss, and the accuracy when compiled with metrics=['accuracy']."""
        ds, view_bs = _split(x)
        logits, loss = _lmkit.predict(self._m, ds._d, int(view_bs or batch_size or 128))
        if loss is None:
            raise ValueError("evaluate needs a 'label' column")
        if self._compiled and self._compiled["metrics"]:
            acc = float((logits.argmax(axis=1) == np.asarray(ds["label"])).mean())
            return [loss, acc]
        return loss


class AutoModelForSequenceClassification:
    """``from_pretrained(id, num_labels=6)``: a pretrained encoder with a new head (seeded,
    trainable); ``from_pretrained(finetuned_id)``: a classifier as saved."""

    def __init__(self) -> None:
        raise TypeError("use AutoModelForSequenceClassification.from_pretrained(id, num_labels=N)")

    @staticmethod
    def from_pretrained(
        pretrained_model_name_or_path: Union[str, os.PathLike],
        num_labels: Optional[int] = None,
        id2label: Optional[Dict[int, str]] = None,
        label2id: Optional[Dict[str, int]] = None,
        seed: int = 42,
        precision: str = "fp32",
        **kwargs: Any,
    ) -> SequenceClassificationModel:
        """A classifier: with ``num_labels`` (or ``id2label``) a new, seeded head on a pretrained encoder; without, a fine-tuned checkpoint (or transformers' default 2-label head on a bare encoder)."""
        path = os.fspath(pretrained_model_name_or_path)
        labels: Optional[List[str]] = None
        if id2label is not None:
            labels = [id2label[i] for i in sorted(int(k) for k in id2label)]
            if num_labels is not None and num_labels != len(labels):
                raise ValueError(f"num_labels={num_labels} but id2label has {len(labels)} entries")
        elif num_labels is not None:
            if num_labels < 1:
                raise ValueError("num_labels must be at least 1")
            labels = [f"LABEL_{i}" for i in range(num_labels)]
        try:
            native = _lmkit.SequenceClassifier.from_pretrained(path, labels, seed, precision)
        except RuntimeError as e:
            if labels is None and "has no id2label" in str(e):
                # A bare encoder without num_labels: transformers' default head of 2 labels.
                native = _lmkit.SequenceClassifier.from_pretrained(path, ["LABEL_0", "LABEL_1"], seed, precision)
            else:
                raise
        return SequenceClassificationModel(native, seed)


# TFAutoModelForSequenceClassification in the course: the same model, Keras methods included.
TFAutoModelForSequenceClassification = AutoModelForSequenceClassification


class SentenceTransformer:
    """sentence-transformers' ``SentenceTransformer(id).encode(texts)``: (n, dim) float32."""

    def __init__(self, model_name_or_path: Union[str, os.PathLike], precision: str = "fp32", **kwargs: Any):
        self._m = _lmkit.SentenceEncoder(os.fspath(model_name_or_path), precision)

    def encode(self, sentences: Union[str, Sequence[str]], prompt_name: Optional[str] = None, **kw: Any) -> np.ndarray:
        """Sentence vectors, (n, dim) float32 (one vector for a single string)."""
        single = isinstance(sentences, str)
        out = self._m.encode([sentences] if single else list(sentences), prompt_name)
        return out[0] if single else out

    def get_sentence_embedding_dimension(self) -> int:
        """The vector size."""
        return self._m.get_sentence_embedding_dimension()

    @property
    def max_seq_length(self) -> int:
        """Longer texts are cut to this many tokens."""
        return self._m.max_seq_length
