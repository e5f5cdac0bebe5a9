//! `inheritune recipe`: the whole Inheritune recipe (spec Algorithm 1, §1.2–§1.6) as one
//! resumable command.
//!
//! tokenizer (optional BPE) → data → reference (trained, or a given checkpoint scored on val) →
//! analyze the reference → Inheritune rounds (inherit l0 = L/2 blocks, train the same budget,
//! compare the final full-val loss with the reference's within `tolerance`, grow by Δ while
//! worse) → baselines (same-size scratch for 1× and 2× the steps; optionally hybrid stacking,
//! half-width, DistilBERT-style init, stacking) → analyze the target → downstream eval when eval
//! data is present → report.
//!
//! Every stage runs as a child `inheritune` process and writes `<run>/<stage>/DONE` (a JSON of its
//! facts) last; a rerun skips finished stages, and an interrupted training stage resumes from its
//! last checkpoint (`train --resume`). `--from STAGE` redoes that stage and everything after it,
//! `--only STAGE` runs one stage, `--dry-run` prints the plan with parameters, tokens, FLOPs and
//! H100 hours.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use inheritune_model::hf::write_atomic;
use inheritune_model::ModelConfig;
use inheritune_train::config::ModelSection;
use serde::Deserialize;
use serde_json::{json, Value};

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
    /// Redo this stage (name or prefix, e.g. `inheritune`) and everything after it.
    #[arg(long, conflicts_with = "only")]
    from: Option<String>,
    /// Run only this stage (its inputs must exist).
    #[arg(long)]
    only: Option<String>,
    /// Device for training, analysis and eval.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Data-parallel ranks of every training stage (default: `[hardware] gpus`, else 1).
    #[arg(long, value_name = "N")]
    nproc: Option<usize>,
}

/// A recipe file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Name (default run folder `runs/<name>`).
    pub name: String,
    /// One line on what it reproduces.
    #[serde(default)]
    pub description: String,
    /// Data.
    pub data: DataCfg,
    /// The reference model.
    pub reference: ReferenceCfg,
    /// `[train]` keys shared by every training run (a run-config `[train]` table), plus `preset`.
    pub train: toml::Table,
    /// Inheritune's own settings.
    #[serde(default)]
    pub inheritune: InherituneCfg,
    /// Baselines.
    #[serde(default)]
    pub baselines: BaselinesCfg,
    /// Attention analysis.
    #[serde(default)]
    pub analysis: AnalysisCfg,
    /// Downstream evaluation.
    #[serde(default)]
    pub eval: EvalCfg,
    /// Assumptions of the dry-run's cost estimate.
    #[serde(default)]
    pub hardware: HardwareCfg,
    /// The paper's final val losses (spec §6.1) by row: reference, inheritune, scratch, scratch_2x.
    #[serde(default)]
    pub paper: BTreeMap<String, f64>,
}

/// `[data]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCfg {
    /// Raw inputs for `inheritune prepare` (paths relative to the working directory).
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// An already prepared folder instead of inputs.
    #[serde(default)]
    pub prepared: Option<PathBuf>,
    /// `prepare` preset.
    #[serde(default = "generic")]
    pub preset: String,
    /// Val split: the first N tokens.
    #[serde(default)]
    pub val_tokens: Option<u64>,
    /// Val split: a share of documents.
    #[serde(default)]
    pub val_fraction: Option<f64>,
    /// `gpt2` (built-in), a tokenizer.json path, or `bpe-<N>` to train one on the inputs.
    #[serde(default = "gpt2")]
    pub tokenizer: String,
}

fn generic() -> String {
    "generic".into()
}
fn gpt2() -> String {
    "gpt2".into()
}

/// `[reference]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceCfg {
    /// Its architecture, as a run config's `[model]`.
    pub model: ModelSection,
    /// A trained checkpoint to use instead of training one (LLaMA low-data regime).
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
}

/// `[inheritune]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InherituneCfg {
    /// Start depth (default L/2, spec §1.5).
    pub start_depth: Option<i64>,
    /// Layers added per round (Δ).
    pub grow_by: i64,
    /// `restart` (spec §1.6 DECISION) or `warm-append`.
    pub growth: String,
    /// `paper` or `released-code` (spec §1.4).
    pub map: String,
    /// Match when target ≤ reference + tolerance (spec §1.6 DECISION: 0.005).
    pub tolerance: f64,
    /// Rounds at most.
    pub max_rounds: usize,
}

impl Default for InherituneCfg {
    fn default() -> Self {
        InherituneCfg {
            start_depth: None,
            grow_by: 2,
            growth: "restart".into(),
            map: "paper".into(),
            tolerance: 0.005,
            max_rounds: 4,
        }
    }
}

/// `[baselines]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselinesCfg {
    /// Same-size scratch, same steps.
    pub scratch: bool,
    /// Same-size scratch, twice the steps.
    pub scratch_2x: bool,
    /// Hybrid stacking (reference's first l/2 blocks twice).
    pub hybrid_stacking: bool,
    /// Half-width (GPT-2 only).
    pub half_width: bool,
    /// DistilBERT-style student init.
    pub distill_init: bool,
    /// Stacking: an l/2 scratch model trained, then duplicated.
    pub stacking: bool,
}

impl Default for BaselinesCfg {
    fn default() -> Self {
        BaselinesCfg {
            scratch: true,
            scratch_2x: true,
            hybrid_stacking: false,
            half_width: false,
            distill_init: false,
            stacking: false,
        }
    }
}

/// `[analysis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisCfg {
    /// Windows.
    pub windows: usize,
    /// Tokens per window.
    pub window_len: usize,
}

impl Default for AnalysisCfg {
    fn default() -> Self {
        AnalysisCfg {
            windows: 100,
            window_len: 100,
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalCfg {
    /// Folder of task data (datasets/eval.md); the stage is skipped when it does not exist.
    pub data_dir: Option<PathBuf>,
    /// Tasks.
    pub tasks: Vec<String>,
    /// First N documents per task.
    pub limit: Option<usize>,
}

impl Default for EvalCfg {
    fn default() -> Self {
        EvalCfg {
            data_dir: None,
            tasks: ["arc_easy", "piqa", "sciq", "hellaswag", "lambada_openai"]
                .map(String::from)
                .to_vec(),
            limit: None,
        }
    }
}

/// `[hardware]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardwareCfg {
    /// Peak bf16 TFLOP/s of the GPU the estimate assumes.
    pub peak_tflops: f64,
    /// Model FLOPs utilisation assumed.
    pub mfu: f64,
    /// The GPU's name.
    pub gpu: String,
    /// Data-parallel ranks of every training stage (`--nproc` overrides it).
    pub gpus: usize,
    /// Fraction of linear speed-up the wall-clock estimate assumes on several GPUs (the
    /// README derives about 0.97 for GPT-2 XL on 8 × H100 with NVLink).
    pub scaling_efficiency: f64,
}

impl Default for HardwareCfg {
    fn default() -> Self {
        HardwareCfg {
            peak_tflops: 989.0,
            mfu: 0.40,
            gpu: "H100 SXM".into(),
            gpus: 1,
            scaling_efficiency: 0.9,
        }
    }
}

impl Recipe {
    /// Reads a recipe.
    ///
    /// # Errors
    /// Unreadable file, unknown keys, wrong types.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
    }

    fn reference_config(&self) -> Result<ModelConfig> {
        if let Some(ckpt) = &self.reference.checkpoint {
            if self.reference.model.preset.is_none() && self.reference.model.config.is_none() {
                return Ok(ModelConfig::from_file(&ckpt.join("config.json"))?);
            }
        }
        let cfg = inheritune_train::RunConfig {
            preset: None,
            model: self.reference.model.clone(),
            data: inheritune_train::config::DataSection {
                dir: PathBuf::new(),
                order: inheritune_data::loader::Order::Random,
            },
            train: Default::default(),
        };
        Ok(cfg.model_config()?)
    }

    /// The `[train]` section every run shares, with `max_steps` scaled by `factor`.
    fn train_table(&self, factor: u64) -> Result<(Option<String>, toml::Table)> {
        let mut t = self.train.clone();
        let preset = t.remove("preset").and_then(|v| v.as_str().map(String::from));
        let resolved = self.resolved_train()?;
        if factor != 1 {
            t.insert(
                "max_steps".into(),
                toml::Value::Integer((resolved.max_steps * factor) as i64),
            );
            // The cosine runs over the whole (longer) budget.
            if t.contains_key("decay_steps") {
                let d = resolved.decay_steps.unwrap_or(resolved.max_steps) * factor;
                t.insert("decay_steps".into(), toml::Value::Integer(d as i64));
            }
        }
        Ok((preset, t))
    }

    fn resolved_train(&self) -> Result<inheritune_train::config::TrainSection> {
        let mut t = self.train.clone();
        let preset = t.remove("preset");
        t.remove("order");
        let mut doc = toml::Table::new();
        if let Some(p) = preset {
            doc.insert("preset".into(), p);
        }
        let one = |k: &str, v: &str| {
            let mut t = toml::Table::new();
            t.insert(k.into(), toml::Value::String(v.into()));
            toml::Value::Table(t)
        };
        doc.insert("model".into(), one("preset", "gpt2-tiny"));
        doc.insert("data".into(), one("dir", "."));
        doc.insert("train".into(), toml::Value::Table(t));
        Ok(inheritune_train::RunConfig::parse(&toml::to_string(&doc)?)?.train)
    }
}

/// A training run's cost.
struct Cost {
    params: i64,
    tokens: f64,
    flops: f64,
}

fn cost(config: &ModelConfig, tokens_per_step: u64, steps: u64, seq: usize) -> Cost {
    let tokens = (tokens_per_step * steps) as f64;
    Cost {
        params: config.num_parameters(),
        tokens,
        flops: inheritune_train::trainer::flops_per_token(config, seq) * tokens,
    }
}

/// The plan `--dry-run` prints.
pub fn plan(recipe: &Recipe) -> Result<String> {
    let reference = recipe.reference_config()?;
    let train = recipe.resolved_train()?;
    let hw = &recipe.hardware;
    let gpus = hw.gpus.max(1);
    train.accum(gpus as u64)?;
    let tps = train.tokens_per_step(gpus as u64);
    let efficiency = if gpus > 1 { hw.scaling_efficiency } else { 1.0 };
    let wall = |f: f64| f / (hw.peak_tflops * 1e12 * hw.mfu) / 3600.0 / (gpus as f64 * efficiency);
    let l_ref = reference.n_layer();
    let l0 = recipe.inheritune.start_depth.unwrap_or(l_ref / 2);
    let hours = |f: f64| f / (hw.peak_tflops * 1e12 * hw.mfu) / 3600.0;
    let mut out = format!(
        "recipe {}: {}\nreference {} ({} layers x {}), {} tokens/step x {} steps, seq {}, lr {}\n\
         cost at {:.0}% MFU of {} ({:.0} TFLOP/s bf16): FLOPs = (6N + 12*L*H*Q*T) per token x tokens\n\n",
        recipe.name,
        recipe.description,
        reference.model_type(),
        l_ref,
        reference.n_embd(),
        tps,
        train.max_steps,
        train.seq_len,
        train.lr,
        hw.mfu * 100.0,
        hw.gpu,
        hw.peak_tflops
    );
    out += "| stage | model | parameters | tokens | FLOPs | GPU-hours |\n| --- | --- | --- | --- | --- | --- |\n";
    let mut total = 0.0;
    let mut row = |stage: &str, config: &ModelConfig, factor: u64, out: &mut String| {
        let c = cost(config, tps, train.max_steps * factor, train.seq_len);
        total += c.flops;
        *out += &format!(
            "| {stage} | {} layers x {} | {} | {:.3e} | {:.3e} | {:.1} |\n",
            config.n_layer(),
            config.n_embd(),
            c.params,
            c.tokens,
            c.flops,
            hours(c.flops)
        );
    };
    let mut prelude = Vec::new();
    if recipe.data.tokenizer.starts_with("bpe-") {
        prelude.push(format!(
            "| tokenizer | train a byte-level BPE ({}) | | | | |",
            recipe.data.tokenizer
        ));
    }
    prelude.push("| data | inheritune prepare | | | | |".to_string());
    out += &prelude.join("\n");
    out += "\n";
    if recipe.reference.checkpoint.is_some() {
        out += &format!(
            "| reference | given checkpoint, full val pass | {} | | | |\n",
            reference.num_parameters()
        );
    } else {
        row("reference", &reference, 1, &mut out);
    }
    out += "| analyze-reference | attention rank and mass | | | | |\n";
    let target = reference.with_layers(l0);
    row(&format!("inheritune-l{l0} (round 1)"), &target, 1, &mut out);
    let grown = reference.with_layers((l0 + recipe.inheritune.grow_by).min(l_ref));
    out += &format!(
        "| (each further round, if worse than the reference by > {}) | {} layers x {} | {} | as round 1 | | |\n",
        recipe.inheritune.tolerance,
        grown.n_layer(),
        grown.n_embd(),
        grown.num_parameters()
    );
    let b = &recipe.baselines;
    if b.scratch {
        row(&format!("scratch-l{l0}"), &target, 1, &mut out);
    }
    if b.scratch_2x {
        row(&format!("scratch-l{l0}-2x"), &target, 2, &mut out);
    }
    if b.hybrid_stacking {
        row(&format!("hybrid-stack-l{l0}"), &target, 1, &mut out);
    }
    if b.distill_init {
        row(&format!("distill-init-l{l0}"), &target, 1, &mut out);
    }
    if b.stacking {
        row(
            &format!("scratch-l{}", l0 / 2),
            &reference.with_layers(l0 / 2),
            1,
            &mut out,
        );
        row(&format!("stack-l{l0}"), &target, 1, &mut out);
    }
    out += "| analyze-target | attention rank and mass | | | | |\n";
    out += &format!(
        "| eval | {} | | | | |\n| report | report.md, figures, summary.json | | | | |\n",
        if recipe.eval.data_dir.is_some() {
            recipe.eval.tasks.join(", ")
        } else {
            "skipped (no [eval] data_dir)".into()
        }
    );
    out += &format!(
        "\ntotal (one Inheritune round): {:.3e} FLOPs, {:.1} GPU-hours on {}\n",
        total,
        hours(total),
        hw.gpu
    );
    out += &format!(
        "wall clock on {gpus} x {}: {:.1} hours ({:.0}% scaling efficiency assumed{})\n",
        hw.gpu,
        wall(total),
        efficiency * 100.0,
        if gpus > 1 {
            ", [hardware] scaling_efficiency"
        } else {
            ": one GPU"
        }
    );
    Ok(out)
}

/// The run of one recipe.
struct Runner<'a> {
    recipe: &'a Recipe,
    run: PathBuf,
    device: String,
    exe: PathBuf,
    from: Option<String>,
    only: Option<String>,
    /// Set once `from` matched: later stages are redone too.
    redo: bool,
}

fn write_done(dir: &Path, facts: &Value) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    Ok(write_atomic(
        &dir.join("DONE"),
        serde_json::to_string_pretty(facts)?.as_bytes(),
    )?)
}

fn read_done(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("DONE")).ok()?).ok()
}

impl Runner<'_> {
    fn dir(&self, stage: &str) -> PathBuf {
        self.run.join(stage)
    }

    /// Runs `f` for `stage` unless it is done (or filtered out); returns its facts.
    fn stage(&mut self, stage: &str, f: impl FnOnce(&mut Self, &Path) -> Result<Value>) -> Result<Option<Value>> {
        let dir = self.dir(stage);
        if let Some(from) = &self.from {
            if !self.redo && stage.starts_with(from.as_str()) {
                self.redo = true;
            }
        }
        if let Some(only) = &self.only {
            if !stage.starts_with(only.as_str()) {
                return Ok(read_done(&dir));
            }
        }
        if self.redo && dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        if let Some(facts) = read_done(&dir) {
            eprintln!("[recipe] {stage}: done");
            return Ok(Some(facts));
        }
        if self.from.is_some() && !self.redo {
            bail!(
                "stage {stage} has not run yet; it comes before --from {}",
                self.from.as_deref().unwrap_or("")
            );
        }
        eprintln!("[recipe] {stage}: running");
        std::fs::create_dir_all(&dir)?;
        let facts = f(self, &dir).with_context(|| format!("stage {stage}"))?;
        write_done(&dir, &facts)?;
        Ok(Some(facts))
    }

    fn inheritune(&self, args: &[&str]) -> Result<String> {
        let shown = args.join(" ");
        eprintln!("[recipe]   inheritune {shown}");
        let out = Command::new(&self.exe)
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running inheritune {shown}"))?;
        if !out.status.success() {
            bail!(
                "inheritune {} failed ({})",
                args.first().copied().unwrap_or(""),
                out.status
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn data_dir(&self) -> PathBuf {
        self.recipe.data.prepared.clone().unwrap_or_else(|| self.dir("data"))
    }

    /// Writes a run config for a training stage and trains (resuming a partial run).
    fn train(&self, dir: &Path, model: toml::Table, init: Option<&Path>, factor: u64) -> Result<Value> {
        let (preset, train) = self.recipe.train_table(factor)?;
        let mut doc = toml::Table::new();
        if let Some(p) = preset {
            doc.insert("preset".into(), toml::Value::String(p));
        }
        doc.insert("model".into(), toml::Value::Table(model));
        let mut data = toml::Table::new();
        data.insert("dir".into(), toml::Value::String(self.data_dir().display().to_string()));
        if let Some(order) = self.recipe.train.get("order") {
            data.insert("order".into(), order.clone());
        }
        doc.insert("data".into(), toml::Value::Table(data));
        let mut train = train;
        train.remove("order");
        doc.insert("train".into(), toml::Value::Table(train));
        let config = dir.join("config.toml");
        write_atomic(&config, toml::to_string(&doc)?.as_bytes())?;
        let run = dir.join("run");
        let (config_s, run_s) = (config.display().to_string(), run.display().to_string());
        let mut args = vec![
            "train",
            "--config",
            &config_s,
            "--run",
            &run_s,
            "--device",
            &self.device,
        ];
        let init_s = init.map(|p| p.display().to_string());
        if let Some(i) = &init_s {
            args.extend(["--init", i.as_str()]);
        }
        if run.join("metrics.jsonl").exists() {
            args.push("--resume");
        }
        let nproc = self.recipe.hardware.gpus.to_string();
        if self.recipe.hardware.gpus > 1 {
            args.extend(["--nproc", nproc.as_str()]);
        }
        let printed = self.inheritune(&args)?;
        let summary: Value = serde_json::from_str(printed.trim().lines().last().unwrap_or("{}"))?;
        self.copy_tokenizer(&run.join("final"))?;
        Ok(json!({
            "final_val_loss": summary["final_val_loss"],
            "final_val_tokens": summary["final_val_tokens"],
            "steps": summary["steps"],
            "model": run.join("final").display().to_string(),
            "run": run_s,
        }))
    }

    /// Puts the recipe's tokenizer next to a model, so analysis and eval find it.
    fn copy_tokenizer(&self, model: &Path) -> Result<()> {
        let tok = self.dir("tokenizer");
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            let src = if self.recipe.data.tokenizer.starts_with("bpe-") {
                tok.join(f)
            } else if f == "tokenizer.json" && self.recipe.data.tokenizer != "gpt2" {
                PathBuf::from(&self.recipe.data.tokenizer)
            } else {
                continue;
            };
            if src.exists() && model.exists() {
                let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
                write_atomic(&model.join(f), &bytes)?;
            }
        }
        Ok(())
    }

    fn model_table(config_path: &Path) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("config".into(), toml::Value::String(config_path.display().to_string()));
        t
    }

    fn analyze(&self, model: &str, dir: &Path) -> Result<Value> {
        let a = &self.recipe.analysis;
        let (out, data) = (dir.display().to_string(), self.data_dir().display().to_string());
        let (n, w) = (a.windows.to_string(), a.window_len.to_string());
        self.inheritune(&[
            "analyze",
            "--model",
            model,
            "--data",
            &data,
            "--out",
            &out,
            "--num-windows",
            &n,
            "--window-len",
            &w,
            "--device",
            &self.device,
        ])?;
        let analysis: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("analysis.json"))?)?;
        Ok(
            json!({"model": model, "analysis": dir.join("analysis.json").display().to_string(),
                  "n_layer": analysis["n_layer"]}),
        )
    }
}

fn loss_of(facts: &Option<Value>) -> Option<f64> {
    facts.as_ref()?.get("final_val_loss")?.as_f64()
}

/// The recipe's stages in order; names ending in `-l` take a depth (`inheritune-l24`,
/// `scratch-l24-2x`), `eval-` a model.
const STAGES: &[&str] = &[
    "tokenizer",
    "data",
    "reference",
    "analyze-reference",
    "inheritune-l",
    "scratch-l",
    "hybrid-stack-l",
    "half-width",
    "distill-init-l",
    "stack-l",
    "analyze-target",
    "eval-",
    "report",
];

/// Whether `name` names a stage or a prefix of stage names (`--from` / `--only`).
fn is_stage(name: &str) -> bool {
    !name.is_empty()
        && STAGES.iter().any(|s| {
            if s.starts_with(name) {
                return true;
            }
            let Some(rest) = name.strip_prefix(s) else {
                return false;
            };
            match *s {
                "eval-" => true,
                s if s.ends_with("-l") => {
                    let depth = rest.strip_suffix("-2x").unwrap_or(rest);
                    !depth.is_empty() && depth.bytes().all(|b| b.is_ascii_digit())
                }
                _ => false,
            }
        })
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    let mut recipe = Recipe::from_file(&args.config)?;
    if let Some(n) = args.nproc {
        if n == 0 {
            bail!("--nproc must be at least 1");
        }
        recipe.hardware.gpus = n;
    }
    for (flag, name) in [("--from", &args.from), ("--only", &args.only)] {
        if let Some(name) = name {
            if !is_stage(name) {
                bail!(
                    "{flag} {name:?}: not a stage of the recipe (stages: {}; a prefix such as `inheritune` names all its rounds)",
                    STAGES.join(", ")
                );
            }
        }
    }
    if args.dry_run {
        print!("{}", plan(&recipe)?);
        return Ok(());
    }
    let run_dir = args
        .run
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let text = std::fs::read(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    write_atomic(&run_dir.join("recipe.toml"), &text).with_context(|| format!("copying {}", args.config.display()))?;
    write_atomic(&run_dir.join("plan.md"), plan(&recipe)?.as_bytes())?;
    let mut r = Runner {
        recipe: &recipe,
        run: run_dir.clone(),
        device: args.device.clone(),
        exe: std::env::current_exe().context("locating the inheritune binary")?,
        from: args.from.clone(),
        only: args.only.clone(),
        redo: false,
    };
    let reference_cfg = recipe.reference_config()?;
    let l_ref = reference_cfg.n_layer();

    // Tokenizer and data.
    if let Some(n) = recipe.data.tokenizer.strip_prefix("bpe-") {
        let n = n.to_string();
        r.stage("tokenizer", |r, dir| {
            let mut a = vec![
                "train-tokenizer".to_string(),
                "--vocab-size".into(),
                n.clone(),
                "--out".into(),
            ];
            a.push(dir.display().to_string());
            a.push("--input".into());
            a.extend(recipe.data.inputs.iter().map(|p| p.display().to_string()));
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let printed = r.inheritune(&a)?;
            Ok(serde_json::from_str(printed.trim())?)
        })?;
    }
    if recipe.data.prepared.is_none() {
        r.stage("data", |r, dir| {
            let mut a = vec!["prepare".to_string(), "--out".into(), dir.display().to_string()];
            a.extend(["--preset".into(), recipe.data.preset.clone()]);
            if let Some(v) = recipe.data.val_tokens {
                a.extend(["--val-tokens".into(), v.to_string()]);
            }
            if let Some(v) = recipe.data.val_fraction {
                a.extend(["--val-fraction".into(), v.to_string()]);
            }
            if recipe.data.tokenizer.starts_with("bpe-") {
                a.extend([
                    "--tokenizer".into(),
                    r.dir("tokenizer").join("tokenizer.json").display().to_string(),
                ]);
            } else if recipe.data.tokenizer != "gpt2" {
                a.extend(["--tokenizer".into(), recipe.data.tokenizer.clone()]);
            }
            a.push("--input".into());
            a.extend(recipe.data.inputs.iter().map(|p| p.display().to_string()));
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let printed = r.inheritune(&a)?;
            Ok(serde_json::from_str(printed.trim().lines().last().unwrap_or("{}"))?)
        })?;
    }

    // The reference.
    let reference = r.stage("reference", |r, dir| {
        if let Some(ckpt) = &recipe.reference.checkpoint {
            let (m, d) = (ckpt.display().to_string(), r.data_dir().display().to_string());
            let seq = recipe.resolved_train()?.seq_len.to_string();
            let printed = r.inheritune(&[
                "eval",
                "loss",
                "--model",
                &m,
                "--data",
                &d,
                "--seq-len",
                &seq,
                "--device",
                &r.device,
            ])?;
            let v: Value = serde_json::from_str(printed.trim())?;
            return Ok(json!({"final_val_loss": v["loss"], "final_val_tokens": v["tokens"], "model": m}));
        }
        let config_path = dir.join("model-config.json");
        write_atomic(
            &config_path,
            serde_json::to_string_pretty(&reference_cfg.to_value())?.as_bytes(),
        )?;
        r.train(dir, Runner::model_table(&config_path), None, 1)
    })?;
    let ref_model = reference
        .as_ref()
        .and_then(|f| f["model"].as_str().map(String::from))
        .unwrap_or_default();
    let ref_loss = loss_of(&reference);
    r.stage("analyze-reference", |r, dir| r.analyze(&ref_model, dir))?;

    // Inheritune rounds.
    let ic = &recipe.inheritune;
    let mut l = ic.start_depth.unwrap_or(l_ref / 2);
    let mut rounds: Vec<(i64, Option<Value>)> = Vec::new();
    for round in 1..=ic.max_rounds {
        let name = format!("inheritune-l{l}");
        let prev = rounds
            .last()
            .and_then(|(_, f)| f.as_ref()?["model"].as_str().map(String::from));
        let facts = r.stage(&name, |r, dir| {
            let init = dir.join("init");
            let (init_s, l_s, add_s) = (init.display().to_string(), l.to_string(), ic.grow_by.to_string());
            // The surgery writes its folder atomically: present means complete (a resumed stage).
            match (&prev, ic.growth.as_str()) {
                _ if init.join("config.json").exists() => {}
                (Some(p), "warm-append") => {
                    r.inheritune(&[
                        "grow",
                        "--from",
                        p,
                        "--reference",
                        &ref_model,
                        "--add",
                        &add_s,
                        "--mode",
                        "warm-append",
                        "--out",
                        &init_s,
                    ])?;
                }
                _ => {
                    r.inheritune(&[
                        "inherit", "--from", &ref_model, "--layers", &l_s, "--map", &ic.map, "--out", &init_s,
                    ])?;
                }
            }
            let mut facts = r.train(dir, Runner::model_table(&init.join("config.json")), Some(&init), 1)?;
            facts["layers"] = json!(l);
            facts["round"] = json!(round);
            Ok(facts)
        })?;
        let loss = loss_of(&facts);
        rounds.push((l, facts));
        let matched = match (loss, ref_loss) {
            (Some(t), Some(rl)) => t <= rl + ic.tolerance,
            _ => true, // not run (e.g. --only): stop here
        };
        if matched || l + ic.grow_by > l_ref {
            break;
        }
        l += ic.grow_by;
    }
    let (l_final, target) = rounds.last().cloned().unwrap_or((l, None));
    let target_model = target
        .as_ref()
        .and_then(|f| f["model"].as_str().map(String::from))
        .unwrap_or_default();

    // Baselines.
    let mut baselines: Vec<(String, Option<Value>)> = Vec::new();
    let b = &recipe.baselines;
    let scratch_cfg = reference_cfg.with_layers(l_final);
    let scratch = |r: &mut Runner, name: &str, layers: i64, factor: u64| {
        let cfg = reference_cfg.with_layers(layers);
        r.stage(name, |r, dir| {
            let config_path = dir.join("model-config.json");
            write_atomic(&config_path, serde_json::to_string_pretty(&cfg.to_value())?.as_bytes())?;
            let mut f = r.train(dir, Runner::model_table(&config_path), None, factor)?;
            f["layers"] = json!(layers);
            Ok(f)
        })
    };
    if b.scratch {
        let name = format!("scratch-l{l_final}");
        baselines.push((name.clone(), scratch(&mut r, &name, scratch_cfg.n_layer(), 1)?));
    }
    if b.scratch_2x {
        let name = format!("scratch-l{l_final}-2x");
        baselines.push((name.clone(), scratch(&mut r, &name, scratch_cfg.n_layer(), 2)?));
    }
    let surgery_baseline = |r: &mut Runner, name: &str, argv: Vec<String>| {
        r.stage(name, |r, dir| {
            let init = dir.join("init");
            let mut a = argv.clone();
            a.extend(["--out".to_string(), init.display().to_string()]);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            if !init.join("config.json").exists() {
                r.inheritune(&a)?;
            }
            r.train(dir, Runner::model_table(&init.join("config.json")), Some(&init), 1)
        })
    };
    let lf = l_final.to_string();
    if b.hybrid_stacking {
        let name = format!("hybrid-stack-l{l_final}");
        let argv = ["hybrid-stack", "--from", &ref_model, "--layers", &lf]
            .map(String::from)
            .to_vec();
        baselines.push((name.clone(), surgery_baseline(&mut r, &name, argv)?));
    }
    if b.half_width {
        // ⌊H/2⌋ heads for an odd count, the spec's decision (GPT-2 XL: 12 of 25).
        let argv = ["half-width", "--from", &ref_model, "--floor-heads"]
            .map(String::from)
            .to_vec();
        baselines.push(("half-width".into(), surgery_baseline(&mut r, "half-width", argv)?));
    }
    if b.distill_init {
        let name = format!("distill-init-l{l_final}");
        let argv = ["distill-init", "--from", &ref_model, "--layers", &lf]
            .map(String::from)
            .to_vec();
        baselines.push((name.clone(), surgery_baseline(&mut r, &name, argv)?));
    }
    if b.stacking {
        let half = l_final / 2;
        let small_name = format!("scratch-l{half}");
        let small = scratch(&mut r, &small_name, half, 1)?;
        baselines.push((small_name, small.clone()));
        let small_model = small
            .as_ref()
            .and_then(|f| f["model"].as_str().map(String::from))
            .unwrap_or_default();
        let name = format!("stack-l{}", 2 * half);
        let argv = ["stack", "--from", &small_model].map(String::from).to_vec();
        baselines.push((name.clone(), surgery_baseline(&mut r, &name, argv)?));
    }
    if !target_model.is_empty() {
        r.stage("analyze-target", |r, dir| r.analyze(&target_model, dir))?;
    }

    // Downstream eval.
    if let Some(data) = recipe.eval.data_dir.as_ref().filter(|d| d.is_dir()) {
        let mut models = vec![
            ("reference".to_string(), ref_model.clone()),
            (format!("inheritune-l{l_final}"), target_model.clone()),
        ];
        for (name, facts) in &baselines {
            if let Some(m) = facts.as_ref().and_then(|f| f["model"].as_str()) {
                models.push((name.clone(), m.to_string()));
            }
        }
        for (name, model) in models {
            r.stage(&format!("eval-{name}"), |r, dir| {
                let (d, o, tasks) = (
                    data.display().to_string(),
                    dir.display().to_string(),
                    recipe.eval.tasks.join(","),
                );
                let limit = recipe.eval.limit.map(|l| l.to_string());
                let mut a = vec![
                    "eval",
                    "--model",
                    &model,
                    "--tasks",
                    &tasks,
                    "--data-dir",
                    &d,
                    "--out",
                    &o,
                    "--device",
                    &r.device,
                ];
                if let Some(l) = &limit {
                    a.extend(["--limit", l.as_str()]);
                }
                r.inheritune(&a)?;
                Ok(json!({"model": model, "results": dir.join("results.json").display().to_string()}))
            })?;
        }
    }

    // Report (always rewritten).
    let dir = r.dir("report");
    if r.only.as_deref().is_none_or(|o| "report".starts_with(o)) {
        crate::report::write(&recipe, &run_dir, &dir, ref_loss, l_ref, &rounds, &baselines)?;
        write_done(&dir, &json!({"report": dir.join("report.md").display().to_string()}))?;
        eprintln!("[recipe] report: {}", dir.join("report.md").display());
    }
    Ok(())
}
