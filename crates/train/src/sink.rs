//! Where a run's outputs go, all through one [`Sink`]: the lines of `metrics.jsonl`, their
//! TensorBoard events, the caller's callback (the progress bar or log line), the checkpoints and
//! the final model. Rank 0 writes; the other ranks only call back and wait at the barriers.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use inheritune_model::CausalLm;

use crate::adamw::AdamW;
use crate::checkpoint::{self, TrainState};
use crate::dist::Dist;
use crate::error::{file_err, Error, Result};
use crate::run_dir::RunDir;
use crate::tensorboard::EventWriter;
use crate::trainer::{MetricKind, Metrics};

/// The run's outputs.
pub(crate) struct Sink<'a> {
    dir: RunDir,
    dist: &'a Dist,
    /// Rank 0: the one rank that writes.
    writer: bool,
    /// `metrics.jsonl`, open for appending (rank 0).
    metrics: Option<std::fs::File>,
    /// TensorBoard events (rank 0, with `train.tensorboard = true`).
    events: Option<EventWriter>,
    /// Tokenizer files copied into every checkpoint, so each is a complete Hugging Face folder.
    tokenizer_files: Vec<PathBuf>,
    /// Checkpoints kept ([`checkpoint::prune`]).
    keep: usize,
    milestone: u64,
    on_metrics: &'a mut dyn FnMut(&Metrics) -> ControlFlow<()>,
}

/// What [`Sink::open`] needs besides the folder.
pub(crate) struct SinkOptions<'a> {
    pub dist: &'a Dist,
    /// The step a resumed run continues from (`metrics.jsonl` is cut there); `None`: a fresh
    /// start, which logs from scratch.
    pub resumed_at: Option<u64>,
    /// The resolved run config, written as `config.toml`.
    pub config: &'a crate::RunConfig,
    pub tokenizer_files: Vec<PathBuf>,
    pub on_metrics: &'a mut dyn FnMut(&Metrics) -> ControlFlow<()>,
}

impl<'a> Sink<'a> {
    /// Opens the outputs of the run in `dir`: on rank 0, `metrics.jsonl` (cut at a resumed
    /// step, or started afresh), `config.toml`, and the TensorBoard writer.
    pub(crate) fn open(dir: RunDir, o: SinkOptions<'a>) -> Result<Self> {
        let t = &o.config.train;
        let writer = o.dist.0.rank() == 0;
        let path = dir.metrics();
        let (mut metrics, mut events) = (None, None);
        if writer {
            match o.resumed_at {
                Some(step) => truncate_metrics(&path, step)?,
                None if path.exists() => std::fs::remove_file(&path).map_err(|e| file_err(&path, e))?,
                None => {}
            }
            let resolved = toml::to_string(o.config).map_err(|e| file_err(dir.root(), e))?;
            write(&dir.config(), resolved.as_bytes())?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| file_err(&path, e))?;
            metrics = Some(file);
            if t.tensorboard {
                events = Some(EventWriter::create(dir.root()).map_err(|e| file_err(dir.root(), e))?);
            }
        }
        Ok(Sink {
            dir,
            dist: o.dist,
            writer,
            metrics,
            events,
            tokenizer_files: o.tokenizer_files,
            keep: t.keep_last.max(1),
            milestone: t.milestone_interval,
            on_metrics: o.on_metrics,
        })
    }

    /// Writes a metrics line (and its TensorBoard scalars).
    pub(crate) fn log(&mut self, m: &Metrics) -> Result<()> {
        let Some(file) = &mut self.metrics else {
            return Ok(());
        };
        let path = self.dir.metrics();
        let line = serde_json::to_string(m).map_err(|e| file_err(&path, e))?;
        writeln!(file, "{line}").map_err(|e| file_err(&path, e))?;
        file.flush().map_err(|e| file_err(&path, e))?;
        if let Some(events) = &mut self.events {
            let f = |v: Option<f64>| v.map(|x| x as f32);
            let values: Vec<(&str, Option<f32>)> = match m.kind {
                MetricKind::Train => vec![
                    ("train/loss", f(m.loss)),
                    ("train/lr", f(m.lr)),
                    ("train/grad_norm", f(m.grad_norm)),
                    ("train/tokens_per_s", f(m.tokens_per_s)),
                    ("train/mfu", f(m.mfu)),
                ],
                MetricKind::Eval => vec![("eval/train_loss", f(m.loss)), ("eval/val_loss", f(m.val_loss))],
                MetricKind::Final => vec![("final/val_loss", f(m.val_loss))],
            };
            let values: Vec<(&str, f32)> = values.into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
            let path = events.path().to_path_buf();
            events.scalars(m.step, &values).map_err(|e| file_err(&path, e))?;
        }
        Ok(())
    }

    /// Hands a line to the caller; [`Error::Interrupted`] when it asks to stop.
    pub(crate) fn notify(&mut self, m: &Metrics) -> Result<()> {
        match (self.on_metrics)(m) {
            ControlFlow::Break(()) => Err(Error::Interrupted),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    /// Rank 0 writes a checkpoint (and prunes old ones); every rank then waits for it. Weights
    /// that are not finite are never written (every rank holds the same ones and stops).
    pub(crate) fn checkpoint(&self, model: &CausalLm, opt: &AdamW, state: &TrainState) -> Result<()> {
        if !weights_finite(model)? {
            return Err(Error::NonFiniteWeights { step: state.step });
        }
        if self.writer {
            checkpoint::save(self.dir.root(), model, opt, state, &self.tokenizer_files)?;
            checkpoint::prune(self.dir.root(), self.keep, self.milestone);
        }
        self.dist.0.barrier()
    }

    /// Rank 0 writes the trained model as `final/`; every rank then waits for it.
    pub(crate) fn final_model(&self, model: &CausalLm, state: &TrainState) -> Result<()> {
        if self.writer {
            checkpoint::save_to(&self.dir.final_model(), model, None, state, &self.tokenizer_files)?;
        }
        self.dist.0.barrier()
    }
}

/// Keeps the metrics of steps before `step` (and the evaluation at `step`), dropping what an
/// interrupted run logged after its last checkpoint.
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| match serde_json::from_str::<Metrics>(l) {
            Ok(m) if m.kind == MetricKind::Train => m.step < step,
            Ok(m) if m.kind == MetricKind::Eval => m.step <= step,
            _ => false,
        })
        .collect();
    let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
    write(path, text.as_bytes())?;
    Ok(())
}

/// Whether every parameter is finite (checked before a checkpoint is written).
fn weights_finite(model: &CausalLm) -> Result<bool> {
    for p in model.named_parameters().values() {
        if p.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes a run file crash-safely ([`inheritune_fs::write_file`]).
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    inheritune_fs::write_file(path, bytes).map_err(|e| file_err(&e.path, format!("{}: {}", e.op, e.source)))
}
