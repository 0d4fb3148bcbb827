"""The Python side of `bench/compare.sh generate`: transformers greedy generation with
SmolLM2-135M-Instruct's GGUF (dequantised to f32), prompt processing and new tokens timed
apart; prints one JSON object.

    python bench/generate_bench.py --model-dir DIR --new 64
"""
import argparse, json, resource, statistics, time
import torch
from transformers import AutoTokenizer, AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--model-dir", required=True)
ap.add_argument("--new", type=int, default=64)
ap.add_argument("--iters", type=int, default=3)
a = ap.parse_args()
tok = AutoTokenizer.from_pretrained(a.model_dir, gguf_file="model.gguf")
m = AutoModelForCausalLM.from_pretrained(a.model_dir, gguf_file="model.gguf", dtype=torch.float32).eval()
prompt = "Once upon a time, in a small village by the sea, there lived"
ids = tok(prompt, return_tensors="pt").input_ids
runs = []
with torch.no_grad():
    m.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
    for _ in range(a.iters):
        t = time.perf_counter(); m(ids); prompt_s = time.perf_counter() - t
        t = time.perf_counter()
        out = m.generate(ids, max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False)
        total = time.perf_counter() - t
        new = out.shape[1] - ids.shape[1]
        # generate() runs the prompt too: new-token time is its total minus one prompt pass.
        runs.append((ids.shape[1] / prompt_s, new / max(total - prompt_s, 1e-9), new))
print(json.dumps({"impl": "transformers", "task": "generate", "prompt_tokens": ids.shape[1],
                  "new_tokens": runs[0][2],
                  "prompt_tok_per_s": statistics.median(r[0] for r in runs),
                  "tok_per_s": statistics.median(r[1] for r in runs),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads()}))
