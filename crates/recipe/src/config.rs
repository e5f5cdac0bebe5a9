//! The typed recipe file (`xtask/recipes/*.toml`): what to train, how, and what to compare.
//! Every section is checked when the file is read, with unknown keys and wrong types named; the
//! shared `[train]` section resolves through the train crate's own presets and types.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use inheritune_data::loader::Order;
use inheritune_model::ModelConfig;
use inheritune_train::config::{DataSection, ModelSection, TrainSection};
use inheritune_train::RunConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use inheritune_data::prepare::{EotPlacement, Preset};
pub use inheritune_surgery::{GrowMode, MapKind};

/// A recipe, read and resolved.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Name (default run folder `runs/<name>`).
    pub name: String,
    /// One line on what it reproduces.
    pub description: String,
    /// What a run of this recipe shows and what it cannot (printed in the report; may be empty).
    pub notes: String,
    /// Data.
    pub data: DataCfg,
    /// The reference model.
    pub reference: ReferenceCfg,
    /// The training every run shares.
    pub train: TrainCfg,
    /// Inheritune's own settings.
    pub inheritune: InherituneCfg,
    /// Baselines.
    pub baselines: BaselinesCfg,
    /// Attention analysis.
    pub analysis: AnalysisCfg,
    /// Downstream evaluation.
    pub eval: EvalCfg,
    /// The distillation baselines' schedule and loss.
    pub distill: DistillCfg,
    /// Assumptions of the dry-run's cost estimate.
    pub hardware: HardwareCfg,
    /// The paper's final val losses by row kind (METHOD.md §6): `reference`, `inheritune`,
    /// `scratch`, `scratch_2x`, ...
    pub paper: BTreeMap<String, f64>,
}

/// The file's layout; `[train]` stays a table until the train crate resolves it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    notes: String,
    data: DataCfg,
    reference: ReferenceCfg,
    train: toml::Table,
    #[serde(default)]
    inheritune: InherituneCfg,
    #[serde(default)]
    baselines: BaselinesCfg,
    #[serde(default)]
    analysis: AnalysisCfg,
    #[serde(default)]
    eval: EvalCfg,
    #[serde(default)]
    distill: DistillCfg,
    #[serde(default)]
    hardware: HardwareCfg,
    #[serde(default)]
    paper: BTreeMap<String, f64>,
}

/// Which tokenizer the data is prepared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TokenizerSpec {
    /// GPT-2's built-in byte-level BPE (`gpt2`).
    Gpt2,
    /// A `tokenizer.json` file.
    File(PathBuf),
    /// A byte-level BPE of this many tokens trained on the inputs first (`bpe-<N>`).
    Bpe(usize),
}

impl TryFrom<String> for TokenizerSpec {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        if s == "gpt2" {
            return Ok(TokenizerSpec::Gpt2);
        }
        if let Some(n) = s.strip_prefix("bpe-") {
            return n
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .map(TokenizerSpec::Bpe)
                .ok_or_else(|| format!("tokenizer {s:?}: bpe-<N> needs a positive vocabulary size"));
        }
        if s.is_empty() {
            return Err("tokenizer: empty (gpt2, bpe-<N> or a tokenizer.json path)".into());
        }
        Ok(TokenizerSpec::File(PathBuf::from(s)))
    }
}

impl From<TokenizerSpec> for String {
    fn from(t: TokenizerSpec) -> String {
        t.to_string()
    }
}

impl fmt::Display for TokenizerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerSpec::Gpt2 => f.write_str("gpt2"),
            TokenizerSpec::File(p) => write!(f, "{}", p.display()),
            TokenizerSpec::Bpe(n) => write!(f, "bpe-{n}"),
        }
    }
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
    #[serde(default)]
    pub preset: Preset,
    /// Val split: the first N tokens.
    #[serde(default)]
    pub val_tokens: Option<u64>,
    /// Val split: a share of documents.
    #[serde(default)]
    pub val_fraction: Option<f64>,
    /// The tokenizer.
    #[serde(default = "gpt2")]
    pub tokenizer: TokenizerSpec,
    /// End-of-text placement, overriding the `prepare` preset's: `append`, `prepend` or `none`.
    #[serde(default)]
    pub eot: Option<EotPlacement>,
    /// The token used as end-of-text (default: the tokenizer's own, see `inheritune prepare --help`).
    #[serde(default)]
    pub eot_token: Option<String>,
    /// Apply the tokenizer's own special-token rules to every document (LLaMA's BOS); default:
    /// as the tokenizer's post-processor does.
    #[serde(default)]
    pub add_special_tokens: Option<bool>,
    /// A corpus manifest of `datasets/` (`openwebtext`, `fineweb-edu-sample-10BT`, ...), or a
    /// `.json` manifest file, that `inheritune download` fetches when an input is missing, before
    /// the tokenizer and data stages read them.
    #[serde(default)]
    pub download: Option<String>,
}

fn gpt2() -> TokenizerSpec {
    TokenizerSpec::Gpt2
}

/// `[reference]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceCfg {
    /// Its architecture, as a run config's `[model]` (with a `checkpoint`, optional: the
    /// checkpoint's `config.json` is the architecture, and a `[model]` given too must agree).
    #[serde(default)]
    pub model: ModelSection,
    /// A trained checkpoint to use instead of training one (LLaMA low-data regime).
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// With a checkpoint: also train it the steps every target trains (`reference-trained`), so
    /// the targets compare with a reference that saw the same data.
    #[serde(default)]
    pub train_too: bool,
}

/// The shared `[train]` section, resolved against its preset.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainCfg {
    /// The training preset it started from.
    pub preset: Option<String>,
    /// The data order.
    pub order: Order,
    /// Every training key, preset defaults filled in.
    pub section: TrainSection,
}

/// Where the growth loop starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDepth {
    /// ⌊L/2⌋ (the paper's, the DECISION).
    Half,
    /// The 0-based index of the reference's first layer with ⌊MaxRank⌋ = 1 (the blocks before
    /// it); ⌊L/2⌋, stated in the report, when the reference has no lazy layer.
    FirstLazy,
    /// A fixed depth.
    Layers(i64),
}

impl<'de> Deserialize<'de> for StartDepth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(StartDepth::Layers(n)),
            Raw::S(s) if s == "half" => Ok(StartDepth::Half),
            Raw::S(s) if s == "first-lazy" => Ok(StartDepth::FirstLazy),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "start_depth {s:?}: \"half\", \"first-lazy\" or a number of layers"
            ))),
        }
    }
}

/// `[inheritune]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InherituneCfg {
    /// Start depth l0: `"half"` (⌊L/2⌋, the default and the paper's), `"first-lazy"` (the index
    /// of the reference's first lazy layer by the relaxed rule, a non-paper extension,
    /// METHOD.md §1.5), or a number of layers.
    pub start_depth: StartDepth,
    /// Layers added per round (Δ).
    pub grow_by: i64,
    /// How the target grows: `restart` (the DECISION) or `warm-append`.
    pub growth: GrowMode,
    /// The inheritance map: `paper` (the DECISION) or `released-code`.
    pub map: MapKind,
    /// Match when target ≤ reference + tolerance (METHOD.md §1.6 DECISION: 0.005).
    pub tolerance: f64,
    /// Rounds at most.
    pub max_rounds: usize,
    /// The strategy comparison: one target per rule (`first`, `last`, `block-influence`,
    /// `angular`, `loo`), each inherited by that rule at the same depth and trained on the same
    /// data, steps and seed (`first` at round 1's depth is round 1 itself).
    pub selections: Vec<String>,
    /// The comparison's depth (default: round 1's, Algorithm 1's start depth).
    pub selection_layers: Option<i64>,
    /// How the rounds and the comparison's targets heal: `train` (cross-entropy, the paper) or
    /// `distill` (the same steps with `[distill]`'s loss, the reference as teacher, as Minitron).
    pub heal: Heal,
}

/// How an inherited target is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Heal {
    /// Cross-entropy with the labels (the paper).
    #[default]
    Train,
    /// `[distill]`'s loss with the reference as teacher, on the shared schedule.
    Distill,
}

impl Default for InherituneCfg {
    fn default() -> Self {
        InherituneCfg {
            start_depth: StartDepth::Half,
            grow_by: 2,
            growth: GrowMode::Restart,
            map: MapKind::Paper,
            tolerance: 0.005,
            max_rounds: 4,
            selections: Vec::new(),
            selection_layers: None,
            heal: Heal::Train,
        }
    }
}

impl InherituneCfg {
    /// The comparison's rules, parsed.
    pub fn rules(&self) -> Vec<inheritune_analysis::depth::Rule> {
        self.selections
            .iter()
            .filter_map(|s| inheritune_analysis::depth::Rule::parse(s))
            .collect()
    }
}

/// Depth of the same-size baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineDepth {
    /// The depth Inheritune ends at (the baselines wait for the growth loop).
    Target,
    /// A fixed depth (the paper's): the baselines need only the data (and, for the
    /// reference-derived ones, the reference), so they can run beside the growth loop.
    Layers(i64),
}

impl<'de> Deserialize<'de> for BaselineDepth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n > 0 => Ok(BaselineDepth::Layers(n)),
            Raw::S(s) if s == "target" => Ok(BaselineDepth::Target),
            Raw::N(n) => Err(serde::de::Error::custom(format!("depth {n}: must be at least 1"))),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "depth {s:?}: \"target\" or a number of layers"
            ))),
        }
    }
}

/// `[baselines]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselinesCfg {
    /// Their depth: `"target"` (default) or a number of layers.
    pub depth: BaselineDepth,
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
    /// Knowledge distillation from the reference into a random student (METHOD.md §4.3).
    pub kd: bool,
    /// Knowledge distillation into a DistilBERT-style initialised student.
    pub kd_init: bool,
}

impl Default for BaselinesCfg {
    fn default() -> Self {
        BaselinesCfg {
            depth: BaselineDepth::Target,
            scratch: true,
            scratch_2x: true,
            hybrid_stacking: false,
            half_width: false,
            distill_init: false,
            stacking: false,
            kd: false,
            kd_init: false,
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
    /// Also the leave-one-out NLL of every block (always, when a selection uses `loo`).
    pub loo: bool,
}

impl Default for AnalysisCfg {
    fn default() -> Self {
        AnalysisCfg {
            windows: 100,
            window_len: 100,
            loo: false,
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalCfg {
    /// Folder of task data (datasets/eval.md); the stages are left out when it does not exist,
    /// unless `download` is set.
    pub data_dir: Option<PathBuf>,
    /// Fetch the tasks' data (`inheritune download eval`) into `data_dir` when a task's folder
    /// is missing, before an eval stage reads it.
    pub download: bool,
    /// Tasks.
    pub tasks: Vec<String>,
    /// First N documents per task.
    pub limit: Option<usize>,
}

impl Default for EvalCfg {
    fn default() -> Self {
        EvalCfg {
            data_dir: None,
            download: false,
            tasks: ["arc_easy", "piqa", "sciq", "hellaswag", "lambada_openai"]
                .map(String::from)
                .to_vec(),
            limit: None,
        }
    }
}

/// `[distill]`: the distillation baselines (METHOD.md §4.3: α 0.6, T 1, 50K steps, lr 3e-4
/// with warmup 2000 and cosine to 3e-5); the other training keys are the shared `[train]`'s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillCfg {
    /// Weight of the label cross-entropy.
    pub alpha: f64,
    /// Softmax temperature.
    pub temperature: f64,
    /// Optimizer steps.
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate.
    pub min_lr: f64,
    /// Warmup steps.
    pub warmup_steps: u64,
}

impl Default for DistillCfg {
    fn default() -> Self {
        DistillCfg {
            alpha: 0.6,
            temperature: 1.0,
            max_steps: 50_000,
            lr: 3e-4,
            min_lr: 3e-5,
            warmup_steps: 2000,
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
    /// Reads and checks a recipe file.
    ///
    /// # Errors
    /// Unreadable file, unknown keys, wrong types, an invalid `[train]` or an impossible value,
    /// each naming the file and the key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Invalid(message) => Error::Recipe {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks recipe text.
    ///
    /// # Errors
    /// As [`Recipe::from_file`], as [`Error::Invalid`].
    pub fn parse(text: &str) -> Result<Self> {
        let file: RecipeFile = toml::from_str(text).map_err(|e| Error::Invalid(e.message().to_string()))?;
        let (preset, order, section) =
            inheritune_train::config::resolve_train(file.train).map_err(|e| Error::Invalid(format!("[train]: {e}")))?;
        let recipe = Recipe {
            name: file.name,
            description: file.description,
            notes: file.notes,
            data: file.data,
            reference: file.reference,
            train: TrainCfg { preset, order, section },
            inheritune: file.inheritune,
            baselines: file.baselines,
            analysis: file.analysis,
            eval: file.eval,
            distill: file.distill,
            hardware: file.hardware,
            paper: file.paper,
        };
        let mut recipe = recipe;
        recipe.resolve_reference(false)?;
        Ok(recipe)
    }

    /// Whether `reference.checkpoint` is a Hub id `org/name[@revision]` not resolved yet.
    fn hub_reference(&self) -> Option<inheritune_hub::HubId> {
        let spec = self.reference.checkpoint.as_ref()?.to_str()?;
        match inheritune_hub::Source::classify(spec) {
            inheritune_hub::Source::Hub(id) => Some(id),
            inheritune_hub::Source::Local(_) => None,
        }
    }

    /// Resolves a `reference.checkpoint` given as a Hub id `org/name[@revision]` to its snapshot
    /// folder in the Hugging Face cache: from the cache alone (`fetch` false; an id not cached
    /// stays as it is, and checks that need its config wait), or downloading what it lacks
    /// (`fetch` true). Then checks the recipe. A folder stays as it is.
    ///
    /// # Errors
    /// The download fails (`fetch`), or the recipe's checks fail.
    pub fn resolve_reference(&mut self, fetch: bool) -> Result<()> {
        // A GGUF file is converted once into a cached Hugging Face folder (also the teacher).
        if let Some(path) = self.reference.checkpoint.clone() {
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) && path.is_file() {
                let folder = inheritune_model::gguf::convert::cached_folder(&path)
                    .map_err(|e| Error::Invalid(format!("reference.checkpoint: {e}")))?;
                self.reference.checkpoint = Some(folder);
            }
        }
        // `tokenizer = "reference"`: the reference checkpoint's own tokenizer (with the
        // tokenizer_config.json beside it), once the checkpoint is a folder.
        let by_reference = matches!(&self.data.tokenizer, TokenizerSpec::File(p) if p.as_os_str() == "reference");
        let resolve_tokenizer = |r: &mut Self| {
            if let (true, Some(c)) = (by_reference, &r.reference.checkpoint) {
                if c.is_dir() {
                    r.data.tokenizer = TokenizerSpec::File(c.join("tokenizer.json"));
                }
            }
        };
        resolve_tokenizer(self);
        if by_reference && self.reference.checkpoint.is_none() {
            return Err(Error::Invalid(
                "data.tokenizer = \"reference\" needs reference.checkpoint".into(),
            ));
        }
        if let Some(id) = self.hub_reference() {
            let hub = inheritune_hub::Hub::new(inheritune_hub::Settings {
                offline: !fetch || inheritune_hub::offline(),
                ..Default::default()
            })
            .map_err(|e| Error::Invalid(format!("reference.checkpoint: {e}")))?;
            match hub.checkpoint(&id) {
                Ok(folder) => self.reference.checkpoint = Some(folder),
                Err(e) if fetch => {
                    return Err(Error::Invalid(format!(
                        "reference.checkpoint {}: no such folder; as a Hub id, {e}",
                        id.repo
                    )))
                }
                Err(_) => {}
            }
            resolve_tokenizer(self);
        }
        self.check()
    }

    fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        let ic = &self.inheritune;
        if ic.grow_by < 1 {
            problems.push(format!("inheritune.grow_by {}: must be at least 1", ic.grow_by));
        }
        if ic.max_rounds < 1 {
            problems.push("inheritune.max_rounds 0: must be at least 1".to_string());
        }
        if ic.map == MapKind::Custom {
            problems.push("inheritune.map custom: a recipe takes paper or released-code".to_string());
        }
        for s in &ic.selections {
            if inheritune_analysis::depth::Rule::parse(s).is_none() {
                problems.push(format!(
                    "inheritune.selections: unknown rule {s:?} (first, last, block-influence, angular, loo)"
                ));
            }
        }
        if ic.selection_layers.is_some_and(|l| l < 1) {
            problems.push("inheritune.selection_layers: must be at least 1".to_string());
        }
        if self.reference.train_too && self.reference.checkpoint.is_none() {
            problems.push(
                "reference.train_too: needs reference.checkpoint (a reference without one is trained anyway)".into(),
            );
        }
        if !ic.tolerance.is_finite() {
            problems.push(format!("inheritune.tolerance {}: must be finite", ic.tolerance));
        }
        let d = &self.distill;
        let valid = (0.0..=1.0).contains(&d.alpha)
            && d.temperature.is_finite()
            && d.temperature > 0.0
            && d.max_steps > 0
            && d.lr.is_finite()
            && d.lr > 0.0;
        if !valid {
            problems.push(format!(
                "distill: alpha {} must be in [0, 1], temperature {} and lr {} positive, max_steps {} at least 1",
                d.alpha, d.temperature, d.lr, d.max_steps
            ));
        }
        if self.hardware.gpus < 1 {
            problems.push("hardware.gpus 0: must be at least 1".to_string());
        }
        if self.data.prepared.is_none() && self.data.inputs.is_empty() {
            problems.push("data: give inputs or prepared".to_string());
        }
        if matches!(self.data.tokenizer, TokenizerSpec::Bpe(_)) && self.data.inputs.is_empty() {
            problems.push("data.tokenizer bpe-<N> trains on data.inputs, which is empty".to_string());
        }
        let planned = self.planned_reference_config();
        if planned.is_err() && self.hub_reference().is_some() {
            // Checked again once the download is there (`resolve_reference(true)`).
            return if problems.is_empty() {
                Ok(())
            } else {
                Err(Error::Invalid(problems.join("; ")))
            };
        }
        let l_ref = planned?.n_layer();
        let l0 = match self.inheritune.start_depth {
            StartDepth::Layers(n) => n,
            _ => (l_ref / 2).max(1),
        };
        if l0 < 1 || l0 > l_ref {
            problems.push(format!(
                "inheritune.start_depth {l0}: must be between 1 and the reference's {l_ref} layers"
            ));
        }
        if let BaselineDepth::Layers(n) = self.baselines.depth {
            if n > l_ref {
                problems.push(format!("baselines.depth {n}: the reference has only {l_ref} layers"));
            }
        }
        if let Err(e) = self.train.section.accum(self.hardware.gpus as u64) {
            problems.push(format!("[train]: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(problems.join("; ")))
        }
    }

    /// The reference's architecture.
    ///
    /// # Errors
    /// An unknown preset or an unreadable `config.json`.
    pub fn reference_config(&self) -> Result<ModelConfig> {
        self.reference_config_for(false)
    }

    /// As [`Recipe::reference_config`], but a given checkpoint that is not there yet (a dry run
    /// before the download) is planned from `[reference.model]` when that names a model.
    ///
    /// # Errors
    /// As [`Recipe::reference_config`].
    pub fn planned_reference_config(&self) -> Result<ModelConfig> {
        self.reference_config_for(true)
    }

    fn reference_config_for(&self, planning: bool) -> Result<ModelConfig> {
        let m = &self.reference.model;
        let stated = m.preset.is_some() || m.config.is_some();
        let named = || -> Result<ModelConfig> { Ok(self.run_config(m.clone(), PathBuf::new(), 1).model_config()?) };
        let Some(ckpt) = &self.reference.checkpoint else {
            return named();
        };
        if planning && stated && !ckpt.join("config.json").exists() {
            return named();
        }
        let config = ModelConfig::from_file(&ckpt.join("config.json"))?;
        if stated {
            let named = named()?;
            if named.parameter_shapes() != config.parameter_shapes() {
                return Err(Error::Invalid(format!(
                    "reference.model ({} layers x {}) does not match the checkpoint {} ({} layers x {})",
                    named.n_layer(),
                    named.n_embd(),
                    ckpt.display(),
                    config.n_layer(),
                    config.n_embd()
                )));
            }
        }
        Ok(config)
    }

    /// Start depth l0 of a reference of `l_ref` layers, given the first lazy layer of its
    /// analysis (relaxed rule) when that is known; None while `first-lazy` waits for it.
    pub fn start_depth(&self, l_ref: i64, first_lazy: Option<Option<usize>>) -> Option<i64> {
        match self.inheritune.start_depth {
            StartDepth::Half => Some(l_ref / 2),
            StartDepth::Layers(n) => Some(n),
            StartDepth::FirstLazy => match first_lazy? {
                Some(i) if i >= 1 => Some(i as i64),
                _ => Some(l_ref / 2),
            },
        }
    }

    /// The run config of a distillation stage: the shared training with `[distill]`'s schedule,
    /// the reference model in `teacher` as the teacher.
    pub fn distill_run_config(&self, model: ModelSection, data: PathBuf, teacher: PathBuf) -> RunConfig {
        let d = &self.distill;
        let mut config = self.run_config(model, data, 1);
        config.train.max_steps = d.max_steps;
        config.train.decay_steps = None;
        config.train.lr = d.lr;
        config.train.min_lr = d.min_lr;
        config.train.warmup_steps = d.warmup_steps;
        config.train.released_loop = false;
        config.distill = Some(inheritune_train::config::DistillSection {
            teacher,
            alpha: d.alpha,
            temperature: d.temperature,
        });
        config
    }

    /// The run config of a target healed by distillation (`[inheritune] heal = "distill"`): the
    /// shared training schedule, with `[distill]`'s loss and the reference `teacher`.
    pub fn heal_run_config(&self, model: ModelSection, data: PathBuf, teacher: PathBuf) -> RunConfig {
        let d = &self.distill;
        let mut config = self.run_config(model, data, 1);
        config.distill = Some(inheritune_train::config::DistillSection {
            teacher,
            alpha: d.alpha,
            temperature: d.temperature,
        });
        config
    }

    /// The run config of one training stage: the shared training with `max_steps` (and a given
    /// `decay_steps`) scaled by `factor`, on the prepared data in `data`.
    pub fn run_config(&self, model: ModelSection, data: PathBuf, factor: u64) -> RunConfig {
        let mut train = self.train.section.clone();
        if factor != 1 {
            train.max_steps *= factor;
            // The cosine runs over the whole (longer) budget.
            train.decay_steps = train.decay_steps.map(|d| d * factor);
        }
        RunConfig {
            preset: None,
            model,
            data: DataSection {
                dir: data,
                order: self.train.order,
            },
            train,
            distill: None,
            notes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[data]
inputs = ["corpus.txt"]
[reference.model]
preset = "gpt2-tiny"
[train]
max_steps = 10
"#;

    #[test]
    fn tokenizer_kinds() {
        for (text, spec) in [
            ("gpt2", TokenizerSpec::Gpt2),
            ("bpe-512", TokenizerSpec::Bpe(512)),
            ("t/tokenizer.json", TokenizerSpec::File("t/tokenizer.json".into())),
        ] {
            let t = TokenizerSpec::try_from(text.to_string()).unwrap();
            assert_eq!(t, spec);
            assert_eq!(t.to_string(), text);
        }
        assert!(TokenizerSpec::try_from("bpe-x".to_string()).is_err());
        assert!(TokenizerSpec::try_from("bpe-0".to_string()).is_err());
    }

    #[test]
    fn train_resolves_through_the_preset() {
        let text = MINIMAL.replace("max_steps = 10", "preset = \"fineweb-gpt2-large\"\nmax_steps = 10");
        let r = Recipe::parse(&text.replace("preset = \"gpt2-tiny\"", "preset = \"gpt2-large\"")).unwrap();
        assert_eq!(r.train.preset.as_deref(), Some("fineweb-gpt2-large"));
        assert_eq!(r.train.order, Order::Sequential);
        assert_eq!(r.train.section.max_steps, 10);
        assert_eq!(r.train.section.tokens_per_step, Some(61440));
        let scaled = r.run_config(r.reference.model.clone(), "d".into(), 2);
        assert_eq!(scaled.train.max_steps, 20);
        assert_eq!(scaled.data.order, Order::Sequential);
    }

    #[test]
    fn bad_values_are_named() {
        for (edit, key) in [
            ("[inheritune]\ngrow_by = 0", "inheritune.grow_by"),
            ("[inheritune]\nstart_depth = 9", "inheritune.start_depth"),
            ("[inheritune]\ngrowth = \"sideways\"", "sideways"),
            ("[inheritune]\nstart_depth = \"lazy\"", "first-lazy"),
            ("[baselines]\ndepth = \"half\"", "depth"),
            ("[baselines]\ndepth = 99", "baselines.depth"),
            ("[hardware]\ngpus = 0", "hardware.gpus"),
            ("[inheritune]\nbogus = 1", "bogus"),
        ] {
            let e = Recipe::parse(&format!("{MINIMAL}{edit}\n")).unwrap_err().to_string();
            assert!(e.contains(key), "{edit}: {e}");
        }
        let e = Recipe::parse(&MINIMAL.replace("max_steps = 10", "max_stepz = 10"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[train]") && e.contains("max_stepz"), "{e}");
    }
}
