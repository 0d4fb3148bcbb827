//! `lmkit serve` over real HTTP on loopback: the binary runs as a child process on an
//! ephemeral port, and the tests talk to it with reqwest, as a client program would.

mod common;
use common::fixture_dir;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
const SMOLLM: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
const KEY: &str = "test-key";

struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `lmkit serve --port 0 ARGS` and waits until /health says every model is ready.
    async fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lmkit"))
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let (pipe, stderr) = (child.stderr.take().unwrap(), stderr.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        let _ = tx.send(addr.to_string());
                    }
                    let mut s = stderr.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no 'listening on' line: {}", stderr.lock().unwrap()));
        let s = Server {
            child,
            base,
            stderr,
        };
        let t0 = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", s.base)).await {
                if r.status() == 200 {
                    break;
                }
                assert_eq!(r.status(), 503, "health while loading");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "models not ready: {}",
                s.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        s
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

async fn post(c: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"));
    (status, v)
}

/// The `lmkit` CLI's JSON lines.
fn cli(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_lmkit"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_error(status: u16, body: &Value, want: u16, what: &str) {
    assert_eq!(status, want, "{what}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
    assert!(body["error_type"].is_string(), "{what}: {body}");
}

/// Reads an SSE body into its `data:` payloads.
fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim_start().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_answers_as_the_cli_does() {
    let tiny_sst = fixture_dir("tiny-sst");
    let tiny_nli = fixture_dir("tiny-nli");
    let s = Server::start(&[
        "--model",
        MINILM,
        "--model",
        &tiny_sst,
        "--model",
        &tiny_nli,
        "--model",
        SMOLLM,
        "--api-key",
        KEY,
        "--max-client-batch-size",
        "8",
        "--payload-limit",
        "100000",
    ])
    .await;
    let c = client();
    let texts = [
        "A man is playing a guitar.",
        "Someone is playing an acoustic guitar.",
    ];
    let mut embed_ok = 0;

    // /embed and /v1/embeddings equal `lmkit embed` within 1e-6.
    let want: Vec<Vec<f32>> = cli(&["embed", "--json", texts[0], texts[1]])
        .iter()
        .map(|o| floats(&o["embedding"]))
        .collect();
    let (st, v) = post(&c, &s.url("/embed"), json!({"inputs": texts})).await;
    assert_eq!(st, 200, "{v}");
    embed_ok += 1;
    for (got, want) in v.as_array().unwrap().iter().zip(&want) {
        assert!(max_diff(&floats(got), want) <= 1e-6);
    }
    let (st, v) = post(
        &c,
        &s.url("/embed"),
        json!({"inputs": texts[0], "normalize": false}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    embed_ok += 1;
    let raw = floats(&v[0]);
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "normalize: false kept the raw norm ({norm})"
    );
    let (st, v) = post(
        &c,
        &s.url("/v1/embeddings"),
        json!({"input": texts, "model": MINILM}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], MINILM);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 10);
    for (d, want) in v["data"].as_array().unwrap().iter().zip(&want) {
        assert!(max_diff(&floats(&d["embedding"]), want) <= 1e-6);
    }
    let (st, v) = post(
        &c,
        &s.url("/v1/embeddings"),
        json!({"input": texts[0], "model": "all-MiniLM-L6-v2", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let b64: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(max_diff(&b64, &want[0]) <= 1e-6);

    // /predict equals `lmkit pipeline text-classification`; one text gives a flat list.
    let cls = ["She was so happy.", "I hate this so much!"];
    let want = cli(&[
        "pipeline",
        "text-classification",
        "--model",
        &tiny_sst,
        "--json",
        "--top-k",
        "2",
        cls[0],
        cls[1],
    ]);
    let (st, v) = post(
        &c,
        &s.url("/predict"),
        json!({"inputs": cls, "model": tiny_sst}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    for (got, want) in v.as_array().unwrap().iter().zip(&want) {
        for (g, w) in got
            .as_array()
            .unwrap()
            .iter()
            .zip(want["top_k"].as_array().unwrap())
        {
            assert_eq!(g["label"], w["label"]);
            let d = (g["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs();
            assert!(d <= 1e-6, "{g} vs {w}");
        }
    }
    let (st, v) = post(&c, &s.url("/predict"), json!({"inputs": cls[0]})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v[0]["label"], want[0]["label"], "one text, flat list: {v}");
    let (st, v) = post(
        &c,
        &s.url("/predict"),
        json!({"inputs": cls[0], "raw_scores": true}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let sum: f64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .sum();
    assert!(
        (sum - 1.0).abs() > 1e-3,
        "raw scores are logits, not probabilities: {v}"
    );

    // /zero-shot equals the pipeline, with the embedding method (MiniLM) and the NLI one.
    for model in [MINILM, tiny_nli.as_str()] {
        let want = cli(&[
            "pipeline",
            "zero-shot-classification",
            "--model",
            model,
            "--labels",
            "sports,politics,music",
            "--json",
            texts[0],
        ]);
        let (st, v) = post(
            &c,
            &s.url("/zero-shot"),
            json!({"inputs": texts[0], "candidate_labels": ["sports", "politics", "music"], "model": model}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["labels"], want[0]["labels"]);
        assert!(max_diff(&floats(&v["scores"]), &floats(&want[0]["scores"])) <= 1e-6);
    }

    // /tokenize gives `lmkit tokenize`'s ids; /decode reads them back.
    let want = cli(&["tokenize", "--json", "Hello world!"]);
    let (st, v) = post(
        &c,
        &s.url("/tokenize"),
        json!({"inputs": "Hello world!", "model": MINILM}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let ids: Vec<u64> = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(json!(ids), want[0]["input_ids"]);
    assert_eq!(v[0][1]["text"], "hello");
    assert_eq!(v[0][1]["start"], 0);
    assert_eq!(v[0][0]["special"], true);
    let (st, v) = post(&c, &s.url("/decode"), json!({"ids": ids, "model": MINILM})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v[0], "hello world!");

    // Chat: greedy SSE chunks, joined, equal the answer in one piece and the CLI's.
    let prompt = "What is the capital of France?";
    let chat = json!({
        "model": SMOLLM, "temperature": 0, "max_tokens": 12,
        "messages": [{"role": "user", "content": prompt}],
    });
    let (st, whole) = post(&c, &s.url("/v1/chat/completions"), chat.clone()).await;
    assert_eq!(st, 200, "{whole}");
    assert_eq!(whole["object"], "chat.completion");
    let answer = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!answer.is_empty());
    assert!(whole["usage"]["completion_tokens"].as_u64().unwrap() <= 12);
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let r = c
        .post(s.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, answer);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
    let cli_answer = cli(&[
        "pipeline",
        "text-generation",
        "--model",
        SMOLLM,
        "--chat",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--json",
        prompt,
    ]);
    assert_eq!(cli_answer[0]["generated_text"].as_str().unwrap(), answer);
    let (st, v) = post(
        &c,
        &s.url("/v1/completions"),
        json!({"model": SMOLLM, "prompt": "1, 2, 3,", "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(v["choices"][0]["text"].is_string());

    let r = c
        .get(s.url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 4, "{v}");

    // 401: no key or a wrong one; /health needs none.
    let r = c
        .post(s.url("/embed"))
        .json(&json!({"inputs": "x"}))
        .send()
        .await
        .unwrap();
    let (st, v) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_error(st, &v, 401, "no key");
    let r = c
        .post(s.url("/embed"))
        .bearer_auth("wrong")
        .json(&json!({"inputs": "x"}))
        .send()
        .await
        .unwrap();
    let (st, v) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_error(st, &v, 401, "wrong key");
    assert_eq!(reqwest::get(s.url("/health")).await.unwrap().status(), 200);

    // 413: more inputs than --max-client-batch-size, and a body over --payload-limit.
    let nine: Vec<String> = (0..9).map(|i| format!("text {i}")).collect();
    let (st, v) = post(&c, &s.url("/embed"), json!({"inputs": nine})).await;
    assert_error(st, &v, 413, "nine inputs");
    let (st, v) = post(
        &c,
        &s.url("/embed"),
        json!({"inputs": "word ".repeat(30_000)}),
    )
    .await;
    assert_error(st, &v, 413, "payload");

    // 422: empty input, too long without truncate, a bad field, an unknown model, a route
    // no loaded model serves; 404 for no route at all.
    for (route, body, what) in [
        ("/embed", json!({"inputs": ""}), "empty input"),
        ("/embed", json!({"inputs": []}), "no inputs"),
        ("/embed", json!({"inputs": "word ".repeat(600)}), "too long"),
        ("/embed", json!({"inputs": 5}), "bad field type"),
        (
            "/embed",
            json!({"inputs": "x", "normalise": true}),
            "unknown field",
        ),
        (
            "/embed",
            json!({"inputs": "x", "model": "no/such-model"}),
            "unknown model",
        ),
        (
            "/predict",
            json!({"inputs": "x", "model": MINILM}),
            "model without the route",
        ),
        (
            "/translate",
            json!({"inputs": "x", "src": "en", "tgt": "de"}),
            "route no model serves",
        ),
        (
            "/zero-shot",
            json!({"inputs": "x", "candidate_labels": []}),
            "no labels",
        ),
        (
            "/v1/chat/completions",
            json!({"model": SMOLLM, "messages": []}),
            "no messages",
        ),
        (
            "/v1/chat/completions",
            json!({"model": SMOLLM, "messages": [{"role": "user", "content": "hi"}], "temperature": 5}),
            "temperature",
        ),
    ] {
        let (st, v) = post(&c, &s.url(route), body).await;
        assert_error(st, &v, 422, what);
    }
    let r = c
        .post(s.url("/embed"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (st, v) = (r.status().as_u16(), r.json::<Value>().await.unwrap());
    assert_error(st, &v, 422, "malformed JSON");
    let (st, v) = post(
        &c,
        &s.url("/embed"),
        json!({"inputs": "word ".repeat(600), "truncate": true}),
    )
    .await;
    assert_eq!(st, 200, "truncate: true cuts instead: {v}");
    embed_ok += 1;
    let (st, v) = post(&c, &s.url("/no-such-route"), json!({})).await;
    assert_error(st, &v, 404, "no route");

    // /metrics counts what was sent; /info and /openapi.json describe the server.
    let m = c
        .get(s.url("/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |route: &str, status: u16| -> u64 {
        m.lines()
            .find(|l| {
                l.starts_with("lmkit_requests_total{")
                    && l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|n| n.parse().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(count("/embed", 200), embed_ok, "{m}");
    assert_eq!(count("/embed", 401), 2, "{m}");
    assert_eq!(count("/embed", 413), 2, "{m}");
    assert!(m.contains("lmkit_batch_size_bucket"), "{m}");
    assert!(m.contains("lmkit_generated_tokens_total"), "{m}");
    let info: Value = c
        .get(s.url("/info"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["max_client_batch_size"], 8);
    assert_eq!(info["models"].as_array().unwrap().len(), 4);
    let api: Value = c
        .get(s.url("/openapi.json"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/embed",
        "/predict",
        "/v1/embeddings",
        "/v1/chat/completions",
        "/zero-shot",
    ] {
        assert!(
            api["paths"][p].is_object(),
            "{p} missing from /openapi.json"
        );
    }
    assert!(s.stderr().contains("ready: "), "{}", s.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_gets_429_and_sigterm_drains_the_requests_in_flight() {
    let mut s = Server::start(&["--model", MINILM, "--max-concurrent-requests", "8"]).await;
    let c = client();
    let long = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(12);

    // 24 requests of 8 inputs at once against 8 permits: every one is answered, 200 or 429.
    let mut tasks = vec![];
    for _ in 0..24 {
        let (c, url, long) = (c.clone(), s.url("/embed"), long.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .json(&json!({"inputs": vec![long; 8], "truncate": true}))
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let (st, retry, v) = tokio::time::timeout(Duration::from_secs(300), t)
            .await
            .expect("every request is answered")
            .unwrap();
        match st {
            200 => ok += 1,
            429 => {
                assert!(retry, "429 without Retry-After");
                assert_eq!(v["error_type"], "overloaded");
                shed += 1;
            }
            other => panic!("status {other}: {v}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "{ok} answered, {shed} shed");

    // Eight requests in flight, then SIGTERM: each is answered, then the process exits 0.
    let mut tasks = vec![];
    for i in 0..8 {
        let (c, url) = (c.clone(), s.url("/embed"));
        let text = format!("{i} {long}");
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .json(&json!({"inputs": text, "truncate": true}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), Instant::now())
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let term = Instant::now();
    // SAFETY: sends SIGTERM to our own child process.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    let mut after = 0;
    for t in tasks {
        let (st, at) = t.await.unwrap();
        assert_eq!(st, 200, "a request in flight at SIGTERM: {}", s.stderr());
        if at > term {
            after += 1;
        }
    }
    assert!(
        after >= 1,
        "no request was still in flight at SIGTERM; the test proves nothing"
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status:?}: {}", s.stderr());
    assert!(s.stderr().contains("shutting down"), "{}", s.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_408() {
    let s = Server::start(&["--model", MINILM, "--request-timeout", "0.02"]).await;
    let c = client();
    let long = "The quick brown fox jumps over the lazy dog near the river bank. ".repeat(12);
    let r = c
        .post(s.url("/embed"))
        .json(&json!({"inputs": vec![long; 32], "truncate": true}))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_error(st, &v, 408, "timeout");
    // The server goes on answering.
    let (st, v) = post(&c, &s.url("/embed"), json!({"inputs": "short"})).await;
    assert!(st == 200 || st == 408, "{st} {v}");
}
