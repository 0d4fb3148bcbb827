//! A SentencePiece ModelProto, the tokenizer built from it, and one encode/decode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = lmkit::formats::spm::SpmModel::parse(data) {
        if let Ok(t) = m.to_tokenizer() {
            if let Ok(enc) = t.encode("Hello world, 안녕하세요!", false) {
                let _ = t.decode(enc.get_ids(), true);
            }
        }
    }
});
