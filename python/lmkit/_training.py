"""The one training path that ``Trainer.train`` and Keras' ``model.fit`` share."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from . import _lmkit
from ._progress import Progress


def train_config(
    *,
    epochs: int,
    batch_size: int,
    eval_batch_size: int,
    optimizer: Dict[str, float],
    schedule: str = "constant",
    warmup_ratio: float = 0.0,
    max_grad_norm: Optional[float] = None,
    grad_accum: int = 1,
    seed: int = 42,
    bucket_by_length: bool = True,
    max_steps: Optional[int] = None,
    overwrite: bool = False,
    save_steps: Optional[int] = None,
    save_total_limit: int = 2,
    early_stopping: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                    ("grad_accum", grad_accum), ("save_total_limit", save_total_limit)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if schedule not in ("constant", "linear", "cosine"):
        raise ValueError(f"lr_scheduler_type={schedule!r}: use 'constant', 'linear' or 'cosine'")
    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm}")
    if max_steps is not None and max_steps < 1:
        max_steps = None
    if save_steps is not None and save_steps < 1:
        raise ValueError(f"save_steps must be >= 1, got {save_steps}")
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "schedule": schedule,
        "warmup_ratio": warmup_ratio,
        "max_grad_norm": max_grad_norm,
        "grad_accum": grad_accum,
        "seed": seed,
        "bucket_by_length": bucket_by_length,
        "max_steps": max_steps,
        "early_stopping": early_stopping,
        "eval_batch_size": eval_batch_size,
        "progress": False,
        "overwrite": overwrite,
        "save_steps": save_steps,
        "save_total_limit": save_total_limit,
    }


def run(model: Any, train: Any, val: Any, config: Dict[str, Any], output_dir: str, resume: bool,
        disable_progress: bool = False) -> Dict[str, Any]:
    """Trains in Rust with a tqdm bar per epoch; Ctrl-C stops after the current step with a
    checkpoint in ``output_dir`` and re-raises KeyboardInterrupt."""
    os.makedirs(output_dir, exist_ok=True)
    state: Dict[str, Any] = {"bar": None, "epoch": 0, "batch": 0}

    def on_event(e: Dict[str, Any]) -> None:
        if e["event"] == "step":
            if e["epoch"] != state["epoch"]:
                if state["bar"] is not None:
                    state["bar"].close()
                state["bar"] = Progress(e["batches"], f"epoch {e['epoch']}/{e['epochs']}", disable=disable_progress)
                state["epoch"], state["batch"] = e["epoch"], 0
            state["bar"].update(e["batch"] - state["batch"], loss=e["loss"])
            state["batch"] = e["batch"]
        elif e["event"] == "epoch" and state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    try:
        out = _lmkit.train(model, train, val, json.dumps(config), output_dir, resume, on_event)
    finally:
        if state["bar"] is not None:
            state["bar"].close()
    return json.loads(out)
