//! Evaluation metrics: classification (scikit-learn's confusion matrix and report), and the
//! text-generation scores BLEU (sacreBLEU) and ROUGE (rouge-score).

pub mod bleu;
pub mod classification;
pub mod rouge;

pub use classification::*;
