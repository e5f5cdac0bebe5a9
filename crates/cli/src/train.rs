//! `inheritune train`: run the training loop of a TOML run config (f32 on CPU; bf16 autocast with
//! f32 master weights on CUDA).

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use inheritune_train::{train, Options, RunConfig};

use crate::args::{DTypeArg, DeviceArg};

/// Arguments of `inheritune train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run config (TOML with [model], [data], [train]).
    #[arg(long)]
    config: PathBuf,
    /// Run folder (checkpoints, metrics.jsonl, config.toml, final/).
    #[arg(long)]
    run: PathBuf,
    /// Start from this Hugging Face checkpoint (e.g. an inherited model).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Continue from the newest complete checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
    /// Device to run on.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Compute precision (default: bf16 autocast on CUDA, f32 on CPU); weights stay f32.
    #[arg(long, value_enum)]
    dtype: Option<DTypeArg>,
}

/// Runs the verb and prints the summary as JSON.
pub fn run(args: &Args) -> Result<()> {
    let config = RunConfig::from_file(&args.config)?;
    let options = Options {
        init: args.init.clone(),
        resume: args.resume,
        dtype: args.dtype.map(Into::into),
        ..Options::new(args.device.device()?)
    };
    let bar = ProgressBar::new(config.train.max_steps).with_style(
        ProgressStyle::with_template("{bar:40} step {pos}/{len} {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = train(&config, &args.run, &options, &mut |m| {
        if m.kind == "train" {
            bar.set_position(m.step + 1);
            bar.set_message(format!(
                "loss {:.4} {:.0} tok/s",
                m.loss.unwrap_or(f64::NAN),
                m.tokens_per_s.unwrap_or(0.0)
            ));
        } else if m.kind == "eval" {
            bar.println(format!(
                "step {}: train {:.4} val {:.4}",
                m.step,
                m.loss.unwrap_or(f64::NAN),
                m.val_loss.unwrap_or(f64::NAN)
            ));
        }
        ControlFlow::Continue(())
    })
    .with_context(|| format!("training {}", args.run.display()))?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
