"""Embed and classify a large text column with Ray Data and lmkit: one model per worker.

    pip install ./python "ray[data]"
    python examples/ray_embed.py --rows 100000 --workers 2            # Ray's local mode
    python examples/ray_embed.py --rows 100000 --workers 2 --stack st  # sentence-transformers

On a cluster, start Ray on each machine (`ray start --head` on one, `ray start
--address=HEAD:6379` on the others), install lmkit on every node (the wheel needs only numpy),
and run the same script with RAY_ADDRESS=auto: `--workers` then counts actors across the
cluster, each pinned to --threads CPUs. Models load from each node's lmkit store
(`lmkit fetch ID`, or LMKIT_HOME on shared storage).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import ray

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class LmkitEmbedder:
    """Sentence vectors and sentiment labels for a batch of texts, with lmkit."""

    def __init__(self, model: str, classify: bool, precision: str = "fp32"):
        import lmkit

        self.st = lmkit.SentenceTransformer(model, precision=precision)
        self.clf = lmkit.pipeline("sentiment-analysis", precision=precision) if classify else None

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        batch["embedding"] = list(self.st.encode(texts))
        if self.clf is not None:
            batch["sentiment"] = [d["label"] for d in self.clf(texts)]
        return batch


class SentenceTransformersEmbedder:
    """The same job with sentence-transformers and a transformers pipeline (torch)."""

    def __init__(self, model: str, classify: bool, precision: str = "fp32"):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.st = SentenceTransformer(model, device="cpu")
        self.clf = None
        if classify:
            from transformers import pipeline

            self.clf = pipeline("sentiment-analysis", model=os.environ["LMKIT_SST2_DIR"], device="cpu")

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        batch["embedding"] = list(self.st.encode(texts, batch_size=64))
        if self.clf is not None:
            batch["sentiment"] = [d["label"] for d in self.clf(texts, batch_size=64)]
        return batch


def sentences(rows: int) -> list:
    """Emotion's 20,000 sentences (shared/data/emotion), repeated to `rows`."""
    root = os.environ.get("LMKIT_EMOTION_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "emotion"))
    base = []
    for split in ("train", "validation", "test"):
        with open(os.path.join(root, f"{split}.txt"), encoding="utf-8") as f:
            base += [l.rsplit(";", 1)[0] for l in f if l.strip()]
    return [base[i % len(base)] for i in range(rows)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2, help="actors, one model each")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per actor (0: cores / workers)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--stack", choices=["lmkit", "st"], default="lmkit")
    ap.add_argument("--classify", action="store_true", help="also label sentiment")
    ap.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                    help="lmkit's inference precision (bf16: AMX or AVX512-BF16 where the CPU has them)")
    ap.add_argument("--model", default=None,
                    help="model id or folder (default: all-MiniLM-L6-v2; for --stack st, its folder in lmkit's store, "
                         "since sentence-transformers would fetch the id from the hub)")
    a = ap.parse_args()
    model = a.model or MODEL
    if a.model is None and a.stack == "st":
        home = os.environ.get("LMKIT_HOME") or os.path.expanduser("~/.cache/lmkit")
        model = os.path.join(home, "models", MODEL.replace("/", "--"))
    threads = a.threads or max(1, (os.cpu_count() or 1) // a.workers)
    env = {"RAYON_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    ray.init(runtime_env={"env_vars": {**env, **{k: v for k, v in os.environ.items() if k.startswith("LMKIT_")}}},
             include_dashboard=False, log_to_driver=False)
    texts = sentences(a.rows)
    ds = ray.data.from_items([{"text": t} for t in texts])
    cls = LmkitEmbedder if a.stack == "lmkit" else SentenceTransformersEmbedder
    t0 = time.perf_counter()
    kwargs = {"model": model, "classify": a.classify}
    if a.stack == "lmkit":
        kwargs["precision"] = a.precision
    out = ds.map_batches(cls, fn_constructor_kwargs=kwargs,
                         batch_size=a.batch_size, concurrency=a.workers, num_cpus=threads).materialize()
    secs = time.perf_counter() - t0
    first = out.take(1)[0]
    assert out.count() == a.rows and np.asarray(first["embedding"]).shape == (384,)
    name = f"lmkit {a.precision}" if a.stack == "lmkit" else "sentence-transformers"
    print(f"{name}: {a.rows} sentences, {a.workers} worker(s) x {threads} thread(s): {secs:.1f} s, "
          f"{a.rows / secs:.0f} sentences/s (model load included)")


if __name__ == "__main__":
    main()
