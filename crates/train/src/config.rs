//! The run config: TOML with `[model]`, `[data]` and `[train]` sections, validated with every
//! problem reported at once. Budgets are in steps of a fixed number of tokens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inheritune_data::loader::Order;
use inheritune_model::{ModelConfig, Preset};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// `[model]`: a preset or a `config.json`, with key overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A preset name (`gpt2-small`, `gpt2-medium`, ..., `gpt2-tiny`, `llama-tiny`).
    #[serde(default)]
    pub preset: Option<String>,
    /// A `config.json` (instead of a preset).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// `config.json` keys to override (e.g. `n_layer`, `vocab_size`).
    #[serde(default)]
    pub overrides: BTreeMap<String, serde_json::Value>,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A folder written by `inheritune prepare`.
    pub dir: PathBuf,
    /// `random` (nanoGPT) or `sequential` (DataLoaderLite).
    #[serde(default = "default_order")]
    pub order: Order,
}

fn default_order() -> Order {
    Order::Random
}

/// `[distill]`: knowledge distillation from a teacher (METHOD.md §4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSection {
    /// The teacher: a Hugging Face checkpoint folder (or a `.gguf` file) with the student's vocabulary.
    pub teacher: PathBuf,
    /// Weight of the cross-entropy with the labels (the paper: 0.6).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Softmax temperature of both distributions (the paper: 1).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

fn default_alpha() -> f64 {
    0.6
}
fn default_temperature() -> f64 {
    1.0
}

/// How micro-batch gradients are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradAccum {
    /// Each micro-batch loss is divided by the accumulation count.
    Mean,
    /// Gradients are summed (the paper's code, METHOD.md §4.1 and §8 item 5).
    Sum,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Micro-batches per optimizer step on each rank. Give this or `tokens_per_step`, not both
    /// (default: 1, or derived from `tokens_per_step`).
    pub grad_accum: Option<usize>,
    /// Tokens per optimizer step over all ranks (the global batch); `grad_accum` is then derived
    /// from the world size, so the global batch does not change with the number of GPUs.
    pub tokens_per_step: Option<u64>,
    /// Combination of micro-batch gradients.
    pub grad_accum_mode: GradAccum,
    /// `sum` mode: the micro-batch size whose mean losses the released code summed (METHOD.md
    /// §4.1: 4 for Medium, 2 for Large and XL). Each micro-step's mean loss is scaled by
    /// `micro_batch / sum_micro_batch` (and by world / `sum_world`), so any split that fits in
    /// memory gives the released code's gradient. Unset: the plain sum over this run's own
    /// micro-steps.
    pub sum_micro_batch: Option<usize>,
    /// `sum` mode with `sum_micro_batch`: the ranks the released code averaged its summed
    /// gradients over (FineWeb: 3; default 1).
    pub sum_world: Option<usize>,
    /// Data-parallel runs: overlap the gradient all-reduce with the last micro-step's backward
    /// (c10d's Reducer, as DDP does); false all-reduces flat buckets after backward.
    pub overlap: bool,
    /// Optimizer steps.
    pub max_steps: u64,
    /// The released loop (METHOD.md §8 item 17): after the evaluation at `max_steps`, one more
    /// update before the final pass (100,001 updates for 100K steps).
    pub released_loop: bool,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate.
    pub min_lr: f64,
    /// Warmup steps.
    pub warmup_steps: u64,
    /// Step at which the cosine reaches `min_lr` (default: `max_steps`).
    pub decay_steps: Option<u64>,
    /// Schedule shape.
    pub schedule: Schedule,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Weight decay of the matrix weights.
    pub weight_decay: f64,
    /// Global-norm clip (0 turns it off).
    pub grad_clip: f64,
    /// Evaluate (and checkpoint) when step % eval_interval == 0, before that step's update.
    pub eval_interval: u64,
    /// Random batches per split at each evaluation (default: 200, or a quarter of the run's
    /// micro-batches when that is smaller, but at least 4).
    pub eval_iters: usize,
    /// Tokens of the val split the final pass scores, from its start (default: the whole split,
    /// or as many tokens as the run trains on when that is smaller, but at least 20 micro-batches;
    /// 0: the whole split).
    pub final_eval_tokens: Option<u64>,
    /// Also write a checkpoint of the untrained weights at step 0.
    pub checkpoint_at_start: bool,
    /// Train only these parameter groups (`embed`, `pos`, `head`, `final-norm`, `attn`, `ln1`,
    /// `mlp`, `ln2`); the others stay as loaded. Empty: every parameter.
    pub trainable: Vec<String>,
    /// Checkpoints kept besides milestones.
    pub keep_last: usize,
    /// Checkpoints at multiples of this step are never deleted (0: none).
    pub milestone_interval: u64,
    /// Seed of the initialisation and of the data order.
    pub seed: u64,
    /// AdamW through PyTorch's fused kernel (`_fused_adamw_`, as `AdamW(fused=True)`); false runs
    /// the single-tensor path of `torch.optim.AdamW` op by op (same math, slower).
    pub fused_adamw: bool,
    /// Peak TFLOP/s of one device for MFU (default: from the GPU model or the CPU's flags).
    pub peak_tflops: Option<f64>,
    /// Without a terminal, `inheritune train` prints a progress line every this many steps.
    pub log_interval: u64,
    /// Also write the metrics as TensorBoard event files in the run folder.
    pub tensorboard: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            micro_batch: 8,
            seq_len: 1024,
            grad_accum: None,
            tokens_per_step: None,
            grad_accum_mode: GradAccum::Mean,
            sum_micro_batch: None,
            sum_world: None,
            overlap: false,
            max_steps: 100_000,
            released_loop: false,
            lr: 3e-4,
            min_lr: 1e-5,
            warmup_steps: 2000,
            decay_steps: None,
            schedule: Schedule::Cosine,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_interval: 1000,
            eval_iters: 200,
            final_eval_tokens: None,
            checkpoint_at_start: false,
            trainable: Vec::new(),
            keep_last: 2,
            milestone_interval: 0,
            seed: 5000,
            fused_adamw: true,
            peak_tflops: None,
            log_interval: 10,
            tensorboard: false,
        }
    }
}

impl TrainSection {
    /// Micro-batches per optimizer step on each of `world` ranks: `grad_accum`, or
    /// `tokens_per_step / (micro_batch × seq_len × world)`.
    ///
    /// # Errors
    /// A `tokens_per_step` that `micro_batch × seq_len × world` does not divide, naming both.
    pub fn accum(&self, world: u64) -> Result<usize> {
        let t = self;
        let Some(tokens) = t.tokens_per_step else {
            return Ok(t.grad_accum.unwrap_or(1));
        };
        let per = t.micro_batch as u64 * t.seq_len as u64 * world.max(1);
        if per == 0 || tokens % per != 0 || tokens == 0 {
            return Err(config_err(format!(
                "train.tokens_per_step {tokens} is not a multiple of micro_batch × seq_len × world = {} × {} × {world} = {per}",
                t.micro_batch, t.seq_len
            )));
        }
        Ok((tokens / per) as usize)
    }

    /// The factor each micro-step's mean loss is multiplied by before backward on `world`
    /// ranks: 1/accum in `mean` mode; in `sum` mode 1, or with `sum_micro_batch` the released
    /// split's scale (micro_batch / sum_micro_batch) × (world / sum_world).
    pub fn loss_scale(&self, accum: usize, world: u64) -> f64 {
        match (self.grad_accum_mode, self.sum_micro_batch) {
            (GradAccum::Mean, _) => 1.0 / accum as f64,
            (GradAccum::Sum, None) => 1.0,
            (GradAccum::Sum, Some(sum_micro)) => {
                self.micro_batch as f64 / sum_micro as f64 * world as f64 / self.sum_world.unwrap_or(1) as f64
            }
        }
    }

    /// Scales the defaults that suit long runs to this run, for the keys the config does not
    /// set (`set`): warmup at most a tenth of `max_steps`, evaluation batches at most the run's
    /// micro-batches. Returns a line for each change.
    pub fn size_defaults(&mut self, set: &[String]) -> Vec<String> {
        let is_set = |k: &str| set.iter().any(|s| s == k);
        let mut notes = Vec::new();
        let default = TrainSection::default();
        if !is_set("warmup_steps") && self.warmup_steps > self.max_steps / 10 {
            notes.push(format!(
                "train.warmup_steps: the default {} is more than a tenth of max_steps = {}; using {} (set train.warmup_steps to choose)",
                self.warmup_steps,
                self.max_steps,
                self.max_steps / 10
            ));
            self.warmup_steps = self.max_steps / 10;
        }
        // Evaluation stays a small share of a short run: a quarter of its micro-batches per split.
        let micro_batches = self.max_steps.saturating_mul(self.grad_accum.unwrap_or(1) as u64);
        let sized = ((micro_batches / 4).clamp(4, default.eval_iters as u64)) as usize;
        if !is_set("eval_iters") && sized < self.eval_iters {
            notes.push(format!(
                "train.eval_iters: {sized} batches per split at each evaluation (the default {} sized to this {}-step run; set train.eval_iters to choose)",
                self.eval_iters, self.max_steps
            ));
            self.eval_iters = sized;
        }
        notes
    }

    /// Windows of `seq_len` tokens the final validation pass scores (`None`: every window), for a
    /// run of `max_steps` steps of `tokens_per_step` tokens (see `final_eval_tokens`).
    pub fn final_eval_windows(&self, tokens_per_step: u64) -> Option<usize> {
        let floor = 20 * (self.micro_batch * self.seq_len) as u64;
        let tokens = match self.final_eval_tokens {
            Some(0) => return None,
            Some(n) => n,
            None => self.max_steps.saturating_mul(tokens_per_step).max(floor),
        };
        Some(tokens.div_ceil(self.seq_len.max(1) as u64).max(1) as usize)
    }

    /// Tokens per optimizer step over `world` ranks (the global batch).
    pub fn tokens_per_step(&self, world: u64) -> u64 {
        match self.tokens_per_step {
            Some(tokens) => tokens,
            None => (self.micro_batch * self.seq_len * self.grad_accum.unwrap_or(1)) as u64 * world,
        }
    }
}

/// The training presets of the paper's families (METHOD.md §4.1, §4.2, §4.5), TOML with `[train]`
/// (and `[data]`) keys; a run config naming one with `preset = "..."` inherits every key it does
/// not set itself.
pub const PRESETS: &[(&str, &str)] = &[
    ("owt-gpt2-medium", include_str!("../presets/owt-gpt2-medium.toml")),
    ("owt-gpt2-large", include_str!("../presets/owt-gpt2-large.toml")),
    ("owt-gpt2-xl", include_str!("../presets/owt-gpt2-xl.toml")),
    (
        "fineweb-gpt2-medium",
        include_str!("../presets/fineweb-gpt2-medium.toml"),
    ),
    ("fineweb-gpt2-large", include_str!("../presets/fineweb-gpt2-large.toml")),
    ("llama-lowdata", include_str!("../presets/llama-lowdata.toml")),
];

/// A whole run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The training preset this config starts from (see [`PRESETS`]), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// The model (may be left out when training starts from a checkpoint, which fixes it:
    /// [`RunConfig::from_file_with_init`]).
    #[serde(default)]
    pub model: ModelSection,
    /// The data.
    pub data: DataSection,
    /// The optimisation.
    #[serde(default)]
    pub train: TrainSection,
    /// Knowledge distillation (absent: plain cross-entropy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillSection>,
    /// The defaults sized to this run ([`TrainSection::size_defaults`]), said as the run starts.
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl RunConfig {
    /// Reads and validates a TOML run config.
    ///
    /// # Errors
    /// Unreadable file, unknown keys or wrong types, or any invalid value (all listed).
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with_init(path, None)
    }

    /// As [`RunConfig::from_file`], for a run that starts from the checkpoint folder `init`: an
    /// empty `[model]` (or none) means the checkpoint's own `config.json`, since `--init` fixes
    /// the architecture.
    ///
    /// # Errors
    /// As [`RunConfig::from_file`].
    pub fn from_file_with_init(path: &Path, init: Option<&Path>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::error::file_err(path, e))?;
        let config = Self::parse(&text).map_err(|e| match e {
            Error::Config { problems, .. } => Error::Config {
                path: Some(path.to_path_buf()),
                problems,
            },
            other => other,
        })?;
        config.completed(init).map_err(|e| match e {
            Error::Config { problems, .. } => Error::Config {
                path: Some(path.to_path_buf()),
                problems,
            },
            other => other,
        })
    }

    /// A parsed (or built) config made ready to train from the checkpoint folder `init`, as
    /// [`RunConfig::from_file_with_init`] does after parsing: an empty `[model]` means the
    /// checkpoint's own `config.json`, a GGUF teacher is converted once into a cached Hugging Face
    /// folder, and every value is checked.
    ///
    /// # Errors
    /// [`Error::Config`] listing every invalid value.
    pub fn completed(mut self, init: Option<&Path>) -> Result<Self> {
        if let Some(init) = init {
            let m = &self.model;
            if m.preset.is_none() && m.config.is_none() && m.overrides.is_empty() {
                self.model.config = Some(init.join("config.json"));
            }
        }
        if let Some(d) = self.distill.as_mut() {
            if d.teacher.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) && d.teacher.is_file() {
                d.teacher = inheritune_model::gguf::convert::cached_folder(&d.teacher)
                    .map_err(|e| config_err(format!("distill.teacher: {e}")))?;
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// The keys (outside [`RESUMABLE_KEYS`]) whose values differ between `saved` (the config a
    /// run was started with) and this one, as `key (old → new)`: empty when the run may resume.
    ///
    /// # Errors
    /// A config that does not serialize (not possible for a parsed one).
    pub fn changed_keys(&self, saved: &RunConfig) -> Result<Vec<String>> {
        let flat = |c: &RunConfig| -> Result<BTreeMap<String, toml::Value>> {
            let value = toml::Value::try_from(c).map_err(|e| config_err(format!("serializing the run config: {e}")))?;
            let mut out = BTreeMap::new();
            flatten("", value, &mut out);
            Ok(out)
        };
        let (a, b) = (flat(saved)?, flat(self)?);
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        Ok(keys
            .into_iter()
            .filter(|k| !RESUMABLE_KEYS.contains(&k.as_str()) && a.get(*k) != b.get(*k))
            .map(|k| {
                let show = |v: Option<&toml::Value>| v.map_or_else(|| "unset".into(), |v| v.to_string());
                format!("{k} ({} → {})", show(a.get(k)), show(b.get(k)))
            })
            .collect())
    }

    /// Parses TOML text (without validating values), applying the named preset's defaults.
    ///
    /// # Errors
    /// Invalid TOML, unknown keys, wrong types, or an unknown preset.
    pub fn parse(text: &str) -> Result<Self> {
        let mut table: toml::Table = toml::from_str(text).map_err(syntax_err)?;
        apply_preset(&mut table)?;
        unknown_keys(&table)?;
        let set: Vec<String> = table
            .get("train")
            .and_then(|t| t.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        let mut config: Self = toml::Value::Table(table).try_into().map_err(syntax_err)?;
        config.notes = config.train.size_defaults(&set);
        Ok(config)
    }

    /// The model configuration the `[model]` section names.
    ///
    /// # Errors
    /// No or two sources, an unknown preset, an unreadable config.json, or an invalid result.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let base = match (&self.model.preset, &self.model.config) {
            (Some(name), None) => Preset::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .map(|p| p.config())
                .ok_or_else(|| {
                    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                    config_err(format!("model.preset: unknown preset {name:?} (one of {})", names.join(", ")))
                })?,
            (None, Some(path)) => ModelConfig::from_file(path)?,
            (None, None) => {
                return Err(config_err(
                    "model: give a preset or a config, or start from a checkpoint with --init (which fixes the architecture)"
                        .into(),
                ))
            }
            _ => return Err(config_err("model: give exactly one of preset or config".into())),
        };
        if self.model.overrides.is_empty() {
            return Ok(base);
        }
        let mut value = base.to_value();
        if let serde_json::Value::Object(map) = &mut value {
            for (k, v) in &self.model.overrides {
                map.insert(k.clone(), v.clone());
            }
        }
        let config = ModelConfig::from_value(value, Path::new("[model.overrides]"))
            .map_err(|e| config_err(format!("model.overrides: {e}")))?;
        // Keys the architecture does not have land in its `extra` map: an override that does is a typo.
        let extra = |c: &ModelConfig| -> Vec<String> {
            match c {
                ModelConfig::Gpt2(g) => g.extra.keys().cloned().collect(),
                ModelConfig::Llama(l) => l.extra.keys().cloned().collect(),
            }
        };
        let before = extra(&base);
        let unknown: Vec<String> = extra(&config)
            .into_iter()
            .filter(|k| {
                !before.contains(k)
                    && self.model.overrides.contains_key(k)
                    && !HF_GENERIC_KEYS.contains(&k.as_str())
                    && !k.ends_with("_token_id")
            })
            .map(|k| format!("model.overrides.{k}"))
            .collect();
        if !unknown.is_empty() {
            return Err(config_err(format!(
                "unknown keys {} (not a field of a {} config.json)",
                unknown.join(", "),
                config.model_type()
            )));
        }
        Ok(config)
    }

    /// Checks every value and reports all problems at once.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        let mut p = Vec::new();
        if let Err(e) = self.model_config() {
            p.push(e.to_string().trim_start_matches("invalid run config: ").to_string());
        }
        for (key, v) in [
            ("micro_batch", t.micro_batch),
            ("seq_len", t.seq_len),
            ("grad_accum", t.grad_accum.unwrap_or(1)),
            ("eval_iters", t.eval_iters),
            ("tokens_per_step", t.tokens_per_step.unwrap_or(1) as usize),
        ] {
            if v == 0 {
                p.push(format!("train.{key} must be positive"));
            }
        }
        if t.grad_accum.is_some() && t.tokens_per_step.is_some() {
            p.push("train: give grad_accum (per rank) or tokens_per_step (global), not both".into());
        }
        if let Err(e) = self.accum(1) {
            if t.micro_batch > 0 && t.seq_len > 0 && t.tokens_per_step != Some(0) {
                p.push(e.to_string().trim_start_matches("invalid run config: ").to_string());
            }
        }
        if t.max_steps == 0 {
            p.push("train.max_steps must be positive".into());
        }
        if t.eval_interval == 0 {
            p.push("train.eval_interval must be positive".into());
        }
        for g in &t.trainable {
            if !inheritune_model::Role::GROUPS.contains(&g.as_str()) {
                p.push(format!(
                    "train.trainable: unknown group {g:?} (one of {})",
                    inheritune_model::Role::GROUPS.join(", ")
                ));
            }
        }
        if t.log_interval == 0 {
            p.push("train.log_interval must be positive".into());
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            p.push(format!("train.lr must be positive, got {}", t.lr));
        }
        if !(t.min_lr >= 0.0 && t.min_lr <= t.lr) {
            p.push(format!("train.min_lr must be in [0, lr], got {}", t.min_lr));
        }
        for (key, v) in [("beta1", t.beta1), ("beta2", t.beta2)] {
            if !(0.0..1.0).contains(&v) {
                p.push(format!("train.{key} must be in [0, 1), got {v}"));
            }
        }
        if !(t.eps > 0.0 && t.eps.is_finite()) {
            p.push(format!("train.eps must be positive, got {}", t.eps));
        }
        for (key, v) in [("weight_decay", t.weight_decay), ("grad_clip", t.grad_clip)] {
            if !(v >= 0.0 && v.is_finite()) {
                p.push(format!("train.{key} must be a non-negative number, got {v}"));
            }
        }
        if let Some(n) = t.sum_micro_batch {
            if n == 0 {
                p.push("train.sum_micro_batch must be positive".into());
            }
            if t.grad_accum_mode != GradAccum::Sum {
                p.push("train.sum_micro_batch applies to grad_accum_mode = \"sum\" only".into());
            }
        }
        if t.sum_world == Some(0) {
            p.push("train.sum_world must be positive".into());
        }
        if t.sum_world.is_some() && t.sum_micro_batch.is_none() {
            p.push("train.sum_world needs train.sum_micro_batch".into());
        }
        if let Some(d) = &self.distill {
            if !(0.0..=1.0).contains(&d.alpha) {
                p.push(format!("distill.alpha must be in [0, 1], got {}", d.alpha));
            }
            if !(d.temperature > 0.0 && d.temperature.is_finite()) {
                p.push(format!("distill.temperature must be positive, got {}", d.temperature));
            }
            match ModelConfig::from_file(&d.teacher.join("config.json")) {
                Ok(tc) => {
                    if let Ok(mc) = self.model_config() {
                        if tc.vocab_size() != mc.vocab_size() {
                            p.push(format!(
                                "distill.teacher {}: vocabulary {} differs from the student's {}",
                                d.teacher.display(),
                                tc.vocab_size(),
                                mc.vocab_size()
                            ));
                        }
                    }
                }
                Err(e) => p.push(format!("distill.teacher: {e}")),
            }
        }
        if let Some(d) = t.decay_steps {
            if d <= t.warmup_steps {
                p.push(format!(
                    "train.decay_steps {d} must exceed train.warmup_steps {}",
                    t.warmup_steps
                ));
            }
        }
        if let Ok(mc) = self.model_config() {
            if t.seq_len as i64 > mc.context_length() {
                p.push(format!(
                    "train.seq_len {} exceeds the model's context length {}",
                    t.seq_len,
                    mc.context_length()
                ));
            }
        }
        match inheritune_data::Manifest::read(&self.data.dir) {
            Ok(m) => {
                if let Ok(mc) = self.model_config() {
                    if m.tokenizer.vocab_size as i64 > mc.vocab_size() {
                        let tokenizer = self
                            .model
                            .config
                            .as_ref()
                            .and_then(|c| c.parent())
                            .map(|d| d.join("tokenizer.json"))
                            .filter(|t| t.exists())
                            .map_or_else(|| "the model's tokenizer.json".to_string(), |t| t.display().to_string());
                        p.push(format!(
                            "data.dir {}: prepared with the tokenizer {} ({} tokens), larger than the model's vocab_size {}; prepare the text with the model's own tokenizer: inheritune prepare --tokenizer {tokenizer} --text ... --out NEW",
                            self.data.dir.display(),
                            m.tokenizer.name,
                            m.tokenizer.vocab_size,
                            mc.vocab_size()
                        ));
                    }
                }
                for split in ["train", "val"] {
                    if m.splits.get(split).is_none_or(|s| s.tokens == 0) {
                        p.push(format!(
                            "data.dir: the {split} split is empty{}",
                            if split == "val" {
                                " (prepare the data with --val-fraction, --val-tokens or --val-docs)"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
            Err(_) if !self.data.dir.join(inheritune_data::prepare::MANIFEST_FILE).exists() => p.push(format!(
                "data.dir {}: no prepared data there (no manifest.json); make it with inheritune prepare --text ... --out {}",
                self.data.dir.display(),
                self.data.dir.display()
            )),
            Err(e) => p.push(format!("data.dir: {e}")),
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Config {
                path: None,
                problems: p,
            })
        }
    }

    /// Micro-batches per optimizer step on each of `world` ranks (see [`TrainSection::accum`]).
    ///
    /// # Errors
    /// A `tokens_per_step` that `micro_batch × seq_len × world` does not divide, naming both.
    pub fn accum(&self, world: u64) -> Result<usize> {
        self.train.accum(world)
    }

    /// Tokens per optimizer step over `world` ranks (the global batch).
    pub fn tokens_per_step(&self, world: u64) -> u64 {
        self.train.tokens_per_step(world)
    }
}

/// `config.json` keys that `transformers` knows for every model (or for GPT-2 and LLaMA) which the
/// model crate keeps as they are; an override of one of these is not a typo.
const HF_GENERIC_KEYS: &[&str] = &[
    "use_cache",
    "attn_pdrop",
    "embd_pdrop",
    "resid_pdrop",
    "summary_type",
    "summary_use_proj",
    "summary_activation",
    "summary_proj_to_labels",
    "summary_first_dropout",
    "n_ctx",
    "transformers_version",
    "tokenizer_class",
    "rope_scaling",
    "attention_dropout",
    "pretraining_tp",
    "name_or_path",
    "output_attentions",
    "output_hidden_states",
];

fn syntax_err(e: toml::de::Error) -> Error {
    config_err(e.message().to_string() + &e.span().map(|s| format!(" (at byte {})", s.start)).unwrap_or_default())
}

/// Fills a run-config table's missing `[train]` and `[data]` keys from the training preset its
/// top-level `preset` names (nothing when it names none). The batch keys form one group: a
/// table that sets `grad_accum` or `tokens_per_step` takes neither from the preset.
///
/// # Errors
/// A `preset` that is not a string or not a known preset.
pub fn apply_preset(table: &mut toml::Table) -> Result<()> {
    let Some(name) = table.get("preset") else {
        return Ok(());
    };
    let name = name
        .as_str()
        .ok_or_else(|| config_err("preset must be a string".into()))?;
    let (_, preset) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        config_err(format!(
            "preset: unknown training preset {name:?} (known: {})",
            PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let preset: toml::Table = toml::from_str(preset).map_err(syntax_err)?;
    let own_batch = table
        .get("train")
        .and_then(|t| t.as_table())
        .is_some_and(|t| t.contains_key("grad_accum") || t.contains_key("tokens_per_step"));
    for (section, values) in preset {
        let (Some(values), Some(target)) = (
            values.as_table(),
            table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut(),
        ) else {
            continue;
        };
        for (k, v) in values {
            if own_batch && section == "train" && (k == "grad_accum" || k == "tokens_per_step") {
                continue;
            }
            target.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(())
}

/// A `[train]` table that may also name a training `preset` and the data `order` (a recipe's
/// shared training section), resolved into the preset's name, the data order and the typed
/// [`TrainSection`], with every unknown key reported at once.
///
/// # Errors
/// Unknown keys, wrong types, or an unknown preset.
pub fn resolve_train(mut train: toml::Table) -> Result<(Option<String>, Order, TrainSection)> {
    let mut table = toml::Table::new();
    let preset = train.remove("preset");
    if let Some(p) = &preset {
        table.insert("preset".into(), p.clone());
    }
    let mut data = toml::Table::new();
    if let Some(order) = train.remove("order") {
        data.insert("order".into(), order);
    }
    table.insert("data".into(), toml::Value::Table(data));
    table.insert("train".into(), toml::Value::Table(train));
    apply_preset(&mut table)?;
    unknown_keys(&table)?;
    let section = |key: &str| {
        table
            .get(key)
            .cloned()
            .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
    };
    let train: TrainSection = section("train").try_into().map_err(syntax_err)?;
    let order = match section("data").get("order") {
        Some(o) => o.clone().try_into().map_err(syntax_err)?,
        None => default_order(),
    };
    Ok((preset.and_then(|p| p.as_str().map(String::from)), order, train))
}

/// Every key of the run config that no section has, reported together (serde stops at the first).
fn unknown_keys(table: &toml::Table) -> Result<()> {
    let train_keys: Vec<String> = match serde_json::to_value(TrainSection::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let known = |section: &str, key: &str| match section {
        "" => ["preset", "model", "data", "train", "distill"].contains(&key),
        "distill" => ["teacher", "alpha", "temperature"].contains(&key),
        "model" => ["preset", "config", "overrides"].contains(&key),
        "data" => ["dir", "order"].contains(&key),
        "train" => train_keys.iter().any(|k| k == key),
        _ => true,
    };
    let keys_of = |section: &str| -> Vec<String> {
        match section {
            "" => ["preset", "model", "data", "train", "distill"]
                .map(String::from)
                .to_vec(),
            "distill" => ["teacher", "alpha", "temperature"].map(String::from).to_vec(),
            "model" => ["preset", "config", "overrides"].map(String::from).to_vec(),
            "data" => ["dir", "order"].map(String::from).to_vec(),
            "train" => train_keys.clone(),
            _ => Vec::new(),
        }
    };
    let mut unknown = Vec::new();
    for (key, value) in table {
        if !known("", key) {
            unknown.push(with_suggestion("", key, &keys_of("")));
        } else if let (Some(inner), true) = (value.as_table(), key != "preset") {
            unknown.extend(
                inner
                    .keys()
                    .filter(|k| !known(key, k))
                    .map(|k| with_suggestion(key, k, &keys_of(key))),
            );
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(config_err(format!("unknown keys: {}", unknown.join(", "))))
    }
}

/// `section.key`, with the closest known key when one is near (as clap suggests flags).
fn with_suggestion(section: &str, key: &str, known: &[String]) -> String {
    let full = |k: &str| {
        if section.is_empty() {
            k.to_string()
        } else {
            format!("{section}.{k}")
        }
    };
    let best = known
        .iter()
        .map(|k| (strsim::jaro(key, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("{} (did you mean {}?)", full(key), full(k)),
        None => full(key),
    }
}

fn config_err(problem: String) -> Error {
    Error::Config {
        path: None,
        problems: vec![problem],
    }
}

/// Keys of the resolved run config that may differ when a run resumes: they change neither the
/// steps already taken nor the data order (a changed global batch is checked separately). With
/// `decay_steps` unset, a new `max_steps` also stretches the cosine from the resume point on.
pub const RESUMABLE_KEYS: &[&str] = &[
    "train.max_steps",
    "train.eval_interval",
    "train.eval_iters",
    "train.keep_last",
    "train.milestone_interval",
    "train.peak_tflops",
    "train.overlap",
    "train.fused_adamw",
    "train.log_interval",
    "train.tensorboard",
    "train.grad_accum",
    "train.tokens_per_step",
];

/// `value`'s leaves under dotted keys (`train.lr`).
fn flatten(prefix: &str, value: toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf);
        }
    }
}
