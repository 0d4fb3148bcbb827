"""The Python side of `bench/compare.sh pipeline`: transformers' text-classification pipeline
on the first N emotion test sentences (the same texts and batch size as `lmkit bench
pipeline`), printing one JSON object. 1 warm-up run, then the median of --iters runs.

    python bench/pipeline_bench.py --model-dir DIR --texts FILE --batch 32 --iters 3 [--int8]

--int8: the pipeline's model through torch.ao.quantization.quantize_dynamic (every nn.Linear).
"""
import argparse, json, resource, statistics, time, warnings

import torch
from transformers import pipeline

ap = argparse.ArgumentParser()
ap.add_argument("--model-dir", required=True)
ap.add_argument("--texts", required=True, help="one sentence per line")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--int8", action="store_true")
a = ap.parse_args()
texts = [l.rstrip("\n") for l in open(a.texts, encoding="utf-8")]
pipe = pipeline("text-classification", model=a.model_dir, device="cpu")
if a.int8:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        pipe.model = torch.ao.quantization.quantize_dynamic(
            pipe.model, {torch.nn.Linear}, dtype=torch.qint8)


def run():
    out = pipe(texts, batch_size=a.batch, truncation=True)
    assert len(out) == len(texts)


run()
times = []
for _ in range(a.iters):
    t = time.perf_counter()
    run()
    times.append(time.perf_counter() - t)
med = statistics.median(times)
print(json.dumps({
    "impl": "transformers", "task": "pipeline", "sentences": len(texts), "batch": a.batch,
    "precision": "int8" if a.int8 else "fp32",
    "median_s": med, "samples_per_s": len(texts) / med, "times_s": sorted(times),
    "threads": torch.get_num_threads(),
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
}))
