"""The Python side of `bench/compare.sh seq2seq`: transformers beam search on a T5 of
t5-small's shape (random weights: no seq2seq checkpoint can be downloaded here; speed does not
depend on the values). Creates the model folder on first use (seed 0). The same 41 input ids,
4 beams, exactly 32 new tokens (min_length = 1 + 32 bans EOS until then); prints one JSON object.

    python bench/seq2seq_bench.py --model-dir DIR [--create] [--beams 4] [--new 32] [--iters 3]
"""
import argparse, json, os, resource, statistics, time
import torch
from transformers import T5Config, T5ForConditionalGeneration

ap = argparse.ArgumentParser()
ap.add_argument("--model-dir", required=True)
ap.add_argument("--create", action="store_true")
ap.add_argument("--beams", type=int, default=4)
ap.add_argument("--new", type=int, default=32)
ap.add_argument("--iters", type=int, default=3)
a = ap.parse_args()
if a.create:
    if not os.path.isfile(os.path.join(a.model_dir, "config.json")):
        torch.manual_seed(0)
        cfg = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
                       num_heads=8, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
                       decoder_start_token_id=0)
        T5ForConditionalGeneration(cfg).save_pretrained(a.model_dir)
    raise SystemExit(0)
m = T5ForConditionalGeneration.from_pretrained(a.model_dir).eval()
ids = torch.tensor([list(range(100, 140)) + [1]])
kw = dict(num_beams=a.beams, max_new_tokens=a.new, min_length=a.new + 1, do_sample=False)
times = []
with torch.no_grad():
    m.generate(ids, num_beams=a.beams, max_new_tokens=4, do_sample=False)  # warm-up
    for _ in range(a.iters):
        t = time.perf_counter()
        out = m.generate(ids, **kw)
        times.append(time.perf_counter() - t)
new = out.shape[1] - 1
med = statistics.median(times)
print(json.dumps({"impl": "transformers", "task": "seq2seq", "beams": a.beams, "new_tokens": new,
                  "median_s": med, "tok_per_s": new / med,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "threads": torch.get_num_threads()}))
