"""The Python reference side of lmkit's benchmarks: PyTorch + transformers on the same shapes
as `lmkit bench`, printing one JSON object. Run through bench/compare.sh (which makes the venv).

    python bench/torch_bench.py infer --shape minilm --batch 64 --seq 48 --iters 10 [--int8]
    python bench/torch_bench.py train --model-dir DIR --batch 32 --seq 48 --iters 5 [--dropout 0.1]
    python bench/torch_bench.py gemm --n 2048 --iters 5

train: AutoModelForSequenceClassification (num_labels=6) with the model dir's config and weights
(or --shape's config and random weights)
(classifier head freshly initialised, seed 0), model.train(), AdamW(lr=5e-5, weight_decay=0);
one step = forward on random ids (no padding) + cross-entropy on random labels + backward +
optimizer.step() + zero_grad(). --dropout sets hidden_dropout_prob,
attention_probs_dropout_prob and classifier_dropout. 2 warm-up steps, then --iters timed.
"""
import argparse, json, resource, statistics, time, warnings

import torch
from transformers import (AutoConfig, AutoModel, AutoModelForSequenceClassification, BertConfig,
                          DistilBertConfig)

# The benchmark shapes (the same numbers as `lmkit bench --shape`), with random weights.
SHAPES = {
    "minilm": lambda: BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6,
                                 num_attention_heads=12, intermediate_size=1536,
                                 max_position_embeddings=512, hidden_act="gelu"),
    "distilbert": lambda: DistilBertConfig(vocab_size=30522, dim=768, n_layers=6, n_heads=12,
                                           hidden_dim=3072, max_position_embeddings=512,
                                           activation="gelu"),
}


def encoder_flops(cfg, batch, seq):
    """Same count as lmkit's cmd::bench::workloads::encoder_flops (crates/lmkit-cli) (projections, FFN, attention products)."""
    if cfg.model_type == "distilbert":
        h, i, layers = cfg.dim, cfg.hidden_dim, cfg.n_layers
    else:
        h, i, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 2.0 * (4 * h * h + 2 * h * i) + 2.0 * 2.0 * seq * h
    return per_token * batch * seq * layers


def load_config(args, **overrides):
    if args.shape:
        cfg = SHAPES[args.shape]()
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg
    return AutoConfig.from_pretrained(args.model_dir, **overrides)


def load_model(cls, args, cfg):
    torch.manual_seed(0)
    if args.shape:
        return cls.from_config(cfg)
    return cls.from_pretrained(args.model_dir, config=cfg)


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
    cfg = load_config(args)
    model = load_model(AutoModel, args, cfg).eval()
    if args.int8:
        # PyTorch's own int8 inference: dynamic quantization of every nn.Linear (int8
        # per-tensor weights, activations quantized per batch at run time, the x86 engine).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (args.batch, args.seq), generator=g)
    mask = torch.ones_like(ids)

    # bf16: PyTorch's mixed precision on the CPU, autocast (oneDNN's AMX / AVX512-BF16 matmuls
    # where the CPU has them).
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def step():
        with torch.inference_mode(), cast:
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            m = mask.unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            torch.nn.functional.normalize(e, p=2, dim=1)

    times = timed(step, 2, args.iters)
    med = statistics.median(times)
    gflop = encoder_flops(cfg, args.batch, args.seq) / 1e9
    return {"impl": "pytorch", "task": "infer", "batch": args.batch, "seq": args.seq,
            "precision": "int8" if args.int8 else ("bf16" if args.bf16 else "fp32"),
            "threads": torch.get_num_threads(), "median_s": med,
            "gflop": gflop, "gflop_per_s": gflop / med,
            "samples_per_s": args.batch / med, "times_s": times, "peak_rss_mib": peak_rss_mib(),
            "torch": torch.__version__}


def train(args):
    probe = load_config(args)
    if probe.model_type == "distilbert":
        drop = dict(dropout=args.dropout, attention_dropout=args.dropout,
                    seq_classif_dropout=args.dropout)
    else:
        drop = dict(hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout,
                    classifier_dropout=args.dropout)
    cfg = load_config(args, num_labels=6, **drop)
    model = load_model(AutoModelForSequenceClassification, args, cfg)
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
    gflop = 3 * encoder_flops(cfg, args.batch, args.seq) / 1e9
    return {"impl": "pytorch", "task": "train", "batch": args.batch, "seq": args.seq,
            "dropout": args.dropout, "num_labels": cfg.num_labels,
            "threads": torch.get_num_threads(), "median_s": med,
            "gflop": gflop, "gflop_per_s": gflop / med,
            "samples_per_s": args.batch / med, "times_s": times, "losses": losses,
            "peak_rss_mib": peak_rss_mib(), "torch": torch.__version__}


def gemm(args):
    g = torch.Generator().manual_seed(0)
    m, n, k = map(int, args.mnk.split(",")) if args.mnk else (args.n, args.n, args.n)
    a = torch.randn(m, k, generator=g)
    b = torch.randn(n, k, generator=g).t() if args.transpose_b else torch.randn(k, n, generator=g)
    times = timed(lambda: torch.matmul(a, b), 1, args.iters)
    med = statistics.median(times)
    return {"impl": "pytorch", "task": "gemm", "m": m, "n": n, "k": k,
            "threads": torch.get_num_threads(),
            "median_s": med, "gflop_per_s": 2 * m * n * k / 1e9 / med, "times_s": times,
            "peak_rss_mib": peak_rss_mib(), "torch": torch.__version__}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("task", choices=["infer", "train", "gemm"])
    p.add_argument("--model-dir", help="a checkpoint folder (or --shape)")
    p.add_argument("--shape", choices=sorted(SHAPES), help="random weights of this shape")
    p.add_argument("--n", type=int, default=2048, help="gemm only: n x n x n")
    p.add_argument("--mnk", help="gemm only: M,N,K (M x K times K x N) instead of --n")
    p.add_argument("--transpose-b", action="store_true", help="gemm only: B read transposed")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=48)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1, help="train only")
    p.add_argument("--int8", action="store_true",
                   help="infer only: torch.ao.quantization.quantize_dynamic on every nn.Linear")
    p.add_argument("--bf16", action="store_true", help="infer only: autocast to bfloat16")
    a = p.parse_args()
    if a.task != "gemm" and not (a.model_dir or a.shape):
        p.error("--model-dir or --shape is required")
    torch.set_num_threads(a.threads)
    print(json.dumps({"infer": infer, "train": train, "gemm": gemm}[a.task](a)))
