//! Weight files: which files of a model folder hold the checkpoint, reading them, and writing
//! safetensors so that Python `transformers` loads them.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Result, Tensor};

/// The weight files of a Hugging Face model folder, in the order transformers prefers them.
pub fn checkpoint_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: invalid JSON: {e}", index.display()))?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("{}: no \"weight_map\" object", index.display()))?;
        let files: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        // A shard is a file name in the model folder: a path that climbs out of it (an index
        // naming "../../etc/passwd") or into a subfolder is refused, not read.
        if let Some(bad) = files.iter().find(|f| {
            let p = Path::new(f);
            p.components().count() != 1
                || !matches!(p.components().next(), Some(std::path::Component::Normal(_)))
        }) {
            anyhow::bail!(
                "{}: shard {bad:?} is not a file name in the model folder; refusing to read it",
                index.display()
            )
        }
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok(vec![bin]);
    }
    anyhow::bail!(
        "no weights in {}: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin",
        dir.display()
    )
}

/// Reads one checkpoint file (safetensors, or a PyTorch pickle via candle's reader).
pub fn read_checkpoint(path: &Path, device: &Device) -> anyhow::Result<HashMap<String, Tensor>> {
    let is_bin = path.extension().is_some_and(|e| e == "bin" || e == "pt");
    // A crafted file can make a third-party reader panic (a pickle nested deep enough
    // overflows the stack of the thread reading it): read on a thread of its own with a known
    // stack, and turn a panic into an error naming the file.
    let owned = path.to_path_buf();
    let dev = device.clone();
    let read = std::thread::Builder::new()
        .name("checkpoint reader".into())
        .stack_size(64 << 20)
        .spawn(move || {
            if is_bin {
                candle_core::pickle::read_all(&owned).map(|v| v.into_iter().collect())
            } else {
                candle_core::safetensors::load(&owned, &dev)
            }
        })
        .map_err(|e| anyhow::anyhow!("starting a reader for {}: {e}", path.display()))?
        .join();
    let Ok(r) = read else {
        anyhow::bail!(
            "cannot read weights from {}: the file is malformed (its reader failed); re-fetch \
             the model, or convert a .bin to model.safetensors",
            path.display()
        )
    };
    r.map_err(|e| {
        anyhow::anyhow!(
            "cannot read weights from {}: {e} (is the file complete? re-fetch the model)",
            path.display()
        )
    })
}

/// Writes tensors as safetensors atomically (temp file, then rename), so an interrupted save
/// never leaves a half-written file under the final name.
pub fn save_safetensors(tensors: &[(String, Tensor)], path: &Path) -> anyhow::Result<()> {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    // transformers refuses safetensors files whose metadata lacks format=pt.
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = safetensors::serialize(&map, Some(meta))
        .map_err(|e| anyhow::anyhow!("serialising {}: {e}", path.display()))?;
    crate::util::write_atomic(path, &bytes)
}
