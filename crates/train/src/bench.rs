//! The training-step benchmark behind `inheritune bench train`: the same step, shapes and
//! output fields as `shared/bench/torch_gpt_train.py` (forward under autocast, cross-entropy,
//! backward, global-norm clipping at 1.0, AdamW lr 3e-4, betas (0.9, 0.95), weight decay 0.1 on
//! matrices), timed over `steps` steps after `warmup` untimed ones; the median is reported.

use std::time::Instant;

use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{allow_tf32, CausalLm, DType, Gpt2Config, ModelConfig};
use serde::Serialize;

use crate::adamw::{AdamW, AdamWConfig};
use crate::error::Result;

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Layers.
    pub n_layer: i64,
    /// Heads.
    pub n_head: i64,
    /// Width.
    pub n_embd: i64,
    /// Vocabulary (50304 as in the paper).
    pub vocab: i64,
    /// Sequences per step.
    pub batch: i64,
    /// Tokens per sequence (also the context length).
    pub seq: i64,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Biases on linear layers and norms.
    pub bias: bool,
    /// The paper's 1/(layer+1) attention scaling.
    pub inv_layer_scale: bool,
    /// Where to run.
    pub device: Device,
    /// Compute precision (autocast; weights stay f32).
    pub dtype: DType,
}

/// One JSON line, with the fields of the PyTorch script.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// `inheritune`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// The libtorch version underneath.
    pub torch: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// `f32` or `bf16`.
    pub dtype: String,
    /// Layers.
    pub n_layer: i64,
    /// Heads.
    pub n_head: i64,
    /// Width.
    pub n_embd: i64,
    /// Parameters (tied head counted once).
    pub params: i64,
    /// Sequences per step.
    pub batch: i64,
    /// Tokens per sequence.
    pub seq: i64,
    /// Median step time.
    pub ms_per_step: f64,
    /// Tokens per second at the median.
    pub tokens_per_s: f64,
    /// (6N + 12·L·D·T) FLOPs per token × tokens/s, in TFLOP/s.
    pub model_tflops_per_s: f64,
    /// Not measured here (see the GPU script, which samples nvidia-smi for both programs).
    pub peak_mem_gb: Option<f64>,
    /// Loss of the last step.
    pub final_loss: f64,
    /// CPU threads libtorch used.
    pub threads: i32,
    /// Median milliseconds of each phase: forward (with the loss), backward, clip, optimizer.
    pub phases_ms: [f64; 4],
}

/// Runs the benchmark.
///
/// # Errors
/// An invalid shape or a torch failure (e.g. out of memory).
pub fn bench_train(spec: &BenchSpec) -> Result<BenchResult> {
    tch::manual_seed(0);
    let config = ModelConfig::Gpt2(Gpt2Config {
        vocab_size: spec.vocab,
        n_positions: spec.seq,
        bias: spec.bias,
        scale_attn_by_inverse_layer_idx: spec.inv_layer_scale,
        ..Gpt2Config::paper(spec.n_layer, spec.n_head, spec.n_embd)
    });
    config.validate()?;
    let model = CausalLm::new(&config, spec.device, DType::F32)?;
    let params = model.named_parameters();
    let n_params: i64 = params.values().map(Tensor::numel).sum::<usize>() as i64;
    let mut opt = AdamW::new(
        &params,
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        },
    )?;
    let cuda = matches!(spec.device, Device::Cuda(_));
    if cuda {
        allow_tf32(true);
    }
    opt.use_fused(spec.device)?;
    let x = Tensor::f_randint(spec.vocab, [spec.batch, spec.seq], (Kind::Int64, spec.device))?;
    let y = Tensor::f_randint(spec.vocab, [spec.batch, spec.seq], (Kind::Int64, spec.device))?;
    let sync = || {
        if let Device::Cuda(i) = spec.device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let mut times = Vec::with_capacity(spec.steps);
    let mut phases: [Vec<f64>; 4] = Default::default();
    let mut last = Tensor::from(0.0f32);
    // Phases are timed only on CPU, where they need no extra synchronisation.
    let split = !cuda;
    for i in 0..spec.warmup + spec.steps {
        sync();
        let began = Instant::now();
        let mut marks = [0.0; 4];
        let loss = crate::trainer::batch_loss(&model, &x, &y, spec.dtype)?;
        marks[0] = began.elapsed().as_secs_f64();
        loss.f_backward()?;
        marks[1] = began.elapsed().as_secs_f64();
        let _ = opt.clip_grad_norm(1.0)?;
        marks[2] = began.elapsed().as_secs_f64();
        opt.step(3e-4)?;
        opt.zero_grad();
        sync();
        marks[3] = began.elapsed().as_secs_f64();
        if i >= spec.warmup {
            times.push(marks[3]);
            if split {
                for k in 0..4 {
                    phases[k].push((marks[k] - if k > 0 { marks[k - 1] } else { 0.0 }) * 1e3);
                }
            }
        }
        last = loss.detach();
    }
    let phases_ms = phases.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    });
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let tokens = (spec.batch * spec.seq) as f64;
    // The one formula of the project (nanoGPT's: N without the position embeddings).
    let flops_per_token = crate::trainer::flops_per_token(&config, spec.seq as usize);
    Ok(BenchResult {
        implementation: "inheritune".into(),
        torch: "libtorch 2.11.0 (tch 0.24.0)".into(),
        device: match spec.device {
            Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".into(),
        },
        dtype: spec.dtype.hf_name().into(),
        n_layer: spec.n_layer,
        n_head: spec.n_head,
        n_embd: spec.n_embd,
        params: n_params,
        batch: spec.batch,
        seq: spec.seq,
        ms_per_step: median * 1e3,
        tokens_per_s: tokens / median,
        model_tflops_per_s: flops_per_token * tokens / median / 1e12,
        peak_mem_gb: None,
        final_loss: last.f_double_value(&[])?,
        threads: tch::get_num_threads(),
        phases_ms,
    })
}
