//! config.json -> a model config, and its labels.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = lmkit::models::Config::from_json(text, "config.json".into()) {
            let _ = c.id2label();
            let _ = c.arch.max_positions();
            let _ = c.arch.hidden_size();
        }
    }
});
