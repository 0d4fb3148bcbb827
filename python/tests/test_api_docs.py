"""Every public name, and every public method and property of the public classes, has a
docstring (the notebook's `?` and IDEs show them)."""

import inspect

import lmkit
import lmkit.metrics
import lmkit.optimizers
import lmkit.plots
from lmkit.modeling import SequenceClassificationModel
from lmkit.pipelines import (FeatureExtractionPipeline, SummarizationPipeline, TextClassificationPipeline,
                             TextGenerationPipeline, TranslationPipeline, ZeroShotClassificationPipeline)
from lmkit.tokenization import PreTrainedTokenizerFast


def public(obj):
    for name, member in vars(obj).items():
        if name.startswith("_") and name != "__call__":
            continue
        yield name, member


def missing_docs():
    missing = []
    modules = [lmkit, lmkit.metrics, lmkit.optimizers, lmkit.plots]
    classes = {SequenceClassificationModel, PreTrainedTokenizerFast, TextClassificationPipeline,
               ZeroShotClassificationPipeline, FeatureExtractionPipeline, TextGenerationPipeline,
               TranslationPipeline, SummarizationPipeline}
    for mod in modules:
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for n in names:
            obj = getattr(mod, n)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", "").split(".")[0] != "lmkit":
                continue
            if not inspect.getdoc(obj):
                missing.append(f"{mod.__name__}.{n}")
            if inspect.isclass(obj):
                classes.add(obj)
    for cls in classes:
        for name, member in public(cls):
            fn = member.fget if isinstance(member, property) else member
            if not callable(fn) or inspect.isclass(fn):
                continue
            if not (fn.__doc__ or "").strip():
                missing.append(f"{cls.__module__}.{cls.__name__}.{name}")
    return sorted(set(missing))


def test_every_public_name_has_a_docstring():
    assert missing_docs() == []
