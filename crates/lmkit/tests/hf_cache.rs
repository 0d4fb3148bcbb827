//! `load_dataset` finds a data set in the Hugging Face datasets cache (Arrow stream files and
//! dataset_info.json), with its ClassLabel names. Own test binary: it sets HF_DATASETS_CACHE.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};

#[test]
fn the_datasets_cache_layout_loads_with_its_features() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dair-ai___emotion/split/0.0.0/0123abcd");
    std::fs::create_dir_all(&dir).unwrap();
    let info = serde_json::json!({"features": {
        "text": {"dtype": "string", "_type": "Value"},
        "label": {"names": ["sadness", "joy", "love", "anger", "fear", "surprise"], "_type": "ClassLabel"}}});
    std::fs::write(dir.join("dataset_info.json"), info.to_string()).unwrap();
    for (split, texts, labels) in [
        (
            "train",
            vec!["i didnt feel humiliated", "i feel great"],
            vec![0i64, 1],
        ),
        ("test", vec!["im feeling rather rotten"], vec![0i64]),
    ] {
        let batch = RecordBatch::try_from_iter([
            ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
            ("label", Arc::new(Int64Array::from(labels)) as ArrayRef),
        ])
        .unwrap();
        let f = std::fs::File::create(dir.join(format!("emotion-{split}.arrow"))).unwrap();
        let mut w = arrow_ipc::writer::StreamWriter::try_new(f, &batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
    }
    // SAFETY: the only test in this binary.
    unsafe { std::env::set_var("HF_DATASETS_CACHE", root.path()) };
    let d = lmkit::data::load_dataset("dair-ai/emotion").unwrap();
    assert_eq!(d.split_names(), vec!["train", "test"]);
    let train = &d["train"];
    assert_eq!(train.len(), 2);
    assert_eq!(
        train.class_label("label").unwrap().int2str(1).unwrap(),
        "joy"
    );
    assert_eq!(train.row(0).unwrap()["text"], "i didnt feel humiliated");
}
