//! A data file in each text format (the first byte picks csv, tsv, jsonl or `text;label`),
//! loaded with its labels as a Dataset.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let ext = ["csv", "tsv", "jsonl", "txt"][pick as usize % 4];
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("train.{ext}"));
    std::fs::write(&p, body).unwrap();
    if let Ok(d) = lmkit::data::io::load_file(&p, &Default::default()) {
        let _ = d.head(3);
    }
});
