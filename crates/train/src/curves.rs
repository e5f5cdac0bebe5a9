//! Reading a run's `metrics.jsonl` back as loss curves (for plots and reports).

use std::path::{Path, PathBuf};

use inheritune_analysis::plot::{line_chart, Series};

use crate::error::{file_err, Result};
use crate::trainer::{MetricKind, Metrics};

/// The loss curves of one run, x in training tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// (tokens after the update, train loss of the step).
    pub train: Vec<(f64, f64)>,
    /// (tokens, val loss) of each evaluation.
    pub val: Vec<(f64, f64)>,
    /// (tokens, train loss) of each evaluation (eval_iters random batches).
    pub eval_train: Vec<(f64, f64)>,
    /// The final full-pass validation loss, when the run finished.
    pub final_val: Option<f64>,
    /// Steps logged.
    pub steps: u64,
}

/// Reads `run/metrics.jsonl`; lines that are not complete JSON (a run killed mid-write) are
/// skipped.
///
/// # Errors
/// The file cannot be read.
pub fn read_curves(run: &Path) -> Result<Curves> {
    let path = crate::RunDir::new(run).metrics();
    let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
    let mut c = Curves::default();
    for line in text.lines() {
        let Ok(m) = serde_json::from_str::<Metrics>(line) else {
            continue;
        };
        let tokens = m.tokens as f64;
        match m.kind {
            MetricKind::Train => {
                if let Some(l) = m.loss {
                    c.train.push((tokens, l));
                }
                c.steps = c.steps.max(m.step + 1);
            }
            MetricKind::Eval => {
                if let Some(l) = m.val_loss {
                    c.val.push((tokens, l));
                }
                if let Some(l) = m.loss {
                    c.eval_train.push((tokens, l));
                }
            }
            MetricKind::Final => c.final_val = m.val_loss,
        }
    }
    Ok(c)
}

/// Writes `<stem>.png/.svg` in `out`: each (label, run folder)'s validation loss (solid) and,
/// with `train_too`, its per-step train loss (light) against tokens.
///
/// # Errors
/// A run without a readable `metrics.jsonl`, or an unwritable figure.
pub fn plot_runs(runs: &[(String, PathBuf)], out: &Path, stem: &str, train_too: bool) -> Result<Vec<PathBuf>> {
    let curves = runs.iter().map(|(_, r)| read_curves(r)).collect::<Result<Vec<_>>>()?;
    // Only once every run has been read, so a bad run leaves no empty output folder.
    std::fs::create_dir_all(out).map_err(|e| file_err(out, e))?;
    let most = curves
        .iter()
        .flat_map(|c| c.train.iter().chain(&c.val))
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let (unit, scale) = if most >= 1e7 {
        ("millions", 1e6)
    } else if most >= 1e4 {
        ("thousands", 1e3)
    } else {
        ("", 1.0)
    };
    let x_desc = if unit.is_empty() {
        "training tokens".to_string()
    } else {
        format!("training tokens ({unit})")
    };
    let mut series = Vec::new();
    for ((name, _), c) in runs.iter().zip(curves) {
        let m = |(t, l): (f64, f64)| (t / scale, l);
        series.push(Series {
            label: format!("{name} val"),
            points: c.val.into_iter().map(m).collect(),
            light: false,
        });
        if train_too {
            series.push(Series {
                label: format!("{name} train"),
                points: c.train.into_iter().map(m).collect(),
                light: true,
            });
        }
    }
    line_chart(out, stem, "loss", (&x_desc, "cross-entropy"), &series).map_err(|e| file_err(out, e))
}
