//! An ONNX model's BERT initializers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lmkit::formats::onnx::bert_weights(data);
});
