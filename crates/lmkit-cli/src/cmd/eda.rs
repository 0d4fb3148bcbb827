//! `lmkit eda`: head, class counts, words per text and plots of a labelled data set.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// A known name (emotion, sst2), a file (csv/tsv/jsonl/parquet/txt) or a folder of splits.
    dataset: String,
    #[arg(long, default_value = "train")]
    split: String,
    /// Where the plots go (default runs/eda-<dataset>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    text_column: Option<String>,
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Rows of the head to show.
    #[arg(long, default_value_t = 5)]
    head: usize,
}

/// The text column: the one asked for, else "text", "sentence", or the first string column.
fn pick_text_column(ds: &lmkit::data::Dataset, asked: Option<String>) -> Result<String> {
    if let Some(c) = asked {
        ds.column(&c)?;
        return Ok(c);
    }
    for c in ["text", "sentence"] {
        if ds.column(c).is_ok() {
            return Ok(c.into());
        }
    }
    ds.fields
        .iter()
        .find(|f| matches!(f.column, lmkit::data::Column::Str(_)))
        .map(|f| f.name.clone())
        .ok_or_else(|| anyhow::anyhow!("{}: no text column; pass --text-column", ds.source))
}

pub fn run(a: Args) -> Result<()> {
    let (dataset, split, label_column, head) = (&a.dataset, &a.split, &a.label_column, a.head);
    let d = lmkit::data::load_dataset(dataset)?;
    let ds = d.split(split)?;
    let text = pick_text_column(ds, a.text_column)?;
    let ex = lmkit::data::eda::explore(ds, &text, label_column)?;
    let safe = dataset.replace(['/', '\\', '.'], "_");
    let out = a
        .output
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("eda-{safe}")));
    let files = lmkit::data::eda::write_plots(ds, &text, label_column, &out)?;
    if a.json {
        let v = serde_json::json!({
            "dataset": dataset, "split": split,
            "splits": d.splits.iter().map(|(k, v)| (k.clone(), v.len())).collect::<BTreeMap<_, _>>(),
            "features": ds.fields.iter().map(|f| (f.name.clone(), f.feature.to_string())).collect::<BTreeMap<_, _>>(),
            "head": (0..head.min(ds.len())).map(|i| ds.row(i)).collect::<Result<Vec<_>>>()?,
            "exploration": ex,
            "plots": files,
        });
        println!("{v}");
        return Ok(());
    }
    println!("{d}\n");
    println!("features ({split}):");
    for f in &ds.fields {
        println!("  {}: {}", f.name, f.feature);
    }
    println!("\nhead:\n{}", ds.head(head));
    println!("value_counts ({label_column}):");
    for c in &ex.class_counts {
        println!("  {:<12} {:>7}  {:>6.2}%", c.label, c.count, c.percent);
    }
    println!(
        "\nwords per text: mean {:.2}, std {:.2}, min {}, median {}, max {}\n",
        ex.words_per_text.mean,
        ex.words_per_text.std,
        ex.words_per_text.min,
        ex.words_per_text.median,
        ex.words_per_text.max
    );
    let header: Vec<String> = [
        "label", "count", "mean", "std", "min", "25%", "50%", "75%", "max",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cols: Vec<Vec<String>> = vec![vec![]; header.len()];
    for (name, s) in &ex.words_per_text_by_label {
        let cells = [
            name.clone(),
            s.count.to_string(),
            format!("{:.2}", s.mean),
            format!("{:.2}", s.std),
            format!("{}", s.min),
            format!("{}", s.q25),
            format!("{}", s.median),
            format!("{}", s.q75),
            format!("{}", s.max),
        ];
        for (c, v) in cols.iter_mut().zip(cells) {
            c.push(v);
        }
    }
    println!(
        "words per text by label:\n{}",
        lmkit::data::render_table(&header, &cols)
    );
    println!("plots:");
    for f in files {
        println!("  {}", f.display());
    }
    Ok(())
}
