//! GGUF header and metadata, then the tokenizer rebuilt from it and used once.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = lmkit::formats::gguf::GgufFile::from_bytes(data, "fuzz.gguf") {
        let _ = f.architecture();
        let _ = f.context_length();
        let _ = f.chat_template();
        if let Ok(t) = f.tokenizer() {
            if let Ok(ids) = t.encode("Hello world, 안녕하세요!", true) {
                let _ = t.decode(&ids);
            }
        }
    }
});
