//! The paper-style figures: MaxRank per layer with a ±std band, AvgMass per layer, and a
//! layer × head heatmap of Rank with collapsed heads marked; each as PNG and SVG.

use std::path::{Path, PathBuf};

use plotters::style::colors::colormaps::ViridisRGB;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::analyze::Analysis;
use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is a valid TTF compiled into the binary; registration cannot fail for it.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Moves a finished temporary plot into place (removing it when drawing failed).
fn finish(tmp: &Path, path: &Path, drawn: Result<()>) -> Result<()> {
    if drawn.is_err() {
        let _ = std::fs::remove_file(tmp);
        return drawn;
    }
    inheritune_fs::commit_file(tmp, path).map_err(|e| plot_err(path, e))
}

/// Draws with `$draw(&root)` into `<stem>.png` and `<stem>.svg`, returning both paths. Each is
/// drawn as `<stem>.tmp.<ext>` and renamed when complete, so a failure leaves no partial file.
macro_rules! both {
    ($dir:expr, $stem:expr, $size:expr, $draw:expr) => {{
        ensure_font();
        let png = $dir.join(format!("{}.png", $stem));
        let svg = $dir.join(format!("{}.svg", $stem));
        let png_tmp = $dir.join(format!("{}.tmp.png", $stem));
        let svg_tmp = $dir.join(format!("{}.tmp.svg", $stem));
        let drawn = (|| -> Result<()> {
            let root = BitMapBackend::new(&png_tmp, $size).into_drawing_area();
            $draw(&root).map_err(|e| plot_err(&png, e))?;
            root.present().map_err(|e| plot_err(&png, e))
        })();
        finish(&png_tmp, &png, drawn)?;
        let drawn = (|| -> Result<()> {
            let root = SVGBackend::new(&svg_tmp, $size).into_drawing_area();
            $draw(&root).map_err(|e| plot_err(&svg, e))?;
            root.present().map_err(|e| plot_err(&svg, e))
        })();
        finish(&svg_tmp, &svg, drawn)?;
        vec![png, svg]
    }};
}

/// Writes every figure of `analysis` into `dir` and returns the files written.
///
/// # Errors
/// A file that cannot be written.
pub fn write_plots(analysis: &Analysis, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    files.extend(both!(dir, "max_rank", (900, 500), |root| rank_plot(analysis, root)));
    files.extend(both!(dir, "avg_mass", (900, 500), |root| mass_plot(analysis, root)));
    let w = (60 + 22 * analysis.n_head as u32 + 140).max(500);
    let h = (90 + 16 * analysis.n_layer as u32).max(300);
    files.extend(both!(dir, "rank_heatmap", (w, h), |root| heatmap(analysis, root)));
    if analysis.layers.iter().all(|l| l.block_influence.is_some()) && analysis.n_layer > 1 {
        files.extend(both!(dir, "depth_criteria", (900, 520), |root| criteria_plot(
            analysis, root
        )));
        let w = (90 + 18 * analysis.n_layer as u32 + 140).max(500);
        let h = (90 + 16 * analysis.n_layer as u32).max(300);
        files.extend(both!(dir, "angular_distance", (w, h), |root| angular_heatmap(
            analysis, root
        )));
    }
    Ok(files)
}

/// Labels integral positions only (layer and head indices).
fn integer_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// A per-layer line chart: x = layer (0-based, as Hugging Face's `model.layers.N`), y from 0 to `top`, with mesh and labels drawn.
fn layer_chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    n_layer: usize,
    caption: String,
    top: f64,
    y_desc: &str,
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = n_layer as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("layer (0-based, as model.layers.N)")
        .x_labels(n_layer.min(24) + 1)
        .x_label_formatter(&integer_label)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

fn rank_plot<DB: DrawingBackend>(a: &Analysis, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
    let top = a
        .layers
        .iter()
        .map(|l| l.max_rank.max(l.max_rank_window_mean + l.max_rank_window_std))
        .fold(1.0, f64::max)
        * 1.4; // headroom for the legend
    let caption = format!("MaxRank per layer (k* at τ = {})", a.settings.tau);
    let mut chart = layer_chart(root, a.n_layer, caption, top, "rank")?;
    let band: Vec<(f64, f64)> = a
        .layers
        .iter()
        .map(|l| (l.layer as f64, l.max_rank_window_mean + l.max_rank_window_std))
        .chain(a.layers.iter().rev().map(|l| {
            (
                l.layer as f64,
                (l.max_rank_window_mean - l.max_rank_window_std).max(0.0),
            )
        }))
        .collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BLUE.mix(0.15).filled())))
        .map_err(|e| e.to_string())?
        .label("mean ± std over windows of max over heads")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.15).filled()));
    let points: Vec<(f64, f64)> = a.layers.iter().map(|l| (l.layer as f64, l.max_rank)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label("MaxRank (max over heads of mean over windows)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
        .map_err(|e| e.to_string())?;
    let lazy: Vec<(f64, f64)> = a
        .layers
        .iter()
        .filter(|l| l.lazy_strict)
        .map(|l| (l.layer as f64, l.max_rank))
        .collect();
    chart
        .draw_series(lazy.iter().map(|&p| Circle::new(p, 6, RED.stroke_width(2))))
        .map_err(|e| e.to_string())?
        .label("lazy, strict (MaxRank = 1)")
        .legend(|(x, y)| Circle::new((x + 8, y), 5, RED.stroke_width(2)));
    let relaxed: Vec<(f64, f64)> = a
        .layers
        .iter()
        .filter(|l| l.lazy_relaxed && !l.lazy_strict)
        .map(|l| (l.layer as f64, l.max_rank))
        .collect();
    let orange = RGBColor(230, 120, 0);
    chart
        .draw_series(
            relaxed
                .iter()
                .map(|&p| TriangleMarker::new(p, 8, orange.stroke_width(2))),
        )
        .map_err(|e| e.to_string())?
        .label("lazy, relaxed (MaxRank < 2)")
        .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, orange.stroke_width(2)));
    legend_upper_left(&mut chart)
}

/// The series labels of a per-layer chart, in its upper left corner.
fn legend_upper_left<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

fn mass_plot<DB: DrawingBackend>(a: &Analysis, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
    let top = a.layers.iter().map(|l| l.avg_mass).fold(1.0, f64::max) * 1.1;
    let caption = format!("AvgMass per layer (m* at η = {}, mean over heads)", a.settings.eta);
    let mut chart = layer_chart(root, a.n_layer, caption, top, "columns")?;
    let points: Vec<(f64, f64)> = a.layers.iter().map(|l| (l.layer as f64, l.avg_mass)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), RGBColor(46, 125, 50).stroke_width(2)))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, RGBColor(46, 125, 50).filled())),
        )
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn heatmap<DB: DrawingBackend>(a: &Analysis, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (nh, nl) = (a.n_head as i32, a.n_layer as i32);
    let max = a
        .layers
        .iter()
        .flat_map(|l| l.heads.iter().map(|h| h.rank_mean))
        .fold(1.0, f64::max);
    let (main, legend) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(120));
    let mut chart = ChartBuilder::on(&main)
        .caption("Rank(h, l); × = collapsed head", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(-0.5..nh as f64 - 0.5, -0.5..nl as f64 - 0.5)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("head")
        .y_desc("layer (0-based)")
        .x_labels((nh as usize).min(25))
        .y_labels((nl as usize).min(48))
        .x_label_formatter(&integer_label)
        .y_label_formatter(&|y| {
            if (y - y.round()).abs() < 1e-9 {
                format!("{}", y.round() as i64)
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let color = |v: f64| {
        let t = ((v.max(1.0)).ln() / max.max(1.0 + 1e-9).ln()).clamp(0.0, 1.0);
        ViridisRGB::get_color(t)
    };
    chart
        .draw_series(a.layers.iter().flat_map(|l| {
            l.heads.iter().map(move |h| {
                let (x, y) = (h.head as f64, l.layer as f64);
                Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], color(h.rank_mean).filled())
            })
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(a.layers.iter().flat_map(|l| {
            l.heads
                .iter()
                .filter(|h| h.collapsed)
                .map(move |h| Cross::new((h.head as f64, l.layer as f64), 4, RED.stroke_width(2)))
        }))
        .map_err(|e| e.to_string())?;
    // Colour scale (log), from rank 1 to the largest rank.
    color_bar(&legend, &format!("{max:.1}"), "1")
}

/// A vertical viridis colour bar in `legend`, labelled at its top and bottom.
fn color_bar<DB: DrawingBackend>(
    legend: &DrawingArea<DB, Shift>,
    top: &str,
    bottom: &str,
) -> std::result::Result<(), String> {
    let steps = 50;
    let (_, lh) = legend.dim_in_pixel();
    let bar = legend.margin(40, 40, 10, 60);
    let cell = ((lh as i32 - 80) / steps).max(1);
    for i in 0..steps {
        let t = i as f64 / (steps - 1) as f64;
        let y = (steps - 1 - i) * cell;
        bar.draw(&Rectangle::new(
            [(0, y), (20, y + cell)],
            ViridisRGB::get_color(t).filled(),
        ))
        .map_err(|e| e.to_string())?;
    }
    let style = ("sans-serif", 12).into_font();
    bar.draw(&Text::new(top.to_string(), (24, 0), style.clone()))
        .map_err(|e| e.to_string())?;
    bar.draw(&Text::new(bottom.to_string(), (24, (steps - 1) * cell), style))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Every criterion per layer, each scaled to [0, 1] by its own min and max (larger: more
/// important to keep), with the relaxed lazy layers shaded.
fn criteria_plot<DB: DrawingBackend>(a: &Analysis, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
    let mut chart = layer_chart(
        root,
        a.n_layer,
        "Depth criteria per layer (each scaled to [0, 1])".into(),
        1.45,
        "scaled value",
    )?;
    let lazy = RGBColor(230, 120, 0);
    chart
        .draw_series(a.layers.iter().filter(|l| l.lazy_relaxed).map(|l| {
            let x = l.layer as f64;
            Rectangle::new([(x - 0.5, 0.0), (x + 0.5, 1.05)], lazy.mix(0.18).filled())
        }))
        .map_err(|e| e.to_string())?
        .label("lazy layer (MaxRank < 2)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], lazy.mix(0.3).filled()));
    let scale = |v: Vec<f64>| {
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        v.into_iter().map(|x| (x - lo) / span).collect::<Vec<f64>>()
    };
    // The angular distance of each single block (n = 1, start l) is block l's own criterion.
    let mut lines: Vec<(String, Vec<f64>, RGBColor)> = vec![
        (
            "MaxRank (attention)".into(),
            a.layers.iter().map(|l| l.max_rank).collect(),
            BLUE,
        ),
        (
            "Block Influence".into(),
            a.layers.iter().map(|l| l.block_influence.unwrap_or(f64::NAN)).collect(),
            RGBColor(46, 125, 50),
        ),
    ];
    if let Some(row) = a.angular_distance.get("1") {
        lines.push((
            "angular distance, one block".into(),
            row[..a.n_layer.min(row.len())].to_vec(),
            RGBColor(123, 31, 162),
        ));
    }
    if a.layers.iter().all(|l| l.loo_nll_increase.is_some()) {
        lines.push((
            "leave-one-out NLL increase".into(),
            a.layers
                .iter()
                .map(|l| l.loo_nll_increase.unwrap_or(f64::NAN))
                .collect(),
            RED,
        ));
    }
    for (label, values, color) in lines {
        let points: Vec<(f64, f64)> = scale(values)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as f64, v))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    legend_upper_left(&mut chart)
}

/// Angular distance by block size n (rows) and start l (columns); the least of each row, the
/// block the angular rule removes, is circled.
fn angular_heatmap<DB: DrawingBackend>(a: &Analysis, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = a.n_layer as f64;
    let (main, legend) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(120));
    let mut chart = ChartBuilder::on(&main)
        .caption(
            "Angular distance d(x_l, x_l+n) / π; ○ = least per n",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(-0.5..n - 0.5, 0.5..n - 0.5)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("start block l (0-based)")
        .y_desc("blocks n")
        .x_labels(a.n_layer.min(32))
        .y_labels(a.n_layer.min(48))
        .x_label_formatter(&integer_label)
        .y_label_formatter(&integer_label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let max = a
        .angular_distance
        .values()
        .flat_map(|r| r.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let mut cells = Vec::new();
    let mut least = Vec::new();
    for (size, row) in &a.angular_distance {
        let Ok(size) = size.parse::<f64>() else { continue };
        let mut best = 0;
        for (l, &v) in row.iter().enumerate() {
            cells.push((l as f64, size, v));
            if v < row[best] {
                best = l;
            }
        }
        if !row.is_empty() {
            least.push((best as f64, size));
        }
    }
    chart
        .draw_series(cells.iter().map(|&(x, y, v)| {
            Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                ViridisRGB::get_color((v / max).clamp(0.0, 1.0)).filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(least.iter().map(|&p| Circle::new(p, 4, WHITE.stroke_width(2))))
        .map_err(|e| e.to_string())?;
    color_bar(&legend, &format!("{max:.2}"), "0")
}

/// One line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (thin and light) instead of solid.
    pub light: bool,
}

/// A line chart of several series (e.g. loss curves of runs), as `<stem>.png` and `<stem>.svg`
/// in `dir`; the y range spans the data, the x range starts at 0.
///
/// # Errors
/// A file that cannot be written.
pub fn line_chart(dir: &Path, stem: &str, title: &str, axes: (&str, &str), series: &[Series]) -> Result<Vec<PathBuf>> {
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let x_max = all().map(|p| p.0).fold(f64::MIN_POSITIVE, f64::max);
    let (y_min, y_max) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (y_min, y_max) = if y_min.is_finite() {
        (y_min, y_max.max(y_min + 1e-3))
    } else {
        (0.0, 1.0)
    };
    let pad = 0.05 * (y_max - y_min);
    let ranges = (x_max * 1.02, y_min - pad, y_max + pad);
    Ok(both!(dir, stem, (900, 520), |root| lines(
        root, title, axes, series, ranges
    )))
}

fn lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    axes: (&str, &str),
    series: &[Series],
    (x_top, y_low, y_high): (f64, f64, f64),
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_top, y_low..y_high)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = if s.light {
            color.mix(0.45).stroke_width(1)
        } else {
            color.stroke_width(2)
        };
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points, style))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}
