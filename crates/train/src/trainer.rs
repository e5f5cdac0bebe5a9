//! The training loop of METHOD.md §4.1.
//!
//! At the top of step s: if s % eval_interval == 0, evaluate (eval_iters random batches per split)
//! and checkpoint, before the update of step s. Then one optimizer step over grad_accum
//! micro-batches (loss divided by grad_accum in `mean` mode, gradients summed in `sum` mode),
//! global-norm clipping, AdamW at lr(s). After max_steps updates: an evaluation and checkpoint at
//! s = max_steps, then a deterministic full pass over the val split, written as `final/`.
//! Data and evaluation batches are pure functions of (seed, step), so a resumed run repeats the
//! uninterrupted one exactly on CPU.
//!
//! Data parallelism (`Options::dist`): each of W ranks runs `accum` micro-steps of its own
//! micro-batches (the step's global micro-batches m·W + r), gradients are averaged over ranks
//! once per step (so `mean` is the mean over all accum·W micro-batches, and `sum` is each rank's
//! sum averaged over ranks, as DDP with the released code), the logged loss and every evaluation
//! are reduced over ranks, evaluation batches and the final pass are shared out by index, and
//! rank 0 writes while the others wait at a barrier.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use inheritune_data::loader::{Loader, Order, TokenStream};
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{allow_tf32, autocast, hf, CausalLm, DType, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::adamw::{AdamW, AdamWConfig};
use crate::checkpoint::{self, TrainState};
use crate::config::{GradAccum, RunConfig, TrainSection};
use crate::dist::Dist;
use crate::error::{file_err, Error, Result};
use crate::lock::RunLock;
use crate::schedule::lr_at;

/// How to start a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where tensors live.
    pub device: Device,
    /// Start from this Hugging Face checkpoint (e.g. an inherited model) instead of a fresh init.
    pub init: Option<PathBuf>,
    /// Continue from the newest complete checkpoint of the run folder (a fresh start when it has
    /// none).
    pub resume: bool,
    /// Without `resume`: replace a run already in the folder (otherwise that is refused).
    pub overwrite: bool,
    /// Compute precision: `None` picks bf16 autocast on CUDA (f32 master weights, TF32 on) and
    /// f32 on CPU.
    pub dtype: Option<DType>,
    /// Rank, world size and gradient averaging (one process by default).
    pub dist: Dist,
}

impl Options {
    /// Options for `device` with every other field at its default.
    pub fn new(device: Device) -> Self {
        Options {
            device,
            init: None,
            resume: false,
            overwrite: false,
            dtype: None,
            dist: Dist::default(),
        }
    }

    /// The compute precision in effect.
    pub fn compute_dtype(&self) -> DType {
        self.dtype.unwrap_or(if matches!(self.device, Device::Cuda(_)) {
            DType::Bf16
        } else {
            DType::F32
        })
    }
}

/// What a line of `metrics.jsonl` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// One optimizer step.
    Train,
    /// An evaluation on `eval_iters` batches of each split.
    Eval,
    /// The final full pass over the val split.
    Final,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// What the line records.
    pub kind: MetricKind,
    /// Optimizer step (for `train`, the step whose update this was).
    pub step: u64,
    /// Training tokens consumed before this line.
    pub tokens: u64,
    /// Train loss (mean of the micro-batch mean cross-entropies; for `eval`, over eval batches).
    pub loss: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Learning rate of the update.
    pub lr: Option<f64>,
    /// Global gradient norm before clipping.
    pub grad_norm: Option<f64>,
    /// Training throughput.
    pub tokens_per_s: Option<f64>,
    /// Model FLOPs utilisation (nanoGPT's estimate) against the device's peak, when known.
    pub mfu: Option<f64>,
    /// Distillation: the student's cross-entropy with the labels (mean of the micro-batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ce: Option<f64>,
    /// Distillation: KL(p_teacher ‖ p_student) per token (mean of the micro-batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
}

/// The outcome of a run (the JSON line `inheritune train` prints last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Steps taken.
    pub steps: u64,
    /// Final full-pass validation loss.
    pub final_val_loss: f64,
    /// Tokens in that pass.
    pub final_val_tokens: u64,
}

/// Mean cross-entropy of a batch, the forward pass under autocast to `dtype` (f32: plain). The
/// loss takes the logits as they come, so under autocast ATen casts them to f32 itself, as
/// `F.cross_entropy` does in PyTorch (the model's weights are always f32 here).
pub fn batch_loss(model: &CausalLm, x: &Tensor, y: &Tensor, dtype: DType) -> Result<Tensor> {
    Ok(autocast(model.device(), dtype, || model.loss(x, y))??)
}

/// A distillation teacher: a frozen model run without gradients on each batch.
pub struct Teacher {
    /// The teacher.
    pub model: CausalLm,
    /// Weight of the label cross-entropy.
    pub alpha: f64,
    /// Softmax temperature.
    pub temperature: f64,
}

/// The distillation loss of a batch (METHOD.md §4.3 DECISION): (total, ce, kl) with total =
/// α · CE(student, labels) + (1 − α) · T² · KL(p_teacher ‖ p_student), the KL summed over the
/// vocabulary per token and averaged over tokens, both distributions at temperature T; the
/// teacher under `no_grad`, both forward passes under autocast to `dtype`.
pub fn distill_loss(
    model: &CausalLm,
    teacher: &Teacher,
    x: &Tensor,
    y: &Tensor,
    dtype: DType,
) -> Result<(Tensor, Tensor, Tensor)> {
    let t = teacher.temperature;
    autocast(model.device(), dtype, || -> Result<(Tensor, Tensor, Tensor)> {
        let logits = model.forward_unchecked(x);
        let v = logits.size()[2];
        let logits = logits.view([-1, v]);
        let ce = logits.f_cross_entropy_loss(&y.view([-1]), None::<Tensor>, tch::Reduction::Mean, -100, 0.0)?;
        let target = tch::no_grad(|| teacher.model.forward_unchecked(x)).view([-1, v]);
        let log_pt = (target / t).f_log_softmax(-1, Kind::Float)?;
        let log_ps = (logits / t).f_log_softmax(-1, Kind::Float)?;
        let kl = (log_pt.exp() * (&log_pt - log_ps))
            .f_sum_dim_intlist(-1, false, Kind::Float)?
            .f_mean(Kind::Float)?;
        let total = &ce * teacher.alpha + &kl * ((1.0 - teacher.alpha) * t * t);
        Ok((total, ce, kl))
    })?
}

fn tensors(batch: &inheritune_data::loader::Batch, device: Device) -> (Tensor, Tensor) {
    let shape = [batch.batch as i64, batch.seq as i64];
    (
        Tensor::from_slice(&batch.x).view(shape).to_device(device),
        Tensor::from_slice(&batch.y).view(shape).to_device(device),
    )
}

/// nanoGPT's FLOPs per token: 6N + 12·L·H·Q·T with N the parameters without position embeddings.
pub fn flops_per_token(config: &ModelConfig, seq: usize) -> f64 {
    let n = config.num_parameters() as f64
        - if let ModelConfig::Gpt2(c) = config {
            (c.n_positions * c.n_embd) as f64
        } else {
            0.0
        };
    let (l, h) = (config.n_layer() as f64, config.n_head() as f64);
    let q = config.n_embd() as f64 / h;
    6.0 * n + 12.0 * l * h * q * seq as f64
}

struct Run<'a> {
    config: &'a RunConfig,
    dir: PathBuf,
    model: CausalLm,
    opt: AdamW,
    device: Device,
    dtype: DType,
    dist: &'a Dist,
    /// `None` on ranks other than 0, which write nothing.
    metrics: Option<std::fs::File>,
    /// Tokenizer files copied into every checkpoint (from `--init`, else from the data folder).
    tokenizer_files: Vec<PathBuf>,
    /// TensorBoard events (rank 0, with `tensorboard = true`).
    events: Option<crate::tensorboard::EventWriter>,
}

impl Run<'_> {
    fn log(&mut self, m: &Metrics) -> Result<()> {
        let Some(file) = &mut self.metrics else {
            return Ok(());
        };
        let path = self.dir.join("metrics.jsonl");
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

    /// Sums `values` over ranks (f64, on the run's device so CUDA runs reduce through NCCL).
    fn sum_over_ranks(&self, values: &[f64]) -> Result<Vec<f64>> {
        if self.dist.0.world() == 1 {
            return Ok(values.to_vec());
        }
        let t = Tensor::from_slice(values).to_device(self.device);
        self.dist.0.sum(&t)?;
        Vec::<f64>::try_from(t.to_device(Device::Cpu)).map_err(Error::Torch)
    }

    /// Mean loss over the `iters` evaluation batches of `step`; batch i runs on rank i mod W.
    fn mean_loss(&self, loader: &mut Loader, step: u64, iters: usize) -> Result<f64> {
        let (rank, world) = (self.dist.0.rank() as usize, self.dist.0.world() as usize);
        let mut total = 0.0;
        for i in (rank..iters).step_by(world) {
            let (x, y) = tensors(&loader.batch(step, i as u64, iters as u64)?, self.device);
            total += tch::no_grad(|| batch_loss(&self.model, &x, &y, self.dtype))?.f_double_value(&[])?;
        }
        Ok(self.sum_over_ranks(&[total])?[0] / iters as f64)
    }

    /// Token-weighted mean cross-entropy over every window of the val split (the same pass as
    /// `inheritune eval loss`), shared out over the ranks.
    fn full_val_pass(&self, limit: Option<usize>) -> Result<(f64, u64)> {
        let t = &self.config.train;
        let began = Instant::now();
        let mut next_report = 0.1;
        let (sum, count) = crate::val::split_loss_shard(
            &self.model,
            &self.config.data.dir,
            "val",
            t.seq_len,
            t.micro_batch,
            self.dtype,
            (self.dist.0.rank() as usize, self.dist.0.world() as usize),
            limit,
            &mut |done, total| {
                if done == 1 {
                    tracing::info!(
                        "final validation pass: {total} batches of {} × {} tokens{}",
                        t.micro_batch,
                        t.seq_len,
                        if limit.is_some() {
                            " (train.final_eval_tokens)"
                        } else {
                            " (the whole split)"
                        }
                    );
                }
                let share = done as f64 / total.max(1) as f64;
                if share >= next_report && done < total {
                    tracing::info!(
                        "final validation pass: {done}/{total} batches, {:.0} s",
                        began.elapsed().as_secs_f64()
                    );
                    next_report = (share * 10.0).floor() / 10.0 + 0.1;
                }
            },
        )?;
        let total = self.sum_over_ranks(&[sum, count as f64])?;
        let count = total[1].round() as u64;
        Ok((if count > 0 { total[0] / count as f64 } else { f64::NAN }, count))
    }

    /// Rank 0 writes a checkpoint (and prunes old ones); every rank then waits for it. Weights
    /// that are not finite are never written (every rank holds the same ones and stops).
    fn checkpoint(&self, state: &TrainState, keep: usize, milestone: u64) -> Result<()> {
        if !weights_finite(&self.model)? {
            return Err(Error::NonFiniteWeights { step: state.step });
        }
        if self.dist.0.rank() == 0 {
            checkpoint::save(&self.dir, &self.model, &self.opt, state, &self.tokenizer_files)?;
            checkpoint::prune(&self.dir, keep, milestone);
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
    hf::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Keys of the resolved run config that may differ when a run resumes: they change neither the
/// steps already taken nor the data order (a changed global batch is checked separately). With
/// `decay_steps` unset, a new `max_steps` also stretches the cosine from the resume point on.
pub const RESUMABLE_KEYS: &[&str] = &[
    "train.max_steps",
    "train.eval_interval",
    "train.eval_iters",
    "train.keep_last",
    "train.milestone_interval",
    "train.peak_tflops",
    "train.overlap",
    "train.fused_adamw",
    "train.log_interval",
    "train.tensorboard",
    "train.grad_accum",
    "train.tokens_per_step",
];

fn flatten(prefix: &str, value: &toml::Value, out: &mut std::collections::BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The keys (outside [`RESUMABLE_KEYS`]) whose values differ between two resolved configs, as
/// `key (old → new)`.
fn changed_keys(saved: &str, current: &str) -> std::result::Result<Vec<String>, toml::de::Error> {
    let (mut a, mut b) = (Default::default(), Default::default());
    flatten("", &toml::from_str::<toml::Value>(saved)?, &mut a);
    flatten("", &toml::from_str::<toml::Value>(current)?, &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    Ok(keys
        .into_iter()
        .filter(|k| !RESUMABLE_KEYS.contains(&k.as_str()) && a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "unset".into());
            format!("{k} ({} → {})", show(a.get(k)), show(b.get(k)))
        })
        .collect())
}

/// What of a run the folder holds (metrics, checkpoints, the final model).
fn run_contents(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n == "metrics.jsonl" || n == "final" || (n.starts_with("step-") && !n.ends_with(".tmp")))
        .collect();
    found.sort();
    found
}

/// Removes the entries of `dir` (files or folders) whose names `doomed` picks.
fn remove_entries(dir: &Path, doomed: impl Fn(&str) -> bool) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| file_err(dir, e))?.flatten() {
        let path = entry.path();
        if !doomed(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| file_err(&path, e))?;
    }
    Ok(())
}

/// Removes what a crashed run left half-written (`*.tmp` files and folders, plot temporaries).
fn clean_leftovers(dir: &Path) -> Result<()> {
    remove_entries(dir, |name| name.ends_with(".tmp") || name.contains(".tmp."))
}

/// Removes a previous run from `dir` (for `--overwrite`): metrics, config, plots, checkpoints,
/// TensorBoard events.
fn remove_run(dir: &Path) -> Result<()> {
    remove_entries(dir, |name| {
        matches!(
            name,
            "metrics.jsonl" | "config.toml" | "loss.png" | "loss.svg" | "final"
        ) || name.starts_with("step-")
            || name.starts_with("events.out.tfevents.")
    })
}

/// An `--init` checkpoint that carries a tokenizer must have been made for the tokenizer the
/// data was prepared with: the same definition (hash), or the same tokens on a probe text and the
/// same vocabulary (e.g. a hub GPT-2 `tokenizer.json` and the built-in GPT-2 tokenizer).
fn check_tokenizer(init: &Path, data: &Path) -> Result<()> {
    if !init.join("tokenizer.json").exists() {
        return Ok(());
    }
    let ours = inheritune_data::Tokenizer::for_model_dir(init)?;
    let manifest = inheritune_data::Manifest::read(data)?;
    if ours.hash() == manifest.tokenizer.hash {
        return Ok(());
    }
    // Ordinary text only: a tokenizer.json matches its special tokens in any text, which the
    // built-in encoder's ordinary encoding does not; the end-of-text id is compared instead.
    const PROBE: &str = "The Inheritune recipe: 12 layers, café, naïve — tokens!\n  indented\tline";
    const EOT: &str = "<|endoftext|>";
    let builtin = inheritune_data::Tokenizer::gpt2()?;
    let same_as_builtin = builtin.hash() == manifest.tokenizer.hash
        && ours.vocab_size() >= builtin.vocab_size()
        && ours.token_to_id(EOT) == builtin.token_to_id(EOT)
        && ours.encode_ordinary(PROBE)? == builtin.encode_ordinary(PROBE)?;
    if same_as_builtin {
        return Ok(());
    }
    Err(file_err(
        init,
        format!(
            "its tokenizer.json ({} tokens, sha256 {}) is not the tokenizer {} ({} tokens, sha256 {}) that {} was prepared with; prepare the text with the model's tokenizer: inheritune prepare --tokenizer {}/tokenizer.json --text ... --out NEW",
            ours.vocab_size(),
            &ours.hash()[..12.min(ours.hash().len())],
            manifest.tokenizer.name,
            manifest.tokenizer.vocab_size,
            &manifest.tokenizer.hash[..12.min(manifest.tokenizer.hash.len())],
            data.display(),
            init.display()
        ),
    ))
}

/// The parameters the optimizer updates: all of them, or those of the `groups` named (the others
/// stop requiring gradients, so backward skips them).
fn trainable_parameters(model: &CausalLm, groups: &[String]) -> Result<std::collections::BTreeMap<String, Tensor>> {
    let mut params = model.named_parameters();
    if groups.is_empty() {
        return Ok(params);
    }
    let family = model.config().family();
    let mut frozen = Vec::new();
    for (name, p) in params.iter_mut() {
        let group = inheritune_model::Role::parse(family, name).map(|r| r.group());
        if !group.is_some_and(|g| groups.iter().any(|x| x == g)) {
            let _ = p.requires_grad_(false);
            frozen.push(name.clone());
        }
    }
    params.retain(|name, _| !frozen.contains(name));
    if params.is_empty() {
        return Err(Error::Config {
            path: None,
            problems: vec![format!(
                "train.trainable {groups:?}: the model has no parameter in these groups"
            )],
        });
    }
    let count: i64 = params.values().map(|p| p.numel() as i64).sum();
    tracing::info!(
        "training {} of the model's parameters ({} tensors in {}); {} tensors frozen",
        count,
        params.len(),
        groups.join(", "),
        frozen.len()
    );
    Ok(params)
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

/// Whether a checkpoint written by `state.world` ranks may continue on `world` ranks with
/// `accum` micro-steps each: the data order must be the one it would have had (the same global
/// micro-batches per step), and in `sum` mode the gradient scale (the per-rank accumulation) too.
fn check_resume(dir: &Path, state: &TrainState, world: u64, accum: u64, t: &TrainSection) -> Result<()> {
    if state.world == world && (state.accum == 0 || state.accum == accum) {
        return Ok(());
    }
    let here = format!(
        "cannot resume from {}: it was saved by a run of world size {} with {} micro-steps per rank, and this run has world size {world} with {accum}",
        dir.display(),
        state.world,
        if state.accum == 0 { "an unrecorded number of".to_string() } else { state.accum.to_string() },
    );
    if state.accum == 0 || state.accum * state.world != accum * world {
        return Err(Error::Resume(format!(
            "{here}: the global batch differs, so the data order would change"
        )));
    }
    // With sum_micro_batch the summed gradient is the released split's on any world size.
    if t.grad_accum_mode == GradAccum::Sum && t.sum_micro_batch.is_none() {
        return Err(Error::Resume(format!(
            "{here}: grad_accum_mode = \"sum\" scales the gradient by the per-rank micro-steps, so resume on {} ranks",
            state.world
        )));
    }
    Ok(())
}

/// Trains per `config` in `run_dir`; `on_metrics` sees every metrics line and may stop the run.
///
/// # Errors
/// An invalid config, an init checkpoint of another architecture, unreadable data, a non-finite
/// loss (the last good checkpoint is kept), an interruption, a failed collective, or a write
/// failure.
pub fn train(
    config: &RunConfig,
    run_dir: &Path,
    options: &Options,
    on_metrics: &mut dyn FnMut(&Metrics) -> ControlFlow<()>,
) -> Result<Summary> {
    config.validate()?;
    let t = &config.train;
    let dist = &options.dist;
    let (rank, world) = (dist.0.rank(), dist.0.world());
    let writer = rank == 0;
    let accum = config.accum(world)?;
    let mut model_config = config.model_config()?;
    if let Some(init) = &options.init {
        let init_config = ModelConfig::from_file(&init.join(hf::CONFIG_FILE))?;
        if init_config.parameter_shapes() != model_config.parameter_shapes() {
            return Err(Error::Config {
                path: None,
                problems: vec![format!(
                    "init checkpoint {} has a different architecture ({} layers × {}) than [model] ({} layers × {})",
                    init.display(),
                    init_config.n_layer(),
                    init_config.n_embd(),
                    model_config.n_layer(),
                    model_config.n_embd()
                )],
            });
        }
        model_config = init_config;
        check_tokenizer(init, &config.data.dir)?;
    }
    let resolved = toml::to_string(config).map_err(|e| file_err(run_dir, e))?;
    // Rank 0 owns the folder: one process at a time, leftovers of a crash removed, and an
    // existing run is continued (--resume), replaced (--overwrite) or refused.
    let _lock = if writer {
        let lock = RunLock::acquire(run_dir)?;
        clean_leftovers(run_dir)?;
        let held = run_contents(run_dir);
        if !options.resume && !held.is_empty() {
            if !options.overwrite {
                return Err(file_err(
                    run_dir,
                    format!(
                        "this folder already holds a run ({}); continue it with --resume or replace it with --overwrite",
                        held.join(", ")
                    ),
                ));
            }
            remove_run(run_dir)?;
        }
        Some(lock)
    } else {
        None
    };
    tch::manual_seed(t.seed as i64);
    let dtype = options.compute_dtype();
    let mut model = CausalLm::new(&model_config, options.device, DType::F32)?;
    if let Some(init) = &options.init {
        // Any published layout: model.safetensors, its shards, or pytorch_model.bin.
        let report = hf::load_weights(&mut model, &hf::weight_files(init)?)?;
        if !report.is_clean() {
            return Err(file_err(init, format!("init checkpoint does not fit: {report}")));
        }
    }
    let teacher = match &config.distill {
        Some(d) => {
            let (model, report) = hf::load(
                &d.teacher,
                &hf::LoadOptions {
                    device: options.device,
                    dtype: DType::F32,
                    strict: true,
                },
            )?;
            let _ = report; // strict: a teacher that does not load cleanly is an error
            Some(Teacher {
                model,
                alpha: d.alpha,
                temperature: d.temperature,
            })
        }
        None => None,
    };
    let params = trainable_parameters(&model, &t.trainable)?;
    let mut opt = AdamW::new(
        &params,
        AdamWConfig {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
            weight_decay: t.weight_decay,
        },
    )?;
    if matches!(options.device, Device::Cuda(_)) {
        allow_tf32(true);
    }
    if t.fused_adamw {
        opt.use_fused(options.device)?;
    }
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut start = 0;
    let mut restored = false;
    if options.resume {
        // Rank 0 chooses the newest complete checkpoint and every rank loads that one.
        let newest = if writer {
            checkpoint::list(run_dir).pop().map_or(-1, |(s, _)| s as i64)
        } else {
            -1
        };
        let chosen = Tensor::from_slice(&[newest]);
        dist.0.broadcast(&chosen, 0)?;
        let chosen = chosen.int64_value(&[0]);
        if chosen >= 0 {
            let dir = checkpoint::step_dir(run_dir, chosen as u64);
            if !dir.join("DONE").exists() {
                return Err(file_err(
                    &dir,
                    format!("rank {rank}: rank 0 resumes from this checkpoint but it is not complete here (the run folder must be on a file system every rank sees)"),
                ));
            }
            if writer {
                let saved_path = run_dir.join("config.toml");
                if let Ok(saved) = std::fs::read_to_string(&saved_path) {
                    let changed = changed_keys(&saved, &resolved).map_err(|e| file_err(&saved_path, e))?;
                    if !changed.is_empty() {
                        return Err(Error::Resume(format!(
                            "cannot resume {}: the config differs from the run's ({}) in {}; only {} may change on resume",
                            run_dir.display(),
                            saved_path.display(),
                            changed.join(", "),
                            RESUMABLE_KEYS.join(", ")
                        )));
                    }
                }
            }
            let state = checkpoint::restore(&dir, &mut model, &mut opt)?;
            check_resume(&dir, &state, world, accum as u64, t)?;
            start = state.step;
            restored = true;
            if writer {
                truncate_metrics(&metrics_path, start)?;
            }
        }
    }
    // A fresh start (or a resume with nothing saved yet, which is one) logs from scratch.
    if writer && !restored && metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(|e| file_err(&metrics_path, e))?;
    }
    if writer {
        hf::write_atomic(&run_dir.join("config.toml"), resolved.as_bytes())?;
    }
    // Every rank starts from rank 0's parameters.
    if world > 1 {
        for p in params.values() {
            dist.0.broadcast(&p.detach(), 0)?;
        }
    }
    let metrics = if writer {
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&metrics_path)
                .map_err(|e| file_err(&metrics_path, e))?,
        )
    } else {
        None
    };
    let overlap = if t.overlap && world > 1 {
        dist.0
            .overlapped(&params.values().map(Tensor::shallow_clone).collect::<Vec<_>>())?
    } else {
        None
    };
    let tokenizer_files = [options.init.as_deref(), Some(config.data.dir.as_path())]
        .into_iter()
        .flatten()
        .find(|d| d.join("tokenizer.json").exists())
        .map(|d| {
            ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
                .iter()
                .map(|f| d.join(f))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    let events = if writer && t.tensorboard {
        Some(crate::tensorboard::EventWriter::create(run_dir).map_err(|e| file_err(run_dir, e))?)
    } else {
        None
    };
    let mut run = Run {
        events,
        tokenizer_files,
        config,
        dir: run_dir.to_path_buf(),
        model,
        opt,
        device: options.device,
        dtype,
        dist,
        metrics,
    };

    // The training stream, and independent random streams for the evaluations of each split.
    let loader = |split: &str, order: Order, seed: u64| -> Result<Loader> {
        let stream = TokenStream::open(&config.data.dir, split)?;
        Ok(Loader::new(stream, order, t.micro_batch, t.seq_len, seed, rank, world)?)
    };
    let mut train_loader = loader("train", config.data.order, t.seed)?;
    let mut eval_train = loader("train", Order::Random, t.seed ^ 0xE7A1_0001)?;
    let mut eval_val = loader("val", Order::Random, t.seed ^ 0xE7A1_0002)?;
    let decay = t.decay_steps.unwrap_or(t.max_steps);
    let tokens_per_step = config.tokens_per_step(world);
    let micro_batches = (accum as u64 * world) as f64;
    let fpt = flops_per_token(&model_config, t.seq_len);
    let peak = t
        .peak_tflops
        .map(|p| p * 1e12)
        .or_else(|| crate::peak::peak_flops(options.device, dtype))
        .map(|p| p * world as f64);
    let resumed_at = restored.then_some(start);
    if writer {
        for note in &config.notes {
            tracing::warn!("{note}");
        }
    }
    let mut step = start;
    loop {
        if (step % t.eval_interval == 0 || step == t.max_steps) && step <= t.max_steps && resumed_at != Some(step) {
            if step == start {
                tracing::info!(
                    "step {step}: evaluating {} batches of each split (train.eval_iters)",
                    t.eval_iters
                );
            }
            let loss = run.mean_loss(&mut eval_train, step, t.eval_iters)?;
            let val_loss = run.mean_loss(&mut eval_val, step, t.eval_iters)?;
            let m = Metrics {
                kind: MetricKind::Eval,
                step,
                tokens: step * tokens_per_step,
                loss: Some(loss),
                val_loss: Some(val_loss),
                lr: None,
                grad_norm: None,
                tokens_per_s: None,
                mfu: None,
                ce: None,
                kl: None,
            };
            run.log(&m)?;
            let state = TrainState {
                step,
                tokens: step * tokens_per_step,
                rng: "stateless: batches are functions of (seed, step, global micro-batch)".into(),
                loader_step: step,
                world,
                accum: accum as u64,
            };
            if step > 0 || t.checkpoint_at_start {
                run.checkpoint(&state, t.keep_last.max(1), t.milestone_interval)?;
            }
            if on_metrics(&m).is_break() {
                return Err(Error::Interrupted);
            }
        }
        if step >= t.max_steps + u64::from(t.released_loop) {
            break;
        }
        let began = Instant::now();
        let lr = lr_at(t.schedule, step, t.lr, t.min_lr, t.warmup_steps, decay);
        // Losses stay on the device until the end of the step: one host synchronisation per step.
        let mut loss_sum = Tensor::f_zeros([], (Kind::Float, run.device))?;
        let mut parts_sum = Tensor::f_zeros([2], (Kind::Float, run.device))?;
        let scale = t.loss_scale(accum, world);
        for micro in 0..accum as u64 {
            let (x, y) = tensors(&train_loader.micro_batch(step, micro, accum as u64)?, run.device);
            let loss = match &teacher {
                None => batch_loss(&run.model, &x, &y, dtype)?,
                Some(teacher) => {
                    let (total, ce, kl) = distill_loss(&run.model, teacher, &x, &y, dtype)?;
                    parts_sum = parts_sum.f_add(&Tensor::f_stack(&[ce.detach(), kl.detach()], 0)?)?;
                    total
                }
            };
            loss_sum = loss_sum.f_add(&loss.detach())?;
            let scaled = loss * scale;
            if let (Some(o), true) = (&overlap, micro + 1 == accum as u64) {
                o.arm(&scaled)?; // this backward averages the gradients across ranks
            }
            scaled.f_backward()?;
        }
        if overlap.is_none() {
            dist.0.average_gradients(&run.opt.grads())?;
        }
        dist.0.sum(&loss_sum)?;
        let parts = match &teacher {
            Some(_) => {
                dist.0.sum(&parts_sum)?;
                Some(Vec::<f64>::try_from(
                    parts_sum.to_kind(Kind::Double).to_device(Device::Cpu),
                )?)
            }
            None => None,
        };
        let grad_norm = run
            .opt
            .clip_grad_norm(if t.grad_clip > 0.0 { t.grad_clip } else { f64::INFINITY })?;
        let loss_value = loss_sum.f_double_value(&[])? / micro_batches;
        let grad_norm = grad_norm.f_double_value(&[])?;
        // Every rank holds the same reduced values, so all of them stop here together.
        if !loss_value.is_finite() || !grad_norm.is_finite() {
            return Err(Error::NonFinite {
                step,
                loss: loss_value,
                grad_norm,
            });
        }
        run.opt.step(lr)?;
        run.opt.zero_grad();
        let seconds = began.elapsed().as_secs_f64();
        let tps = tokens_per_step as f64 / seconds;
        let m = Metrics {
            kind: MetricKind::Train,
            step,
            tokens: (step + 1) * tokens_per_step,
            loss: Some(loss_value),
            val_loss: None,
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            tokens_per_s: Some(tps),
            mfu: peak.map(|p| fpt * tps / p),
            ce: parts.as_ref().map(|p| p[0] / micro_batches),
            kl: parts.as_ref().map(|p| p[1] / micro_batches),
        };
        run.log(&m)?;
        step += 1;
        if on_metrics(&m).is_break() {
            return Err(Error::Interrupted);
        }
    }
    let (final_val_loss, final_val_tokens) = run.full_val_pass(t.final_eval_windows(tokens_per_step))?;
    let m = Metrics {
        kind: MetricKind::Final,
        step,
        tokens: step * tokens_per_step,
        loss: None,
        val_loss: Some(final_val_loss),
        lr: None,
        grad_norm: None,
        tokens_per_s: None,
        mfu: None,
        ce: None,
        kl: None,
    };
    run.log(&m)?;
    let state = TrainState {
        step,
        tokens: step * tokens_per_step,
        rng: "stateless".into(),
        loader_step: step,
        world,
        accum: accum as u64,
    };
    if writer {
        checkpoint::save_to(&run_dir.join("final"), &run.model, None, &state, &run.tokenizer_files)?;
    }
    dist.0.barrier()?;
    let _ = on_metrics(&m);
    Ok(Summary {
        steps: step,
        final_val_loss,
        final_val_tokens,
    })
}
