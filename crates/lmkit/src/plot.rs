//! Charts as PNG and SVG with plotters: bar charts (seaborn's countplot), histograms, line
//! charts (KDE curves, training curves) and the confusion-matrix heatmap. A font is embedded
//! (DejaVu Sans) so text renders on machines without system fonts. DejaVu has no Hangul: a
//! chart with Korean text draws in NanumGothic, which the model store fetches on first use
//! (`hub::fonts`), as it fetches models.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// seaborn's default palette (matplotlib's tab10).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// The family a chart with Hangul in its text draws in.
const HANGUL_FAMILY: &str = "NanumGothic";

/// Where a Hangul font comes from. This layer sits below the model store and cannot fetch
/// anything, so the store registers its fetcher here (`hub::fonts::register`).
static HANGUL_LOADER: OnceLock<fn() -> Result<Vec<u8>>> = OnceLock::new();

pub fn set_hangul_font_loader(load: fn() -> Result<Vec<u8>>) {
    let _ = HANGUL_LOADER.set(load);
}

thread_local! {
    /// The family `font()` uses while a chart draws (set per chart by `save_both`).
    static FAMILY_NOW: Cell<&'static str> = const { Cell::new(FAMILY) };
}

fn has_hangul(text: &str) -> bool {
    text.chars().any(crate::util::is_hangul)
}

/// Registers the Hangul font once; false (with a warning saying why) when there is none.
fn hangul_font() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let Some(load) = HANGUL_LOADER.get() else {
            tracing::warn!(
                "this chart has Korean text but no Hangul font is set up (call \
                 lmkit::hub::fonts::register()): it draws as boxes"
            );
            return false;
        };
        match load() {
            Ok(bytes) => {
                // plotters keeps registered fonts for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                [FontStyle::Normal, FontStyle::Bold]
                    .into_iter()
                    .all(|style| {
                        plotters::style::register_font(HANGUL_FAMILY, style, bytes).is_ok()
                    })
            }
            Err(e) => {
                tracing::warn!("no Hangul font, so Korean text draws as boxes: {e:#}");
                false
            }
        }
    })
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font(FAMILY, style, FONT).is_err() {
                tracing::warn!("the embedded font could not be registered; plots may lack text");
            }
        }
    });
}

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
    fn size(&self) -> (u32, u32) {
        (800, 560)
    }
    /// Every text the chart draws (titles, labels, names): a chart with Hangul in any of
    /// them draws in the Hangul font.
    fn texts(&self) -> Vec<&str>;
}

/// A chart with nothing finite to show (no points, or only NaN and infinities): [`save`] skips
/// it with a note instead of handing plotters an infinite axis, on which it loops forever.
#[derive(Debug)]
pub struct NothingToDraw(pub String);

impl std::fmt::Display for NothingToDraw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NothingToDraw {}

/// `lo..hi` widened to a unit range when empty, or [`NothingToDraw`] when either end is not
/// finite: every axis a chart builds goes through here.
fn axis(lo: f64, hi: f64, what: &str) -> Result<std::ops::Range<f64>> {
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(NothingToDraw(format!("no finite {what} to plot")).into());
    }
    Ok(if hi > lo { lo..hi } else { lo..lo + 1.0 })
}

/// Draws `chart` to `<stem>.png` and `<stem>.svg`; returns both paths, or none (with a note on
/// stderr) when the chart has nothing finite to show.
pub fn save(chart: &impl Chart, stem: &Path) -> Result<Vec<PathBuf>> {
    match save_both(chart, stem) {
        Err(e) if e.downcast_ref::<NothingToDraw>().is_some() => {
            eprintln!("note: skipped the chart {}: {e}", stem.display());
            Ok(vec![])
        }
        r => r,
    }
}

fn save_both(chart: &impl Chart, stem: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let korean = chart.texts().iter().any(|t| has_hangul(t)) && hangul_font();
    FAMILY_NOW.with(|f| f.set(if korean { HANGUL_FAMILY } else { FAMILY }));
    let r = draw_both(chart, stem);
    FAMILY_NOW.with(|f| f.set(FAMILY));
    r
}

fn draw_both(chart: &impl Chart, stem: &Path) -> Result<Vec<PathBuf>> {
    if let Some(dir) = stem.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    {
        let root = BitMapBackend::new(&png, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        chart.draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("writing {}: {e}", png.display()))?;
    }
    {
        let root = SVGBackend::new(&svg, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        chart.draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("writing {}: {e}", svg.display()))?;
    }
    Ok(vec![png, svg])
}

fn bottom_center() -> plotters::style::text_anchor::Pos {
    plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Bottom,
    )
}

/// Axis numbers without spurious decimals ("10", not "10.0"; "0.025" stays).
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The category name at an integer axis position, blank between categories.
fn category_label(names: &[String], v: f64) -> String {
    let i = v.round();
    if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

fn font(size: u32) -> TextStyle<'static> {
    (FAMILY_NOW.with(|f| f.get()), size).into_font().into()
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// Vertical bars, one per category (seaborn's `countplot`).
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub bars: Vec<(String, f64)>,
}

impl Chart for BarChart {
    fn texts(&self) -> Vec<&str> {
        let mut t = vec![self.title.as_str(), &self.x_label, &self.y_label];
        t.extend(self.bars.iter().map(|(n, _)| n.as_str()));
        t
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let n = self.bars.len().max(1);
        let ymax = self.bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0) * 1.1;
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, font(26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
            .map_err(err)?;
        let names: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        c.configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(230, 230, 230))
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| category_label(&names, *x))
            .y_labels(count_ticks(ymax))
            .y_label_formatter(&count_label)
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()
            .map_err(err)?;
        c.draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
            let x = i as f64;
            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, *v)], PALETTE[i % 10].filled())
        }))
        .map_err(err)?;
        c.draw_series(self.bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                format!("{v:.0}"),
                (i as f64, *v),
                font(14).pos(bottom_center()),
            )
        }))
        .map_err(err)?;
        Ok(())
    }
}

/// How many ticks a count axis up to `ymax` asks for: no more than there are whole numbers
/// on it, so the ticks plotters picks fall on integers (with 10 ticks on 0..1.1, a chart of
/// counts up to 1 read "0, 0, 0, 0, 0, 1, 1, ...").
pub fn count_ticks(ymax: f64) -> usize {
    (ymax.floor().max(0.0) as usize + 1).clamp(2, 10)
}

/// A count axis label: the whole number at a tick, and nothing at a fractional one, so no
/// number is printed twice.
pub fn count_label(y: &f64) -> String {
    if (y - y.round()).abs() < 1e-9 {
        format!("{:.0}", y.round())
    } else {
        String::new()
    }
}

/// A histogram over equal-width bins from min to max (numpy's / seaborn's `bins=N`).
pub struct HistogramChart {
    pub title: String,
    pub x_label: String,
    pub values: Vec<f64>,
    pub bins: usize,
}

/// Bin edges and counts as `numpy.histogram(values, bins)`: the last bin includes its right edge.
pub fn histogram(values: &[f64], bins: usize) -> (Vec<f64>, Vec<usize>) {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    let min = finite().fold(f64::INFINITY, f64::min);
    let mut max = finite().fold(f64::NEG_INFINITY, f64::max);
    if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
        max = min + 1.0;
    }
    let w = (max - min) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|i| min + w * i as f64).collect();
    let mut counts = vec![0usize; bins];
    for v in finite() {
        let i = (((v - min) / w) as usize).min(bins - 1);
        counts[i] += 1;
    }
    (edges, counts)
}

impl Chart for HistogramChart {
    fn texts(&self) -> Vec<&str> {
        vec![&self.title, &self.x_label]
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (edges, counts) = histogram(&self.values, self.bins.max(1));
        let x = axis(edges[0], *edges.last().unwrap(), "values")?;
        let ymax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, font(26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(x, 0f64..ymax)
            .map_err(err)?;
        c.configure_mesh()
            .light_line_style(RGBColor(230, 230, 230))
            .x_label_formatter(&tick)
            .x_desc(&self.x_label)
            .y_desc("Count")
            .y_labels(count_ticks(ymax))
            .y_label_formatter(&count_label)
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()
            .map_err(err)?;
        let fill = PALETTE[0].mix(0.75).filled();
        c.draw_series(
            counts
                .iter()
                .enumerate()
                .map(|(i, &n)| Rectangle::new([(edges[i], 0.0), (edges[i + 1], n as f64)], fill)),
        )
        .map_err(err)?;
        c.draw_series(counts.iter().enumerate().map(|(i, &n)| {
            Rectangle::new(
                [(edges[i], 0.0), (edges[i + 1], n as f64)],
                WHITE.stroke_width(1),
            )
        }))
        .map_err(err)?;
        Ok(())
    }
}

/// Lines with a legend (KDE per label, training curves).
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl Chart for LineChart {
    fn texts(&self) -> Vec<&str> {
        let mut t = vec![self.title.as_str(), &self.x_label, &self.y_label];
        t.extend(self.series.iter().map(|(n, _)| n.as_str()));
        t
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let pts = self.series.iter().flat_map(|s| s.1.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let xs = axis(x0, x1, "points")?;
        let ys = axis(y0, y1, "points")?;
        let (x0, x1, y0, y1) = (xs.start, xs.end, ys.start, ys.end);
        let pad = (y1 - y0) * 0.08;
        let y_lo = if y0 >= 0.0 && y0 - pad < 0.0 {
            0.0
        } else {
            y0 - pad
        };
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, font(26))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y_lo..(y1 + pad))
            .map_err(err)?;
        c.configure_mesh()
            .light_line_style(RGBColor(230, 230, 230))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(font(16))
            .axis_desc_style(font(18))
            .draw()
            .map_err(err)?;
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let color = PALETTE[i % 10];
            let finite = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite());
            c.draw_series(LineSeries::new(finite, color.stroke_width(2)))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(font(16))
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// A confusion matrix as sklearn's `ConfusionMatrixDisplay(cmap=Blues, colorbar=False)`:
/// true labels down, predicted across, counts in the cells, class names on both axes.
pub struct ConfusionMatrixChart {
    pub title: String,
    pub labels: Vec<String>,
    pub matrix: Vec<Vec<usize>>,
}

/// matplotlib's "Blues" colormap, from white to dark blue, sampled at t in [0, 1].
pub fn blues(t: f64) -> RGBColor {
    const STOPS: [(f64, (u8, u8, u8)); 5] = [
        (0.0, (247, 251, 255)),
        (0.25, (198, 219, 239)),
        (0.5, (107, 174, 214)),
        (0.75, (33, 113, 181)),
        (1.0, (8, 48, 107)),
    ];
    let t = t.clamp(0.0, 1.0);
    for w in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if t <= b {
            let f = (t - a) / (b - a);
            let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
            return RGBColor(mix(ca.0, cb.0), mix(ca.1, cb.1), mix(ca.2, cb.2));
        }
    }
    RGBColor(8, 48, 107)
}

impl Chart for ConfusionMatrixChart {
    fn texts(&self) -> Vec<&str> {
        let mut t = vec![self.title.as_str()];
        t.extend(self.labels.iter().map(String::as_str));
        t
    }
    fn size(&self) -> (u32, u32) {
        (760, 700)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let n = self.labels.len().max(1);
        let max = self
            .matrix
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut c = ChartBuilder::on(root)
            .caption(&self.title, font(24))
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (n as f64 - 0.5)..-0.5f64)
            .map_err(err)?;
        let names = self.labels.clone();
        let fmt = move |v: &f64| category_label(&names, *v);
        c.configure_mesh()
            .disable_mesh()
            .x_labels(n * 2 + 1)
            .y_labels(n * 2 + 1)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .x_desc("Predicted label")
            .y_desc("True label")
            .label_style(font(15))
            .axis_desc_style(font(18))
            .draw()
            .map_err(err)?;
        for (r, row) in self.matrix.iter().enumerate() {
            for (col, &v) in row.iter().enumerate() {
                let t = v as f64 / max;
                let (x, y) = (col as f64, r as f64);
                c.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    blues(t).filled(),
                )))
                .map_err(err)?;
                // Dark cells get white text, as matplotlib does past the colormap's middle.
                let color = if t > 0.5 { WHITE } else { BLACK };
                let text = format!("{v}");
                let style = font(18)
                    .color(&color)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                c.draw_series(std::iter::once(Text::new(text, (x, y), style)))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_matches_numpy_edges_and_counts() {
        // numpy.histogram([1, 2, 2, 3, 10], bins=3): edges [1, 4, 7, 10], counts [4, 0, 1]
        let (e, c) = histogram(&[1.0, 2.0, 2.0, 3.0, 10.0], 3);
        assert_eq!(e, vec![1.0, 4.0, 7.0, 10.0]);
        assert_eq!(c, vec![4, 0, 1]);
    }

    /// Count axes print each whole number once, at the ticks plotters picks for them: small
    /// counts too, where ten ticks on 0..1.1 had printed "0, 0, 0, 0, 0, 1, 1, ...".
    #[test]
    fn count_axes_print_each_whole_number_once() {
        use plotters::coord::ranged1d::Ranged;
        use plotters::coord::types::RangedCoordf64;
        for max_count in [1.0, 2.0, 4.0, 7.0, 9.0, 13.0, 250.0, 5362.0] {
            let ymax = max_count * 1.1;
            let axis: RangedCoordf64 = (0f64..ymax).into();
            let labels: Vec<String> = axis
                .key_points(count_ticks(ymax))
                .iter()
                .map(count_label)
                .filter(|l| !l.is_empty())
                .collect();
            let mut unique = labels.clone();
            unique.dedup();
            assert_eq!(labels, unique, "counts up to {max_count}: {labels:?}");
            assert!(labels.len() >= 2, "counts up to {max_count}: {labels:?}");
            assert!(
                labels.iter().all(|l| l.parse::<u64>().is_ok()),
                "{labels:?}"
            );
        }
    }

    /// Charts with nothing finite to show are skipped, not looped on (plotters spins forever on
    /// an infinite or NaN axis); a chart with some finite points draws those.
    #[test]
    fn degenerate_inputs_are_skipped_or_drawn_never_hung() {
        let dir = tempfile::tempdir().unwrap();
        let line = |series: Vec<(String, Vec<(f64, f64)>)>| LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series,
        };
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        for (i, chart) in [
            line(vec![]),
            line(vec![("a".into(), vec![])]),
            line(vec![("a".into(), vec![(nan, 1.0), (1.0, inf)])]),
        ]
        .iter()
        .enumerate()
        {
            let files = save(chart, &dir.path().join(format!("line{i}"))).unwrap();
            assert!(files.is_empty(), "line chart {i} has nothing to draw");
        }
        let files = save(
            &line(vec![("a".into(), vec![(nan, 1.0), (1.0, 2.0), (1.0, 2.0)])]),
            &dir.path().join("one_point"),
        )
        .unwrap();
        assert_eq!(files.len(), 2, "one finite point is drawn");
        let hist = |values: Vec<f64>| HistogramChart {
            title: "h".into(),
            x_label: "x".into(),
            values,
            bins: 30,
        };
        assert!(save(&hist(vec![]), &dir.path().join("h0"))
            .unwrap()
            .is_empty());
        assert!(save(&hist(vec![nan, inf]), &dir.path().join("h1"))
            .unwrap()
            .is_empty());
        assert_eq!(
            save(&hist(vec![3.0]), &dir.path().join("h2"))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(histogram(&[nan, 1.0, 2.0, inf], 2).1, vec![1, 1]);
    }

    #[test]
    fn blues_runs_from_white_to_dark_blue() {
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
    }
}
