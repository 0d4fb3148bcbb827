"""``pipeline(task, model=None)``: transformers' pipelines, with their call shapes and results."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _lmkit

# The library's task list (lmkit::pipelines::TASKS).
TASKS = tuple(_lmkit.TASKS)

_UNSET: Any = object()


def _texts(inputs: Union[str, Sequence[str]], what: str = "inputs") -> tuple:
    if isinstance(inputs, str):
        return [inputs], True
    texts = list(inputs)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{what} must be a string or a list of strings")
    return texts, False


class Pipeline:
    """A loaded pipeline; call it on a text or a list of texts."""

    def __init__(self, task: str, native: "_lmkit.Pipeline"):
        self.task = task
        self._p = native

    @property
    def model(self) -> str:
        """Which model answers (for zero-shot, and by which method)."""
        return self._p.describe()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={self.model!r})"


class TextClassificationPipeline(Pipeline):
    def __call__(self, inputs: Union[str, Sequence[str]], top_k: Optional[int] = _UNSET, **kw: Any) -> list:
        """``[{'label', 'score'}]``, one per text; with ``top_k=N`` (None: all) a list per text."""
        texts, single = _texts(inputs)
        if top_k is not _UNSET and top_k is not None and top_k < 1:
            raise ValueError("top_k must be at least 1 (or None for all labels)")
        rows = self._p.classify(texts)
        if top_k is _UNSET:
            return [{"label": r[0][0], "score": r[0][1]} for r in rows]
        out = [[{"label": l, "score": s} for l, s in (r if top_k is None else r[:top_k])] for r in rows]
        return out[0] if single else out


class ZeroShotClassificationPipeline(Pipeline):
    def __call__(
        self,
        sequences: Union[str, Sequence[str]],
        candidate_labels: Union[str, Sequence[str], None] = None,
        hypothesis_template: str = "This example is {}.",
        multi_label: bool = False,
        **kw: Any,
    ) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """``{'sequence', 'labels', 'scores'}`` per text, labels best first."""
        if candidate_labels is None:
            raise ValueError("zero-shot-classification needs candidate_labels=[...]")
        if isinstance(candidate_labels, str):
            candidate_labels = [l.strip() for l in candidate_labels.split(",") if l.strip()]
        texts, single = _texts(sequences, "sequences")
        rows = self._p.zero_shot(texts, list(candidate_labels), hypothesis_template, bool(multi_label))
        out = [{"sequence": s, "labels": list(l), "scores": list(sc)} for s, l, sc in rows]
        return out[0] if single else out


class FeatureExtractionPipeline(Pipeline):
    def __call__(self, inputs: Union[str, Sequence[str]], return_tensors: bool = False, **kw: Any) -> Any:
        """transformers' output: per text, the token vectors as (1, tokens, hidden) — nested
        lists, or numpy arrays with ``return_tensors=True``."""
        texts, single = _texts(inputs)
        out = [e[None, :, :] for _, e in self._p.token_embeddings(texts)]
        if not return_tensors:
            out = [e.tolist() for e in out]
        return out[0] if single else out

    def encode(self, inputs: Union[str, Sequence[str]]) -> np.ndarray:
        """Pooled sentence vectors, (n, hidden), as sentence-transformers and ``lmkit embed``."""
        texts, single = _texts(inputs)
        v = self._p.embed(texts)
        return v[0] if single else v


class TextGenerationPipeline(Pipeline):
    def __call__(
        self,
        text_inputs: Union[str, Sequence[str]],
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = 50,
        top_p: Optional[float] = 1.0,
        repetition_penalty: float = 1.0,
        return_full_text: bool = True,
        seed: int = 42,
        chat: bool = False,
        **kw: Any,
    ) -> list:
        """``[{'generated_text'}]`` per prompt: greedy unless ``do_sample=True``."""
        prompts, single = _texts(text_inputs, "text_inputs")
        out = []
        for p in prompts:
            new = self._p.generate(
                p, int(max_new_tokens), float(temperature) if do_sample else 0.0,
                top_k if do_sample else None, top_p if do_sample and top_p is not None and top_p < 1.0 else None,
                float(repetition_penalty), int(seed), bool(chat),
            )
            out.append([{"generated_text": (p + new) if return_full_text and not chat else new}])
        return out[0] if single else out


class _Text2Text(Pipeline):
    key = ""

    def __init__(self, task: str, native: "_lmkit.Pipeline", src: str = "en", tgt: str = "ko"):
        super().__init__(task, native)
        self.src, self.tgt = src, tgt

    def _run(self, inputs: Union[str, Sequence[str]], src: str, tgt: str, max_new_tokens: Optional[int],
             num_beams: Optional[int]) -> list:
        texts, _ = _texts(inputs)
        return [{self.key: self._p.text2text(t, src, tgt, max_new_tokens, num_beams)} for t in texts]


class TranslationPipeline(_Text2Text):
    key = "translation_text"

    def __call__(self, inputs: Union[str, Sequence[str]], src_lang: Optional[str] = None, tgt_lang: Optional[str] = None,
                 max_new_tokens: Optional[int] = None, num_beams: Optional[int] = None, **kw: Any) -> list:
        """``[{'translation_text'}]`` per text (language codes: "en", "ko", "fr", ...)."""
        return self._run(inputs, src_lang or self.src, tgt_lang or self.tgt, max_new_tokens, num_beams)


class SummarizationPipeline(_Text2Text):
    key = "summary_text"

    def __call__(self, inputs: Union[str, Sequence[str]], max_new_tokens: Optional[int] = None,
                 num_beams: Optional[int] = None, **kw: Any) -> list:
        """``[{'summary_text'}]`` per text."""
        return self._run(inputs, "en", "en", max_new_tokens, num_beams)


_CLASSES = {
    "sentiment-analysis": TextClassificationPipeline,
    "text-classification": TextClassificationPipeline,
    "zero-shot-classification": ZeroShotClassificationPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "text-generation": TextGenerationPipeline,
}


def pipeline(task: str, model: Optional[str] = None, *, precision: str = "fp32", batch_size: Optional[int] = None,
             **kwargs: Any) -> Pipeline:
    """A pipeline for a task (``sentiment-analysis``, ``text-classification``,
    ``zero-shot-classification``, ``feature-extraction``, ``text-generation``, ``translation``
    or ``translation_xx_to_yy``, ``summarization``). ``model=None`` takes the task's default;
    ``precision="bf16"`` or ``"int8"`` speeds up the encoder tasks on the CPU."""
    device = kwargs.pop("device", None)
    if device not in (None, -1, "cpu"):
        raise ValueError(f"device={device!r}: lmkit runs on the CPU (device='cpu' or -1)")
    for harmless in ("framework", "trust_remote_code", "use_fast"):
        kwargs.pop(harmless, None)
    if kwargs:
        raise TypeError(f"pipeline() got unexpected keyword arguments: {sorted(kwargs)}")
    m = re.fullmatch(r"translation_([a-z]{2,3})_to_([a-z]{2,3})", task)
    if m:
        return TranslationPipeline("translation", _lmkit.Pipeline("translation", model, precision, batch_size),
                                   m.group(1), m.group(2))
    if task == "translation":
        return TranslationPipeline(task, _lmkit.Pipeline(task, model, precision, batch_size))
    if task == "summarization":
        return SummarizationPipeline(task, _lmkit.Pipeline(task, model, precision, batch_size))
    cls = _CLASSES.get(task)
    if cls is None:
        raise ValueError(f"unknown task {task!r}; available: {', '.join(TASKS)} (or translation_xx_to_yy)")
    return cls(task, _lmkit.Pipeline(task, model, precision, batch_size))
