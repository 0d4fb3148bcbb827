"""transformers' ``Trainer`` and ``TrainingArguments``, on lmkit's trainer (the one
``lmkit finetune`` runs): the same settings give the same weights."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from . import _lmkit, _training
from .datasets import Dataset
from .modeling import SequenceClassificationModel


@dataclass
class TrainingArguments:
    """The settings lmkit's trainer honours, with transformers' names and defaults, except
    ``group_by_length`` (True: batches of similar lengths, as ``lmkit finetune``) and
    ``save_total_limit`` (2)."""

    output_dir: str = "trainer_output"
    num_train_epochs: int = 3
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler_type: str = "linear"
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: Optional[float] = 1.0
    gradient_accumulation_steps: int = 1
    max_steps: int = -1
    seed: int = 42
    group_by_length: bool = True
    save_steps: Optional[int] = None
    save_total_limit: Optional[int] = 2
    overwrite_output_dir: bool = False
    disable_tqdm: bool = False
    eval_strategy: str = "no"
    report_to: Any = None
    logging_steps: Any = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if float(self.num_train_epochs) != int(self.num_train_epochs):
            raise ValueError("num_train_epochs must be a whole number here")
        self.num_train_epochs = int(self.num_train_epochs)
        if self.warmup_steps:
            raise ValueError("warmup_steps: give warmup_ratio instead (a fraction of all steps)")

    def to_config(self) -> Dict[str, Any]:
        """These settings as lmkit's TrainConfig (checked here, with the argument named on error)."""
        return _training.train_config(
            epochs=self.num_train_epochs,
            batch_size=self.per_device_train_batch_size,
            eval_batch_size=self.per_device_eval_batch_size,
            optimizer={"lr": self.learning_rate, "beta1": self.adam_beta1, "beta2": self.adam_beta2,
                       "eps": self.adam_epsilon, "weight_decay": self.weight_decay},
            schedule=self.lr_scheduler_type,
            warmup_ratio=self.warmup_ratio,
            max_grad_norm=self.max_grad_norm if self.max_grad_norm else None,
            grad_accum=self.gradient_accumulation_steps,
            seed=self.seed,
            bucket_by_length=self.group_by_length,
            max_steps=self.max_steps if self.max_steps > 0 else None,
            overwrite=self.overwrite_output_dir,
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit or 2,
        )


@dataclass
class TrainOutput:
    global_step: int
    training_loss: float
    metrics: Dict[str, Any]


@dataclass
class EvalPrediction:
    predictions: np.ndarray
    label_ids: Optional[np.ndarray]


@dataclass
class PredictionOutput:
    predictions: np.ndarray
    label_ids: Optional[np.ndarray]
    metrics: Dict[str, float]


class Trainer:
    """``Trainer(model, args, train_dataset, eval_dataset).train()``: the datasets are
    tokenized splits with a ``label`` column (``dataset.map(tokenize, batched=True)``)."""

    def __init__(
        self,
        model: SequenceClassificationModel,
        args: Optional[TrainingArguments] = None,
        train_dataset: Optional[Dataset] = None,
        eval_dataset: Optional[Dataset] = None,
        compute_metrics: Optional[Callable[[EvalPrediction], Dict[str, float]]] = None,
        tokenizer: Any = None,
        processing_class: Any = None,
        data_collator: Any = None,
    ):
        if not isinstance(model, SequenceClassificationModel):
            raise TypeError("model must come from AutoModelForSequenceClassification.from_pretrained")
        self.model, self.args = model, args or TrainingArguments()
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.compute_metrics = compute_metrics
        self.state: Dict[str, Any] = {"log_history": []}
        self._label_names()

    def _label_names(self) -> None:
        # A new head named LABEL_0.. takes the class names of the training split's ClassLabel.
        ds = self.train_dataset
        if ds is None or "label" not in ds.features:
            return
        f = ds.features["label"]
        names = getattr(f, "names", None)
        if names and len(names) == self.model.num_labels and all(
            l == f"LABEL_{i}" for i, l in self.model.id2label.items()
        ):
            self.model.set_labels(names)

    def train(self, resume_from_checkpoint: Any = None) -> TrainOutput:
        """Trains; ``resume_from_checkpoint=True`` continues the newest checkpoint in output_dir."""
        if self.train_dataset is None:
            raise ValueError("Trainer.train needs train_dataset")
        out = self.args.output_dir
        resume = bool(resume_from_checkpoint)
        if isinstance(resume_from_checkpoint, str) and os.path.abspath(os.path.dirname(os.path.dirname(resume_from_checkpoint))) != os.path.abspath(out):
            raise ValueError("resume_from_checkpoint: give True (the newest checkpoint in output_dir)")
        ckpts = os.path.join(out, "checkpoints")
        if not resume and not self.args.overwrite_output_dir and os.path.isdir(ckpts) and os.listdir(ckpts):
            raise ValueError(
                f"{out} holds another run's checkpoints: pass resume_from_checkpoint=True to continue it, "
                "TrainingArguments(overwrite_output_dir=True) to start over, or another output_dir"
            )
        eval_ds = self.eval_dataset if self.args.eval_strategy != "no" else None
        run = _training.run(self.model._m, self.train_dataset._d, eval_ds._d if eval_ds else None,
                            self.args.to_config(), out, resume, disable_progress=self.args.disable_tqdm)
        hist = run["history"]
        self.state["log_history"] = hist
        self.state["global_step"] = run["global_step"]
        loss = float(np.mean([h["train_loss"] for h in hist])) if hist else float("nan")
        return TrainOutput(run["global_step"], loss, {"train_loss": loss, "stopped": run["reason"]})

    def _predict(self, ds: Dataset, prefix: str) -> PredictionOutput:
        logits, loss = _lmkit.predict(self.model._m, ds._d, self.args.per_device_eval_batch_size)
        labels = np.asarray(ds["label"]) if "label" in ds.column_names else None
        metrics: Dict[str, float] = {}
        if loss is not None:
            metrics[f"{prefix}_loss"] = loss
        if labels is not None:
            metrics[f"{prefix}_accuracy"] = float((logits.argmax(axis=1) == labels).mean())
        if self.compute_metrics is not None:
            for k, v in self.compute_metrics(EvalPrediction(logits, labels)).items():
                metrics[k if k.startswith(prefix + "_") else f"{prefix}_{k}"] = v
        return PredictionOutput(logits, labels, metrics)

    def evaluate(self, eval_dataset: Optional[Dataset] = None) -> Dict[str, float]:
        """``eval_loss``, ``eval_accuracy`` and what ``compute_metrics`` adds, on eval_dataset."""
        ds = eval_dataset or self.eval_dataset
        if ds is None:
            raise ValueError("Trainer.evaluate needs eval_dataset")
        return self._predict(ds, "eval").metrics

    def predict(self, test_dataset: Dataset) -> PredictionOutput:
        """Logits, labels and ``test_*`` metrics for a tokenized split."""
        return self._predict(test_dataset, "test")

    def save_model(self, output_dir: Optional[str] = None) -> None:
        """Saves the model (default: ``output_dir/model``)."""
        self.model.save_pretrained(output_dir or os.path.join(self.args.output_dir, "model"))
