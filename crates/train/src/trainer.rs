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
//!
//! Where things are: [`train`] is the loop (set-up, then evaluate / step / log, then the final
//! pass); the set-up steps are in `setup.rs` (architecture, run folder, model, teacher, optimizer,
//! resume), every output goes through the sink of `sink.rs` (metrics.jsonl, TensorBoard, the
//! caller's progress callback, checkpoints, `final/`), and the run folder's names are
//! [`crate::RunDir`]'s.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use inheritune_data::loader::{Loader, Order, TokenStream};
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{autocast, CausalLm, DType, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::adamw::AdamW;
use crate::checkpoint::TrainState;
use crate::config::RunConfig;
use crate::dist::{Dist, OverlappedReduce};
use crate::error::{Error, Result};
use crate::lock::RunLock;
use crate::run_dir::RunDir;
use crate::schedule::lr_at;
use crate::setup;
use crate::sink::{Sink, SinkOptions};

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

impl Metrics {
    /// A line of `kind` at `step` after `tokens` training tokens, every value unset.
    pub fn new(kind: MetricKind, step: u64, tokens: u64) -> Metrics {
        Metrics {
            kind,
            step,
            tokens,
            loss: None,
            val_loss: None,
            lr: None,
            grad_norm: None,
            tokens_per_s: None,
            mfu: None,
            ce: None,
            kl: None,
        }
    }

    /// An evaluation: the mean loss of `eval_iters` batches of each split.
    pub fn eval(step: u64, tokens: u64, loss: f64, val_loss: f64) -> Metrics {
        Metrics {
            loss: Some(loss),
            val_loss: Some(val_loss),
            ..Metrics::new(MetricKind::Eval, step, tokens)
        }
    }
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

/// The run's data: the training stream, and independent random streams for the evaluations of
/// each split (every batch a pure function of the seed and the step).
struct Data {
    train: Loader,
    eval_train: Loader,
    eval_val: Loader,
}

impl Data {
    fn open(config: &RunConfig, rank: u64, world: u64) -> Result<Data> {
        let t = &config.train;
        let loader = |split: &str, order: Order, seed: u64| -> Result<Loader> {
            let stream = TokenStream::open(&config.data.dir, split)?;
            Ok(Loader::new(stream, order, t.micro_batch, t.seq_len, seed, rank, world)?)
        };
        Ok(Data {
            train: loader("train", config.data.order, t.seed)?,
            eval_train: loader("train", Order::Random, t.seed ^ 0xE7A1_0001)?,
            eval_val: loader("val", Order::Random, t.seed ^ 0xE7A1_0002)?,
        })
    }
}

/// The state of a run between steps: the model, its optimizer and what a step needs.
struct Run<'a> {
    config: &'a RunConfig,
    model: CausalLm,
    opt: AdamW,
    teacher: Option<Teacher>,
    device: Device,
    dtype: DType,
    dist: &'a Dist,
    /// Gradient averaging overlapped with the last backward (`train.overlap`, several ranks).
    overlap: Option<Box<dyn OverlappedReduce>>,
    /// Micro-steps per step on this rank.
    accum: u64,
    tokens_per_step: u64,
    /// FLOPs per token, and the devices' peak FLOP/s (for MFU).
    flops_per_token: f64,
    peak: Option<f64>,
}

impl<'a> Run<'a> {
    /// Sets a run up in `dir` (see `setup.rs`): the config checked, the folder claimed (the lock
    /// returned), the model seeded and built (or loaded from `--init`), the teacher, the optimizer,
    /// the newest checkpoint restored on `--resume` (its step returned), and every rank given rank
    /// 0's parameters.
    fn start(
        config: &'a RunConfig,
        options: &'a Options,
        dir: &RunDir,
    ) -> Result<(Self, Option<u64>, Option<RunLock>)> {
        config.validate()?;
        let t = &config.train;
        let dist = &options.dist;
        let world = dist.0.world();
        let accum = config.accum(world)? as u64;
        let model_config = setup::model_config(config, options.init.as_deref())?;
        let lock = setup::claim(dir, options)?;
        tch::manual_seed(t.seed as i64);
        let mut model = setup::model(&model_config, options)?;
        let teacher = setup::teacher(config, options.device)?;
        let params = setup::trainable_parameters(&model, &t.trainable)?;
        let mut opt = setup::optimizer(&params, t, options.device)?;
        let resumed_at = setup::resume(dir, config, options, &mut model, &mut opt, accum)?;
        if world > 1 {
            for p in params.values() {
                dist.0.broadcast(&p.detach(), 0)?;
            }
        }
        let overlap = match t.overlap && world > 1 {
            true => dist
                .0
                .overlapped(&params.values().map(Tensor::shallow_clone).collect::<Vec<_>>())?,
            false => None,
        };
        let dtype = options.compute_dtype();
        let peak = t
            .peak_tflops
            .map(|p| p * 1e12)
            .or_else(|| crate::peak::peak_flops(options.device, dtype));
        let run = Run {
            config,
            model,
            opt,
            teacher,
            device: options.device,
            dtype,
            dist,
            overlap,
            accum,
            tokens_per_step: config.tokens_per_step(world),
            flops_per_token: flops_per_token(&model_config, t.seq_len),
            peak: peak.map(|p| p * world as f64),
        };
        Ok((run, resumed_at, lock))
    }
}

impl Run<'_> {
    /// Whether step `step` begins with an evaluation (and a checkpoint).
    fn evaluates_at(&self, step: u64) -> bool {
        let t = &self.config.train;
        (step.is_multiple_of(t.eval_interval) || step == t.max_steps) && step <= t.max_steps
    }

    /// The loop ends before the update of this step (one more with `released_loop`).
    fn end(&self) -> u64 {
        let t = &self.config.train;
        t.max_steps + u64::from(t.released_loop)
    }

    /// What a checkpoint at `step` records.
    fn state(&self, step: u64, rng: &str) -> TrainState {
        TrainState {
            step,
            tokens: step * self.tokens_per_step,
            rng: rng.into(),
            loader_step: step,
            world: self.dist.0.world(),
            accum: self.accum,
        }
    }

    /// `eval_iters` batches of each split at `step`.
    fn evaluate(&self, step: u64, data: &mut Data) -> Result<Metrics> {
        let iters = self.config.train.eval_iters;
        let loss = self.mean_loss(&mut data.eval_train, step, iters)?;
        let val_loss = self.mean_loss(&mut data.eval_val, step, iters)?;
        Ok(Metrics::eval(step, step * self.tokens_per_step, loss, val_loss))
    }

    /// One optimizer step: `accum` micro-batches forward and backward (gradients averaged over
    /// ranks), global-norm clipping, AdamW at the schedule's learning rate.
    fn step(&mut self, step: u64, batches: &mut Loader) -> Result<Metrics> {
        let t = &self.config.train;
        let (accum, world) = (self.accum, self.dist.0.world());
        let began = Instant::now();
        let lr = lr_at(
            t.schedule,
            step,
            t.lr,
            t.min_lr,
            t.warmup_steps,
            t.decay_steps.unwrap_or(t.max_steps),
        );
        // Losses stay on the device until the end of the step: one host synchronisation per step.
        let mut loss_sum = Tensor::f_zeros([], (Kind::Float, self.device))?;
        let mut parts_sum = Tensor::f_zeros([2], (Kind::Float, self.device))?;
        let scale = t.loss_scale(accum as usize, world);
        for micro in 0..accum {
            let (x, y) = tensors(&batches.micro_batch(step, micro, accum)?, self.device);
            let loss = match &self.teacher {
                None => batch_loss(&self.model, &x, &y, self.dtype)?,
                Some(teacher) => {
                    let (total, ce, kl) = distill_loss(&self.model, teacher, &x, &y, self.dtype)?;
                    parts_sum = parts_sum.f_add(&Tensor::f_stack(&[ce.detach(), kl.detach()], 0)?)?;
                    total
                }
            };
            loss_sum = loss_sum.f_add(&loss.detach())?;
            let scaled = loss * scale;
            if let (Some(o), true) = (&self.overlap, micro + 1 == accum) {
                o.arm(&scaled)?; // this backward averages the gradients across ranks
            }
            scaled.f_backward()?;
        }
        if self.overlap.is_none() {
            self.dist.0.average_gradients(&self.opt.grads())?;
        }
        self.dist.0.sum(&loss_sum)?;
        let parts = match &self.teacher {
            Some(_) => {
                self.dist.0.sum(&parts_sum)?;
                Some(Vec::<f64>::try_from(
                    parts_sum.to_kind(Kind::Double).to_device(Device::Cpu),
                )?)
            }
            None => None,
        };
        let grad_norm = self
            .opt
            .clip_grad_norm(if t.grad_clip > 0.0 { t.grad_clip } else { f64::INFINITY })?;
        let micro_batches = (accum * world) as f64;
        let loss = loss_sum.f_double_value(&[])? / micro_batches;
        let grad_norm = grad_norm.f_double_value(&[])?;
        // Every rank holds the same reduced values, so all of them stop here together.
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(Error::NonFinite { step, loss, grad_norm });
        }
        self.opt.step(lr)?;
        self.opt.zero_grad();
        let tps = self.tokens_per_step as f64 / began.elapsed().as_secs_f64();
        Ok(Metrics {
            kind: MetricKind::Train,
            step,
            tokens: (step + 1) * self.tokens_per_step,
            loss: Some(loss),
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            tokens_per_s: Some(tps),
            mfu: self.peak.map(|p| self.flops_per_token * tps / p),
            ce: parts.as_ref().map(|p| p[0] / micro_batches),
            kl: parts.as_ref().map(|p| p[1] / micro_batches),
            ..Metrics::new(MetricKind::Train, step, 0)
        })
    }

    /// The final full pass over the val split (`train.final_eval_tokens` of it) after `step`
    /// steps, and the tokens it scored.
    fn final_pass(&self, step: u64) -> Result<(Metrics, u64)> {
        let windows = self.config.train.final_eval_windows(self.tokens_per_step);
        let (val_loss, tokens) = self.full_val_pass(windows)?;
        let mut m = Metrics::new(MetricKind::Final, step, step * self.tokens_per_step);
        m.val_loss = Some(val_loss);
        Ok((m, tokens))
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
}

/// Trains per `config` in `run_dir`; `on_metrics` sees every metrics line and may stop the run.
/// The loop reads as nanoGPT's `train.py`: evaluate and checkpoint every `eval_interval` steps,
/// one optimizer step, log; then a final pass over the val split and the model as `final/`.
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
    let t = &config.train;
    let (rank, world) = (options.dist.0.rank(), options.dist.0.world());
    let dir = RunDir::new(run_dir);
    let (mut run, resumed_at, _lock) = Run::start(config, options, &dir)?;
    let tokenizer_files = setup::tokenizer_files(config, options.init.as_deref());
    let sink = SinkOptions {
        dist: &options.dist,
        resumed_at,
        config,
        tokenizer_files,
        on_metrics,
    };
    let mut sink = Sink::open(dir, sink)?;
    let mut data = Data::open(config, rank, world)?;
    if rank == 0 {
        for note in &config.notes {
            tracing::warn!("{note}");
        }
    }
    let start = resumed_at.unwrap_or(0);
    let mut step = start;
    loop {
        if run.evaluates_at(step) && resumed_at != Some(step) {
            if step == start {
                tracing::info!(
                    "step {step}: evaluating {} batches of each split (train.eval_iters)",
                    t.eval_iters
                );
            }
            let m = run.evaluate(step, &mut data)?;
            sink.log(&m)?;
            if step > 0 || t.checkpoint_at_start {
                let state = run.state(
                    step,
                    "stateless: batches are functions of (seed, step, global micro-batch)",
                );
                sink.checkpoint(&run.model, &run.opt, &state)?;
            }
            sink.notify(&m)?;
        }
        if step >= run.end() {
            break;
        }
        let m = run.step(step, &mut data.train)?;
        sink.log(&m)?;
        step += 1;
        sink.notify(&m)?;
    }
    let (m, final_val_tokens) = run.final_pass(step)?;
    sink.log(&m)?;
    sink.final_model(&run.model, &run.state(step, "stateless"))?;
    let _ = sink.notify(&m);
    Ok(Summary {
        steps: step,
        final_val_loss: m.val_loss.unwrap_or(f64::NAN),
        final_val_tokens,
    })
}
