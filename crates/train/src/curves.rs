//! Reading a run's `metrics.jsonl` back as loss curves (for plots and reports).

use std::path::Path;

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
