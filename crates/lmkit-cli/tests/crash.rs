//! Crash safety: a fine-tune killed with SIGKILL at arbitrary moments (mid-step, mid-save,
//! mid-report) and resumed each time ends exactly where an uninterrupted run ends.

mod common;
use common::fixture_dir;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A small two-class data set in a folder of split files.
fn write_data(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let pos = [
        "what a lovely happy day",
        "i love this so much",
        "great fun and joy",
    ];
    let neg = [
        "this is awful and sad",
        "i hate it",
        "terrible gloomy weather",
    ];
    for (split, n) in [("train", 64), ("validation", 16), ("test", 16)] {
        let mut rows = String::from("text,label\n");
        for i in 0..n {
            if i % 2 == 0 {
                rows.push_str(&format!("{} {i},pos\n", pos[i % 3]));
            } else {
                rows.push_str(&format!("{} {i},neg\n", neg[i % 3]));
            }
        }
        std::fs::write(dir.join(format!("{split}.csv")), rows).unwrap();
    }
}

fn finetune(data: &Path, out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lmkit"));
    c.args(["finetune", "--model", &fixture_dir("tiny-sst"), "--dataset"])
        .arg(data)
        .args([
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--save-steps",
            "2",
            "--quiet",
        ])
        .arg("--output")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        c.arg("--resume");
    }
    c
}

fn steps_logged(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn killed_at_random_moments_and_resumed_it_ends_as_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_data(&data);
    let reference = tmp.path().join("reference");
    let st = finetune(&data, &reference, false).status().unwrap();
    assert!(st.success());
    let total = steps_logged(&reference).len() as u64;
    assert!(total >= 32, "{total} steps");

    let run = tmp.path().join("run");
    // Each round kills a run once it has logged a few more steps (1 to 5, then 0 to 4 ms
    // more: the kill lands mid-step or mid-save, since a checkpoint is written right after
    // every third step's log line). The counts come from a fixed xorshift sequence.
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let logged = |run: &Path| -> u64 {
        std::fs::read_to_string(run.join("steps.jsonl")).map_or(0, |t| t.lines().count() as u64)
    };
    let mut killed = 0;
    for i in 0..40 {
        let before = logged(&run);
        if before >= total {
            break;
        }
        let target = before + 1 + next() % 5;
        let extra = next() % 5;
        let mut child = finetune(&data, &run, i > 0).spawn().unwrap();
        while child.try_wait().unwrap().is_none() && logged(&run) < target {
            std::thread::sleep(Duration::from_micros(500));
        }
        std::thread::sleep(Duration::from_millis(extra));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 6,
        "only {killed} runs were killed before they ended"
    );
    let st = finetune(&data, &run, true).status().unwrap();
    assert!(st.success());

    let bytes = |p: &Path| std::fs::read(p.join("model").join("model.safetensors")).unwrap();
    assert!(
        bytes(&run) == bytes(&reference),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    assert_eq!(
        steps_logged(&run),
        (1..=total).collect::<Vec<_>>(),
        "each step logged once"
    );
    let epochs: Vec<u64> = std::fs::read_to_string(run.join("epochs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, vec![1, 2]);
    let leftovers: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("checkpoint-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
