//! `inheritune recipe`: argument parsing for the recipe library (`inheritune-recipe`), which
//! holds the typed recipe, the stage graph, the growth loop, the stages and the report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use inheritune_model::DeviceSpec;
use inheritune_recipe::{Recipe, RunOptions, Selection};

/// Arguments of `inheritune recipe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  inheritune recipe --config xtask/recipes/tiny.toml --dry-run
  inheritune recipe --config xtask/recipes/gpt2-xl.toml --devices 8")]
pub struct Args {
    /// Recipe (TOML; see xtask/recipes/).
    #[arg(long)]
    config: PathBuf,
    /// Run folder (default: `runs/<recipe name>`).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Print the plan and exit.
    #[arg(long)]
    dry_run: bool,
    /// Redo this stage (name or prefix, e.g. `inheritune`) and every stage that depends on it.
    #[arg(long, conflicts_with = "only")]
    from: Option<String>,
    /// Run only this stage (name or prefix); the stages it needs must have finished.
    #[arg(long)]
    only: Option<String>,
    /// Device of every stage, one stage at a time.
    #[arg(
        long,
        default_value = "cpu",
        value_name = "cpu|cuda|cuda:N",
        conflicts_with = "devices"
    )]
    device: DeviceSpec,
    /// Devices stages share, independent stages running at once on disjoint ones: a list
    /// (`cuda:0,cuda:1`, or `cpu,cpu`) or a GPU count (`4` = cuda:0..cuda:3). A training stage
    /// on GPUs takes `--nproc` of them.
    #[arg(long, value_name = "LIST|N")]
    devices: Option<String>,
    /// Data-parallel ranks of every training stage (default: `[hardware] gpus`, else 1).
    #[arg(long, value_name = "N", value_parser = crate::args::positive)]
    nproc: Option<usize>,
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    let mut recipe = Recipe::from_file(&args.config)?;
    if let Some(n) = args.nproc {
        recipe.hardware.gpus = n;
    }
    let selection = Selection {
        from: args.from.clone(),
        only: args.only.clone(),
    };
    selection.check()?;
    if args.dry_run {
        print!("{}", inheritune_recipe::plan(&recipe)?);
        return Ok(());
    }
    recipe.resolve_reference(true)?;
    let devices = match &args.devices {
        Some(d) => inheritune_recipe::parse_devices(d)?,
        None => vec![args.device],
    };
    if devices[0].is_cuda() {
        for d in &devices {
            d.checked()?;
        }
    }
    let options = RunOptions {
        run: args
            .run
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name)),
        devices,
        selection,
    };
    let children = crate::children::Children {
        recipe: &recipe,
        run: options.run.clone(),
        exe: std::env::current_exe().context("locating the inheritune binary")?,
        ranks: recipe.hardware.gpus,
        all_devices: options.devices.len(),
    };
    inheritune_recipe::run(&recipe, &args.config, &options, &children)?;
    let report = options.run.join("report/report.md");
    if report.exists() {
        eprintln!("[recipe] report: {}", report.display());
    }
    Ok(())
}
