//! `inheritune bench train`: time full training steps on synthetic tokens, printing one JSON line
//! with the fields of `shared/bench/torch_gpt_train.py`, so the two compare directly.
//! `inheritune bench allreduce`: time c10d all-reduces of one large f32 tensor across the ranks of
//! a job, printing the fields of `crates/dist/bench/torch_allreduce.py`.

use anyhow::{bail, Result};
use inheritune_model::{tch, DType, Preset};
use inheritune_train::bench::{bench_train, BenchSpec};

use crate::args::DTypeArg;
use inheritune_model::DeviceSpec;

/// `inheritune bench ...`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Forward, backward, clipping and AdamW on a GPT-2 of the given shape.
    Train(TrainArgs),
    /// All-reduce (sum) of one f32 tensor across the ranks of a job (`--nproc N`, torchrun, ...).
    Allreduce(AllreduceArgs),
}

/// Arguments of `inheritune bench allreduce`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  inheritune bench allreduce --nproc 2 --numel 10000000")]
pub struct AllreduceArgs {
    /// Elements of the f32 tensor.
    #[arg(long, default_value_t = 100_000_000, value_parser = crate::args::positive_i64)]
    numel: i64,
    /// Timed all-reduces.
    #[arg(long, default_value_t = 5, value_parser = crate::args::positive)]
    iters: usize,
    /// Untimed all-reduces first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Device of the tensor (CUDA: NCCL).
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    device: DeviceSpec,
    /// Ranks.
    #[command(flatten)]
    dist: crate::launch::DistArgs,
}

fn bench_allreduce(a: &AllreduceArgs) -> Result<()> {
    if let Some(n) = a.dist.nproc.filter(|&n| n > 1) {
        return crate::launch::launch_local(n, &crate::launch::args_without_nproc());
    }
    let (device, dist) = crate::launch::join(a.device, a.dist.dist_timeout)?;
    let world = dist.0.world();
    let t = tch::Tensor::f_ones([a.numel], (tch::Kind::Float, device))?;
    let mut times = Vec::with_capacity(a.iters);
    for i in 0..a.warmup + a.iters {
        dist.0.barrier()?;
        let began = std::time::Instant::now();
        dist.0.sum(&t)?;
        if let tch::Device::Cuda(d) = device {
            tch::Cuda::synchronize(d as i64);
        }
        if i >= a.warmup {
            times.push(began.elapsed().as_secs_f64());
        }
    }
    // Ones summed over (warmup + iters) rounds of W ranks: W^(rounds), checked on one element.
    let got = t.f_double_value(&[0])?;
    let want = (world as f64).powi((a.warmup + a.iters) as i32);
    if (got - want).abs() > 1e-3 * want {
        bail!("all-reduce result {got} is not {want}");
    }
    times.sort_by(f64::total_cmp);
    if dist.0.rank() == 0 {
        println!(
            "{}",
            serde_json::json!({
                "impl": "inheritune (c10d through the Rust shim)",
                "world": world,
                "numel": a.numel,
                "bytes": a.numel * 4,
                "iters": a.iters,
                "median_s": times[times.len() / 2],
                "min_s": times[0],
                "device": format!("{device:?}"),
            })
        );
    }
    Ok(())
}

/// Arguments of `inheritune bench train`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  inheritune bench train --preset gpt2-small --device cuda")]
pub struct TrainArgs {
    /// A GPT-2 preset (gpt2-small, gpt2-medium, gpt2-large, gpt2-large-fineweb, gpt2-xl).
    #[arg(long, conflicts_with_all = ["n_layer", "n_head", "n_embd"])]
    preset: Option<String>,
    /// Layers (with --n-head and --n-embd, instead of --preset).
    #[arg(long)]
    n_layer: Option<i64>,
    /// Heads.
    #[arg(long)]
    n_head: Option<i64>,
    /// Width.
    #[arg(long)]
    n_embd: Option<i64>,
    /// Vocabulary size.
    #[arg(long, default_value_t = 50304)]
    vocab: i64,
    /// Sequences per step.
    #[arg(long, default_value_t = 8, value_parser = crate::args::positive_i64)]
    batch: i64,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 1024, value_parser = crate::args::positive_i64)]
    seq: i64,
    /// Timed steps.
    #[arg(long, default_value_t = 20, value_parser = crate::args::positive)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Device.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    device: DeviceSpec,
    /// Compute precision (default: bf16 on CUDA, f32 on CPU).
    #[arg(long, value_enum)]
    dtype: Option<DTypeArg>,
    /// Biases on linear layers and norms.
    #[arg(long)]
    bias: bool,
    /// Turn off the 1/(layer+1) attention scaling.
    #[arg(long)]
    no_inv_layer_scale: bool,
    /// CPU threads (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    threads: i32,
}

/// Runs a bench verb.
pub fn run(command: &BenchCommand) -> Result<()> {
    let a = match command {
        BenchCommand::Train(a) => a,
        BenchCommand::Allreduce(a) => return bench_allreduce(a),
    };
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    let (n_layer, n_head, n_embd) = match (&a.preset, a.n_layer, a.n_head, a.n_embd) {
        (Some(name), ..) => {
            let Some(p) = Preset::ALL.into_iter().find(|p| p.name() == name) else {
                bail!("--preset: unknown preset {name:?}");
            };
            let c = p.config();
            (c.n_layer(), c.n_head(), c.n_embd())
        }
        (None, Some(l), Some(h), Some(d)) => (l, h, d),
        _ => bail!("give --preset or all of --n-layer, --n-head and --n-embd"),
    };
    let device = a.device.checked()?;
    let dtype = a.dtype.map(DType::from).unwrap_or(match a.device {
        DeviceSpec::Cuda(_) => DType::Bf16,
        DeviceSpec::Cpu => DType::F32,
    });
    let result = bench_train(&BenchSpec {
        n_layer,
        n_head,
        n_embd,
        vocab: a.vocab,
        batch: a.batch,
        seq: a.seq,
        steps: a.steps,
        warmup: a.warmup,
        bias: a.bias,
        inv_layer_scale: !a.no_inv_layer_scale,
        device,
        dtype,
    })?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
