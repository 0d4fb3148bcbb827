//! Classification metrics as scikit-learn computes and prints them: `confusion_matrix`,
//! `classification_report` (same layout, same zero_division rule), accuracy and F1 averages.

use anyhow::{bail, Result};
use serde::Serialize;

/// Rows are true classes, columns predicted classes.
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    n_classes: usize,
) -> Result<Vec<Vec<usize>>> {
    if y_true.len() != y_pred.len() {
        bail!(
            "{} true labels but {} predictions",
            y_true.len(),
            y_pred.len()
        )
    }
    let mut m = vec![vec![0usize; n_classes]; n_classes];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if t >= n_classes || p >= n_classes {
            bail!("label {} is out of range for {n_classes} classes", t.max(p))
        }
        m[t][p] += 1;
    }
    Ok(m)
}

/// One row of the report.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    #[serde(rename = "f1-score")]
    pub f1: f64,
    pub support: usize,
}

/// What `classification_report(..., output_dict=True)` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub classes: Vec<(String, ClassScores)>,
    pub accuracy: f64,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
    pub confusion_matrix: Vec<Vec<usize>>,
    #[serde(skip)]
    digits: usize,
}

/// sklearn's rule: a ratio with a zero denominator is `zero_division`.
fn ratio(num: usize, den: usize, zero_division: f64) -> f64 {
    if den == 0 {
        zero_division
    } else {
        num as f64 / den as f64
    }
}

/// Scores per class and their averages. F1 is 2tp / (2tp + fp + fn), which is 0 (not
/// zero_division) whenever any of tp, fp, fn is non-zero — as sklearn >= 1.3.
pub fn classification_report(
    y_true: &[usize],
    y_pred: &[usize],
    names: &[String],
    digits: usize,
    zero_division: f64,
) -> Result<Report> {
    let n = names.len();
    let cm = confusion_matrix(y_true, y_pred, n)?;
    let mut classes = vec![];
    for (c, name) in names.iter().enumerate() {
        let tp = cm[c][c];
        let support: usize = cm[c].iter().sum();
        let predicted: usize = cm.iter().map(|r| r[c]).sum();
        let (fp, fn_) = (predicted - tp, support - tp);
        classes.push((
            name.clone(),
            ClassScores {
                precision: ratio(tp, predicted, zero_division),
                recall: ratio(tp, support, zero_division),
                f1: ratio(2 * tp, 2 * tp + fp + fn_, zero_division),
                support,
            },
        ));
    }
    let total: usize = y_true.len();
    let correct: usize = (0..n).map(|c| cm[c][c]).sum();
    let avg = |weighted: bool| -> ClassScores {
        let w = |s: &ClassScores| if weighted { s.support as f64 } else { 1.0 };
        let wsum: f64 = classes.iter().map(|(_, s)| w(s)).sum();
        let mean = |f: &dyn Fn(&ClassScores) -> f64| {
            if wsum == 0.0 {
                zero_division
            } else {
                classes.iter().map(|(_, s)| f(s) * w(s)).sum::<f64>() / wsum
            }
        };
        ClassScores {
            precision: mean(&|s| s.precision),
            recall: mean(&|s| s.recall),
            f1: mean(&|s| s.f1),
            support: total,
        }
    };
    Ok(Report {
        macro_avg: avg(false),
        weighted_avg: avg(true),
        accuracy: ratio(correct, total, 0.0),
        classes,
        confusion_matrix: cm,
        digits,
    })
}

impl Report {
    pub fn f1_macro(&self) -> f64 {
        self.macro_avg.f1
    }
    pub fn f1_weighted(&self) -> f64 {
        self.weighted_avg.f1
    }

    /// The confusion matrix as a table with class names (true down, predicted across).
    pub fn confusion_table(&self) -> String {
        let names: Vec<&str> = self.classes.iter().map(|(n, _)| n.as_str()).collect();
        let w = names
            .iter()
            .map(|n| n.len())
            .chain(
                self.confusion_matrix
                    .iter()
                    .flatten()
                    .map(|v| v.to_string().len()),
            )
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("{:>w$}", "", w = w);
        for n in &names {
            out.push_str(&format!(" {n:>w$}"));
        }
        out.push('\n');
        for (r, row) in self.confusion_matrix.iter().enumerate() {
            out.push_str(&format!("{:>w$}", names[r]));
            for v in row {
                out.push_str(&format!(" {v:>w$}"));
            }
            out.push('\n');
        }
        out
    }
}

impl std::fmt::Display for Report {
    /// Exactly sklearn's `classification_report` text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.digits;
        let width = self
            .classes
            .iter()
            .map(|(n, _)| n.chars().count())
            .chain([12, d])
            .max()
            .unwrap_or(12);
        writeln!(
            f,
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}\n",
            "", "precision", "recall", "f1-score", "support"
        )?;
        let row = |f: &mut std::fmt::Formatter<'_>, name: &str, s: &ClassScores| {
            writeln!(
                f,
                "{name:>width$}  {:>9.d$} {:>9.d$} {:>9.d$} {:>9}",
                s.precision, s.recall, s.f1, s.support
            )
        };
        for (name, s) in &self.classes {
            row(f, name, s)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>width$}  {:>9} {:>9} {:>9.d$} {:>9}",
            "accuracy", "", "", self.accuracy, self.macro_avg.support
        )?;
        row(f, "macro avg", &self.macro_avg)?;
        row(f, "weighted avg", &self.weighted_avg)
    }
}
