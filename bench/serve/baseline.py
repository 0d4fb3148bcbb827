"""The Python baseline for `bench/serve/load.sh`: FastAPI + uvicorn + sentence-transformers (and
a transformers text-classification pipeline), the way people serve these models today.

    python baseline.py --embed-model DIR [--classifier DIR] --port 8091 [--threads 2]

POST /embed {"inputs": str | [str], "normalize": true} -> [[float]]   (TEI's shape)
POST /predict {"inputs": str | [str]} -> [{label, score}] / [[{label, score}]]
"""
import argparse
import os
from typing import List, Optional, Union

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

ap = argparse.ArgumentParser()
ap.add_argument("--embed-model", required=True)
ap.add_argument("--classifier")
ap.add_argument("--port", type=int, default=8091)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)

from sentence_transformers import SentenceTransformer  # noqa: E402

embedder = SentenceTransformer(args.embed_model, device="cpu")
classifier = None
if args.classifier:
    from transformers import pipeline  # noqa: E402

    classifier = pipeline("text-classification", model=args.classifier, top_k=None, device=-1)

app = FastAPI()


class EmbedRequest(BaseModel):
    inputs: Union[str, List[str]]
    normalize: bool = True


class PredictRequest(BaseModel):
    inputs: Union[str, List[str]]


# Plain `def` endpoints run in uvicorn's thread pool, so requests overlap as they would in a
# typical deployment.
@app.post("/embed")
def embed(req: EmbedRequest):
    texts = [req.inputs] if isinstance(req.inputs, str) else req.inputs
    with torch.inference_mode():
        return embedder.encode(texts, normalize_embeddings=req.normalize).tolist()


@app.post("/predict")
def predict(req: PredictRequest):
    one = isinstance(req.inputs, str)
    texts = [req.inputs] if one else req.inputs
    with torch.inference_mode():
        out = classifier(texts)
    return out[0] if one else out


@app.get("/health")
def health():
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
