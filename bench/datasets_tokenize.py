"""The Python reference for lmkit's dataset-tokenization benchmark: HF `datasets` batched
`map` of a fast (Rust `tokenizers`) tokenizer over the emotion train split, printing one JSON
object.

    $(scripts/ref-venv.sh) bench/datasets_tokenize.py [--data FILE] [--tokenizer-dir DIR]
        [--iters 3] [--threads N]

Input: FILE has one `text;label_name` per line (default /work/shared/data/emotion/train.txt,
16000 lines); label ids follow the names order sadness, joy, love, anger, fear, surprise.
Timed: ds.map(lambda b: tok(b["text"], padding=True, truncation=True), batched=True,
batch_size=1000, load_from_cache_file=False) -- one warm-up run, then the median of --iters.
Runs offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set below).

--threads N sets RAYON_NUM_THREADS=N (the thread pool `tokenizers` uses for batch encoding)
and TOKENIZERS_PARALLELISM=true (false when N == 1) before tokenizers is imported. Without it
the environment is left alone; the JSON records what was in effect either way.
"""
import argparse, json, os, statistics, sys, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def parse_args():
    home = os.environ.get("LMKIT_HOME", os.path.expanduser("~/.cache/lmkit"))
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/work/shared/data/emotion/train.txt")
    p.add_argument("--tokenizer-dir",
                   default=os.path.join(home, "models", "sentence-transformers--all-MiniLM-L6-v2"))
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None,
                   help="set RAYON_NUM_THREADS (and TOKENIZERS_PARALLELISM); default: leave "
                        "tokenizers' default")
    return p.parse_args()


def load_rows(path):
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            text, name = line.rsplit(";", 1)
            texts.append(text)
            labels.append(LABELS.index(name))
    return texts, labels


def main():
    a = parse_args()
    if a.threads is not None:
        # must happen before `tokenizers` starts its rayon pool (i.e. before the import)
        os.environ["RAYON_NUM_THREADS"] = str(a.threads)
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if a.threads > 1 else "false"
    env = {k: os.environ.get(k) for k in ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")}

    import datasets, tokenizers
    from transformers import AutoTokenizer

    datasets.disable_progress_bars()
    texts, labels = load_rows(a.data)
    ds = datasets.Dataset.from_dict({"text": texts, "label": labels})
    tok = AutoTokenizer.from_pretrained(a.tokenizer_dir)
    assert tok.is_fast, "expected a fast tokenizer"

    def run():
        return ds.map(lambda b: tok(b["text"], padding=True, truncation=True), batched=True,
                      batch_size=a.batch_size, load_from_cache_file=False)

    out = run()  # warm-up
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    n = len(ds)
    print(json.dumps({
        "impl": "python-datasets", "task": "tokenize", "rows": n,
        "batch_size": a.batch_size, "median_s": med, "rows_per_s": n / med,
        "times_s": times, "columns": out.column_names,
        "threads": a.threads, "env": env, "cpus": os.cpu_count(),
        "tokenizer_dir": a.tokenizer_dir,
        "datasets": datasets.__version__, "tokenizers": tokenizers.__version__,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
