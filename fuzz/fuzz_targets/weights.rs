//! Weight files: safetensors, a shard index, and a zip-format pytorch_model.bin (the first byte
//! picks which), read as a model folder's checkpoint.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
    ][pick as usize % 3];
    std::fs::write(dir.path().join(name), body).unwrap();
    if let Ok(files) = lmkit::formats::checkpoint::checkpoint_files(dir.path()) {
        for f in files {
            if f.starts_with(dir.path()) {
                let _ = lmkit::formats::checkpoint::read_checkpoint(&f, &candle_core::Device::Cpu);
            }
        }
    }
});
