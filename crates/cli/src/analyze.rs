//! `inheritune analyze`: attention rank and column mass of a checkpoint, with plots and a summary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use inheritune_analysis::windows::{consecutive_windows, read_windows, sample_offsets, sample_windows};
use inheritune_analysis::{Analysis, MassOrder, Settings};
use inheritune_data::loader::TokenStream;
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::Tensor;
use inheritune_model::CausalLm;

use crate::args::DTypeArg;
use inheritune_model::DeviceSpec;

/// Where the analysed windows come from (shared by `analyze` and `surgery inherit --select`).
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["data", "windows", "text"])))]
pub struct WindowArgs {
    /// Prepared data folder (inheritune prepare): --num-windows windows drawn from --split with --window-seed.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --data: the split to draw windows from.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// JSON file holding a list of token-id lists (all the same length) to analyse.
    #[arg(long)]
    pub windows: Option<PathBuf>,
    /// UTF-8 text file: tokenized with the model's tokenizer; --num-windows windows drawn from it with --window-seed.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Number of windows N (the paper: 100).
    #[arg(long, default_value_t = 100, value_parser = crate::args::positive)]
    pub num_windows: usize,
    /// Tokens per window T (the paper: 100).
    #[arg(long, default_value_t = 100, value_parser = crate::args::positive)]
    pub window_len: usize,
    /// Seed of the window offsets (logged in analysis.json).
    #[arg(long, default_value_t = 1337)]
    pub window_seed: u64,
    /// With --text: take consecutive windows from the start instead of random offsets.
    #[arg(long)]
    pub consecutive: bool,
}

impl WindowArgs {
    /// Whether a source was given.
    pub fn given(&self) -> bool {
        self.data.is_some() || self.windows.is_some() || self.text.is_some()
    }

    /// The windows `(N, T)` and a description of their source; `model` supplies the tokenizer of `--text`.
    fn read(&self, model: &Path, config: &inheritune_model::ModelConfig) -> Result<(Tensor, String)> {
        let (windows, source) = if let Some(dir) = &self.data {
            let mut stream = TokenStream::open(dir, &self.split)?;
            let offsets = sample_offsets(stream.len(), self.num_windows, self.window_len, self.window_seed)
                .with_context(|| format!("sampling windows from {}", dir.display()))?;
            let windows = offsets
                .into_iter()
                .map(|o| Ok(stream.read(o, self.window_len)?.into_iter().map(i64::from).collect()))
                .collect::<Result<Vec<Vec<i64>>>>()?;
            (
                windows,
                format!(
                    "{} split of {} (random offsets, seed {})",
                    self.split,
                    dir.display(),
                    self.window_seed
                ),
            )
        } else if let Some(path) = &self.windows {
            (read_windows(path)?, format!("windows file {}", path.display()))
        } else if let Some(path) = &self.text {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let text = String::from_utf8(text).with_context(|| format!("{}: not valid UTF-8", path.display()))?;
            if text.trim().is_empty() {
                bail!("{}: the file holds no text", path.display());
            }
            let tokens = crate::tokenizer::of_model(model, config)?.encode(&text)?;
            if self.consecutive {
                (
                    consecutive_windows(&tokens, self.num_windows, self.window_len)?,
                    format!("text {} (consecutive)", path.display()),
                )
            } else {
                let w = sample_windows(&tokens, self.num_windows, self.window_len, self.window_seed)
                    .with_context(|| format!("sampling windows from {}", path.display()))?;
                (
                    w,
                    format!("text {} (random offsets, seed {})", path.display(), self.window_seed),
                )
            }
        } else {
            bail!("give the windows to analyse: --data DIR, --windows FILE or --text FILE");
        };
        let (n, t) = (windows.len() as i64, windows[0].len() as i64);
        let flat: Vec<i64> = windows.into_iter().flatten().collect();
        Ok((Tensor::from_slice(&flat).view([n, t]), source))
    }
}

/// Arguments of `inheritune analyze`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Examples:
  inheritune analyze --model .smollm2.gguf --text speech.txt --out runs/smollm2-analysis
  inheritune analyze --model HuggingFaceTB/SmolLM2-135M --data data/owt --split val --loo --out runs/a")]
pub struct Args {
    /// Checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long, value_parser = crate::args::checkpoint)]
    pub model: PathBuf,
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Output folder for analysis.json, summary.txt and the plots (must be new unless --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace what an existing --out folder holds.
    #[arg(long)]
    pub overwrite: bool,
    /// Energy threshold τ of the approximate rank.
    #[arg(long, default_value_t = 0.9)]
    pub tau: f64,
    /// Mass threshold η of the column mass.
    #[arg(long, default_value_t = 0.9)]
    pub eta: f64,
    /// Accumulate column shares in index order instead of largest first (the paper's printed formula).
    #[arg(long)]
    pub mass_index_order: bool,
    /// Also compute each block's leave-one-out NLL increase (N + 1 more passes through the head).
    #[arg(long)]
    pub loo: bool,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 100, value_parser = crate::args::positive)]
    pub batch_size: usize,
    /// Device to run on.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: DeviceSpec,
    /// Format of the weights (the paper uses f32; metrics are always f64).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
}

/// Analyses the checkpoint `model` on the windows of `windows`, with a progress bar.
pub fn compute(
    model: &Path,
    windows: &WindowArgs,
    settings: &Settings,
    device: DeviceSpec,
    dtype: DTypeArg,
) -> Result<Analysis> {
    let device = device.checked()?;
    let (lm, _) = hf::load(
        model,
        &LoadOptions {
            device,
            dtype: dtype.into(),
            strict: true,
        },
    )
    .with_context(|| format!("loading {}", model.display()))?;
    compute_on(&lm, model, windows, settings)
}

/// As [`compute`], for the already loaded checkpoint `lm` of the folder `model`.
pub fn compute_on(lm: &CausalLm, model: &Path, windows: &WindowArgs, settings: &Settings) -> Result<Analysis> {
    let context = lm.config().context_length();
    if windows.window_len as i64 > context && windows.windows.is_none() {
        bail!(
            "--window-len {} exceeds the model's context length {context}; pass --window-len {context} or less",
            windows.window_len
        );
    }
    let (ids, source) = windows.read(model, lm.config())?;
    let bar = inheritune_fs::Progress::new("{bar:40} {pos}/{len} window passes eta {eta}", "window passes");
    let name = model.display().to_string();
    let analysis = inheritune_analysis::analyze(lm, &name, &ids, &source, settings, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64)
    })
    .with_context(|| format!("analysing {}", model.display()))?;
    bar.finish();
    Ok(analysis)
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    crate::args::check_new_out(&args.out, args.overwrite)?;
    if !args.windows.given() {
        bail!("give the windows to analyse: --data DIR, --windows FILE or --text FILE");
    }
    let settings = Settings {
        tau: args.tau,
        eta: args.eta,
        mass_order: if args.mass_index_order {
            MassOrder::Index
        } else {
            MassOrder::Sorted
        },
        batch_size: args.batch_size,
        loo: args.loo,
        ..Settings::default()
    };
    let analysis = compute(&args.model, &args.windows, &settings, args.device, args.dtype)?;
    // Everything is written into a temporary folder and put in place whole: an interrupted
    // run never leaves half an analysis, and a replaced one is gone only once the new one is there.
    let tmp = inheritune_fs::tmp_path(&args.out);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let json = serde_json::to_string_pretty(&analysis)? + "\n";
    inheritune_fs::write_file(&tmp.join("analysis.json"), json.as_bytes())?;
    let summary = analysis.summary();
    inheritune_fs::write_file(&tmp.join("summary.txt"), summary.as_bytes())?;
    inheritune_analysis::plot::write_plots(&analysis, &tmp)?;
    inheritune_fs::commit_dir(&tmp, &args.out)?;
    print!("{summary}");
    eprintln!(
        "[analyze] wrote {} (analysis.json, summary.txt, max_rank.png, depth_criteria.png, angular_distance.png, ...)\n\
         next: inheritune surgery inherit --model {} --layers {} --out OUT (the first {} blocks, the paper's depth; \
         --select block-influence|angular|loo --analysis {} keeps others)",
        args.out.display(),
        crate::args::as_typed("--model", &args.model),
        analysis.suggested_depth,
        analysis.suggested_depth,
        args.out.display()
    );
    Ok(())
}
