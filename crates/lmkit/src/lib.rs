//! lmkit: run, tokenize, embed with and fine-tune pretrained language models natively in Rust,
//! with the calling conventions of Hugging Face `transformers`.
//!
//! ```no_run
//! use lmkit::prelude::*;
//! let tok = AutoTokenizer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
//! let enc = tok.encode_batch(&["I have a dream."], EncodeOptions::default())?;
//! let st = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2", &LoadOptions::default())?;
//! let v = st.encode(&["I have a dream.", "She was so happy."])?;
//! println!("{:?} {}", enc.input_ids, cosine_similarity(&v[0], &v[1]));
//! # anyhow::Ok(())
//! ```

// The layers, bottom to top: util, plot, formats, hub, tokenize, data, nn, models, embed,
// generation, metrics, train, pipelines, finetune. A module imports only from the layers below
// it; `tests/architecture.rs` holds the same list and fails on an import that points up.
pub mod data;
pub mod embed;
pub mod finetune;
pub mod formats;
pub mod generation;
pub mod hub;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod pipelines;
pub mod plot;
pub mod tokenize;
pub mod train;
pub mod util;

/// The names a course notebook uses, in one import.
pub mod prelude {
    pub use crate::data::{load_dataset, ClassLabel, Dataset, DatasetDict, MapOptions};
    pub use crate::embed::{cosine_similarity, SentenceTransformer};
    pub use crate::models::{AutoModel, AutoModelForSequenceClassification, LoadOptions};
    pub use crate::pipelines::{pipeline, PipelineOptions, PipelineOutput, ZeroShotOptions};
    pub use crate::tokenize::{AutoTokenizer, BatchEncoding, EncodeOptions, ModelInput, Padding};
}
