//! `inheritune recipe`: argument parsing for the recipe library (`inheritune-recipe`), which
//! holds the typed recipe, the stage graph, the growth loop, the stages and the report.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use inheritune_model::DeviceSpec;
use inheritune_recipe::{Children, Graph, Recipe, Selection};

/// Arguments of `inheritune recipe`.
#[derive(Debug, clap::Args)]
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
    #[arg(long, default_value = "cpu", conflicts_with = "devices")]
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

/// `--devices`: a list of devices or a GPU count.
fn parse_devices(text: &str) -> Result<Vec<DeviceSpec>> {
    if let Ok(n) = text.trim().parse::<usize>() {
        if n == 0 {
            bail!("--devices 0: give at least one device");
        }
        return Ok((0..n).map(DeviceSpec::Cuda).collect());
    }
    let devices: Vec<DeviceSpec> = text
        .split(',')
        .map(|d| d.parse::<DeviceSpec>().map_err(|e| anyhow::anyhow!("--devices: {e}")))
        .collect::<Result<_>>()?;
    if devices.iter().any(|d| d.is_cuda()) && devices.iter().any(|d| !d.is_cuda()) {
        bail!("--devices {text}: mixes cpu and cuda devices");
    }
    let mut seen = devices.clone();
    seen.sort();
    seen.dedup();
    if devices[0].is_cuda() && seen.len() != devices.len() {
        bail!("--devices {text}: names a GPU twice");
    }
    Ok(devices)
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
    let devices = match &args.devices {
        Some(d) => parse_devices(d)?,
        None => vec![args.device],
    };
    if devices[0].is_cuda() {
        for d in &devices {
            d.checked()?;
        }
    }
    let run_dir = args
        .run
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let text = std::fs::read(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    inheritune_fs::write_file(&run_dir.join("recipe.toml"), &text)?;
    inheritune_fs::write_file(&run_dir.join("plan.md"), inheritune_recipe::plan(&recipe)?.as_bytes())?;
    let l_ref = recipe.reference_config()?.n_layer();
    let eval = recipe.eval.data_dir.as_ref().is_some_and(|d| d.is_dir());
    let children = Children {
        recipe: &recipe,
        run: run_dir.clone(),
        exe: std::env::current_exe().context("locating the inheritune binary")?,
        ranks: recipe.hardware.gpus,
        all_devices: devices.len(),
    };
    let graph = Graph {
        run: run_dir.clone(),
        devices,
        selection,
        log: &|line| eprintln!("[recipe] {line}"),
    };
    let plan = |facts: &inheritune_recipe::Facts| inheritune_recipe::stages::stages(&recipe, l_ref, facts, eval);
    graph.run(&plan, &children)?;
    let report = run_dir.join("report/report.md");
    if report.exists() {
        eprintln!("[recipe] report: {}", report.display());
    }
    Ok(())
}
