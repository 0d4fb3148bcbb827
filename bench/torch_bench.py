"""The Python reference side of lmkit's benchmarks: PyTorch + transformers on the same shapes
as `lmkit bench`, printing one JSON object. Run through bench/compare.sh (which makes the venv).

    python bench/torch_bench.py infer --model-dir DIR --batch 64 --seq 48 --iters 10
    python bench/torch_bench.py train --model-dir DIR --batch 32 --seq 48 --iters 5 [--dropout 0.1]

train: BertForSequenceClassification (num_labels=6) with the model dir's config and weights
(classifier head freshly initialised, seed 0), model.train(), AdamW(lr=5e-5, weight_decay=0);
one step = forward on random ids (no padding) + cross-entropy on random labels + backward +
optimizer.step() + zero_grad(). --dropout sets hidden_dropout_prob,
attention_probs_dropout_prob and classifier_dropout. 2 warm-up steps, then --iters timed.
"""
import argparse, json, resource, statistics, time

import torch
from transformers import AutoConfig, AutoModel, BertForSequenceClassification


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)


def infer(args):
    model = AutoModel.from_pretrained(args.model_dir).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (args.batch, args.seq), generator=g)
    mask = torch.ones_like(ids)

    def step():
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            torch.nn.functional.normalize(e, p=2, dim=1)

    times = timed(step, 2, args.iters)
    med = statistics.median(times)
    return {"impl": "pytorch", "task": "infer", "batch": args.batch, "seq": args.seq,
            "threads": torch.get_num_threads(), "median_s": med,
            "samples_per_s": args.batch / med, "times_s": times, "peak_rss_mib": peak_rss_mib(),
            "torch": torch.__version__}


def train(args):
    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(args.model_dir, num_labels=6,
                                     hidden_dropout_prob=args.dropout,
                                     attention_probs_dropout_prob=args.dropout,
                                     classifier_dropout=args.dropout)
    model = BertForSequenceClassification.from_pretrained(args.model_dir, config=cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, cfg.vocab_size, (args.batch, args.seq), generator=g)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, cfg.num_labels, (args.batch,), generator=g)
    losses = []

    def step():
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())

    times = timed(step, 2, args.iters)
    med = statistics.median(times)
    return {"impl": "pytorch", "task": "train", "batch": args.batch, "seq": args.seq,
            "dropout": args.dropout, "num_labels": cfg.num_labels,
            "threads": torch.get_num_threads(), "median_s": med,
            "samples_per_s": args.batch / med, "times_s": times, "losses": losses,
            "peak_rss_mib": peak_rss_mib(), "torch": torch.__version__}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("task", choices=["infer", "train"])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=48)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1, help="train only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps({"infer": infer, "train": train}[a.task](a)))
