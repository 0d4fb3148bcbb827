"""lmkit's Python API beside transformers + torch on the course's workloads, in one run.

    bash bench/python/run.sh            # builds both environments, then runs this driver

Each (stack, workload) runs in its own process, so peak RSS is that workload's alone. Both
stacks use the same model files from lmkit's store and the same texts, with 2 threads.
Workloads:
  sentiment  pipeline("sentiment-analysis") over 1,000 emotion test sentences (lmkit/sentiment-sst2)
  embed      sentence embeddings of the same 1,000 sentences (all-MiniLM-L6-v2)
  train      one training epoch on 2,000 emotion examples (MiniLM-L6 + a new 6-way head,
             batch 64, Adam 5e-5, max_length 128, batches grouped by length)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

STORE = os.path.expanduser(os.environ.get("LMKIT_HOME", "~/.cache/lmkit")) + "/models"
SST2 = f"{STORE}/lmkit--sentiment-sst2"
MINILM = f"{STORE}/sentence-transformers--all-MiniLM-L6-v2"


EMOTIONS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def emotion_rows(split: str, n: int):
    """The first n rows of a split of shared/data/emotion (`text;label_name` lines) as
    (text, label id) in the ClassLabel order of the HF data set."""
    rows = []
    with open(os.path.join(os.environ["LMKIT_BENCH_DATA"], f"{split}.txt"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                text, name = line.rstrip("\n").rsplit(";", 1)
                rows.append((text, EMOTIONS.index(name)))
    return rows[:n]


def worker(stack: str, task: str, precision: str) -> dict:
    if stack == "torch":
        import torch

        torch.set_num_threads(2)
    texts = [t for t, _ in emotion_rows("test", 1000)]
    t0 = time.perf_counter()
    if stack == "lmkit":
        import lmkit

        if task == "sentiment":
            clf = lmkit.pipeline("sentiment-analysis", model=SST2, precision=precision)
            t0 = time.perf_counter()
            out = clf(texts)
        elif task == "embed":
            st = lmkit.SentenceTransformer(MINILM, precision=precision)
            t0 = time.perf_counter()
            out = st.encode(texts)
        else:
            rows = emotion_rows("train", 2000)
            ds = lmkit.Dataset.from_dict({"text": [t for t, _ in rows], "label": [l for _, l in rows]})
            tok = lmkit.AutoTokenizer.from_pretrained(MINILM)
            enc = ds.map(lambda b: tok(b["text"], truncation=True, max_length=128), batched=True)
            model = lmkit.AutoModelForSequenceClassification.from_pretrained(MINILM, num_labels=6)
            args = lmkit.TrainingArguments(output_dir="/tmp/lmkit-bench-train", overwrite_output_dir=True,
                                           num_train_epochs=1, per_device_train_batch_size=64, learning_rate=5e-5,
                                           lr_scheduler_type="constant", max_grad_norm=None, group_by_length=True,
                                           disable_tqdm=True, save_steps=10**6)
            t0 = time.perf_counter()
            lmkit.Trainer(model, args, enc).train()
            out = None
    else:
        if task == "sentiment":
            from transformers import pipeline

            clf = pipeline("sentiment-analysis", model=SST2, device="cpu")
            t0 = time.perf_counter()
            out = clf(texts, batch_size=32)
        elif task == "embed":
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(MINILM, device="cpu")
            t0 = time.perf_counter()
            out = st.encode(texts)
        else:
            import datasets
            from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                                      Trainer, TrainingArguments)

            rows = emotion_rows("train", 2000)
            ds = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [l for _, l in rows]})
            tok = AutoTokenizer.from_pretrained(MINILM)
            enc = ds.map(lambda b: tok(b["text"], truncation=True, max_length=128), batched=True)
            model = AutoModelForSequenceClassification.from_pretrained(MINILM, num_labels=6)
            args = TrainingArguments(output_dir="/tmp/torch-bench-train", num_train_epochs=1,
                                     per_device_train_batch_size=64, learning_rate=5e-5,
                                     lr_scheduler_type="constant", max_grad_norm=0.0,
                                     train_sampling_strategy="group_by_length",
                                     disable_tqdm=True, save_strategy="no", report_to=[], use_cpu=True,
                                     dataloader_num_workers=0)
            t0 = time.perf_counter()
            Trainer(model=model, args=args, train_dataset=enc, data_collator=DataCollatorWithPadding(tok)).train()
            out = None
    secs = time.perf_counter() - t0
    n = 2000 if task == "train" else len(texts)
    return {"seconds": secs, "items_per_s": n / secs, "n": n, "check": str(out[0])[:60] if out is not None else ""}


def site_size(python: str, dists: list) -> float:
    """MiB on disk of these installed distributions and everything they require."""
    code = r"""
import sys, os, importlib.metadata as md, re, json
todo, seen, total = list(sys.argv[1:]), set(), 0
while todo:
    name = todo.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen: continue
    try: d = md.distribution(name)
    except md.PackageNotFoundError: continue
    seen.add(key)
    for f in d.files or []:
        p = d.locate_file(f)
        if os.path.isfile(p): total += os.path.getsize(p)
    for r in d.requires or []:
        if "extra ==" in r: continue
        todo.append(re.split(r"[ ;<>=!~\[(]", r, 1)[0])
print(json.dumps({"bytes": total, "dists": sorted(seen)}))
"""
    out = subprocess.run([python, "-c", code, *dists], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["bytes"] / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lmkit-python", required=True)
    ap.add_argument("--torch-python", required=True)
    ap.add_argument("--tasks", default="sentiment,embed,train")
    ap.add_argument("--worker", nargs=2, metavar=("STACK", "TASK"))
    ap.add_argument("--lmkit-precision", default="fp32", choices=["fp32", "bf16", "int8"],
                    help="lmkit's inference precision (PyTorch stays fp32; training is fp32)")
    a = ap.parse_args()
    if a.worker:
        r = worker(*a.worker, a.lmkit_precision)
        r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(r))
        return
    results = {}
    for task in a.tasks.split(","):
        for stack, py in (("lmkit", a.lmkit_python), ("torch", a.torch_python)):
            p = subprocess.run([py, __file__, "--lmkit-python", a.lmkit_python, "--torch-python", a.torch_python,
                                "--worker", stack, task, "--lmkit-precision", a.lmkit_precision], capture_output=True, text=True, env=dict(os.environ))
            if p.returncode != 0:
                sys.exit(f"{stack} {task} failed:\n{p.stderr[-3000:]}")
            results[(task, stack)] = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{task:<10} {stack:<6} {results[(task, stack)]}", file=sys.stderr)
    print(f"\nlmkit {a.lmkit_precision} (training fp32), PyTorch fp32, 2 threads each")
    print(f"{'workload':<11}{'lmkit':>12}{'torch':>12}{'speed-up':>10}{'RSS lmkit':>11}{'RSS torch':>11}")
    for task in a.tasks.split(","):
        l, t = results[(task, "lmkit")], results[(task, "torch")]
        unit = "ex/s" if task == "train" else "sent/s"
        print(f"{task:<11}{l['items_per_s']:>7.1f} {unit:<4}{t['items_per_s']:>7.1f} {unit:<4}"
              f"{l['items_per_s'] / t['items_per_s']:>9.2f}x{l['peak_rss_mib']:>8.0f} MiB{t['peak_rss_mib']:>7.0f} MiB")
    lm = site_size(a.lmkit_python, ["lmkit"])
    tr = site_size(a.torch_python, ["torch", "transformers", "sentence-transformers"])
    print(f"\ninstalled size: lmkit + numpy {lm:.0f} MiB; torch + transformers + sentence-transformers "
          f"{tr:.0f} MiB ({tr / lm:.0f}x)")


if __name__ == "__main__":
    main()
