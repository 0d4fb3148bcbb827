//! Data sets: the emotion set by name, every file format, operations, map caching, batches,
//! KDE parity with scipy, and errors that name the file and line.

mod common;
use common::*;

use std::cell::Cell;

use candle_core::Device;
use lmkit::data::batches::{batches, BatchOptions};
use lmkit::data::eda::{value_counts, GaussianKde};
use lmkit::data::io::{load_file, save, Format, LoadOptions};
use lmkit::data::{load_dataset, Column, Feature, Field, MapOptions};

const EMOTIONS: [&str; 6] = ["sadness", "joy", "love", "anger", "fear", "surprise"];

#[test]
fn emotion_loads_by_name_with_the_hugging_face_schema() {
    let d = load_dataset("emotion").unwrap();
    assert_eq!(d.split_names(), vec!["train", "validation", "test"]);
    assert_eq!(
        (d["train"].len(), d["validation"].len(), d["test"].len()),
        (16000, 2000, 2000)
    );
    let train = &d["train"];
    let cl = train.class_label("label").unwrap();
    assert_eq!(cl.names, EMOTIONS);
    assert_eq!(cl.int2str(0).unwrap(), "sadness");
    assert_eq!(cl.str2int("surprise").unwrap(), 5);
    assert!(cl.int2str(6).is_err() && cl.str2int("boredom").is_err());
    let row = train.row(0).unwrap();
    assert_eq!(row["text"], "i didnt feel humiliated");
    assert_eq!(row["label"], 0);
    let counts: Vec<(String, usize)> = value_counts(train, "label")
        .unwrap()
        .into_iter()
        .map(|c| (c.label, c.count))
        .collect();
    let want = [
        ("joy", 5362),
        ("sadness", 4666),
        ("anger", 2159),
        ("fear", 1937),
        ("love", 1304),
        ("surprise", 572),
    ];
    assert_eq!(counts, want.map(|(a, b)| (a.to_string(), b)).to_vec());
}

#[test]
fn sst2_loads_by_name() {
    let d = load_dataset("sst2").unwrap();
    let t = &d["train"];
    assert_eq!(t.len(), 67349);
    assert_eq!(
        t.class_label("label").unwrap().names,
        vec!["negative", "positive"]
    );
    assert_eq!(
        t.row(0).unwrap()["sentence"],
        "hide new secretions from the parental units "
    );
}

#[test]
fn nsmc_loads_by_name() {
    let d = load_dataset("nsmc").unwrap();
    let (train, test) = (&d["train"], &d["test"]);
    // PROVENANCE.md: 150,000 train (74,965 positive) and 50,000 test (25,035 positive).
    assert_eq!((train.len(), test.len()), (150_000, 50_000));
    for (split, positives) in [(train, 74_965), (test, 25_035)] {
        assert_eq!(
            split.class_label("label").unwrap().names,
            vec!["negative", "positive"]
        );
        let ones = split.column("label").unwrap().as_int().unwrap();
        assert_eq!(ones.iter().filter(|&&l| l == 1).count(), positives);
    }
    assert_eq!(
        train.row(0).unwrap()["document"],
        "남나비 캐릭터 어느 드라마에서도 볼수없었던 새로운 캐릭터라 너무 신선하고 매력적이네요"
    );
}

#[test]
fn every_format_round_trips_losslessly() {
    let train = load_dataset("emotion").unwrap()["train"]
        .select(&(0..500).collect::<Vec<_>>())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = LoadOptions {
        label_names: Some(EMOTIONS.map(String::from).to_vec()),
        ..Default::default()
    };
    for (ext, fmt) in [
        ("csv", Format::Csv),
        ("tsv", Format::Tsv),
        ("jsonl", Format::Jsonl),
        ("parquet", Format::Parquet),
        ("txt", Format::TextLabel),
    ] {
        let p = dir.path().join(format!("train.{ext}"));
        save(&train, &p, fmt).unwrap();
        let back = load_file(&p, &opts).unwrap();
        assert_eq!(back.fields, train.fields, "{ext} round trip");
    }
    // Parquet keeps the class names in its schema: no names needed to read it back.
    let back = load_file(&dir.path().join("train.parquet"), &LoadOptions::default()).unwrap();
    assert_eq!(back.class_label("label").unwrap().names, EMOTIONS);
    // A folder of split files is a DatasetDict.
    let d = load_dataset(dir.path().to_str().unwrap());
    assert!(
        d.is_err(),
        "several train.* files in one folder are ambiguous splits? {:?}",
        d.map(|d| d.split_names().len())
    );
}

#[test]
fn a_folder_of_split_files_is_a_dataset_dict() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "text,label\nhello,pos\nawful,neg\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("test.csv"), "text,label\nfine,pos\n").unwrap();
    let d = load_dataset(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(d.split_names(), vec!["train", "test"]);
    // String labels without names: sorted unique names, as `class_encode_column`.
    assert_eq!(
        d["train"].class_label("label").unwrap().names,
        vec!["neg", "pos"]
    );
    assert_eq!(
        d["train"].column("label").unwrap(),
        &Column::Int(vec![1, 0])
    );
}

/// Every split of a folder takes train's label vocabulary: a class means the same id everywhere,
/// whichever classes a split happens to hold, and a label train never saw names its file and
/// line.
#[test]
fn the_splits_of_a_folder_share_trains_label_ids() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "text,label\na,anger\nb,joy\nc,sadness\n",
    )
    .unwrap();
    // Sorted on its own this split would be [joy, sadness]: joy 0, where train says 1.
    std::fs::write(
        dir.path().join("test.csv"),
        "text,label\nd,sadness\ne,joy\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("validation.csv"), "text,label\nf,joy\n").unwrap();
    let d = load_dataset(dir.path().to_str().unwrap()).unwrap();
    for split in ["train", "test", "validation"] {
        assert_eq!(
            d[split].class_label("label").unwrap().names,
            vec!["anger", "joy", "sadness"],
            "{split}"
        );
    }
    assert_eq!(d["test"].column("label").unwrap(), &Column::Int(vec![2, 1]));
    assert_eq!(
        d["validation"].column("label").unwrap(),
        &Column::Int(vec![1])
    );

    std::fs::write(
        dir.path().join("test.csv"),
        "text,label\nd,sadness\ne,love\n",
    )
    .unwrap();
    let e = format!(
        "{:#}",
        load_dataset(dir.path().to_str().unwrap()).unwrap_err()
    );
    assert!(e.contains("test.csv:3"), "{e}");
    assert!(
        e.contains("\"love\"") && e.contains("anger, joy, sadness"),
        "{e}"
    );
}

fn load_err(name: &str, content: &[u8], opts: &LoadOptions) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    format!("{:#}", load_file(&p, opts).unwrap_err())
}

#[test]
fn bad_files_are_errors_that_name_file_and_line() {
    let emo = LoadOptions {
        label_names: Some(EMOTIONS.map(String::from).to_vec()),
        ..Default::default()
    };
    let e = load_err("a.txt", b"fine;joy\nno separator here\n", &emo);
    assert!(e.contains("a.txt:2") && e.contains("separator"), "{e}");
    let e = load_err("b.txt", b"fine;joy\nok;joy\nmeh;boredom\n", &emo);
    assert!(e.contains("b.txt:3") && e.contains("boredom"), "{e}");
    let e = load_err(
        "c.csv",
        b"text,label\na,1\nb,2,3\n",
        &LoadOptions::default(),
    );
    assert!(e.contains("c.csv:3") && e.contains("3 fields"), "{e}");
    let e = load_err("d.txt", b"", &emo);
    assert!(e.contains("d.txt") && e.contains("empty"), "{e}");
    let e = load_err("e.txt", b"fine;joy\nbad \xff byte;joy\n", &emo);
    assert!(e.contains("e.txt:2") && e.contains("UTF-8"), "{e}");
    let e = load_err(
        "f.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"\n",
        &LoadOptions::default(),
    );
    assert!(e.contains("f.jsonl:2"), "{e}");
    let e = load_err("g.parquet", b"PAR1 not really", &LoadOptions::default());
    assert!(e.contains("g.parquet"), "{e}");
    let e = load_err(
        "h.csv",
        b"text,label\na,7\n",
        &LoadOptions {
            label_names: Some(vec!["x".into(), "y".into()]),
            ..Default::default()
        },
    );
    assert!(e.contains("h.csv:2") && e.contains("out of range"), "{e}");
    let e = format!("{:#}", load_dataset("no-such-dataset").unwrap_err());
    assert!(e.contains("Tried") && e.contains("Fix"), "{e}");
}

#[test]
fn select_filter_shuffle_and_stratified_split() {
    let train = load_dataset("emotion").unwrap()["train"].clone();
    let s = train.select(&[2, 0]).unwrap();
    assert_eq!(s.row(1).unwrap()["text"], "i didnt feel humiliated");
    assert!(train.select(&[16000]).is_err());
    let short = train
        .filter(|r| r["text"].as_str().unwrap().split_whitespace().count() < 5)
        .unwrap();
    assert!(!short.is_empty() && short.len() < 1000);
    let a = train.shuffle(7).unwrap();
    assert_eq!(a, train.shuffle(7).unwrap());
    assert_ne!(a, train.shuffle(8).unwrap());
    assert_eq!(a.len(), train.len());
    let split = train.train_test_split(0.1, 0, Some("label")).unwrap();
    let (tr, te) = (&split["train"], &split["test"]);
    assert_eq!(tr.len() + te.len(), 16000);
    // Stratified: each class's share in the test part within 0.1 point of the whole.
    let whole = value_counts(&train, "label").unwrap();
    for c in value_counts(te, "label").unwrap() {
        let w = whole.iter().find(|x| x.label == c.label).unwrap();
        assert!(
            (c.percent - w.percent).abs() < 0.1,
            "{} {} vs {}",
            c.label,
            c.percent,
            w.percent
        );
    }
}

#[test]
fn map_is_batched_and_cached_by_content() {
    let train = load_dataset("emotion").unwrap()["train"]
        .select(&(0..1000).collect::<Vec<_>>())
        .unwrap();
    let calls = Cell::new(0);
    let fp = format!("test-words-{}", std::process::id());
    let f = |b: &lmkit::data::Dataset| {
        calls.set(calls.get() + 1);
        let n: Vec<i64> = b
            .column("text")?
            .as_str()
            .unwrap()
            .iter()
            .map(|t| t.split_whitespace().count() as i64)
            .collect();
        Ok(vec![Field {
            name: "words".into(),
            feature: Feature::Value("int64".into()),
            column: Column::Int(n),
        }])
    };
    let opts = MapOptions {
        batch_size: Some(300),
        fingerprint: Some(fp.clone()),
    };
    let a = train.map(&opts, f).unwrap();
    assert_eq!(calls.get(), 4, "1000 rows in batches of 300");
    let b = train.map(&opts, f).unwrap();
    assert_eq!(calls.get(), 4, "second map must come from the cache");
    assert_eq!(a, b);
    // Other data, same function: not the cached result.
    let other = train.select(&[1, 2, 3]).unwrap();
    let c = other.map(&opts, f).unwrap();
    assert_eq!(calls.get(), 5);
    assert_eq!(c.column("words").unwrap().len(), 3);
}

#[test]
fn training_batches_pad_dynamically_shuffle_per_epoch_and_bucket() {
    let tok =
        lmkit::tokenize::AutoTokenizer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
            .unwrap();
    let train = load_dataset("emotion").unwrap()["train"].clone();
    let enc = train
        .tokenize(
            &tok,
            "text",
            lmkit::tokenize::EncodeOptions {
                padding: lmkit::tokenize::Padding::None,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(
        enc.column_names(),
        vec![
            "text",
            "label",
            "input_ids",
            "token_type_ids",
            "attention_mask"
        ]
    );
    let opts = BatchOptions {
        batch_size: 64,
        shuffle: true,
        seed: 1,
        ..Default::default()
    };
    let e0 = batches(&enc, &opts, 0, &Device::Cpu).unwrap();
    let e0b = batches(&enc, &opts, 0, &Device::Cpu).unwrap();
    let e1 = batches(&enc, &opts, 1, &Device::Cpu).unwrap();
    assert_eq!(e0.len(), 250);
    assert_eq!(
        e0[0].indices, e0b[0].indices,
        "same seed and epoch, same order"
    );
    assert_ne!(e0[0].indices, e1[0].indices, "a new epoch reshuffles");
    let lens = lmkit::data::batches::lengths(&enc).unwrap();
    let mut padded = 0;
    for b in &e0 {
        let (n, w) = b.input.input_ids.dims2().unwrap();
        assert_eq!(
            w,
            b.indices.iter().map(|&i| lens[i]).max().unwrap(),
            "padded to the batch's longest"
        );
        assert_eq!(n, b.labels.as_ref().unwrap().dims1().unwrap());
        padded += n * w;
    }
    let bucketed = batches(
        &enc,
        &BatchOptions {
            bucket_by_length: true,
            ..opts.clone()
        },
        0,
        &Device::Cpu,
    )
    .unwrap();
    let padded_b: usize = bucketed
        .iter()
        .map(|b| b.input.input_ids.elem_count())
        .sum();
    let real: usize = lens.iter().sum();
    // Random batches of 64 pad to their longest (~2.5x the real tokens on emotion); sorted
    // windows of 50 batches leave only the spread within each batch (a few percent).
    assert!(
        padded as f64 > real as f64 * 2.0,
        "random batches: {padded} vs real {real}"
    );
    assert!(
        (padded_b as f64) < real as f64 * 1.05,
        "bucketing: {padded_b} vs real {real}"
    );
    let mut all: Vec<usize> = bucketed.iter().flat_map(|b| b.indices.clone()).collect();
    all.sort();
    assert_eq!(
        all,
        (0..16000).collect::<Vec<_>>(),
        "every row exactly once"
    );
    // Not shuffled: the split's order.
    let plain = batches(
        &enc,
        &BatchOptions {
            shuffle: false,
            ..opts
        },
        3,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(plain[0].indices, (0..64).collect::<Vec<_>>());
}

#[test]
fn kde_matches_scipy_gaussian_kde() {
    let fx = fixture("kde.json");
    for case in fx["cases"].as_array().unwrap() {
        let data: Vec<f64> = case["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let k = GaussianKde::new(&data).unwrap();
        let name = case["name"].as_str().unwrap();
        assert!(
            (k.factor - case["bandwidth_factor"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        assert!(
            (k.kernel_std - case["kernel_std"].as_f64().unwrap()).abs() < 1e-9,
            "{name}"
        );
        let grid = k.grid(3.0, 200);
        let want_grid: Vec<f64> = case["grid"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let want: Vec<f64> = case["density"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mut integral = 0.0;
        for (i, (&x, &d)) in grid.iter().zip(&want).enumerate() {
            assert!((x - want_grid[i]).abs() < 1e-9, "{name} grid[{i}]");
            assert!(
                (k.density(x) - d).abs() < 1e-6,
                "{name} density at {x}: {} vs {d}",
                k.density(x)
            );
            if i > 0 {
                integral += 0.5 * (k.density(x) + k.density(grid[i - 1])) * (x - grid[i - 1]);
            }
        }
        // +-3 bandwidths hold 99.7% of each kernel's mass.
        assert!(
            (integral - 1.0).abs() < 0.005,
            "{name}: integral {integral}"
        );
    }
    assert!(GaussianKde::new(&[1.0]).is_err() && GaussianKde::new(&[2.0, 2.0]).is_err());
}

/// Exploration plots of data sets too small for a chart (one or two rows, one text per label,
/// texts of equal length) finish: the degenerate charts are skipped, the others drawn. Run in a
/// thread with a deadline, so a regression fails instead of hanging the test run.
#[test]
fn eda_plots_of_tiny_data_sets_finish() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for rows in [
            "hello,pos\n",
            "hello,pos\nawful,neg\n",
            "a b,pos\nc d,pos\n",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("train.csv"), format!("text,label\n{rows}")).unwrap();
            let d = load_dataset(dir.path().to_str().unwrap()).unwrap();
            let files =
                lmkit::data::eda::write_plots(&d["train"], "text", "label", &dir.path().join("p"))
                    .unwrap();
            // The class counts always draw; the KDE needs two different lengths in a label.
            assert!(
                files.iter().any(|f| f.ends_with("class_counts.png")),
                "{files:?}"
            );
            assert!(
                !files.iter().any(|f| f.ends_with("words_per_text_kde.png")),
                "{files:?}"
            );
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("eda plots of a tiny data set did not finish in 120 s");
}
