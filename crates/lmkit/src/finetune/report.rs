//! One HTML page per run: settings, test metrics, classification report, confusion matrix,
//! training curves and the data plots, linking the SVGs written beside it.

use anyhow::Result;

use crate::finetune::FinetuneConfig;
use crate::metrics::Report;
use crate::train::EpochLog;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn html(
    cfg: &FinetuneConfig,
    r: &Report,
    history: &[EpochLog],
    seconds: f64,
) -> Result<String> {
    let mut rows = String::new();
    for e in history {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.1}</td></tr>\n",
            e.epoch, e.train_loss, f(e.val_loss), f(e.val_accuracy), f(e.val_f1_macro), e.seconds, e.train_samples_per_s
        ));
    }
    let t = &cfg.train;
    Ok(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lmkit run: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: .3em .7em; text-align: right; }}
.kpi {{ display: inline-block; margin-right: 2em; font-size: 1.2em; }} .kpi b {{ font-size: 1.5em; }}
img {{ max-width: 100%; }} .grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }}
</style></head><body>
<h1>Fine-tuning {model} on {dataset}</h1>
<p>{epochs} epochs, batch {batch}, AdamW lr {lr}, weight decay {wd}, schedule {schedule:?}, seed {seed}, max length {max_len}; wall time {mins:.1} min.</p>
<div><span class="kpi">accuracy <b>{acc:.4}</b></span><span class="kpi">macro F1 <b>{f1m:.4}</b></span><span class="kpi">weighted F1 <b>{f1w:.4}</b></span></div>
<h2>Classification report ({split} split)</h2>
<pre>{report}</pre>
<h2>Confusion matrix</h2>
<div class="grid"><img src="plots/confusion_matrix.svg" alt="confusion matrix"><pre>{cm}</pre></div>
<h2>Training</h2>
<img src="plots/training_curves.svg" alt="training curves">
<table><tr><th>epoch</th><th>train loss</th><th>val loss</th><th>val accuracy</th><th>val macro F1</th><th>seconds</th><th>samples/s</th></tr>
{rows}</table>
<h2>Data</h2>
<div class="grid"><img src="plots/class_counts.svg" alt="class counts"><img src="plots/words_per_text_hist.svg" alt="words per text"></div>
<img src="plots/words_per_text_kde.svg" alt="words per text by label">
<p>Files: <code>model/</code> (Hugging Face layout), <code>metrics.json</code>, <code>epochs.jsonl</code>, <code>steps.jsonl</code>, <code>predictions.jsonl</code>, <code>run_config.json</code>.</p>
</body></html>
"#,
        name = esc(&cfg.output.display().to_string()),
        model = esc(&cfg.model),
        dataset = esc(&cfg.dataset),
        epochs = t.epochs,
        batch = t.batch_size,
        lr = t.optimizer.lr,
        wd = t.optimizer.weight_decay,
        schedule = t.schedule,
        seed = t.seed,
        max_len = cfg.max_length,
        mins = seconds / 60.0,
        acc = r.accuracy,
        f1m = r.f1_macro(),
        f1w = r.f1_weighted(),
        split = esc(&cfg.eval_split),
        report = esc(&r.to_string()),
        cm = esc(&r.confusion_table()),
    ))
}
