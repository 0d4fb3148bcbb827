"""The Python reference for `bench/compare.sh epoch`: one epoch of fine-tuning on emotion end to
end, as the course does it with PyTorch + transformers, printing one JSON object.

Same work as `lmkit finetune --epochs 1`: tokenize train/validation/test (truncation at 128),
BertForSequenceClassification with a new 6-way head on the model folder, AdamW(lr 5e-5,
weight_decay 0), batch 64 in a seeded random order with dynamic padding (each batch padded to
its longest text, DataCollatorWithPadding), dropout as in the config, one epoch, then
validation (loss/accuracy) and test predictions, batch 64. --group-by-length batches by length
with transformers' own LengthGroupedSampler (what `group_by_length=True` does in Trainer).

    python bench/finetune_epoch.py --model-dir DIR --data ../shared/data/emotion [--group-by-length]
"""
import argparse, json, resource, time

T0 = time.perf_counter()

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding)
from transformers.trainer_pt_utils import LengthGroupedSampler

LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def read_split(path):
    texts, labels = [], []
    for line in open(path, encoding="utf-8"):
        text, label = line.rstrip("\n").rsplit(";", 1)
        texts.append(text)
        labels.append(LABELS.index(label))
    return texts, labels


def batches(enc, labels, order, collate, batch):
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        feats = [{"input_ids": enc["input_ids"][j], "attention_mask": enc["attention_mask"][j],
                  "token_type_ids": enc["token_type_ids"][j]} for j in idx]
        b = collate(feats)
        b["labels"] = torch.tensor([labels[j] for j in idx])
        yield b


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", required=True, help="folder with train.txt, validation.txt, test.txt")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--group-by-length", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    splits = {s: read_split(f"{a.data}/{s}.txt") for s in ["train", "validation", "test"]}
    enc = {s: tok(t, truncation=True, max_length=128) for s, (t, _) in splits.items()}
    collate = DataCollatorWithPadding(tok)
    model = AutoModelForSequenceClassification.from_pretrained(a.model_dir, num_labels=6)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0)
    n = len(splits["train"][1])
    g = torch.Generator().manual_seed(a.seed)
    if a.group_by_length:
        lengths = [len(x) for x in enc["train"]["input_ids"]]
        order = list(LengthGroupedSampler(a.batch, lengths=lengths, generator=g))
    else:
        order = torch.randperm(n, generator=g).tolist()
    padded = sum(max(len(enc["train"]["input_ids"][j]) for j in order[i:i + a.batch])
                 * len(order[i:i + a.batch]) for i in range(0, n, a.batch))
    t_train = time.perf_counter()
    model.train()
    losses = []
    for b in batches(enc["train"], splits["train"][1], order, collate, a.batch):
        out = model(**b)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    train_s = time.perf_counter() - t_train
    model.eval()
    result = {}
    with torch.inference_mode():
        for split in ["validation", "test"]:
            labels = splits[split][1]
            correct, loss = 0, 0.0
            for b in batches(enc[split], labels, list(range(len(labels))), collate, a.batch):
                out = model(**b)
                loss += out.loss.item() * len(b["labels"])
                correct += (out.logits.argmax(-1) == b["labels"]).sum().item()
            result[split] = {"loss": loss / len(labels), "accuracy": correct / len(labels)}
    print(json.dumps({
        "impl": "pytorch", "task": "epoch", "bucketing": a.group_by_length, "train_samples": n,
        "padded_tokens": padded, "train_s": train_s, "train_samples_per_s": n / train_s,
        "total_s": time.perf_counter() - T0, "train_loss": sum(losses) / len(losses),
        "val_accuracy": result["validation"]["accuracy"],
        "test_accuracy": result["test"]["accuracy"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "torch": torch.__version__}))


if __name__ == "__main__":
    main()
