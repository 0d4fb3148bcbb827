//! Bad input gets a clear error (naming the file or tensor) or documented behaviour, never a
//! panic.

mod common;
use common::*;

use candle_core::Device;
use lmkit::models::{AutoModel, AutoModelForSequenceClassification};
use lmkit::prelude::*;

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The `{:#}` error of loading a bare encoder from `dir`, which must fail.
fn load_error(dir: &std::path::Path) -> String {
    format!(
        "{:#}",
        AutoModel::from_folder(dir, &LoadOptions::default())
            .err()
            .expect("loading must fail")
    )
}

/// Replaces text in a config file.
fn edit_config(cfg: &std::path::Path, edits: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    for (from, to) in edits {
        text = text.replace(from, to);
    }
    std::fs::write(cfg, text).unwrap();
}

#[test]
fn truncated_safetensors_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-bert-cls"), tmp.path());
    let f = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let err = AutoModel::from_folder(tmp.path(), &LoadOptions::default())
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("re-fetch"),
        "{err}"
    );
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-bert-cls"), tmp.path());
    // Claim a bigger hidden size than the weights have.
    let cfg = tmp.path().join("config.json");
    edit_config(
        &cfg,
        &[("\"intermediate_size\": 37", "\"intermediate_size\": 40")],
    );
    let err = load_error(tmp.path());
    assert!(
        err.contains("intermediate.dense.weight")
            && err.contains("[37, 32]")
            && err.contains("[40, 32]"),
        "{err}"
    );

    // Two layers more than the checkpoint has.
    edit_config(
        &cfg,
        &[
            ("\"intermediate_size\": 40", "\"intermediate_size\": 37"),
            ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 4"),
        ],
    );
    let err = load_error(tmp.path());
    assert!(
        err.contains("encoder.layer.2") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn unknown_model_type_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-bert-cls"), tmp.path());
    let cfg = tmp.path().join("config.json");
    edit_config(
        &cfg,
        &[("\"model_type\": \"bert\"", "\"model_type\": \"mamba\"")],
    );
    let err = load_error(tmp.path());
    assert!(
        err.contains("mamba") && err.contains("not supported"),
        "{err}"
    );
}

#[test]
fn a_bare_encoder_is_not_a_classifier_without_labels() {
    let dir = lmkit::hub::resolve("sentence-transformers/paraphrase-MiniLM-L3-v2").unwrap();
    let err = AutoModelForSequenceClassification::load(&dir, None, &LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("id2label"), "{err}");
}

#[test]
fn empty_and_overlong_texts() {
    let st = SentenceTransformer::from_pretrained(
        "sentence-transformers/paraphrase-MiniLM-L3-v2",
        &LoadOptions::default(),
    )
    .unwrap();
    // "" is [CLS] [SEP], as in transformers: a valid (if meaningless) embedding.
    let v = st.encode(&["", "hello"]).unwrap();
    assert!(v[0].iter().all(|x| x.is_finite()));
    // Over-long input is truncated to max_seq_length (with a warning), not an error.
    let long = "word ".repeat(5000);
    let enc = st
        .tokenizer
        .encode_batch(
            &[long.as_str()],
            EncodeOptions {
                max_length: Some(st.max_seq_length),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(enc.input_ids[0].len(), st.max_seq_length);
    assert!(enc.truncated[0] > 0);
    assert_eq!(*enc.input_ids[0].last().unwrap(), 102, "[SEP] is kept");
    assert_eq!(st.encode(&[long.as_str()]).unwrap()[0].len(), 384);
    // No texts at all.
    assert!(st.encode_batch(&[]).is_err());
}

#[test]
fn token_ids_beyond_the_vocabulary_are_an_error() {
    let m =
        AutoModel::from_folder(&fixtures().join("tiny-bert-cls"), &LoadOptions::default()).unwrap();
    let ids = candle_core::Tensor::new(&[[1u32, 500]], &Device::Cpu).unwrap();
    let x = lmkit::models::ModelInput {
        attention_mask: ids.ones_like().unwrap(),
        input_ids: ids,
        token_type_ids: None,
    };
    let err = m.forward(&x).err().unwrap().to_string();
    assert!(err.contains("out of range"), "{err}");
}

/// A shard index may name only files in the model folder: a path out of it is refused before
/// anything is read.
#[test]
fn a_shard_index_cannot_point_outside_the_model_folder() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in [
        "../../../../etc/passwd",
        "/etc/passwd",
        "sub/model.safetensors",
    ] {
        let dir = tmp.path().join("m");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            format!(r#"{{"weight_map": {{"embeddings.word_embeddings.weight": "{bad}"}}}}"#),
        )
        .unwrap();
        let e = format!(
            "{:#}",
            lmkit::formats::checkpoint::checkpoint_files(&dir).unwrap_err()
        );
        assert!(
            e.contains("not a file name in the model folder"),
            "{bad}: {e}"
        );
    }
}

/// A pytorch_model.bin that is not a pickle at all, or a truncated one, is an error naming it.
#[test]
fn a_malformed_bin_checkpoint_is_an_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("pytorch_model.bin");
    for bytes in [&b"not a zip"[..], &b"PK\x03\x04\x00\x00"[..]] {
        std::fs::write(&p, bytes).unwrap();
        let e = format!(
            "{:#}",
            lmkit::formats::checkpoint::read_checkpoint(&p, &Device::Cpu).unwrap_err()
        );
        assert!(e.contains("pytorch_model.bin"), "{e}");
    }
}

/// The store records each file's size and sha256 at install: a load checks the sizes (cheap),
/// `verify` the hashes; either names the damaged file.
#[test]
fn the_store_notices_a_damaged_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("models").join("m");
    lmkit::hub::install(&dest, &serde_json::json!({"id": "m"}), |out| {
        std::fs::write(out.join("config.json"), "{}")?;
        std::fs::write(out.join("model.safetensors"), vec![7u8; 4096])?;
        Ok(())
    })
    .unwrap();
    assert!(dest.join(lmkit::hub::FILES_RECORD).is_file());
    lmkit::hub::check_sizes(&dest).unwrap();
    assert!(lmkit::hub::verify(&dest).unwrap().is_empty());
    assert!(lmkit::hub::is_present(&dest));

    // Zeroed in place, same size: only the hash sees it.
    std::fs::write(dest.join("model.safetensors"), vec![0u8; 4096]).unwrap();
    lmkit::hub::check_sizes(&dest).unwrap();
    assert_eq!(
        lmkit::hub::verify(&dest).unwrap(),
        vec!["model.safetensors"]
    );
    // Cut short, or gone: the size check on every load names it.
    std::fs::write(dest.join("model.safetensors"), vec![0u8; 100]).unwrap();
    let e = format!("{:#}", lmkit::hub::check_sizes(&dest).unwrap_err());
    assert!(
        e.contains("model.safetensors is 100 bytes") && e.contains("--force"),
        "{e}"
    );
    std::fs::remove_file(dest.join("model.safetensors")).unwrap();
    let e = format!("{:#}", lmkit::hub::check_sizes(&dest).unwrap_err());
    assert!(e.contains("model.safetensors is missing"), "{e}");
    assert!(!lmkit::hub::is_present(&dest));
}

/// A checkpoint with tensors its config has no place for (a layer more than
/// num_hidden_layers says) loads, and the tensors left over are named.
#[test]
fn checkpoint_tensors_the_config_does_not_use_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixtures().join("tiny-sst"), &dir);
    let m = AutoModelForSequenceClassification::load(&dir, None, &LoadOptions::default()).unwrap();
    assert!(lmkit::models::unexpected_unused(m.weights()).is_empty());
    edit_config(
        &dir.join("config.json"),
        &[("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1")],
    );
    let m = AutoModelForSequenceClassification::load(&dir, None, &LoadOptions::default()).unwrap();
    let odd = lmkit::models::unexpected_unused(m.weights());
    assert!(
        !odd.is_empty() && odd.iter().all(|n| n.contains("layer.1.")),
        "{odd:?}"
    );
}
