//! prost message types generated from the official .proto files by scripts/gen-proto.sh and
//! committed, so that building lmkit needs no protoc. Only a few fields of each are read; the
//! generated code is left as prost writes it, hence the allowances.

#[allow(dead_code, clippy::all)]
pub(crate) mod onnx;
#[allow(dead_code, clippy::all)]
pub(crate) mod sentencepiece;
