//! `inheritune perplexity`: score a text file in non-overlapping windows of the context length.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use inheritune_model::hf::{self, LoadOptions};

use crate::args::DTypeArg;
use inheritune_model::DeviceSpec;

/// Arguments of `inheritune perplexity`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  inheritune perplexity --model runs/smollm2-l15-trained/final --text speech.txt")]
pub struct Args {
    /// Checkpoint (config.json, model.safetensors, tokenizer.json): a Hugging Face folder, a Hub
    /// id `org/name[@revision]`, or a .gguf file.
    #[arg(long, value_parser = crate::args::checkpoint)]
    model: PathBuf,
    /// UTF-8 text file to score.
    #[arg(long)]
    text: PathBuf,
    /// Device to run on.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    device: DeviceSpec,
    /// Format of weights and compute (log-likelihoods are always taken in f32).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,
    /// Window length in tokens (default and maximum: the model's context length).
    #[arg(long, value_parser = crate::args::positive)]
    context_length: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4, value_parser = crate::args::positive)]
    batch_size: usize,
    /// Load checkpoints with missing or unexpected keys (reported on stderr) instead of failing.
    #[arg(long)]
    no_strict: bool,
}

/// Runs the verb and prints one JSON object on stdout.
pub fn run(args: &Args) -> Result<()> {
    let device = args.device.checked()?;
    let options = LoadOptions {
        device,
        dtype: args.dtype.into(),
        strict: !args.no_strict,
    };
    let (model, report) =
        hf::load(&args.model, &options).with_context(|| format!("loading {}", args.model.display()))?;
    if !report.is_clean() {
        tracing::warn!("{}: {report}", args.model.display());
    }
    let tokenizer = crate::tokenizer::of_model(&args.model, model.config())?;
    let text = std::fs::read(&args.text).with_context(|| format!("reading {}", args.text.display()))?;
    let text = String::from_utf8(text).with_context(|| format!("{}: not valid UTF-8", args.text.display()))?;
    if text.trim().is_empty() {
        bail!("{}: the file holds no text", args.text.display());
    }
    let tokens = tokenizer.encode(&text)?;
    let max = model.config().context_length() as usize;
    let ctx = args.context_length.unwrap_or(max);
    anyhow::ensure!(
        ctx <= max,
        "--context-length {ctx} exceeds the model's context length {max}"
    );
    tracing::info!("{} tokens ({}), windows of {ctx}", tokens.len(), tokenizer.name());
    let bar = inheritune_fs::Progress::new("{bar:40} {pos}/{len} windows {per_sec} eta {eta}", "windows");
    let result =
        inheritune_eval::perplexity::score_windows(&model, &tokens, ctx, args.batch_size, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .with_context(|| format!("scoring {}", args.text.display()))?;
    bar.finish();
    if result.tokens_scored == 0 {
        bail!(
            "{}: nothing to score ({} tokens; a window of context {ctx} scores all but its first token)",
            args.text.display(),
            result.tokens
        );
    }
    if !result.mean_nll.is_finite() {
        bail!(
            "{}: the mean NLL under {} is {} (the model's weights or outputs are not finite)",
            args.text.display(),
            args.model.display(),
            result.mean_nll
        );
    }
    let out = serde_json::json!({
        "model": args.model,
        "text": args.text,
        "tokenizer": tokenizer.name(),
        "device": format!("{:?}", args.device).to_lowercase(),
        "dtype": format!("{:?}", args.dtype).to_lowercase(),
        "context_length": ctx,
        "tokens": result.tokens,
        "windows": result.windows,
        "tokens_scored": result.tokens_scored,
        "mean_nll": result.mean_nll,
        "perplexity": result.perplexity,
    });
    println!("{out}");
    Ok(())
}
