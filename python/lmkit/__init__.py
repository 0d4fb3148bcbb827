"""lmkit: Hugging Face transformers' and datasets' names, run natively in Rust.

Change the import line of a transformers notebook and its cells run without torch::

    from lmkit import pipeline, AutoTokenizer, load_dataset
    classifier = pipeline("sentiment-analysis")
    classifier(["I have a dream.", "I hate this so much!"])

Every computation runs in Rust with the GIL released. Results are numpy arrays.
"""

from ._lmkit import __version__, fetch
from .datasets import ClassLabel, Dataset, DatasetDict, Sequence, Value, load_dataset
from .modeling import (
    AutoModel,
    AutoModelForSequenceClassification,
    BaseModelOutput,
    History,
    SentenceTransformer,
    SequenceClassifierOutput,
)
from .pipelines import Pipeline, pipeline
from .tokenization import AutoTokenizer, BatchEncoding
from .trainer import EvalPrediction, PredictionOutput, Trainer, TrainingArguments, TrainOutput

__all__ = [
    "__version__",
    "fetch",
    "AutoModel",
    "AutoModelForSequenceClassification",
    "AutoTokenizer",
    "BaseModelOutput",
    "BatchEncoding",
    "ClassLabel",
    "Dataset",
    "DatasetDict",
    "EvalPrediction",
    "History",
    "Pipeline",
    "PredictionOutput",
    "SentenceTransformer",
    "Sequence",
    "SequenceClassifierOutput",
    "TrainOutput",
    "Trainer",
    "TrainingArguments",
    "Value",
    "load_dataset",
    "pipeline",
]
