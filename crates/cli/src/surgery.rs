//! `inheritune inherit | grow | stack | hybrid-stack | half-width | distill-init`: build a model
//! from others and write it as a Hugging Face folder with `surgery.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use inheritune_analysis::depth::Rule;
use inheritune_analysis::Analysis;
use inheritune_data::tokenizer::TOKENIZER_FILE;
use inheritune_data::Tokenizer;
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::CausalLm;
use inheritune_surgery::{Group, GrowMode, InheritMap, MapKind, Plan, Selection};

use crate::args::DTypeArg;
use inheritune_model::DeviceSpec;

/// Options every surgery verb shares.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
pub struct Common {
    /// Output folder (must not exist; written under a temporary name and renamed when complete).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every freshly initialised tensor (recorded in surgery.json).
    #[arg(long, default_value_t = 1337)]
    pub seed: i64,
    /// Device to run on.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: DeviceSpec,
    /// Format of the weights written.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
}

/// Map options shared by the verbs that take one.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
pub struct MapOpts {
    /// Which parameter groups to copy from the reference.
    #[arg(long, value_enum, default_value_t = MapKind::Paper)]
    pub map: MapKind,
    /// With --map custom: comma-separated groups (embed, pos, head, final-norm, attn, ln1, mlp, ln2).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
}

impl MapOpts {
    fn map(&self) -> Result<InheritMap> {
        match (self.map, self.groups.is_empty()) {
            (MapKind::Paper, true) => Ok(InheritMap::Paper),
            (MapKind::ReleasedCode, true) => Ok(InheritMap::ReleasedCode),
            (MapKind::Custom, true) => {
                bail!("--map custom needs --groups (a comma-separated subset of embed, pos, head, final-norm, attn, ln1, mlp, ln2)")
            }
            (MapKind::Custom, false) => {
                let groups = self
                    .groups
                    .iter()
                    .map(|g| Group::parse(g.trim()))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                Ok(InheritMap::Custom(groups))
            }
            (_, false) => bail!("--groups needs --map custom"),
        }
    }
}

/// `inheritune inherit`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Examples:
  inheritune surgery inherit --model .smollm2.gguf --layers 15 --out runs/smollm2-l15
  inheritune surgery inherit --model .smollm2.gguf --layers 22 --select angular --analysis runs/smollm2-analysis --out runs/a22
  inheritune surgery inherit --model openai-community/gpt2-medium --layers 4 --select 0,8,16,23 --out runs/l4")]
pub struct InheritArgs {
    /// Reference checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long = "model", alias = "from", value_name = "MODEL", value_parser = crate::args::checkpoint)]
    pub from: PathBuf,
    /// Number of blocks of the new model.
    #[arg(long)]
    pub layers: i64,
    #[command(flatten)]
    pub map: MapOpts,
    /// Which reference blocks: first (Inheritune), last, block-influence (the highest, ShortGPT),
    /// angular (all but the closest contiguous run, Gromov et al.), loo (the costliest to skip), or
    /// 0-based indices `i,j,k`. The criteria come from --analysis or from windows (--data, --windows, --text).
    #[arg(long, default_value = "first", value_name = "RULE|i,j,k")]
    pub select: String,
    /// An `inheritune analyze` folder whose criteria --select uses.
    #[arg(long, conflicts_with_all = ["data", "windows", "text"])]
    pub analysis: Option<PathBuf>,
    #[command(flatten)]
    pub windows: crate::analyze::WindowArgs,
    #[command(flatten)]
    pub common: Common,
}

/// `inheritune grow`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(
    after_help = "Example:\n  inheritune surgery grow --model runs/l6/final --reference gpt2-large --add 2 --out runs/l8"
)]
pub struct GrowArgs {
    /// The trained (shallower) model: a folder, or a Hub id.
    #[arg(long = "model", alias = "from", value_name = "MODEL", value_parser = crate::args::checkpoint)]
    pub from: PathBuf,
    /// The reference model whose next blocks are added: a folder, or a Hub id.
    #[arg(long, value_parser = crate::args::checkpoint)]
    pub reference: PathBuf,
    /// Blocks to add (Δ; the paper uses 2).
    #[arg(long, default_value_t = 2)]
    pub add: i64,
    /// restart: re-inherit l + Δ blocks from the reference (the paper's logs); warm-append: keep the trained model.
    #[arg(long, value_enum, default_value_t = GrowMode::Restart)]
    pub mode: GrowMode,
    /// With warm-append: zero the new blocks' output projections so the logits do not change.
    #[arg(long)]
    pub function_preserving: bool,
    #[command(flatten)]
    pub map: MapOpts,
    #[command(flatten)]
    pub common: Common,
}

/// `inheritune stack`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Example:\n  inheritune surgery stack --model runs/l6/final --out runs/l12-stacked")]
pub struct StackArgs {
    /// The trained n-layer model to duplicate into 2n layers: a folder, or a Hub id.
    #[arg(long = "model", alias = "from", value_name = "MODEL", value_parser = crate::args::checkpoint)]
    pub from: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// `inheritune hybrid-stack`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Example:\n  inheritune surgery hybrid-stack --model gpt2-medium --layers 12 --out runs/hybrid")]
pub struct HybridArgs {
    /// Reference checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long = "model", alias = "from", value_name = "MODEL", value_parser = crate::args::checkpoint)]
    pub from: PathBuf,
    /// Blocks of the new model (even); reference blocks 0..l/2-1 are placed twice.
    #[arg(long)]
    pub layers: i64,
    #[command(flatten)]
    pub map: MapOpts,
    #[command(flatten)]
    pub common: Common,
}

/// `inheritune half-width`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(
    after_help = "Example:\n  inheritune surgery half-width --model openai-community/gpt2-medium --out runs/half"
)]
pub struct HalfWidthArgs {
    /// Reference GPT-2 checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long = "model", alias = "from", value_name = "MODEL", value_parser = crate::args::checkpoint)]
    pub from: PathBuf,
    /// With an odd head count, keep ⌊H/2⌋ heads (GPT-2 XL keeps 12 of 25);
    /// without it an odd head count is refused.
    #[arg(long)]
    pub floor_heads: bool,
    #[command(flatten)]
    pub common: Common,
}

/// `inheritune distill-init`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(
    after_help = "Example:\n  inheritune surgery distill-init --model openai-community/gpt2 --layers 6 --out runs/distil"
)]
pub struct DistillArgs {
    /// Teacher checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long = "model", alias = "from", value_name = "MODEL", value_parser = crate::args::checkpoint)]
    pub from: PathBuf,
    /// Blocks of the student.
    #[arg(long)]
    pub layers: i64,
    /// Teacher block for each student block (default: 0, 2, 4, ... then from 3L/4 on).
    #[arg(long, value_delimiter = ',')]
    pub indices: Vec<i64>,
    #[command(flatten)]
    pub map: MapOpts,
    #[command(flatten)]
    pub common: Common,
}

fn load(dir: &Path, common: &Common) -> Result<CausalLm> {
    let options = LoadOptions {
        device: common.device.checked()?,
        dtype: common.dtype.into(),
        strict: true,
    };
    let (model, _) = hf::load(dir, &options).with_context(|| format!("loading {}", dir.display()))?;
    Ok(model)
}

fn parse_indices(list: &str) -> Result<Selection> {
    Ok(Selection::Indices(
        list.split(',')
            .map(|x| {
                x.trim().parse::<i64>().with_context(|| {
                    format!(
                        "--select: {x:?} is not a block index nor one of first, last, block-influence, angular, loo"
                    )
                })
            })
            .collect::<Result<_>>()?,
    ))
}

/// The blocks of `a.select` and, for a criterion rule, the settings to record (rule, values, kept).
fn inherit_selection(
    a: &InheritArgs,
    reference: &CausalLm,
) -> Result<(Selection, Vec<(&'static str, serde_json::Value)>)> {
    let Some(rule) = Rule::parse(&a.select) else {
        return Ok((parse_indices(&a.select)?, Vec::new()));
    };
    if !rule.needs_criteria() {
        let s = if rule == Rule::First {
            Selection::First
        } else {
            Selection::Last
        };
        return Ok((s, vec![("rule", rule.name().into())]));
    }
    let analysis: Analysis = match &a.analysis {
        Some(dir) => {
            let path = dir.join("analysis.json");
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let analysis: Analysis =
                serde_json::from_str(&text).with_context(|| format!("{}: not an analysis.json", path.display()))?;
            let n = reference.config().n_layer() as usize;
            if analysis.n_layer != n {
                bail!(
                    "{}: an analysis of a {}-layer model ({}), but {} has {n} layers",
                    path.display(),
                    analysis.n_layer,
                    analysis.model,
                    a.from.display()
                );
            }
            analysis
        }
        None if a.windows.given() => {
            let settings = inheritune_analysis::Settings {
                loo: rule == Rule::Loo,
                ..inheritune_analysis::Settings::default()
            };
            crate::analyze::compute_on(reference, &a.from, &a.windows, &settings)?
        }
        None => bail!(
            "--select {}: give the criteria: --analysis DIR (an inheritune analyze folder{}) or windows to compute them on (--data, --windows or --text)",
            rule.name(),
            if rule == Rule::Loo { " made with --loo" } else { "" }
        ),
    };
    let keep = usize::try_from(a.layers).map_err(|_| anyhow::anyhow!("--layers {} must be positive", a.layers))?;
    let kept = analysis
        .select(rule, keep)
        .with_context(|| format!("--select {}", rule.name()))?;
    let values: serde_json::Value = match rule {
        Rule::BlockInfluence => analysis
            .layers
            .iter()
            .map(|l| l.block_influence)
            .collect::<Vec<_>>()
            .into(),
        Rule::Loo => analysis
            .layers
            .iter()
            .map(|l| l.loo_nll_increase)
            .collect::<Vec<_>>()
            .into(),
        _ => serde_json::to_value(
            analysis
                .angular_distance
                .get(&(analysis.n_layer - keep).to_string())
                .cloned()
                .unwrap_or_default(),
        )?,
    };
    let dropped: Vec<usize> = (0..analysis.n_layer).filter(|l| !kept.contains(l)).collect();
    eprintln!(
        "[surgery] --select {}: keeps blocks {kept:?}, drops {dropped:?} (0-based)",
        rule.name()
    );
    let settings = vec![
        ("rule", rule.name().into()),
        ("criterion", values),
        ("criteria_windows", analysis.window_source.clone().into()),
    ];
    Ok((Selection::Indices(kept.iter().map(|&k| k as i64).collect()), settings))
}

/// The tokenizer files a Hugging Face folder may hold, copied with the weights so that BOS/EOS
/// rules and chat templates survive surgery.
const TOKENIZER_FILES: [&str; 8] = [
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
];

/// Writes the model, the tokenizer files of `tokenizer_from` (or the built-in GPT-2 tokenizer
/// for a GPT-2 model whose source has none) and `surgery.json` into `out`, through a
/// temporary folder renamed when complete.
fn write(model: &CausalLm, plan: &Plan, tokenizer_from: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        bail!("{}: already exists; choose a new --out folder", out.display());
    }
    let mut tmp_name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    hf::save(model, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    for name in TOKENIZER_FILES {
        let src = tokenizer_from.join(name);
        if src.exists() {
            std::fs::copy(&src, tmp.join(name)).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    // A GPT-2 folder without a tokenizer means GPT-2's (as everywhere in this project); no
    // other family's is guessed.
    let gpt2 = matches!(model.config(), inheritune_model::ModelConfig::Gpt2(_));
    if !tokenizer_from.join(TOKENIZER_FILE).exists() && gpt2 {
        Tokenizer::gpt2()?.save(&tmp.join(TOKENIZER_FILE))?;
    }
    let report = serde_json::to_string_pretty(plan)?;
    std::fs::write(tmp.join("surgery.json"), report + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    inheritune_fs::commit_dir(&tmp, out)?;
    let copied = plan
        .entries
        .iter()
        .filter(|e| matches!(e.source, inheritune_surgery::Source::Copy { .. }))
        .count();
    tracing::info!(
        "{}: {} layers, {} parameters; {} of {} tensors copied",
        out.display(),
        model.config().n_layer(),
        model.num_parameters(),
        copied,
        plan.entries.len()
    );
    eprintln!(
        "[surgery] {}: wrote {} ({} layers, {} parameters, {copied} of {} tensors from its sources)\n\
         next: train it before use (a cut model predicts poorly until trained): \
         inheritune train --init {} --config run.toml --run runs/NAME",
        plan.operation,
        out.display(),
        model.config().n_layer(),
        model.num_parameters(),
        plan.entries.len(),
        out.display()
    );
    Ok(())
}

/// Runs `inheritune inherit`.
pub fn inherit(a: &InheritArgs) -> Result<()> {
    if a.common.out.exists() {
        bail!("{}: already exists; choose a new --out folder", a.common.out.display());
    }
    let reference = load(&a.from, &a.common)?;
    let (selection, settings) = inherit_selection(a, &reference)?;
    let (model, mut plan) =
        inheritune_surgery::inherit(&reference, a.layers, &a.map.map()?, &selection, a.common.seed)?;
    for (key, value) in settings {
        plan.settings.insert(key.to_string(), value);
    }
    write(&model, &plan, &a.from, &a.common.out)
}

/// Runs `inheritune grow`.
pub fn grow(a: &GrowArgs) -> Result<()> {
    let trained = load(&a.from, &a.common)?;
    let reference = load(&a.reference, &a.common)?;
    let (model, plan) = inheritune_surgery::grow(
        &trained,
        &reference,
        a.add,
        a.mode,
        &a.map.map()?,
        a.function_preserving,
        a.common.seed,
    )?;
    write(&model, &plan, &a.reference, &a.common.out)
}

/// Runs `inheritune stack`.
pub fn stack(a: &StackArgs) -> Result<()> {
    let small = load(&a.from, &a.common)?;
    let (model, plan) = inheritune_surgery::stack(&small, a.common.seed)?;
    write(&model, &plan, &a.from, &a.common.out)
}

/// Runs `inheritune hybrid-stack`.
pub fn hybrid_stack(a: &HybridArgs) -> Result<()> {
    let reference = load(&a.from, &a.common)?;
    let (model, plan) = inheritune_surgery::hybrid_stack(&reference, a.layers, &a.map.map()?, a.common.seed)?;
    write(&model, &plan, &a.from, &a.common.out)
}

/// Runs `inheritune half-width`.
pub fn half_width(a: &HalfWidthArgs) -> Result<()> {
    let reference = load(&a.from, &a.common)?;
    let heads = reference.config().n_head();
    if !matches!(reference.config(), inheritune_model::ModelConfig::Gpt2(_)) {
        bail!(
            "{}: half-width is defined for GPT-2 models only (this is a {} model)",
            a.from.display(),
            reference.config().model_type()
        );
    }
    if heads % 2 == 1 && !a.floor_heads {
        bail!(
            "{}: {heads} heads do not halve; pass --floor-heads to keep {} (the choice made for GPT-2 XL)",
            a.from.display(),
            heads / 2
        );
    }
    let (model, plan) = inheritune_surgery::half_width(&reference, a.common.seed)?;
    write(&model, &plan, &a.from, &a.common.out)
}

/// Runs `inheritune distill-init`.
pub fn distill_init(a: &DistillArgs) -> Result<()> {
    let reference = load(&a.from, &a.common)?;
    let indices = (!a.indices.is_empty()).then(|| a.indices.clone());
    let (model, plan) = inheritune_surgery::distill_init(&reference, a.layers, indices, &a.map.map()?, a.common.seed)?;
    write(&model, &plan, &a.from, &a.common.out)
}
