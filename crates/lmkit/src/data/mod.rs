//! Data sets as Hugging Face `datasets` has them: named splits of columnar tables with a
//! features schema (ClassLabel names, `int2str` / `str2int`), batched and cached `map`,
//! shuffles and splits that are reproducible from a seed.

pub mod batches;
pub mod eda;
pub mod io;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use batches::{Batch, BatchOptions};
pub use io::{Format, LoadOptions};

/// One column's values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Column {
    Str(Vec<String>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    /// Lists of ids (input_ids, attention_mask, ...).
    IntList(Vec<Vec<u32>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Self::Str(v) => v.len(),
            Self::Int(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::IntList(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&self, idx: &[usize]) -> Self {
        fn t<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            Self::Str(v) => Self::Str(t(v, idx)),
            Self::Int(v) => Self::Int(t(v, idx)),
            Self::Float(v) => Self::Float(t(v, idx)),
            Self::Bool(v) => Self::Bool(t(v, idx)),
            Self::IntList(v) => Self::IntList(t(v, idx)),
        }
    }

    fn extend(&mut self, other: Column) -> Result<()> {
        match (self, other) {
            (Self::Str(a), Self::Str(b)) => a.extend(b),
            (Self::Int(a), Self::Int(b)) => a.extend(b),
            (Self::Float(a), Self::Float(b)) => a.extend(b),
            (Self::Bool(a), Self::Bool(b)) => a.extend(b),
            (Self::IntList(a), Self::IntList(b)) => a.extend(b),
            (a, b) => bail!(
                "cannot join a {} column with a {} column",
                a.type_name(),
                b.type_name()
            ),
        }
        Ok(())
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Str(_) => "string",
            Self::Int(_) => "int64",
            Self::Float(_) => "float64",
            Self::Bool(_) => "bool",
            Self::IntList(_) => "list<int>",
        }
    }

    /// The value at row `i` as JSON.
    pub fn json(&self, i: usize) -> serde_json::Value {
        match self {
            Self::Str(v) => v[i].clone().into(),
            Self::Int(v) => v[i].into(),
            Self::Float(v) => v[i].into(),
            Self::Bool(v) => v[i].into(),
            Self::IntList(v) => v[i].clone().into(),
        }
    }

    pub fn as_str(&self) -> Option<&[String]> {
        match self {
            Self::Str(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<&[i64]> {
        match self {
            Self::Int(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_int_list(&self) -> Option<&[Vec<u32>]> {
        match self {
            Self::IntList(v) => Some(v),
            _ => None,
        }
    }
}

/// Class names for an integer label column (`datasets.ClassLabel`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLabel {
    pub names: Vec<String>,
}

impl ClassLabel {
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            names: names.into_iter().map(Into::into).collect(),
        }
    }
    pub fn num_classes(&self) -> usize {
        self.names.len()
    }
    pub fn int2str(&self, i: i64) -> Result<&str> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.names.get(i))
            .map(|s| s.as_str())
            .ok_or_else(|| {
                anyhow!(
                    "label id {i} is out of range for {} classes",
                    self.names.len()
                )
            })
    }
    pub fn str2int(&self, s: &str) -> Result<i64> {
        self.names
            .iter()
            .position(|n| n == s)
            .map(|i| i as i64)
            .ok_or_else(|| {
                anyhow!(
                    "unknown label name {s:?} (known: {})",
                    self.names.join(", ")
                )
            })
    }
}

/// The type of a column (`datasets.Features` entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Feature {
    /// A plain value: "string", "int64", "float64", "bool".
    Value(String),
    ClassLabel(ClassLabel),
    /// A list of values (token ids).
    Sequence(String),
}

impl Feature {
    pub fn of(c: &Column) -> Self {
        match c {
            Column::IntList(_) => Self::Sequence("int32".into()),
            other => Self::Value(other.type_name().into()),
        }
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(t) => write!(f, "Value({t})"),
            Self::ClassLabel(c) => write!(f, "ClassLabel(names=[{}])", c.names.join(", ")),
            Self::Sequence(t) => write!(f, "Sequence(Value({t}))"),
        }
    }
}

/// A named column and its feature type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub feature: Feature,
    pub column: Column,
}

/// One split: a columnar table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub fields: Vec<Field>,
    /// Where it came from, for messages and cache keys.
    pub source: String,
}

/// How `map` runs: batch size (None: the whole split at once, like `batch_size=None`), and a
/// fingerprint of the function's settings that, with the data's content hash, keys an
/// on-disk cache (None: no caching).
#[derive(Clone, Debug, Default)]
pub struct MapOptions {
    pub batch_size: Option<usize>,
    pub fingerprint: Option<String>,
}

impl Dataset {
    pub fn new(fields: Vec<Field>, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        if let Some(first) = fields.first() {
            for f in &fields {
                if f.column.len() != first.column.len() {
                    bail!(
                        "{source}: column {:?} has {} rows but {:?} has {}",
                        f.name,
                        f.column.len(),
                        first.name,
                        first.column.len()
                    )
                }
            }
        }
        Ok(Self { fields, source })
    }

    pub fn len(&self) -> usize {
        self.fields.first().map_or(0, |f| f.column.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    pub fn field(&self, name: &str) -> Result<&Field> {
        self.fields.iter().find(|f| f.name == name).ok_or_else(|| {
            anyhow!(
                "{}: no column {name:?} (columns: {})",
                self.source,
                self.column_names().join(", ")
            )
        })
    }

    pub fn column(&self, name: &str) -> Result<&Column> {
        Ok(&self.field(name)?.column)
    }

    /// The ClassLabel of a column, if it has one.
    pub fn class_label(&self, name: &str) -> Result<&ClassLabel> {
        match &self.field(name)?.feature {
            Feature::ClassLabel(c) => Ok(c),
            other => bail!(
                "{}: column {name:?} is {other}, not a ClassLabel",
                self.source
            ),
        }
    }

    /// Row `i` as a JSON object (like indexing a `datasets.Dataset`).
    pub fn row(&self, i: usize) -> Result<serde_json::Map<String, serde_json::Value>> {
        if i >= self.len() {
            bail!(
                "{}: row {i} is out of range ({} rows)",
                self.source,
                self.len()
            )
        }
        Ok(self
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.column.json(i)))
            .collect())
    }

    /// The rows at these indices, in this order.
    pub fn select(&self, idx: &[usize]) -> Result<Self> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.len()) {
            bail!(
                "{}: index {bad} is out of range ({} rows)",
                self.source,
                self.len()
            )
        }
        Ok(Self {
            fields: self
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name.clone(),
                    feature: f.feature.clone(),
                    column: f.column.take(idx),
                })
                .collect(),
            source: self.source.clone(),
        })
    }

    /// Rows for which `keep(row)` is true.
    pub fn filter(
        &self,
        mut keep: impl FnMut(&serde_json::Map<String, serde_json::Value>) -> bool,
    ) -> Result<Self> {
        let mut idx = vec![];
        for i in 0..self.len() {
            if keep(&self.row(i)?) {
                idx.push(i);
            }
        }
        self.select(&idx)
    }

    /// A seeded permutation of the rows.
    pub fn shuffle(&self, seed: u64) -> Result<Self> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        self.select(&idx)
    }

    /// Splits off a test fraction (seeded), optionally stratified by a label column so both
    /// parts keep the class proportions.
    pub fn train_test_split(
        &self,
        test_size: f64,
        seed: u64,
        stratify_by: Option<&str>,
    ) -> Result<DatasetDict> {
        if !(0.0 < test_size && test_size < 1.0) {
            bail!("test_size must be in (0, 1), got {test_size}")
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut train, mut test) = (vec![], vec![]);
        let groups: Vec<Vec<usize>> = match stratify_by {
            None => vec![(0..self.len()).collect()],
            Some(col) => {
                let labels = self.column(col)?.as_int().ok_or_else(|| {
                    anyhow!(
                        "{}: stratify column {col:?} must hold integer labels",
                        self.source
                    )
                })?;
                let mut by: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
                for (i, l) in labels.iter().enumerate() {
                    by.entry(*l).or_default().push(i);
                }
                by.into_values().collect()
            }
        };
        for mut g in groups {
            g.shuffle(&mut rng);
            let n_test = ((g.len() as f64) * test_size).round() as usize;
            test.extend_from_slice(&g[..n_test]);
            train.extend_from_slice(&g[n_test..]);
        }
        train.shuffle(&mut rng);
        test.shuffle(&mut rng);
        let mut d = DatasetDict::default();
        d.splits.insert("train".into(), self.select(&train)?);
        d.splits.insert("test".into(), self.select(&test)?);
        Ok(d)
    }

    /// Adds or replaces a column.
    pub fn with_column(mut self, name: &str, feature: Feature, column: Column) -> Result<Self> {
        if !self.fields.is_empty() && column.len() != self.len() {
            bail!(
                "{}: new column {name:?} has {} rows, the data set {}",
                self.source,
                column.len(),
                self.len()
            )
        }
        let field = Field {
            name: name.into(),
            feature,
            column,
        };
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(f) => *f = field,
            None => self.fields.push(field),
        }
        Ok(self)
    }

    pub fn remove_columns(mut self, names: &[&str]) -> Self {
        self.fields.retain(|f| !names.contains(&f.name.as_str()));
        self
    }

    /// sha256 of the contents: the cache key for `map` results.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.fields {
            h.update(f.name.as_bytes());
            h.update(serde_json::to_vec(&f.feature).unwrap_or_default());
            h.update(serde_json::to_vec(&f.column).unwrap_or_default());
        }
        format!("{:x}", h.finalize())
    }

    /// `dataset.map(f, batched=True)`: `f` gets a slice of rows and returns new columns, which
    /// are added (or replace same-named ones). With a fingerprint the result is cached on disk
    /// under `$LMKIT_HOME/datasets/cache`, keyed by the data's content hash and the fingerprint.
    pub fn map(
        &self,
        opts: &MapOptions,
        f: impl Fn(&Dataset) -> Result<Vec<Field>>,
    ) -> Result<Self> {
        let cache = opts.fingerprint.as_ref().map(|fp| {
            let mut h = Sha256::new();
            h.update(self.fingerprint());
            h.update(fp.as_bytes());
            crate::hub::home()
                .join("datasets")
                .join("cache")
                .join(format!("{:x}.json", h.finalize()))
        });
        if let Some(p) = &cache {
            if let Ok(bytes) = std::fs::read(p) {
                if let Ok(fields) = serde_json::from_slice::<Vec<Field>>(&bytes) {
                    return self.add_fields(fields);
                }
            }
        }
        let n = self.len();
        let bs = opts.batch_size.unwrap_or(n).max(1);
        let mut out: Option<Vec<Field>> = None;
        let mut start = 0;
        while start < n || (n == 0 && out.is_none()) {
            let end = (start + bs).min(n);
            let idx: Vec<usize> = (start..end).collect();
            let new = f(&self.select(&idx)?)?;
            for field in &new {
                if field.column.len() != idx.len() {
                    bail!(
                        "map function returned {} rows for column {:?} from a batch of {}",
                        field.column.len(),
                        field.name,
                        idx.len()
                    )
                }
            }
            match &mut out {
                None => out = Some(new),
                Some(acc) => {
                    for (a, b) in acc.iter_mut().zip(new) {
                        a.column.extend(b.column)?;
                    }
                }
            }
            start = end;
            if n == 0 {
                break;
            }
        }
        let fields = out.unwrap_or_default();
        if let Some(p) = &cache {
            // A cache is best-effort: a read-only store or a full disk costs the next run the
            // tokenization again, not this run its result.
            let write = serde_json::to_vec(&fields)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| crate::util::write_atomic(p, &bytes));
            if let Err(e) = write {
                tracing::warn!("could not write the map cache {}: {e:#}", p.display());
            }
        }
        self.add_fields(fields)
    }

    fn add_fields(&self, fields: Vec<Field>) -> Result<Self> {
        let mut d = self.clone();
        for f in fields {
            d = d.with_column(&f.name, f.feature, f.column)?;
        }
        Ok(d)
    }

    /// Tokenizes a text column (the course's `dataset.map(tokenize, batched=True)`), adding the
    /// tokenizer's `model_input_names` columns. Cached by content and tokenizer settings.
    pub fn tokenize(
        &self,
        tok: &crate::tokenize::AutoTokenizer,
        text_column: &str,
        opts: crate::tokenize::EncodeOptions,
        batch_size: Option<usize>,
    ) -> Result<Self> {
        self.column(text_column)?
            .as_str()
            .ok_or_else(|| anyhow!("{}: column {text_column:?} is not text", self.source))?;
        let tj = tok.dir.join("tokenizer.json");
        let stamp = std::fs::metadata(&tj)
            .map(|m| format!("{}-{:?}", m.len(), m.modified().ok()))
            .unwrap_or_default();
        let fp = format!(
            "tokenize:{}:{stamp}:{text_column}:{opts:?}:{batch_size:?}",
            tok.dir.display()
        );
        let names = tok.model_input_names.clone();
        self.map(
            &MapOptions {
                batch_size,
                fingerprint: Some(fp),
            },
            |batch| {
                let texts = batch.column(text_column)?.as_str().unwrap_or_default();
                let enc = tok.encode_batch(texts, opts)?;
                let mut out = vec![];
                for n in &names {
                    let col = match n.as_str() {
                        "input_ids" => enc.input_ids.clone(),
                        "attention_mask" => enc.attention_mask.clone(),
                        "token_type_ids" => enc.token_type_ids.clone(),
                        _ => continue,
                    };
                    out.push(Field {
                        name: n.clone(),
                        feature: Feature::Sequence("int32".into()),
                        column: Column::IntList(col),
                    });
                }
                Ok(out)
            },
        )
    }

    /// The first `n` rows as a text table; ClassLabel columns get their names beside the ids
    /// (the course's `label_name` column).
    pub fn head(&self, n: usize) -> String {
        let n = n.min(self.len());
        let mut header: Vec<String> = vec![String::new()];
        let mut cols: Vec<Vec<String>> = vec![(0..n).map(|i| i.to_string()).collect()];
        let cut = |s: String| -> String {
            if s.chars().count() > 60 {
                format!("{}...", s.chars().take(57).collect::<String>())
            } else {
                s
            }
        };
        for f in &self.fields {
            header.push(f.name.clone());
            cols.push(
                (0..n)
                    .map(|i| match &f.column {
                        Column::Str(v) => cut(v[i].clone()),
                        other => cut(other.json(i).to_string()),
                    })
                    .collect(),
            );
            if let Feature::ClassLabel(c) = &f.feature {
                header.push(format!("{}_name", f.name));
                cols.push(
                    (0..n)
                        .map(|i| match &f.column {
                            Column::Int(v) => c.int2str(v[i]).unwrap_or("?").to_string(),
                            _ => "?".into(),
                        })
                        .collect(),
                );
            }
        }
        render_table(&header, &cols)
    }
}

/// A plain text table, columns left-aligned to their widest cell.
pub fn render_table(header: &[String], cols: &[Vec<String>]) -> String {
    let widths: Vec<usize> = header
        .iter()
        .zip(cols)
        .map(|(h, c)| {
            c.iter()
                .map(|s| s.chars().count())
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let row: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        let _ = writeln!(out, "{}", row.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.as_str()).collect(), &mut out);
    let rows = cols.first().map_or(0, |c| c.len());
    for r in 0..rows {
        line(cols.iter().map(|c| c[r].as_str()).collect(), &mut out);
    }
    out
}

/// Named splits (`datasets.DatasetDict`).
#[derive(Clone, Debug, Default)]
pub struct DatasetDict {
    pub splits: BTreeMap<String, Dataset>,
    pub name: String,
}

impl DatasetDict {
    /// Split names in the order `datasets` shows them: train, validation, test, then others.
    pub fn split_names(&self) -> Vec<&str> {
        let rank = |s: &str| {
            ["train", "validation", "test"]
                .iter()
                .position(|x| *x == s)
                .unwrap_or(3)
        };
        let mut v: Vec<&str> = self.splits.keys().map(|s| s.as_str()).collect();
        v.sort_by_key(|s| (rank(s), s.to_string()));
        v
    }

    pub fn split(&self, name: &str) -> Result<&Dataset> {
        self.splits.get(name).ok_or_else(|| {
            anyhow!(
                "data set {:?} has no split {name:?} (splits: {})",
                self.name,
                self.splits.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Applies `f` to every split.
    pub fn map_splits(&self, f: impl Fn(&Dataset) -> Result<Dataset>) -> Result<Self> {
        Ok(Self {
            splits: self
                .splits
                .iter()
                .map(|(k, v)| Ok((k.clone(), f(v)?)))
                .collect::<Result<_>>()?,
            name: self.name.clone(),
        })
    }
}

impl std::ops::Index<&str> for DatasetDict {
    type Output = Dataset;
    fn index(&self, name: &str) -> &Dataset {
        self.split(name).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl std::fmt::Display for DatasetDict {
    /// As printing a `DatasetDict` in Python: splits, features, row counts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "DatasetDict({{")?;
        for name in self.split_names() {
            let d = &self.splits[name];
            writeln!(f, "    {name}: Dataset({{")?;
            writeln!(f, "        features: [{}],", d.column_names().join(", "))?;
            writeln!(f, "        num_rows: {}", d.len())?;
            writeln!(f, "    }})")?;
        }
        write!(f, "}})")
    }
}

/// Data sets lmkit knows by name: where their files are and their schema.
pub struct KnownDataset {
    pub name: &'static str,
    pub splits: &'static [(&'static str, &'static str)],
    pub format: Format,
    pub text_column: &'static str,
    pub label_column: &'static str,
    pub label_names: &'static [&'static str],
}

pub const KNOWN_DATASETS: &[KnownDataset] = &[
    KnownDataset {
        name: "emotion",
        splits: &[
            ("train", "train.txt"),
            ("validation", "validation.txt"),
            ("test", "test.txt"),
        ],
        format: Format::TextLabel,
        text_column: "text",
        label_column: "label",
        label_names: &["sadness", "joy", "love", "anger", "fear", "surprise"],
    },
    KnownDataset {
        name: "sst2",
        splits: &[("train", "train.tsv")],
        format: Format::Tsv,
        text_column: "sentence",
        label_column: "label",
        label_names: &["negative", "positive"],
    },
    // Korean movie reviews in NSMC's own format (id, document, label 0/1).
    KnownDataset {
        name: "nsmc",
        splits: &[("train", "train.tsv"), ("test", "test.tsv")],
        format: Format::Tsv,
        text_column: "document",
        label_column: "label",
        label_names: &["negative", "positive"],
    },
];

/// Folders named `name` where the project keeps data: `$LMKIT_DATA/name`, then
/// `shared/data/name` beside any ancestor of the working directory.
fn data_dirs(name: &str) -> Vec<PathBuf> {
    let mut v = vec![];
    if let Some(d) = std::env::var_os("LMKIT_DATA") {
        v.push(PathBuf::from(d).join(name));
    }
    if let Ok(cwd) = std::env::current_dir() {
        for a in cwd.ancestors() {
            v.push(a.join("shared").join("data").join(name));
        }
    }
    v
}

/// `load_dataset(name_or_path)`: a local file or folder; a known name (`emotion`, `sst2`, `nsmc`)
/// found in `$LMKIT_DATA` or the project's `shared/data`; the Hugging Face datasets cache.
pub fn load_dataset(name_or_path: &str) -> Result<DatasetDict> {
    load_dataset_with(name_or_path, &LoadOptions::default())
}

pub fn load_dataset_with(name_or_path: &str, opts: &LoadOptions) -> Result<DatasetDict> {
    let mut tried = vec![];
    let p = Path::new(name_or_path);
    let known = KNOWN_DATASETS.iter().find(|k| k.name == name_or_path);
    if p.exists() && known.is_none() {
        return io::load_path(p, opts);
    }
    tried.push(format!("local path {name_or_path:?}: does not exist"));
    if let Some(k) = known {
        for dir in data_dirs(k.name) {
            if dir.is_dir() {
                return load_known(k, &dir);
            }
        }
        tried.push(
            "$LMKIT_DATA and shared/data/ beside the working directory's ancestors: not found"
                .into(),
        );
    }
    match io::load_hf_cache(name_or_path) {
        Ok(Some(d)) => return Ok(d),
        Ok(None) => tried.push(format!(
            "Hugging Face datasets cache {}: not there",
            io::hf_datasets_cache().display()
        )),
        Err(e) => tried.push(format!("Hugging Face datasets cache: {e:#}")),
    }
    tried.push("Hugging Face hub: not reachable from lmkit (download the data set's files and pass their folder)".into());
    let mut msg = format!("data set {name_or_path:?} not found. Tried:\n");
    for t in tried {
        let _ = writeln!(msg, "  - {t}");
    }
    msg.push_str("Fix: pass a file (csv, tsv, jsonl, parquet, `text;label` lines) or a folder of split files, or set LMKIT_DATA.");
    Err(crate::util::NotFound(msg).into())
}

fn load_known(k: &KnownDataset, dir: &Path) -> Result<DatasetDict> {
    let mut d = DatasetDict {
        name: k.name.into(),
        ..Default::default()
    };
    let opts = LoadOptions {
        format: Some(k.format),
        text_column: Some(k.text_column.into()),
        label_column: Some(k.label_column.into()),
        label_names: Some(k.label_names.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    for (split, file) in k.splits {
        let path = dir.join(file);
        let ds = io::load_file(&path, &opts)
            .with_context(|| format!("loading the {} {split} split", k.name))?;
        d.splits.insert(split.to_string(), ds);
    }
    Ok(d)
}
