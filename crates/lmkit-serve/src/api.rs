//! The request and response bodies, shaped as text-embeddings-inference (TEI) and OpenAI define
//! them so that their clients work unchanged. `/openapi.json` is generated from these types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use lmkit::formats::gguf::ChatMessage;

/// One text or several: TEI and OpenAI both accept either.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
}

impl Inputs {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Inputs::One(s) => vec![s],
            Inputs::Many(v) => v,
        }
    }
    pub fn is_one(&self) -> bool {
        matches!(self, Inputs::One(_))
    }
}

fn yes() -> bool {
    true
}

/// TEI `POST /embed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    pub inputs: Inputs,
    /// L2-normalise each vector (TEI's default: true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut inputs longer than the model's limit instead of refusing them.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// A prompt of the model's config_sentence_transformers.json ("query", "passage").
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// TEI `POST /embed_all`: one vector per token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedAllRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// TEI `POST /predict`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    pub inputs: Inputs,
    /// The logits themselves instead of softmax/sigmoid scores.
    #[serde(default)]
    pub raw_scores: bool,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub model: Option<String>,
}

/// TEI's `{score, label}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Prediction {
    pub score: f32,
    pub label: String,
}

/// TEI `POST /similarity`: cosine of a source sentence with each of several others.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarityRequest {
    pub inputs: SimilarityInput,
    #[serde(default)]
    pub truncate: Option<bool>,
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarityInput {
    pub source_sentence: String,
    pub sentences: Vec<String>,
}

/// TEI `POST /tokenize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    pub inputs: Inputs,
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    #[serde(default)]
    pub prompt_name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// One token as TEI's `/tokenize` returns it: byte offsets into the input.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SimpleToken {
    pub id: u32,
    pub text: String,
    pub special: bool,
    pub start: Option<usize>,
    pub stop: Option<usize>,
}

/// Token ids: one sequence or several.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Ids {
    One(Vec<u32>),
    Many(Vec<Vec<u32>>),
}

/// TEI `POST /decode`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecodeRequest {
    pub ids: Ids,
    #[serde(default = "yes")]
    pub skip_special_tokens: bool,
    #[serde(default)]
    pub model: Option<String>,
}

/// lmkit's `POST /zero-shot`, as transformers' zero-shot-classification pipeline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotRequest {
    pub inputs: Inputs,
    pub candidate_labels: Vec<String>,
    #[serde(default)]
    pub hypothesis_template: Option<String>,
    #[serde(default)]
    pub multi_label: bool,
    #[serde(default)]
    pub model: Option<String>,
}

/// transformers' zero-shot output for one text.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ZeroShotResult {
    pub sequence: String,
    pub labels: Vec<String>,
    pub scores: Vec<f32>,
}

/// lmkit's `POST /translate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TranslateRequest {
    pub inputs: Inputs,
    pub src: String,
    pub tgt: String,
    #[serde(default)]
    pub model: Option<String>,
}

/// lmkit's `POST /summarize`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeRequest {
    pub inputs: Inputs,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TranslationText {
    pub translation_text: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryText {
    pub summary_text: String,
}

/// OpenAI `POST /v1/embeddings`. Token-id inputs are not accepted.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenAiEmbeddingsRequest {
    pub input: Inputs,
    #[serde(default)]
    pub model: Option<String>,
    /// "float" (default) or "base64" (little-endian f32 bytes; the openai package asks for it).
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<usize>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbedding {
    pub object: &'static str,
    #[schema(value_type = Object)]
    pub embedding: serde_json::Value,
    pub index: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiEmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<OpenAiEmbedding>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<usize>,
    pub total_tokens: usize,
}

/// A message's content: a string, or OpenAI's list of typed parts (text parts only).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct RequestMessage {
    pub role: String,
    pub content: Content,
}

impl RequestMessage {
    pub fn to_chat(&self, i: usize) -> Result<ChatMessage, String> {
        if !["system", "user", "assistant", "developer"].contains(&self.role.as_str()) {
            return Err(format!(
                "messages[{i}].role is {:?}: use system, user or assistant",
                self.role
            ));
        }
        let content = match &self.content {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => {
                let mut s = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => s.push_str(t),
                        _ => {
                            return Err(format!(
                            "messages[{i}].content[{j}] is a {:?} part: only text parts are served",
                            p.kind
                        ))
                        }
                    }
                }
                s
            }
        };
        let role = if self.role == "developer" {
            "system".to_string()
        } else {
            self.role.clone()
        };
        Ok(ChatMessage { role, content })
    }
}

/// `stop`: one string or several.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The sampling knobs OpenAI's chat and completion requests share.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct Sampling {
    /// OpenAI's default is 1 (sampling); 0 is greedy.
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub stream: bool,
}

/// OpenAI `POST /v1/chat/completions`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<RequestMessage>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// OpenAI `POST /v1/completions`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: Inputs,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    pub finish_reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    pub index: usize,
    pub text: String,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<serde_json::Value>,
    pub finish_reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionResponse {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    pub usage: Usage,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

/// Every error's body: TEI's `{error, error_type}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub error_type: String,
}
