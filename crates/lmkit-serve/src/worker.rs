//! One inference worker per model, on its own OS thread, fed by a bounded queue: the async
//! runtime only parses, queues and answers, and never blocks on a forward pass.
//!
//! The worker owns its model. It takes the oldest job, then any more embedding or
//! classification jobs already waiting, up to `--max-batch-tokens`, and runs them as one
//! call (the pipelines sort the texts by length, so little compute goes to padding).
//! Generation runs one request at a time. A panic inside a batch answers that batch with 500
//! and reloads the model; the server keeps going.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use lmkit::embed::SentenceTransformer;
use lmkit::formats::gguf::ChatMessage;
use lmkit::generation::sampling::{generate, Generated, GenerationConfig};
use lmkit::models::LoadOptions;
use lmkit::pipelines::text2text::{is_seq2seq, Text2TextPipeline};
use lmkit::pipelines::text_generation::TextGenerationPipeline;
use lmkit::pipelines::{
    LabelScore, TextClassificationPipeline, ZeroShotClassificationPipeline, ZeroShotOptions,
    ZeroShotOutput,
};
use lmkit::tokenize::{EncodeOptions, Padding};

use crate::api::SimpleToken;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What a loaded model can do; each route asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    Embed,
    Predict,
    ZeroShot,
    Tokenize,
    Decode,
    Generate,
    Translate,
    Summarize,
}

/// A loaded model's description, for routing, `/info` and the startup lines.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub id: String,
    /// embedding | classifier | llm | seq2seq
    pub kind: &'static str,
    pub caps: Vec<Cap>,
    pub routes: Vec<&'static str>,
    /// The longest input in tokens (the LLM's context).
    pub max_input_length: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimension: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_shot_method: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub enum ModelState {
    Loading,
    Ready(Arc<ModelInfo>),
    Failed(String),
}

/// The runtime's side of a worker: its queue and what it has said about its model.
pub struct ModelHandle {
    pub id: String,
    pub state: Mutex<ModelState>,
    tx: SyncSender<Job>,
    depth: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl ModelHandle {
    pub fn state(&self) -> ModelState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_state(&self, s: ModelState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Queues `work` and waits for its answer.
    pub async fn call(&self, work: Work) -> Result<Reply, ApiError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work,
            reply,
            enqueued: Instant::now(),
        };
        let depth = self.depth.fetch_add(1, Ordering::SeqCst) + 1;
        self.metrics.queue_depth(&self.id, depth);
        if let Err(e) = self.tx.try_send(job) {
            self.depth.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                std::sync::mpsc::TrySendError::Full(_) => {
                    self.metrics.rejected("queue_full");
                    ApiError::overloaded(format!("the queue of {} is full", self.id))
                }
                std::sync::mpsc::TrySendError::Disconnected(_) => {
                    ApiError::unavailable(format!("{} is not running", self.id))
                }
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::internal(format!(
                "the worker of {} stopped before answering",
                self.id
            )))
        })
    }
}

pub enum Prompt {
    Chat(Vec<ChatMessage>),
    Text(String),
}

pub enum Work {
    /// Sentence vectors (`pooled`) or one vector per token.
    Embed {
        texts: Vec<String>,
        normalize: bool,
        truncate: bool,
        prompt_name: Option<String>,
        pooled: bool,
    },
    Predict {
        texts: Vec<String>,
        raw_scores: bool,
        truncate: bool,
    },
    ZeroShot {
        texts: Vec<String>,
        opts: ZeroShotOptions,
    },
    Tokenize {
        texts: Vec<String>,
        add_special_tokens: bool,
        prompt_name: Option<String>,
    },
    Decode {
        ids: Vec<Vec<u32>>,
        skip_special_tokens: bool,
    },
    /// Text pieces go to `events` as they are generated; the reply holds the whole.
    Generate {
        prompt: Prompt,
        cfg: GenerationConfig,
        events: mpsc::UnboundedSender<String>,
    },
    Translate {
        texts: Vec<String>,
        src: String,
        tgt: String,
    },
    Summarize {
        texts: Vec<String>,
    },
}

pub enum Reply {
    /// Vectors and the number of tokens they cost (OpenAI's `usage`).
    Vectors(Vec<Vec<f32>>, usize),
    TokenVectors(Vec<Vec<Vec<f32>>>),
    Predictions(Vec<Vec<LabelScore>>),
    ZeroShot(Vec<ZeroShotOutput>),
    Tokens(Vec<Vec<SimpleToken>>),
    Texts(Vec<String>),
    Generated(Generated),
}

pub struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Reply, ApiError>>,
    enqueued: Instant,
}

/// How the worker runs: the server's limits that concern a model.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub precision: lmkit::nn::Precision,
    pub max_batch_tokens: usize,
    pub auto_truncate: bool,
    pub queue: usize,
}

/// Starts the worker of model `id`; it loads the model on its own thread (`/health` says
/// 503 until every model is ready) and reports the outcome to `ready`.
pub fn spawn(
    id: &str,
    cfg: WorkerConfig,
    metrics: Arc<Metrics>,
    ready: mpsc::UnboundedSender<(String, Result<Arc<ModelInfo>, String>)>,
) -> Result<Arc<ModelHandle>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue.max(1));
    let handle = Arc::new(ModelHandle {
        id: id.to_string(),
        state: Mutex::new(ModelState::Loading),
        tx,
        depth: AtomicUsize::new(0),
        metrics,
    });
    let h = handle.clone();
    std::thread::Builder::new()
        .name(format!("lmkit-worker {id}"))
        .spawn(move || run(h, cfg, rx, ready))?;
    Ok(handle)
}

/// A model as the worker holds it.
// One per worker, built once: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Engine {
    /// A sentence-embedding model; the zero-shot pipeline holds it and scores by cosine.
    Embedding(ZeroShotClassificationPipeline),
    Classifier {
        clf: TextClassificationPipeline,
        /// An NLI model (labels with "entailment") also serves zero-shot.
        nli: Option<ZeroShotClassificationPipeline>,
    },
    Llm(TextGenerationPipeline),
    Seq2Seq(Text2TextPipeline),
}

fn load(id: &str, cfg: &WorkerConfig) -> Result<(Engine, ModelInfo)> {
    let opts = LoadOptions::precision(cfg.precision);
    let path = Path::new(id);
    let gguf = path.is_file() && path.extension().is_some_and(|e| e == "gguf")
        || lmkit::pipelines::model_dir(id).is_ok_and(|d| d.join("model.gguf").is_file());
    let info = |kind, caps: Vec<Cap>, max_input_length| ModelInfo {
        id: id.to_string(),
        kind,
        routes: routes_of(&caps),
        caps,
        max_input_length,
        labels: None,
        dimension: None,
        zero_shot_method: None,
    };
    if gguf {
        let p = TextGenerationPipeline::new(id)?;
        let ctx = p.model.context_length;
        let i = info("llm", vec![Cap::Generate, Cap::Tokenize, Cap::Decode], ctx);
        return Ok((Engine::Llm(p), i));
    }
    if is_seq2seq(id) {
        let p = Text2TextPipeline::new(id)?;
        let n = p.max_input;
        let i = info(
            "seq2seq",
            vec![Cap::Translate, Cap::Summarize, Cap::Decode],
            n,
        );
        return Ok((Engine::Seq2Seq(p), i));
    }
    let dir = lmkit::pipelines::model_dir(id)?;
    let has_labels = lmkit::models::Config::from_folder(&dir)
        .ok()
        .and_then(|c| c.id2label())
        .is_some();
    if has_labels {
        // A checkpoint without a classification head is an encoder to embed with.
        if let Ok(clf) = TextClassificationPipeline::new(id, &opts) {
            let labels = clf.model.labels.clone();
            let is_nli = labels
                .iter()
                .any(|l| l.to_lowercase().starts_with("entail"));
            let nli = if is_nli {
                Some(ZeroShotClassificationPipeline::new(Some(id), &opts)?)
            } else {
                None
            };
            let mut caps = vec![Cap::Predict, Cap::Tokenize, Cap::Decode];
            if nli.is_some() {
                caps.push(Cap::ZeroShot);
            }
            let mut i = info("classifier", caps, clf.max_length);
            i.labels = Some(labels);
            i.zero_shot_method = nli.as_ref().map(|_| "nli");
            return Ok((Engine::Classifier { clf, nli }, i));
        }
    }
    let mut st = SentenceTransformer::from_folder(&dir, &opts)?;
    // Normalisation is the request's choice (TEI's `normalize`, default true).
    st.normalize = false;
    let mut i = info(
        "embedding",
        vec![Cap::Embed, Cap::ZeroShot, Cap::Tokenize, Cap::Decode],
        st.max_seq_length,
    );
    i.dimension = Some(st.model.config.arch.hidden_size());
    i.zero_shot_method = Some("embedding");
    Ok((
        Engine::Embedding(ZeroShotClassificationPipeline::from_embedding(st, id)),
        i,
    ))
}

/// The routes a model with these capabilities answers.
fn routes_of(caps: &[Cap]) -> Vec<&'static str> {
    let mut r = vec![];
    for c in caps {
        r.extend_from_slice(match c {
            Cap::Embed => &["/embed", "/embed_all", "/similarity", "/v1/embeddings"][..],
            Cap::Predict => &["/predict"],
            Cap::ZeroShot => &["/zero-shot"],
            Cap::Tokenize => &["/tokenize"],
            Cap::Decode => &["/decode"],
            Cap::Generate => &["/v1/chat/completions", "/v1/completions"],
            Cap::Translate => &["/translate"],
            Cap::Summarize => &["/summarize"],
        });
    }
    r
}

fn run(
    h: Arc<ModelHandle>,
    cfg: WorkerConfig,
    rx: Receiver<Job>,
    ready: mpsc::UnboundedSender<(String, Result<Arc<ModelInfo>, String>)>,
) {
    let mut engine = match load_into(&h, &cfg) {
        Ok((e, info)) => {
            let _ = ready.send((h.id.clone(), Ok(info)));
            e
        }
        Err(e) => {
            let _ = ready.send((h.id.clone(), Err(e.clone())));
            // Answer whatever still comes, until the server drops the queue.
            while let Ok(job) = rx.recv() {
                h.depth.fetch_sub(1, Ordering::SeqCst);
                let _ = job.reply.send(Err(ApiError::unavailable(format!(
                    "{} failed to load: {e}",
                    h.id
                ))));
            }
            return;
        }
    };
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match pending.pop_front() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => {
                    h.depth.fetch_sub(1, Ordering::SeqCst);
                    j
                }
                Err(_) => return,
            },
        };
        let mut batch = vec![first];
        if matches!(
            batch[0].work,
            Work::Embed { pooled: true, .. } | Work::Predict { .. }
        ) {
            let mut tokens = work_tokens(&batch[0].work);
            while let Ok(j) = rx.try_recv() {
                h.depth.fetch_sub(1, Ordering::SeqCst);
                let t = work_tokens(&j.work);
                if same_kind(&batch[0].work, &j.work) && tokens + t <= cfg.max_batch_tokens {
                    tokens += t;
                    batch.push(j);
                } else {
                    pending.push_back(j);
                    break;
                }
            }
        }
        h.metrics.queue_depth(&h.id, h.depth.load(Ordering::SeqCst));
        // A client that went away while its job waited costs nothing.
        batch.retain(|j| !j.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let queued: Vec<f64> = batch
            .iter()
            .map(|j| j.enqueued.elapsed().as_secs_f64())
            .collect();
        let t0 = Instant::now();
        let (works, replies): (Vec<Work>, Vec<_>) =
            batch.into_iter().map(|j| (j.work, j.reply)).unzip();
        let tokens: usize = works.iter().map(work_tokens).sum();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            run_batch(&mut engine, &cfg, &h.metrics, &h.id, works)
        }));
        h.metrics.batch(
            &h.id,
            replies.len(),
            tokens,
            &queued,
            t0.elapsed().as_secs_f64(),
        );
        match outcome {
            Ok(results) => {
                for (r, out) in replies.into_iter().zip(results) {
                    let _ = r.send(out);
                }
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                tracing::error!(model = %h.id, "worker panicked: {what}; reloading the model");
                for r in replies {
                    let _ = r.send(Err(ApiError::internal(format!(
                        "the model's worker failed on this request ({what}); it has restarted"
                    ))));
                }
                engine = match load_into(&h, &cfg) {
                    Ok((e, _)) => e,
                    Err(e) => {
                        tracing::error!(model = %h.id, "reloading failed: {e}");
                        while let Ok(job) = rx.recv() {
                            h.depth.fetch_sub(1, Ordering::SeqCst);
                            let _ = job.reply.send(Err(ApiError::unavailable(format!(
                                "{} failed to reload: {e}",
                                h.id
                            ))));
                        }
                        return;
                    }
                };
            }
        }
    }
}

fn load_into(h: &ModelHandle, cfg: &WorkerConfig) -> Result<(Engine, Arc<ModelInfo>), String> {
    h.set_state(ModelState::Loading);
    // A panic inside a third-party loader is a failed load, not a dead thread.
    let loaded = catch_unwind(AssertUnwindSafe(|| load(&h.id, cfg)))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the loader panicked")));
    match loaded {
        Ok((e, info)) => {
            let info = Arc::new(info);
            h.set_state(ModelState::Ready(info.clone()));
            Ok((e, info))
        }
        Err(e) => {
            let msg = format!("{e:#}");
            h.set_state(ModelState::Failed(msg.clone()));
            Err(msg)
        }
    }
}

fn same_kind(a: &Work, b: &Work) -> bool {
    matches!(
        (a, b),
        (
            Work::Embed { pooled: true, .. },
            Work::Embed { pooled: true, .. }
        ) | (Work::Predict { .. }, Work::Predict { .. })
    )
}

/// A cheap size of a job for the batch budget: its texts' bytes / 4, about a token each for
/// English subwords (the exact counts come when the batch is tokenized).
fn work_tokens(w: &Work) -> usize {
    let texts = match w {
        Work::Embed { texts, .. }
        | Work::Predict { texts, .. }
        | Work::ZeroShot { texts, .. }
        | Work::Tokenize { texts, .. }
        | Work::Translate { texts, .. }
        | Work::Summarize { texts } => texts,
        _ => return 1,
    };
    texts.iter().map(|t| t.len() / 4 + 2).sum()
}

/// Runs a batch of jobs of one kind; one result per job, in order.
fn run_batch(
    engine: &mut Engine,
    cfg: &WorkerConfig,
    metrics: &Metrics,
    id: &str,
    works: Vec<Work>,
) -> Vec<Result<Reply, ApiError>> {
    if works.len() > 1 {
        return match engine {
            Engine::Embedding(zs) => {
                let st = zs.embedding_model().expect("an embedding engine");
                run_pooled_batch(st, cfg, works)
            }
            Engine::Classifier { clf, .. } => run_predict_batch(clf, cfg, works),
            _ => works
                .into_iter()
                .map(|_| Err(ApiError::internal("only encoders batch")))
                .collect(),
        };
    }
    let w = works.into_iter().next().expect("a batch has a job");
    vec![run_one(engine, cfg, metrics, id, w)]
}

fn unsupported(what: &str) -> ApiError {
    ApiError::validation(format!("this model does not serve {what}"))
}

fn run_one(
    engine: &mut Engine,
    cfg: &WorkerConfig,
    metrics: &Metrics,
    id: &str,
    w: Work,
) -> Result<Reply, ApiError> {
    let lm = |e: anyhow::Error| ApiError::from_lmkit(&e);
    match (engine, w) {
        (Engine::Embedding(zs), w @ Work::Embed { pooled: true, .. }) => {
            let st = zs.embedding_model().expect("an embedding engine");
            run_pooled_batch(st, cfg, vec![w]).pop().expect("one reply")
        }
        (
            Engine::Embedding(zs),
            Work::Embed {
                texts,
                truncate,
                prompt_name,
                pooled: false,
                ..
            },
        ) => {
            let st = zs.embedding_model().expect("an embedding engine");
            let texts = prompted(st, &texts, prompt_name.as_deref())?;
            check_lengths(
                &st.tokenizer,
                &texts,
                st.max_seq_length,
                truncate || cfg.auto_truncate,
            )?;
            let mut out = vec![];
            for t in &texts {
                let enc = st
                    .tokenizer
                    .encode_batch(
                        &[t],
                        EncodeOptions {
                            padding: Padding::None,
                            max_length: Some(st.max_seq_length),
                            add_special_tokens: true,
                        },
                    )
                    .map_err(lm)?;
                let input = enc.to_input(&Device::Cpu).map_err(lm)?;
                let h = st.model.forward(&input).map_err(lm)?;
                let rows = h
                    .squeeze(0)
                    .and_then(|h| h.to_vec2::<f32>())
                    .map_err(|e| lm(e.into()))?;
                out.push(rows);
            }
            Ok(Reply::TokenVectors(out))
        }
        (Engine::Classifier { clf, .. }, w @ Work::Predict { .. }) => {
            run_predict_batch(clf, cfg, vec![w])
                .pop()
                .expect("one reply")
        }
        (Engine::Embedding(zs), Work::ZeroShot { texts, opts })
        | (Engine::Classifier { nli: Some(zs), .. }, Work::ZeroShot { texts, opts }) => {
            Ok(Reply::ZeroShot(zs.call(&texts, &opts).map_err(lm)?))
        }
        (
            engine,
            Work::Tokenize {
                texts,
                add_special_tokens,
                prompt_name,
            },
        ) => {
            let texts = match &*engine {
                Engine::Embedding(zs) => prompted(
                    zs.embedding_model().expect("embedding"),
                    &texts,
                    prompt_name.as_deref(),
                )?,
                _ => texts,
            };
            let tok = match &*engine {
                Engine::Embedding(zs) => zs.embedding_model().expect("embedding").tokenizer.inner(),
                Engine::Classifier { clf, .. } => clf.tokenizer.inner(),
                Engine::Llm(p) => &p.model.tokenizer.tokenizer,
                Engine::Seq2Seq(_) => return Err(unsupported("/tokenize")),
            };
            let mut out = vec![];
            for t in &texts {
                let enc = tok
                    .encode(t.as_str(), add_special_tokens)
                    .map_err(|e| ApiError::validation(format!("tokenizing: {e}")))?;
                let special = enc.get_special_tokens_mask();
                out.push(
                    enc.get_ids()
                        .iter()
                        .zip(enc.get_tokens())
                        .zip(enc.get_offsets())
                        .zip(special)
                        .map(|(((&id, text), &(s, e)), &sp)| SimpleToken {
                            id,
                            text: text.clone(),
                            special: sp == 1,
                            start: (sp == 0).then_some(s),
                            stop: (sp == 0).then_some(e),
                        })
                        .collect(),
                );
            }
            Ok(Reply::Tokens(out))
        }
        (
            engine,
            Work::Decode {
                ids,
                skip_special_tokens,
            },
        ) => {
            let vocab = match &*engine {
                Engine::Embedding(zs) => zs
                    .embedding_model()
                    .expect("embedding")
                    .tokenizer
                    .vocab_size(),
                Engine::Classifier { clf, .. } => clf.tokenizer.vocab_size(),
                Engine::Llm(p) => p.model.tokenizer.tokenizer.get_vocab_size(true),
                Engine::Seq2Seq(_) => usize::MAX,
            };
            let mut out = vec![];
            for (i, seq) in ids.iter().enumerate() {
                if let Some(bad) = seq.iter().find(|&&t| t as usize >= vocab) {
                    return Err(ApiError::validation(format!(
                        "ids[{i}] holds {bad}, outside the vocabulary (0..{vocab})"
                    )));
                }
                let text = match &*engine {
                    Engine::Embedding(zs) => zs
                        .embedding_model()
                        .expect("embedding")
                        .tokenizer
                        .decode(seq, skip_special_tokens),
                    Engine::Classifier { clf, .. } => {
                        clf.tokenizer.decode(seq, skip_special_tokens)
                    }
                    Engine::Llm(p) => p
                        .model
                        .tokenizer
                        .tokenizer
                        .decode(seq, skip_special_tokens)
                        .map_err(|e| anyhow::anyhow!("decoding: {e}")),
                    Engine::Seq2Seq(p) => p.tokenizer.decode(seq, skip_special_tokens),
                };
                out.push(text.map_err(lm)?);
            }
            Ok(Reply::Texts(out))
        }
        (
            Engine::Llm(p),
            Work::Generate {
                prompt,
                mut cfg,
                events,
            },
        ) => {
            let ids = match &prompt {
                Prompt::Chat(m) => p.chat_ids(m),
                Prompt::Text(t) => p.prompt_ids(t, false),
            }
            .map_err(lm)?;
            let ctx = p.model.context_length;
            if ids.len() >= ctx {
                return Err(ApiError::validation(format!(
                    "the prompt is {} tokens, and this model's context holds {ctx}",
                    ids.len()
                )));
            }
            cfg.max_new_tokens = cfg.max_new_tokens.min(ctx - ids.len());
            let cancel = cfg.cancel.clone();
            let g = generate(&mut p.model, &ids, &cfg, |piece| {
                if events.send(piece.to_string()).is_err() {
                    // Nobody is listening: stop after this token.
                    if let Some(c) = &cancel {
                        c.store(true, Ordering::Relaxed);
                    }
                }
            })
            .map_err(lm)?;
            metrics.generated(id, g.new_tokens);
            Ok(Reply::Generated(g))
        }
        (Engine::Seq2Seq(p), Work::Translate { texts, src, tgt }) => {
            let mut out = vec![];
            for t in &texts {
                out.push(p.translate(t, &src, &tgt, |_| {}).map_err(lm)?.output);
            }
            Ok(Reply::Texts(out))
        }
        (Engine::Seq2Seq(p), Work::Summarize { texts }) => {
            let mut out = vec![];
            for t in &texts {
                out.push(p.summarize(t, |_| {}).map_err(lm)?.output);
            }
            Ok(Reply::Texts(out))
        }
        _ => Err(unsupported("this route")),
    }
}

/// The texts with the model's named (or default) prompt in front.
fn prompted(
    st: &SentenceTransformer,
    texts: &[String],
    prompt_name: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    if let Some(n) = prompt_name {
        if !st.prompts.contains_key(n) {
            let have: Vec<&str> = st.prompts.keys().map(|s| s.as_str()).collect();
            return Err(ApiError::validation(format!(
                "prompt_name {n:?} is not one of this model's prompts ({})",
                if have.is_empty() {
                    "it has none".to_string()
                } else {
                    have.join(", ")
                }
            )));
        }
    }
    Ok(texts
        .iter()
        .map(|t| st.with_prompt(t, prompt_name))
        .collect())
}

/// Token counts of the texts; an input over `max` tokens is refused unless it may be cut.
fn check_lengths(
    tok: &lmkit::tokenize::AutoTokenizer,
    texts: &[String],
    max: usize,
    may_truncate: bool,
) -> Result<usize, ApiError> {
    let enc = tok
        .inner()
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| ApiError::validation(format!("tokenizing: {e}")))?;
    let mut total = 0;
    for (i, e) in enc.iter().enumerate() {
        let n = e.get_ids().len();
        if n > max && !may_truncate {
            return Err(ApiError::validation(format!(
                "input {i} is {n} tokens, over this model's limit of {max}: shorten it, send \
                 \"truncate\": true, or start the server with --auto-truncate"
            )));
        }
        total += n.min(max);
    }
    Ok(total)
}

/// Jobs that run as one pipeline call: each job's texts are checked (`prepare`, an error
/// answers that job alone), all the texts run at once (`run`), and each job gets its own rows
/// back (`finish`).
fn run_as_one<J, R>(
    works: Vec<Work>,
    prepare: impl Fn(Work) -> Result<(Vec<String>, J), ApiError>,
    run: impl FnOnce(&[String]) -> anyhow::Result<Vec<R>>,
    finish: impl Fn(&[R], J) -> Result<Reply, ApiError>,
) -> Vec<Result<Reply, ApiError>> {
    let mut results: Vec<Option<Result<Reply, ApiError>>> =
        (0..works.len()).map(|_| None).collect();
    let mut all: Vec<String> = vec![];
    // (job, first row, rows, what the job needs to finish)
    let mut spans = vec![];
    for (j, w) in works.into_iter().enumerate() {
        match prepare(w) {
            Ok((texts, extra)) => {
                spans.push((j, all.len(), texts.len(), extra));
                all.extend(texts);
            }
            Err(e) => results[j] = Some(Err(e)),
        }
    }
    if !all.is_empty() {
        match run(&all) {
            Ok(rows) => {
                for (j, start, n, extra) in spans {
                    results[j] = Some(finish(&rows[start..start + n], extra));
                }
            }
            Err(e) => {
                let err = ApiError::from_lmkit(&e);
                for (j, ..) in spans {
                    results[j] = Some(Err(err.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::internal("no result"))))
        .collect()
}

/// Embedding jobs run as one `encode` call.
fn run_pooled_batch(
    st: &SentenceTransformer,
    cfg: &WorkerConfig,
    works: Vec<Work>,
) -> Vec<Result<Reply, ApiError>> {
    run_as_one(
        works,
        |w| {
            let Work::Embed {
                texts,
                normalize,
                truncate,
                prompt_name,
                ..
            } = w
            else {
                return Err(ApiError::internal("a mixed batch"));
            };
            let texts = prompted(st, &texts, prompt_name.as_deref())?;
            let tokens = check_lengths(
                &st.tokenizer,
                &texts,
                st.max_seq_length,
                truncate || cfg.auto_truncate,
            )?;
            Ok((texts, (normalize, tokens)))
        },
        |all| st.encode(all),
        |rows, (normalize, tokens)| {
            let mut v = rows.to_vec();
            if normalize {
                v.iter_mut().for_each(|r| l2_normalize(r));
            }
            Ok(Reply::Vectors(v, tokens))
        },
    )
}

/// Classification jobs run as one `logits` call.
fn run_predict_batch(
    clf: &TextClassificationPipeline,
    cfg: &WorkerConfig,
    works: Vec<Work>,
) -> Vec<Result<Reply, ApiError>> {
    run_as_one(
        works,
        |w| {
            let Work::Predict {
                texts,
                raw_scores,
                truncate,
            } = w
            else {
                return Err(ApiError::internal("a mixed batch"));
            };
            check_lengths(
                &clf.tokenizer,
                &texts,
                clf.max_length,
                truncate || cfg.auto_truncate,
            )?;
            Ok((texts, raw_scores))
        },
        |all| clf.logits(all),
        |rows, raw| {
            rows.iter()
                .map(|l| clf.labelled(l, raw))
                .collect::<anyhow::Result<Vec<_>>>()
                .map(Reply::Predictions)
                .map_err(|e| ApiError::from_lmkit(&e))
        },
    )
}

/// Divides a vector by its L2 norm in f64 (a zero vector stays zero).
fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
    }
}
