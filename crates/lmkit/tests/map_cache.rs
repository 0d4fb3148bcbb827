//! `Dataset::map`'s on-disk cache is best-effort. Its own test binary: it points LMKIT_HOME at
//! a place no cache can be written to, which must not leak into other tests.

use lmkit::data::{load_dataset, Column, Feature, Field, MapOptions};

#[test]
fn a_cache_that_cannot_be_written_is_a_warning_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A file where the store's folder should be: creating the cache folder fails (as root too,
    // which a read-only folder would not stop).
    let home = tmp.path().join("home");
    std::fs::write(&home, "not a folder").unwrap();
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("LMKIT_HOME", &home) };
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("train.csv"),
        "text,label\nhello there,pos\nawful,neg\n",
    )
    .unwrap();
    let d = load_dataset(data.to_str().unwrap()).unwrap();
    let opts = MapOptions {
        batch_size: None,
        fingerprint: Some("word-count".into()),
    };
    let out = d["train"]
        .map(&opts, |b| {
            let n = b
                .column("text")?
                .as_str()
                .unwrap()
                .iter()
                .map(|t| t.split_whitespace().count() as i64);
            Ok(vec![Field {
                name: "words".into(),
                feature: Feature::Value("int64".into()),
                column: Column::Int(n.collect()),
            }])
        })
        .expect("the map's result, whatever became of its cache");
    assert_eq!(out.column("words").unwrap(), &Column::Int(vec![2, 1]));
}
