//! Decoding: sampling and greedy search for decoder-only LLMs (`sampling`), beam search for
//! encoder-decoder models (`beam`).

pub mod beam;
pub mod sampling;
