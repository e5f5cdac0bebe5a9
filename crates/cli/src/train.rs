//! `inheritune train`: run the training loop of a TOML run config (f32 on CPU; bf16 autocast with
//! f32 master weights on CUDA).

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use inheritune_fs::Progress;
use inheritune_train::curves::plot_runs;
use inheritune_train::{train, MetricKind, Options, RunConfig, Summary};

use crate::args::DTypeArg;
use crate::launch;
use inheritune_model::DeviceSpec;

/// Arguments of `inheritune train`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  inheritune train --init runs/smollm2-l15 --config docs/quickstart/run.toml --run runs/smollm2-l15-trained
  inheritune train --config run.toml --run runs/gpt2-small --device cuda --nproc 8")]
pub struct Args {
    /// Run config (TOML with `[model]`, `[data]`, `[train]`).
    #[arg(long)]
    config: PathBuf,
    #[command(flatten)]
    pub opts: Opts,
}

/// Everything `inheritune train` takes besides the run config: the same struct in the verb and in
/// a recipe's training stage ([`crate::stage::Job::Train`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Args)]
pub struct Opts {
    /// Run folder (checkpoints, metrics.jsonl, config.toml, final/). `--run-dir` is the same flag,
    /// for torchrun, whose argument parser takes `--run` for its own `--run-path`.
    #[arg(long, alias = "run-dir")]
    pub run: PathBuf,
    /// Start from this checkpoint (e.g. an inherited model), which also fixes the architecture: a
    /// Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long, value_parser = crate::args::checkpoint)]
    pub init: Option<PathBuf>,
    /// Continue from the newest complete checkpoint in the run folder (a fresh start if none).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Replace a run the folder already holds (its metrics, checkpoints and final model).
    #[arg(long)]
    pub overwrite: bool,
    /// Device to run on.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: DeviceSpec,
    /// Compute precision (default: bf16 autocast on CUDA, f32 on CPU); weights stay f32.
    #[arg(long, value_enum)]
    pub dtype: Option<DTypeArg>,
    /// Data-parallel ranks.
    #[command(flatten)]
    pub dist: launch::DistArgs,
}

impl Opts {
    /// A single-process run into `run` on `device`, as the flags' defaults give it.
    pub fn new(run: PathBuf, device: DeviceSpec) -> Self {
        Opts {
            run,
            init: None,
            resume: false,
            overwrite: false,
            device,
            dtype: None,
            dist: launch::DistArgs::default(),
        }
    }
}

/// Runs the verb and prints the summary as JSON.
pub fn run(args: &Args) -> Result<()> {
    let config = RunConfig::from_file_with_init(&args.config, args.opts.init.as_deref())?;
    if let Some(summary) = execute(&config, &args.opts, &launch::args_without_nproc())? {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

/// Trains `config` as `args` say; the summary on rank 0 of a run it trained itself, `None` on the
/// other ranks and in a launcher of `--nproc` ranks (which run this program with `rank_args`).
pub fn execute(config: &RunConfig, args: &Opts, rank_args: &[String]) -> Result<Option<Summary>> {
    if let Some(n) = args.dist.nproc.filter(|&n| n > 1) {
        // Fail here, once, rather than in every rank.
        config.accum(n as u64)?;
        launch::launch_local(n, rank_args)?;
        return Ok(None);
    }
    let (device, dist) = launch::join(args.device, args.dist.dist_timeout)?;
    let rank = dist.0.rank();
    let who = if dist.0.world() > 1 {
        format!("rank {rank} of {}: ", dist.0.world())
    } else {
        String::new()
    };
    let options = Options {
        init: args.init.clone(),
        resume: args.resume,
        overwrite: args.overwrite,
        dtype: args.dtype.map(Into::into),
        dist,
        ..Options::new(device)
    };
    // Rank 0 shows the run: a bar on a terminal; without one (nohup, Slurm, CI) log lines.
    let bar = (rank == 0).then(|| Progress::own_lines("{bar:40} step {pos}/{len} {msg} eta {eta}"));
    if let Some(bar) = &bar {
        bar.set_length(config.train.max_steps);
    }
    let log_lines = bar.as_ref().is_some_and(|b| !b.on_terminal());
    let say = |line: String| {
        if let Some(b) = &bar {
            b.println(line);
        }
    };
    let began = std::time::Instant::now();
    let mut first_step = None;
    let max_steps = config.train.max_steps;
    let log_every = config.train.log_interval;
    let summary = train(config, &args.run, &options, &mut |m| {
        if log_lines && m.kind == MetricKind::Train {
            let first = *first_step.get_or_insert(m.step);
            if (m.step + 1) % log_every == 0 || m.step + 1 == max_steps {
                let elapsed = began.elapsed().as_secs_f64();
                let done = (m.step + 1 - first) as f64;
                let eta = elapsed / done * (max_steps - m.step - 1) as f64;
                say(format!(
                    "step {}/{max_steps} | loss {:.4} | lr {:.3e} | grad norm {:.3} | {:.0} tok/s | MFU {} | elapsed {} | ETA {}",
                    m.step + 1,
                    m.loss.unwrap_or(f64::NAN),
                    m.lr.unwrap_or(f64::NAN),
                    m.grad_norm.unwrap_or(f64::NAN),
                    m.tokens_per_s.unwrap_or(0.0),
                    m.mfu.map_or("-".into(), |u| format!("{:.1}%", u * 100.0)),
                    clock(elapsed),
                    clock(eta)
                ));
            }
        } else if log_lines && m.kind != MetricKind::Train {
            say(format!(
                "{} at step {}: train {} val {:.4} | elapsed {}",
                if m.kind == MetricKind::Final { "final" } else { "eval" },
                m.step,
                m.loss.map_or("-".into(), |l| format!("{l:.4}")),
                m.val_loss.unwrap_or(f64::NAN),
                clock(began.elapsed().as_secs_f64())
            ));
        }
        let Some(bar) = bar.as_ref().filter(|b| b.on_terminal()) else {
            return ControlFlow::Continue(());
        };
        if m.kind == MetricKind::Train {
            bar.set_position(m.step + 1);
            bar.set_message(format!(
                "loss {:.4} {:.0} tok/s",
                m.loss.unwrap_or(f64::NAN),
                m.tokens_per_s.unwrap_or(0.0)
            ));
        } else if m.kind == MetricKind::Eval {
            bar.println(format!(
                "step {}: train {:.4} val {:.4}",
                m.step,
                m.loss.unwrap_or(f64::NAN),
                m.val_loss.unwrap_or(f64::NAN)
            ));
        }
        ControlFlow::Continue(())
    })
    .with_context(|| format!("{who}training {}", args.run.display()))?;
    let Some(bar) = bar else {
        return Ok(None);
    };
    bar.finish();
    let name = args
        .run
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    plot_runs(&[(name, args.run.clone())], &args.run, "loss", true)?;
    let fin = inheritune_train::RunDir::new(&args.run).final_model();
    eprintln!(
        "[train] wrote {} (the trained model), loss.png and metrics.jsonl in {}; final val loss {:.4}\n\
         next: inheritune perplexity --model {} --text FILE   or   inheritune eval tasks --model {} --tasks arc_easy --data-dir data/eval --out DIR",
        fin.display(),
        args.run.display(),
        summary.final_val_loss,
        fin.display(),
        fin.display()
    );
    Ok(Some(summary))
}

/// `h:mm:ss`.
fn clock(seconds: f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0) as u64
    } else {
        0
    };
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Arguments of `inheritune plot-loss`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  inheritune plot-loss --run runs/a runs/b --out runs/compare")]
pub struct PlotArgs {
    /// Run folders (each with metrics.jsonl); one line per run and split.
    #[arg(long = "run", required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Output folder for loss.png and loss.svg.
    #[arg(long)]
    out: PathBuf,
}

/// `inheritune plot-loss`: loss curves of one or more runs against training tokens.
pub fn plot(args: &PlotArgs) -> Result<()> {
    let runs: Vec<(String, PathBuf)> = args
        .runs
        .iter()
        .map(|r| {
            (
                r.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                r.clone(),
            )
        })
        .collect();
    for f in plot_runs(&runs, &args.out, "loss", true)? {
        println!("{}", f.display());
    }
    Ok(())
}
