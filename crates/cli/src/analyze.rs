//! `inheritune analyze`: attention rank and column mass of a checkpoint, with plots and a summary.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use inheritune_analysis::windows::{consecutive_windows, read_windows, sample_offsets, sample_windows};
use inheritune_analysis::{MassOrder, Settings};
use inheritune_data::loader::TokenStream;
use inheritune_data::Tokenizer;
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::Tensor;

use crate::args::DTypeArg;
use inheritune_model::DeviceSpec;

/// Arguments of `inheritune analyze`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data", "windows", "text"])))]
pub struct Args {
    /// Hugging Face checkpoint: a folder, or a Hub id `org/name[@revision]`.
    #[arg(long, value_parser = crate::args::checkpoint)]
    model: PathBuf,
    /// Prepared data folder (inheritune prepare): --num-windows windows drawn from --split with --seed.
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data: the split to draw windows from.
    #[arg(long, default_value = "val")]
    split: String,
    /// JSON file holding a list of token-id lists (all the same length) to analyse.
    #[arg(long)]
    windows: Option<PathBuf>,
    /// UTF-8 text file: tokenized with the model's tokenizer; --num-windows windows drawn from it with --seed.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Output folder for analysis.json, summary.txt and the plots.
    #[arg(long)]
    out: PathBuf,
    /// Number of windows N (METHOD.md §2.2: 100).
    #[arg(long, default_value_t = 100, value_parser = crate::args::positive)]
    num_windows: usize,
    /// Tokens per window T (METHOD.md §2.2: 100).
    #[arg(long, default_value_t = 100, value_parser = crate::args::positive)]
    window_len: usize,
    /// Seed of the window offsets (logged in analysis.json).
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// With --text: take consecutive windows from the start instead of random offsets.
    #[arg(long)]
    consecutive: bool,
    /// Energy threshold τ of the approximate rank.
    #[arg(long, default_value_t = 0.9)]
    tau: f64,
    /// Mass threshold η of the column mass.
    #[arg(long, default_value_t = 0.9)]
    eta: f64,
    /// Accumulate column shares in index order instead of sorted (METHOD.md §2.6 alternative).
    #[arg(long)]
    mass_index_order: bool,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 100, value_parser = crate::args::positive)]
    batch_size: usize,
    /// Device to run on.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Format of the weights (METHOD.md §2.2 asks for f32; metrics are always f64).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    let device = args.device.checked()?;
    let (model, _) = hf::load(
        &args.model,
        &LoadOptions {
            device,
            dtype: args.dtype.into(),
            strict: true,
        },
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let (windows, source) = if let Some(dir) = &args.data {
        let mut stream = TokenStream::open(dir, &args.split)?;
        let offsets = sample_offsets(stream.len(), args.num_windows, args.window_len, args.seed)
            .with_context(|| format!("sampling windows from {}", dir.display()))?;
        let windows = offsets
            .into_iter()
            .map(|o| Ok(stream.read(o, args.window_len)?.into_iter().map(i64::from).collect()))
            .collect::<Result<Vec<Vec<i64>>>>()?;
        (
            windows,
            format!(
                "{} split of {} (random offsets, seed {})",
                args.split,
                dir.display(),
                args.seed
            ),
        )
    } else if let Some(path) = &args.windows {
        (read_windows(path)?, format!("windows file {}", path.display()))
    } else if let Some(path) = &args.text {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(text).with_context(|| format!("{}: not valid UTF-8", path.display()))?;
        let tokens = Tokenizer::for_model_dir(&args.model)?.encode(&text)?;
        if args.consecutive {
            (
                consecutive_windows(&tokens, args.num_windows, args.window_len)?,
                format!("text {} (consecutive)", path.display()),
            )
        } else {
            let w = sample_windows(&tokens, args.num_windows, args.window_len, args.seed)
                .with_context(|| format!("sampling windows from {}", path.display()))?;
            (
                w,
                format!("text {} (random offsets, seed {})", path.display(), args.seed),
            )
        }
    } else {
        bail!("give --windows or --text");
    };
    let (n, t) = (windows.len() as i64, windows[0].len() as i64);
    let flat: Vec<i64> = windows.into_iter().flatten().collect();
    let ids = Tensor::from_slice(&flat).view([n, t]);
    let settings = Settings {
        tau: args.tau,
        eta: args.eta,
        mass_order: if args.mass_index_order {
            MassOrder::Index
        } else {
            MassOrder::Sorted
        },
        batch_size: args.batch_size,
        ..Settings::default()
    };
    let bar = crate::progress::Progress::new("{bar:40} {pos}/{len} windows eta {eta}", "windows");
    bar.set_length(n as u64);
    let name = args.model.display().to_string();
    let analysis = inheritune_analysis::analyze(&model, &name, &ids, &source, &settings, &mut |done, _| {
        bar.set_position(done as u64)
    })
    .with_context(|| format!("analysing {}", args.model.display()))?;
    bar.finish();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_atomic(
        &args.out.join("analysis.json"),
        &(serde_json::to_string_pretty(&analysis)? + "\n"),
    )?;
    let summary = analysis.summary();
    write_atomic(&args.out.join("summary.txt"), &summary)?;
    inheritune_analysis::plot::write_plots(&analysis, &args.out)?;
    print!("{summary}");
    Ok(())
}

fn write_atomic(path: &std::path::Path, text: &str) -> Result<()> {
    Ok(inheritune_fs::write_file(path, text.as_bytes())?)
}
