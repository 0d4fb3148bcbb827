//! Neural-network building blocks: layers that run in eval mode for inference and in train
//! mode for fine-tuning (dropout on, gradients through every op, including layer norm and
//! softmax), the encoder layer BERT and DistilBERT share with its written-out backward, the optimiser, weight loading,
//! and the CPU kernels underneath (`kernels`, chosen at run time by ISA).

pub mod attention;
pub mod encoder;
pub mod kernels;
pub mod layers;
pub mod loss;
pub mod optim;
pub mod weights;

pub use attention::{attention_bias, query_positions};
pub use encoder::{
    EmbeddingsConfig, EncoderLayer, EncoderLayerConfig, EncoderLayerNames, TokenEmbeddings,
    TransformerEncoder,
};
pub use kernels::matmul::{attention_context, attention_scores, linear};
pub use kernels::ops::{gelu_erf, layer_norm, masked_softmax, softmax_last_dim};
pub(crate) use layers::DropMask;
pub use layers::{Activation, Dropout, DropoutRng, Embedding, LayerNorm, Linear};
pub use loss::cross_entropy;
pub(crate) use loss::cross_entropy_backward;
pub use optim::ParamGrads;
pub use weights::{Init, LoadOptions, Precision, Weights};
