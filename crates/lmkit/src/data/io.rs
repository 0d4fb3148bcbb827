//! Reading and writing data set files: csv, tsv, jsonl, parquet, `text;label` lines, and the
//! Arrow files of the Hugging Face datasets cache. Every error names the file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::{Array, RecordBatch};

use super::{ClassLabel, Column, Dataset, DatasetDict, Feature, Field};

/// File formats `load_dataset` reads and `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    Jsonl,
    Parquet,
    /// `text;label_name` per line, no header (the emotion files).
    TextLabel,
}

impl Format {
    pub fn from_path(p: &Path) -> Result<Self> {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        Ok(match ext {
            "csv" => Self::Csv,
            "tsv" => Self::Tsv,
            "jsonl" | "json" => Self::Jsonl,
            "parquet" => Self::Parquet,
            "txt" => Self::TextLabel,
            _ => bail!(
                "{}: unknown file type {ext:?} (csv, tsv, jsonl, parquet, txt as `text;label` lines)",
                p.display()
            ),
        })
    }
}

/// Choices for reading a file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Overrides the format implied by the file extension.
    pub format: Option<Format>,
    /// The text column's name (TextLabel files: the name given to the text; default "text").
    pub text_column: Option<String>,
    /// The label column (default "label" when present). Strings are mapped to ids.
    pub label_column: Option<String>,
    /// Class names in id order. Without them, string labels get sorted unique names.
    pub label_names: Option<Vec<String>>,
    /// The TextLabel separator (default ';').
    pub separator: Option<char>,
}

/// A file, or a folder of split files (`train.csv`, `validation.jsonl`, ...).
pub fn load_path(p: &Path, opts: &LoadOptions) -> Result<DatasetDict> {
    let mut d = DatasetDict {
        name: p.display().to_string(),
        ..Default::default()
    };
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.is_file() && Format::from_path(f).is_ok())
            .collect();
        entries.sort();
        let stem = |f: &Path| {
            f.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        };
        // One label vocabulary for every split: train's (else the first file's). Each file
        // sorting its own names would give a class different ids in different splits (a test
        // split without one of train's classes shifted every id after it, and its accuracy
        // came out wrong with exit 0); a label train never saw is an error naming its line.
        if let Some(i) = entries.iter().position(|f| stem(f) == "train") {
            let f = entries.remove(i);
            entries.insert(0, f);
        }
        let mut shared = opts.clone();
        for (i, f) in entries.into_iter().enumerate() {
            let split = stem(&f);
            if d.splits.contains_key(&split) {
                bail!(
                    "{}: more than one file for split {split:?}; keep one per split",
                    p.display()
                )
            }
            let ds = load_file(&f, &shared).map_err(|e| {
                if i > 0 && opts.label_names.is_none() {
                    e.context(format!(
                        "the labels of every split must be among the {} split's ({})",
                        d.splits.keys().next().map_or("first", |s| s.as_str()),
                        shared.label_names.as_deref().unwrap_or_default().join(", ")
                    ))
                } else {
                    e
                }
            })?;
            if i == 0 && shared.label_names.is_none() {
                let col = opts.label_column.as_deref().unwrap_or("label");
                if let Ok(cl) = ds.class_label(col) {
                    shared.label_names = Some(cl.names.clone());
                }
            }
            d.splits.insert(split, ds);
        }
        if d.splits.is_empty() {
            bail!(
                "{}: no data files (csv, tsv, jsonl, parquet, txt)",
                p.display()
            )
        }
    } else {
        d.splits.insert("train".into(), load_file(p, opts)?);
    }
    Ok(d)
}

/// Reads one file into a Dataset.
pub fn load_file(p: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let format = match opts.format {
        Some(f) => f,
        None => Format::from_path(p)?,
    };
    let name = p.display().to_string();
    if format == Format::Parquet {
        return read_parquet(p, opts);
    }
    let bytes = std::fs::read(p).with_context(|| format!("cannot read {name}"))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        bail!("{name}: the file is empty")
    }
    let (fields, label_lines) = match format {
        Format::TextLabel => read_text_label(&bytes, &name, opts)?,
        Format::Csv => read_delimited(&bytes, &name, b',')?,
        Format::Tsv => read_delimited(&bytes, &name, b'\t')?,
        Format::Jsonl => read_jsonl(&bytes, &name)?,
        Format::Parquet => unreachable!(),
    };
    let ds = Dataset::new(fields, name.clone())?;
    apply_labels(ds, opts, &label_lines)
}

/// Turns the label column into a ClassLabel: string names are mapped to ids (an unknown name
/// is an error naming its line); integer ids are checked against the names.
fn apply_labels(mut ds: Dataset, opts: &LoadOptions, lines: &[usize]) -> Result<Dataset> {
    let col = match &opts.label_column {
        Some(c) => c.clone(),
        None if ds.column_names().contains(&"label") => "label".into(),
        None => return Ok(ds),
    };
    let field = ds.field(&col)?.clone();
    let line_of = |i: usize| lines.get(i).copied().unwrap_or(i + 1);
    let (ids, names) = match &field.column {
        Column::Str(v) => {
            let names = match &opts.label_names {
                Some(n) => n.clone(),
                None => {
                    let mut u: Vec<String> = v.clone();
                    u.sort();
                    u.dedup();
                    u
                }
            };
            let cl = ClassLabel::new(names.clone());
            let ids = v
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    cl.str2int(s)
                        .map_err(|e| anyhow!("{}:{}: {e}", ds.source, line_of(i)))
                })
                .collect::<Result<Vec<i64>>>()?;
            (ids, names)
        }
        Column::Int(v) => {
            let names = match &opts.label_names {
                Some(n) => n.clone(),
                None => match &field.feature {
                    Feature::ClassLabel(c) => c.names.clone(),
                    _ => {
                        let max = v.iter().copied().max().unwrap_or(0).max(0);
                        (0..=max).map(|i| i.to_string()).collect()
                    }
                },
            };
            for (i, &id) in v.iter().enumerate() {
                if id < 0 || id as usize >= names.len() {
                    bail!(
                        "{}:{}: label id {id} is out of range for {} classes",
                        ds.source,
                        line_of(i),
                        names.len()
                    )
                }
            }
            (v.clone(), names)
        }
        other => bail!(
            "{}: label column {col:?} holds {} values, not names or ids",
            ds.source,
            other.type_name()
        ),
    };
    ds = ds.with_column(
        &col,
        Feature::ClassLabel(ClassLabel::new(names)),
        Column::Int(ids),
    )?;
    Ok(ds)
}

fn utf8_line<'a>(raw: &'a [u8], name: &str, line: usize) -> Result<&'a str> {
    std::str::from_utf8(raw).map_err(|e| {
        anyhow!(
            "{name}:{line}: invalid UTF-8 (byte {} of the line)",
            e.valid_up_to() + 1
        )
    })
}

/// Non-empty lines with their 1-based line numbers, CR stripped.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.is_empty())
}

fn read_text_label(
    bytes: &[u8],
    name: &str,
    opts: &LoadOptions,
) -> Result<(Vec<Field>, Vec<usize>)> {
    let sep = opts.separator.unwrap_or(';');
    let (mut texts, mut labels, mut nums) = (vec![], vec![], vec![]);
    for (no, raw) in lines(bytes) {
        let line = utf8_line(raw, name, no)?;
        let (t, l) = line
            .rsplit_once(sep)
            .ok_or_else(|| anyhow!("{name}:{no}: no {sep:?} separator between text and label"))?;
        texts.push(t.to_string());
        labels.push(l.trim().to_string());
        nums.push(no);
    }
    let text_col = opts.text_column.clone().unwrap_or_else(|| "text".into());
    let label_col = opts.label_column.clone().unwrap_or_else(|| "label".into());
    Ok((
        vec![
            Field {
                name: text_col,
                feature: Feature::Value("string".into()),
                column: Column::Str(texts),
            },
            Field {
                name: label_col,
                feature: Feature::Value("string".into()),
                column: Column::Str(labels),
            },
        ],
        nums,
    ))
}

/// Column of strings -> ints, floats or strings, whichever fits every value.
fn infer_column(v: Vec<String>) -> Column {
    if !v.is_empty() && v.iter().all(|s| s.trim().parse::<i64>().is_ok()) {
        return Column::Int(v.iter().map(|s| s.trim().parse().unwrap()).collect());
    }
    if !v.is_empty() && v.iter().all(|s| s.trim().parse::<f64>().is_ok()) {
        return Column::Float(v.iter().map(|s| s.trim().parse().unwrap()).collect());
    }
    Column::Str(v)
}

fn read_delimited(bytes: &[u8], name: &str, delim: u8) -> Result<(Vec<Field>, Vec<usize>)> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delim)
        .flexible(true)
        .quoting(delim == b',')
        .from_reader(bytes);
    let header: Vec<String> = r
        .byte_headers()
        .map_err(|e| anyhow!("{name}:1: {e}"))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::str::from_utf8(h)
                .map(|s| s.trim().to_string())
                .map_err(|_| anyhow!("{name}:1: invalid UTF-8 in header field {}", i + 1))
        })
        .collect::<Result<_>>()?;
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        bail!("{name}:1: no header row")
    }
    let mut cols: Vec<Vec<String>> = vec![vec![]; header.len()];
    let mut nums = vec![];
    for rec in r.byte_records() {
        let rec = rec.map_err(|e| anyhow!("{name}: {e}"))?;
        let no = rec.position().map_or(0, |p| p.line() as usize);
        if rec.len() != header.len() {
            bail!(
                "{name}:{no}: row has {} fields, the header has {}",
                rec.len(),
                header.len()
            )
        }
        for (i, f) in rec.iter().enumerate() {
            cols[i].push(utf8_line(f, name, no)?.to_string());
        }
        nums.push(no);
    }
    if nums.is_empty() {
        bail!("{name}: a header but no rows")
    }
    let fields = header
        .into_iter()
        .zip(cols)
        .map(|(h, c)| {
            let column = infer_column(c);
            Field {
                name: h,
                feature: Feature::of(&column),
                column,
            }
        })
        .collect();
    Ok((fields, nums))
}

fn read_jsonl(bytes: &[u8], name: &str) -> Result<(Vec<Field>, Vec<usize>)> {
    let mut keys: Vec<String> = vec![];
    let mut vals: Vec<Vec<serde_json::Value>> = vec![];
    let mut nums = vec![];
    for (no, raw) in lines(bytes) {
        let line = utf8_line(raw, name, no)?;
        if line.trim().is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| anyhow!("{name}:{no}: not a JSON object: {e}"))?;
        if keys.is_empty() {
            keys = obj.keys().cloned().collect();
            vals = vec![vec![]; keys.len()];
        }
        if obj.len() != keys.len() {
            bail!(
                "{name}:{no}: {} fields, the first line has {} ({})",
                obj.len(),
                keys.len(),
                keys.join(", ")
            )
        }
        for (k, col) in keys.iter().zip(vals.iter_mut()) {
            let v = obj
                .get(k)
                .ok_or_else(|| anyhow!("{name}:{no}: missing field {k:?}"))?;
            col.push(v.clone());
        }
        nums.push(no);
    }
    let mut fields = vec![];
    for (k, col) in keys.into_iter().zip(vals) {
        let column = json_column(&col).map_err(|e| anyhow!("{name}: field {k:?}: {e}"))?;
        fields.push(Field {
            name: k,
            feature: Feature::of(&column),
            column,
        });
    }
    Ok((fields, nums))
}

fn json_column(v: &[serde_json::Value]) -> Result<Column> {
    use serde_json::Value as J;
    if v.iter().all(|x| x.is_i64()) {
        return Ok(Column::Int(v.iter().map(|x| x.as_i64().unwrap()).collect()));
    }
    if v.iter().all(|x| x.is_number()) {
        return Ok(Column::Float(
            v.iter().map(|x| x.as_f64().unwrap()).collect(),
        ));
    }
    if v.iter().all(|x| x.is_boolean()) {
        return Ok(Column::Bool(
            v.iter().map(|x| x.as_bool().unwrap()).collect(),
        ));
    }
    if v.iter().all(|x| x.is_string()) {
        return Ok(Column::Str(
            v.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        ));
    }
    if v.iter().all(|x| matches!(x, J::Array(a) if a.iter().all(|e| e.as_u64().is_some_and(|n| n <= u32::MAX as u64)))) {
        return Ok(Column::IntList(
            v.iter()
                .map(|x| x.as_array().unwrap().iter().map(|e| e.as_u64().unwrap() as u32).collect())
                .collect(),
        ));
    }
    bail!("values of mixed or unsupported types")
}

// ---------------------------------------------------------------- Arrow / parquet

/// Hugging Face keeps a data set's features as JSON in the schema metadata ("huggingface").
fn hf_features(meta: &std::collections::HashMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(text) = meta.get("huggingface") {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            let feats = v["info"]["features"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, f) in feats {
                if f["_type"] == "ClassLabel" {
                    if let Some(n) = f["names"].as_array() {
                        out.insert(
                            k,
                            n.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect(),
                        );
                    }
                }
            }
        }
    }
    out
}

fn arrow_column(a: &dyn Array, name: &str) -> Result<Column> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType as D;
    Ok(match a.data_type() {
        D::Utf8 => Column::Str(
            a.as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect(),
        ),
        D::LargeUtf8 => Column::Str(
            a.as_string::<i64>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect(),
        ),
        D::Int64 => Column::Int(a.as_primitive::<Int64Type>().values().to_vec()),
        D::Int32 => Column::Int(
            a.as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&x| x as i64)
                .collect(),
        ),
        D::Int16 => Column::Int(
            a.as_primitive::<Int16Type>()
                .values()
                .iter()
                .map(|&x| x as i64)
                .collect(),
        ),
        D::Int8 => Column::Int(
            a.as_primitive::<Int8Type>()
                .values()
                .iter()
                .map(|&x| x as i64)
                .collect(),
        ),
        D::Float64 => Column::Float(a.as_primitive::<Float64Type>().values().to_vec()),
        D::Float32 => Column::Float(
            a.as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|&x| x as f64)
                .collect(),
        ),
        D::Boolean => Column::Bool(a.as_boolean().iter().map(|b| b.unwrap_or(false)).collect()),
        D::List(_) => {
            let l = a.as_list::<i32>();
            let mut rows = vec![];
            for i in 0..l.len() {
                let v = l.value(i);
                rows.push(match arrow_column(v.as_ref(), name)? {
                    Column::Int(x) => x.into_iter().map(|n| n as u32).collect(),
                    _ => bail!("column {name:?}: only lists of integers are supported"),
                });
            }
            Column::IntList(rows)
        }
        other => bail!("column {name:?}: unsupported Arrow type {other}"),
    })
}

fn from_batches(
    batches: Vec<RecordBatch>,
    names: BTreeMap<String, Vec<String>>,
    source: &str,
) -> Result<Dataset> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| anyhow!("{source}: no rows"))?;
    let mut fields = vec![];
    for (i, f) in schema.fields().iter().enumerate() {
        let mut col: Option<Column> = None;
        for b in &batches {
            let c = arrow_column(b.column(i).as_ref(), f.name())
                .map_err(|e| anyhow!("{source}: {e}"))?;
            match &mut col {
                None => col = Some(c),
                Some(acc) => acc.extend(c)?,
            }
        }
        let column = col.unwrap();
        let feature = match names.get(f.name()) {
            Some(n) => Feature::ClassLabel(ClassLabel::new(n.clone())),
            None => Feature::of(&column),
        };
        fields.push(Field {
            name: f.name().clone(),
            feature,
            column,
        });
    }
    Dataset::new(fields, source)
}

fn read_parquet(p: &Path, opts: &LoadOptions) -> Result<Dataset> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let name = p.display().to_string();
    let f = std::fs::File::open(p).with_context(|| format!("cannot read {name}"))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| anyhow!("{name}: not a readable parquet file: {e}"))?;
    let names = hf_features(b.schema().metadata());
    let batches = b
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{name}: {e}"))?;
    let ds = from_batches(batches, names, &name)?;
    apply_labels(ds, opts, &[])
}

/// `$HF_DATASETS_CACHE`, `$HF_HOME/datasets`, or `~/.cache/huggingface/datasets`.
pub fn hf_datasets_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_DATASETS_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("datasets");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/huggingface/datasets")
}

/// A data set in the `datasets` cache (`<ns>___<name>/<config>/<version>/<hash>/<name>-<split>
/// .arrow` with dataset_info.json). Ok(None) when it is not there.
pub fn load_hf_cache(name: &str) -> Result<Option<DatasetDict>> {
    let root = hf_datasets_cache();
    let want = name.replace('/', "___");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(None);
    };
    let base = entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
        let n = p.file_name().unwrap_or_default().to_string_lossy();
        p.is_dir() && (n == want || n.ends_with(&format!("___{want}")))
    });
    let Some(base) = base else { return Ok(None) };
    let mut arrows = vec![];
    collect_arrow(&base, 0, &mut arrows);
    if arrows.is_empty() {
        return Ok(None);
    }
    arrows.sort();
    // Only the newest fingerprint folder.
    let dir = arrows.last().unwrap().parent().unwrap().to_path_buf();
    arrows.retain(|a| a.parent() == Some(dir.as_path()));
    let info: serde_json::Value = std::fs::read_to_string(dir.join("dataset_info.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut names = BTreeMap::new();
    if let Some(feats) = info["features"].as_object() {
        for (k, f) in feats {
            if f["_type"] == "ClassLabel" {
                if let Some(n) = f["names"].as_array() {
                    names.insert(
                        k.clone(),
                        n.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect::<Vec<_>>(),
                    );
                }
            }
        }
    }
    let mut by_split: BTreeMap<String, Vec<RecordBatch>> = BTreeMap::new();
    for a in &arrows {
        let stem = a
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        // <name>-<split>[-00000-of-00002]
        let parts: Vec<&str> = stem.split('-').collect();
        let split = if parts.len() >= 4 && parts[parts.len() - 2] == "of" {
            parts[parts.len() - 4]
        } else {
            parts[parts.len() - 1]
        };
        let f = std::fs::File::open(a)?;
        let r = arrow_ipc::reader::StreamReader::try_new(f, None)
            .map_err(|e| anyhow!("{}: not an Arrow stream: {e}", a.display()))?;
        for b in r {
            by_split
                .entry(split.to_string())
                .or_default()
                .push(b.map_err(|e| anyhow!("{}: {e}", a.display()))?);
        }
    }
    let mut d = DatasetDict {
        name: name.into(),
        ..Default::default()
    };
    for (split, batches) in by_split {
        let src = format!("{} ({split})", dir.display());
        d.splits
            .insert(split, from_batches(batches, names.clone(), &src)?);
    }
    Ok(Some(d))
}

fn collect_arrow(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 5 {
        return;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_arrow(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "arrow") {
            out.push(p);
        }
    }
}

fn to_record_batch(ds: &Dataset) -> Result<RecordBatch> {
    use arrow_array::builder::{ListBuilder, UInt32Builder};
    use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
    let mut arrays: Vec<(String, ArrayRef)> = vec![];
    for f in &ds.fields {
        let a: ArrayRef = match &f.column {
            Column::Str(v) => Arc::new(StringArray::from(v.clone())),
            Column::Int(v) => Arc::new(Int64Array::from(v.clone())),
            Column::Float(v) => Arc::new(Float64Array::from(v.clone())),
            Column::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Column::IntList(v) => {
                let mut b = ListBuilder::new(UInt32Builder::new());
                for row in v {
                    b.values().append_slice(row);
                    b.append(true);
                }
                Arc::new(b.finish())
            }
        };
        arrays.push((f.name.clone(), a));
    }
    let mut feats = serde_json::Map::new();
    for f in &ds.fields {
        let v = match &f.feature {
            Feature::ClassLabel(c) => serde_json::json!({"names": c.names, "_type": "ClassLabel"}),
            Feature::Value(t) => serde_json::json!({"dtype": t, "_type": "Value"}),
            Feature::Sequence(t) => {
                serde_json::json!({"feature": {"dtype": t, "_type": "Value"}, "_type": "Sequence"})
            }
        };
        feats.insert(f.name.clone(), v);
    }
    let meta = serde_json::json!({"info": {"features": feats}}).to_string();
    let batch = RecordBatch::try_from_iter(arrays)?;
    let schema = batch
        .schema()
        .as_ref()
        .clone()
        .with_metadata([("huggingface".to_string(), meta)].into_iter().collect());
    Ok(batch.with_schema(Arc::new(schema))?)
}

/// Writes a split in `format` (atomically). ClassLabel columns are written as names in csv,
/// tsv and `text;label` files, as ids in jsonl (like a Hugging Face export: pass the names when
/// reading back), and as ids with the names in the schema metadata in parquet.
pub fn save(ds: &Dataset, path: &Path, format: Format) -> Result<()> {
    let bytes: Vec<u8> = match format {
        Format::Parquet => {
            let batch = to_record_batch(ds)?;
            let mut buf = vec![];
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
            w.write(&batch)?;
            w.close()?;
            buf
        }
        Format::Jsonl => {
            let mut out = vec![];
            for i in 0..ds.len() {
                serde_json::to_writer(&mut out, &ds.row(i)?)?;
                out.push(b'\n');
            }
            out
        }
        Format::Csv | Format::Tsv => {
            let mut w = csv::WriterBuilder::new()
                .delimiter(if format == Format::Csv { b',' } else { b'\t' })
                .quote_style(if format == Format::Csv {
                    csv::QuoteStyle::Necessary
                } else {
                    csv::QuoteStyle::Never
                })
                .from_writer(vec![]);
            w.write_record(ds.column_names())?;
            for i in 0..ds.len() {
                let rec: Vec<String> = ds.fields.iter().map(|f| cell(f, i)).collect();
                if format == Format::Tsv && rec.iter().any(|c| c.contains('\t') || c.contains('\n'))
                {
                    bail!("row {i} has a tab or newline, which TSV cannot hold; use csv or jsonl")
                }
                w.write_record(rec)?;
            }
            w.into_inner().map_err(|e| anyhow!("{e}"))?
        }
        Format::TextLabel => {
            if ds.fields.len() != 2 {
                bail!(
                    "`text;label` files hold exactly two columns, this data set has {}",
                    ds.fields.len()
                )
            }
            let mut out = String::new();
            for i in 0..ds.len() {
                let t = cell(&ds.fields[0], i);
                if t.contains('\n') {
                    bail!("row {i}: text with a newline cannot be written as a `text;label` line")
                }
                out.push_str(&format!("{t};{}\n", cell(&ds.fields[1], i)));
            }
            out.into_bytes()
        }
    };
    crate::util::write_atomic(path, &bytes)
}

/// A cell as text, with ClassLabel ids written as names.
fn cell(f: &Field, i: usize) -> String {
    match (&f.feature, &f.column) {
        (Feature::ClassLabel(c), Column::Int(v)) => c.int2str(v[i]).unwrap_or("?").to_string(),
        (_, Column::Str(v)) => v[i].clone(),
        (_, c) => c.json(i).to_string(),
    }
}
