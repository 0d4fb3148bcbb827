//! Exploration of a labelled text data set, as the course does with pandas and seaborn:
//! class counts (`value_counts`), words per text (`str.split().apply(len)`), a per-label
//! summary (`describe`), and Gaussian kernel density estimates (scipy's `gaussian_kde`).

use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::data::Dataset;

/// One class's count and share (`value_counts()` and `value_counts(normalize=True)`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassCount {
    pub label: String,
    pub count: usize,
    pub percent: f64,
}

/// Class counts, most frequent first (ties by class id), with percentages.
pub fn value_counts(ds: &Dataset, label_column: &str) -> Result<Vec<ClassCount>> {
    let cl = ds.class_label(label_column)?;
    let ids = ds
        .column(label_column)?
        .as_int()
        .ok_or_else(|| anyhow!("{label_column:?} is not an integer column"))?;
    let mut counts = vec![0usize; cl.num_classes()];
    for &i in ids {
        counts[i as usize] += 1;
    }
    let mut out: Vec<(usize, usize)> = counts.into_iter().enumerate().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let n = ids.len().max(1) as f64;
    Ok(out
        .into_iter()
        .map(|(i, c)| ClassCount {
            label: cl.names[i].clone(),
            count: c,
            percent: 100.0 * c as f64 / n,
        })
        .collect())
}

/// Words per text: whitespace-separated pieces, as pandas' `str.split()`.
pub fn words_per_text(ds: &Dataset, text_column: &str) -> Result<Vec<usize>> {
    let texts = ds
        .column(text_column)?
        .as_str()
        .ok_or_else(|| anyhow!("{text_column:?} is not a text column"))?;
    Ok(texts.iter().map(|t| t.split_whitespace().count()).collect())
}

/// pandas `describe()` of a numeric series.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    /// Sample standard deviation (ddof = 1), as pandas.
    pub std: f64,
    pub min: f64,
    pub q25: f64,
    pub median: f64,
    pub q75: f64,
    pub max: f64,
}

/// Quantile with linear interpolation (numpy's and pandas' default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

pub fn describe(values: &[f64]) -> Summary {
    let mut s = values.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let mean = s.iter().sum::<f64>() / n.max(1) as f64;
    let var = if n > 1 {
        s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        f64::NAN
    };
    Summary {
        count: n,
        mean,
        std: var.sqrt(),
        min: s.first().copied().unwrap_or(f64::NAN),
        q25: quantile(&s, 0.25),
        median: quantile(&s, 0.5),
        q75: quantile(&s, 0.75),
        max: s.last().copied().unwrap_or(f64::NAN),
    }
}

/// Gaussian kernel density estimate with Scott's bandwidth, as `scipy.stats.gaussian_kde`:
/// kernel std = sample std (ddof = 1) x n^(-1/5).
#[derive(Clone, Debug)]
pub struct GaussianKde {
    data: Vec<f64>,
    /// Scott's factor n^(-1/5).
    pub factor: f64,
    /// Standard deviation of each Gaussian kernel.
    pub kernel_std: f64,
}

impl GaussianKde {
    pub fn new(data: &[f64]) -> Result<Self> {
        if data.len() < 2 {
            anyhow::bail!("a KDE needs at least 2 values, got {}", data.len())
        }
        let s = describe(data);
        if s.std.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            anyhow::bail!("a KDE needs values that are not all equal")
        }
        let factor = (data.len() as f64).powf(-0.2);
        Ok(Self {
            data: data.to_vec(),
            factor,
            kernel_std: s.std * factor,
        })
    }

    /// Density at x (integrates to 1 over the real line).
    pub fn density(&self, x: f64) -> f64 {
        let h = self.kernel_std;
        let norm = 1.0 / (self.data.len() as f64 * h * (2.0 * std::f64::consts::PI).sqrt());
        norm * self
            .data
            .iter()
            .map(|&d| (-0.5 * ((x - d) / h).powi(2)).exp())
            .sum::<f64>()
    }

    /// seaborn's evaluation grid: `gridsize` points from min - cut·bw to max + cut·bw.
    pub fn grid(&self, cut: f64, gridsize: usize) -> Vec<f64> {
        let min = self.data.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = (min - cut * self.kernel_std, max + cut * self.kernel_std);
        (0..gridsize)
            .map(|i| lo + (hi - lo) * i as f64 / (gridsize - 1).max(1) as f64)
            .collect()
    }
}

/// Everything `lmkit eda` reports about one split.
#[derive(Clone, Debug, Serialize)]
pub struct Exploration {
    pub rows: usize,
    pub columns: Vec<String>,
    pub class_counts: Vec<ClassCount>,
    pub words_per_text: Summary,
    /// Per label, in class id order.
    pub words_per_text_by_label: Vec<(String, Summary)>,
}

pub fn explore(ds: &Dataset, text_column: &str, label_column: &str) -> Result<Exploration> {
    let words = words_per_text(ds, text_column)?;
    let cl = ds.class_label(label_column)?;
    let ids = ds
        .column(label_column)?
        .as_int()
        .ok_or_else(|| anyhow!("{label_column:?} is not an integer column"))?;
    let by_label = (0..cl.num_classes())
        .map(|c| {
            let v: Vec<f64> = words
                .iter()
                .zip(ids)
                .filter(|(_, &l)| l as usize == c)
                .map(|(&w, _)| w as f64)
                .collect();
            (cl.names[c].clone(), describe(&v))
        })
        .collect();
    Ok(Exploration {
        rows: ds.len(),
        columns: ds.column_names().iter().map(|s| s.to_string()).collect(),
        class_counts: value_counts(ds, label_column)?,
        words_per_text: describe(&words.iter().map(|&w| w as f64).collect::<Vec<_>>()),
        words_per_text_by_label: by_label,
    })
}

/// The course's three plots for one split — class counts, words-per-text histogram (30 bins),
/// KDE of words per text for each label (each normalised on its own, seaborn's
/// `common_norm=False`) — as PNG and SVG in `out_dir`. Returns the files written.
pub fn write_plots(
    ds: &Dataset,
    text_column: &str,
    label_column: &str,
    out_dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::plot::{save, BarChart, HistogramChart, LineChart};
    let cl = ds.class_label(label_column)?.clone();
    let ids = ds
        .column(label_column)?
        .as_int()
        .ok_or_else(|| anyhow!("{label_column:?} is not an integer column"))?
        .to_vec();
    let mut counts = vec![0f64; cl.num_classes()];
    for &i in &ids {
        counts[i as usize] += 1.0;
    }
    let mut files = save(
        &BarChart {
            title: "Class distribution".into(),
            x_label: format!("{label_column}_name"),
            y_label: "count".into(),
            bars: cl.names.iter().cloned().zip(counts).collect(),
        },
        &out_dir.join("class_counts"),
    )?;
    let words: Vec<f64> = words_per_text(ds, text_column)?
        .into_iter()
        .map(|w| w as f64)
        .collect();
    files.extend(save(
        &HistogramChart {
            title: "Words per text".into(),
            x_label: "Words Per Tweet".into(),
            values: words.clone(),
            bins: 30,
        },
        &out_dir.join("words_per_text_hist"),
    )?);
    let mut series = vec![];
    for (c, name) in cl.names.iter().enumerate() {
        let v: Vec<f64> = words
            .iter()
            .zip(&ids)
            .filter(|(_, &l)| l as usize == c)
            .map(|(&w, _)| w)
            .collect();
        if let Ok(k) = GaussianKde::new(&v) {
            let pts = k
                .grid(3.0, 200)
                .into_iter()
                .map(|x| (x, k.density(x)))
                .collect();
            series.push((name.clone(), pts));
        }
    }
    files.extend(save(
        &LineChart {
            title: "Words per text by label (KDE, each label normalised)".into(),
            x_label: "Words Per Tweet".into(),
            y_label: "Density".into(),
            series,
        },
        &out_dir.join("words_per_text_kde"),
    )?);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_describe_match_pandas() {
        // pandas: Series([1, 2, 3, 4, 10]).describe()
        let s = describe(&[1.0, 2.0, 3.0, 4.0, 10.0]);
        assert_eq!(
            (s.count, s.mean, s.min, s.q25, s.median, s.q75, s.max),
            (5, 4.0, 1.0, 2.0, 3.0, 4.0, 10.0)
        );
        assert!((s.std - 3.5355339059327378).abs() < 1e-12);
        assert_eq!(quantile(&[1.0, 2.0], 0.25), 1.25);
    }
}
