"""Drives `lmkit serve` with the official `openai` package, unchanged: embeddings, a chat
completion, and a streamed one. Run by bench/serve/clients.sh.

    python openai_client.py http://127.0.0.1:8090 EMBED_MODEL CHAT_MODEL
"""
import sys

from openai import OpenAI

base, embed_model, chat_model = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=f"{base}/v1", api_key="lmkit")

emb = client.embeddings.create(model=embed_model, input=["A man is playing a guitar.", "Someone plays music."])
print(f"embeddings: {len(emb.data)} vectors of {len(emb.data[0].embedding)}, "
      f"first values {[round(x, 4) for x in emb.data[0].embedding[:3]]}, usage {emb.usage.prompt_tokens} tokens")

msg = [{"role": "user", "content": "What is the capital of France?"}]
chat = client.chat.completions.create(model=chat_model, messages=msg, temperature=0, max_tokens=24)
print(f"chat: {chat.choices[0].message.content!r} (finish_reason {chat.choices[0].finish_reason}, "
      f"{chat.usage.completion_tokens} tokens)")

pieces = []
for chunk in client.chat.completions.create(model=chat_model, messages=msg, temperature=0, max_tokens=24, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
print(f"streamed chat: {len(pieces)} chunks, joined {''.join(pieces)!r}")
print("streamed == whole:", "".join(pieces) == chat.choices[0].message.content)
