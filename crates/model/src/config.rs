//! [`ModelConfig`], either family's configuration as Hugging Face `config.json` holds it, with
//! presets and parameter tables; each family's own config lives in its model file
//! ([`crate::gpt2::Gpt2Config`], [`crate::llama::LlamaConfig`]), as in candle.
//!
//! Field names are the Hugging Face names, so a `config.json` written by `transformers` parses here and
//! ours parses there. Keys we do not interpret are kept in `extra` and written back unchanged.
//! This module must not touch tensors: it only describes shapes.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
pub use crate::gpt2::Gpt2Config;
pub use crate::llama::{DecoderFamily, LlamaConfig};

pub(crate) fn default_true() -> bool {
    true
}
pub(crate) fn default_gelu_new() -> String {
    "gelu_new".to_string()
}
pub(crate) fn default_ln_eps() -> f64 {
    1e-5
}
pub(crate) fn default_init_range() -> f64 {
    0.02
}
pub(crate) fn default_silu() -> String {
    "silu".to_string()
}
pub(crate) fn default_rms_eps() -> f64 {
    1e-6
}
pub(crate) fn default_n_positions() -> i64 {
    1024
}
pub(crate) fn default_max_positions() -> i64 {
    2048
}

/// The `model_type`s this crate loads, for messages.
pub fn supported_model_types() -> Vec<&'static str> {
    let mut all = vec!["gpt2"];
    all.extend(DecoderFamily::ALL.iter().map(|f| f.model_type()));
    all
}

/// A model configuration: GPT-2, or a decoder of the LLaMA family (LLaMA, Mistral, Qwen2,
/// Qwen3, Gemma 2, Gemma 3 text, Phi-3; [`LlamaConfig::family`] says which).
// The decoder config is the larger by a few hundred bytes; configs are built rarely and matched on
// everywhere, so they stay unboxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// GPT-2 (`GPT2LMHeadModel`).
    Gpt2(Gpt2Config),
    /// A decoder of the LLaMA family (`LlamaForCausalLM`, `Qwen2ForCausalLM`, ...).
    Llama(LlamaConfig),
}

/// The name and shape of one parameter, in the model's own (Linear, out × in) layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamShape {
    /// Hugging Face checkpoint key, e.g. `transformer.h.0.attn.c_attn.weight`.
    pub name: String,
    /// Shape as the model holds it.
    pub shape: Vec<i64>,
}

impl ParamShape {
    pub(crate) fn new(name: String, shape: &[i64]) -> Self {
        ParamShape {
            name,
            shape: shape.to_vec(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

pub(crate) fn check_positive(problems: &mut Vec<String>, name: &str, value: i64) {
    if value <= 0 {
        problems.push(format!("{name} must be positive, got {value}"));
    }
}

pub(crate) fn check_eps(problems: &mut Vec<String>, name: &str, value: f64) {
    if !(value.is_finite() && value > 0.0) {
        problems.push(format!("{name} must be a positive number, got {value}"));
    }
}

pub(crate) fn finish(model: &'static str, problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidConfig { model, problems })
    }
}

impl ModelConfig {
    /// Reads and validates `config.json` (any file path).
    ///
    /// # Errors
    /// Missing or unreadable file, invalid JSON, a missing or wrong-typed field, an unknown
    /// `model_type`, or an invalid configuration; each message names the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_value(value, path)
    }

    /// Parses and validates a `config.json` value; `path` is used in messages only.
    ///
    /// # Errors
    /// As [`ModelConfig::from_file`].
    pub fn from_value(mut value: Value, path: &Path) -> Result<Self> {
        let json_err = |e: serde_json::Error| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let model_type = value.get("model_type").and_then(Value::as_str).map(str::to_string);
        let config = match model_type.as_deref() {
            Some("gpt2") => {
                strip_generated(&mut value);
                ModelConfig::Gpt2(serde_json::from_value(value).map_err(json_err)?)
            }
            Some(other) if DecoderFamily::from_model_type(other).is_some() => {
                let family = DecoderFamily::from_model_type(other).unwrap_or_default();
                strip_generated(&mut value);
                if let Value::Object(map) = &mut value {
                    for (key, default) in family.defaults() {
                        map.entry(key).or_insert(default);
                    }
                }
                let mut c: LlamaConfig = serde_json::from_value(value).map_err(json_err)?;
                c.family = family;
                ModelConfig::Llama(c)
            }
            _ => {
                return Err(Error::UnknownArchitecture {
                    path: path.to_path_buf(),
                    model_type,
                })
            }
        };
        config.validate().map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            err: Box::new(e),
        })?;
        Ok(config)
    }

    /// The `config.json` value, loadable by `transformers`.
    pub fn to_value(&self) -> Value {
        let (value, model_type, arch) = match self {
            ModelConfig::Gpt2(c) => (serde_json::to_value(c), "gpt2", "GPT2LMHeadModel"),
            ModelConfig::Llama(c) => (serde_json::to_value(c), c.family.model_type(), c.family.architecture()),
        };
        let mut map = match value {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let ModelConfig::Llama(c) = self {
            // Phi-3 and Qwen2 read `getattr(config, "head_dim", hidden // heads)`: an unset
            // head_dim must be absent, not null.
            if c.family != DecoderFamily::Llama && c.head_dim.is_none() {
                map.remove("head_dim");
            }
            // A key left out means the family's default, so an unset one is written as null.
            for (key, default) in c.family.defaults() {
                if !default.is_null() {
                    map.entry(key).or_insert(Value::Null);
                }
            }
        }
        map.insert("model_type".into(), Value::from(model_type));
        map.insert("architectures".into(), Value::from(vec![arch]));
        Value::Object(map)
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] listing every problem.
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Gpt2(c) => c.validate(),
            ModelConfig::Llama(c) => c.validate(),
        }
    }

    /// Every parameter with its shape.
    pub fn parameter_shapes(&self) -> Vec<ParamShape> {
        match self {
            ModelConfig::Gpt2(c) => c.parameter_shapes(),
            ModelConfig::Llama(c) => c.parameter_shapes(),
        }
    }

    /// Total number of parameters (tied weights counted once).
    pub fn num_parameters(&self) -> i64 {
        self.parameter_shapes().iter().map(ParamShape::numel).sum()
    }

    /// Parameters outside the token and position embeddings and an untied head (blocks and final norm).
    pub fn num_non_embedding_parameters(&self) -> i64 {
        self.parameter_shapes()
            .iter()
            .filter(|p| !crate::params::Role::parse(self.family(), &p.name).is_some_and(|r| r.is_embedding()))
            .map(ParamShape::numel)
            .sum()
    }

    /// The family (whose Hugging Face key vocabulary [`crate::params::Role`] speaks).
    pub fn family(&self) -> crate::params::Family {
        match self {
            ModelConfig::Gpt2(_) => crate::params::Family::Gpt2,
            ModelConfig::Llama(_) => crate::params::Family::Llama,
        }
    }

    /// Context length.
    pub fn context_length(&self) -> i64 {
        match self {
            ModelConfig::Gpt2(c) => c.n_positions,
            ModelConfig::Llama(c) => c.max_position_embeddings,
        }
    }

    /// Vocabulary size (rows of the embedding).
    pub fn vocab_size(&self) -> i64 {
        match self {
            ModelConfig::Gpt2(c) => c.vocab_size,
            ModelConfig::Llama(c) => c.vocab_size,
        }
    }

    /// Number of blocks.
    pub fn n_layer(&self) -> i64 {
        match self {
            ModelConfig::Gpt2(c) => c.n_layer,
            ModelConfig::Llama(c) => c.num_hidden_layers,
        }
    }

    /// Number of (query) heads.
    pub fn n_head(&self) -> i64 {
        match self {
            ModelConfig::Gpt2(c) => c.n_head,
            ModelConfig::Llama(c) => c.num_attention_heads,
        }
    }

    /// Model width.
    pub fn n_embd(&self) -> i64 {
        match self {
            ModelConfig::Gpt2(c) => c.n_embd,
            ModelConfig::Llama(c) => c.hidden_size,
        }
    }

    /// `gpt2` or `llama`.
    /// The same architecture with another depth (an inherited or same-size scratch model).
    pub fn with_layers(&self, n_layer: i64) -> ModelConfig {
        match self {
            ModelConfig::Gpt2(c) => ModelConfig::Gpt2(c.with_layers(n_layer)),
            ModelConfig::Llama(c) => ModelConfig::Llama(c.with_layers(n_layer)),
        }
    }

    /// `model_type` of config.json.
    pub fn model_type(&self) -> &'static str {
        match self {
            ModelConfig::Gpt2(_) => "gpt2",
            ModelConfig::Llama(c) => c.family.model_type(),
        }
    }

    /// The config of a model made of these blocks of this one, in this order (inheritance with
    /// any selection, stacking): per-layer settings travel with their blocks.
    pub fn with_blocks(&self, blocks: &[i64]) -> ModelConfig {
        match self {
            ModelConfig::Gpt2(c) => ModelConfig::Gpt2(c.with_layers(blocks.len() as i64)),
            ModelConfig::Llama(c) => ModelConfig::Llama(c.with_blocks(blocks)),
        }
    }
}

/// Drops keys that we write ourselves (the family and the storage dtype) so they are not kept in `extra`.
fn strip_generated(value: &mut Value) {
    if let Value::Object(map) = value {
        for key in ["model_type", "architectures", "dtype", "torch_dtype"] {
            map.remove(key);
        }
    }
}

/// A named preset, for the CLI and recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// GPT-2 Small (paper variant).
    Gpt2Small,
    /// GPT-2 Medium.
    Gpt2Medium,
    /// GPT-2 Large.
    Gpt2Large,
    /// The 32-layer GPT-2 Large of the FineWeb-Edu runs.
    Gpt2LargeFineweb,
    /// GPT-2 XL.
    Gpt2Xl,
    /// Tiny GPT-2 for tests.
    Gpt2Tiny,
    /// OpenLLaMA-3B v1.
    OpenLlama3b,
    /// Tiny LLaMA for tests.
    LlamaTiny,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 8] = [
        Preset::Gpt2Small,
        Preset::Gpt2Medium,
        Preset::Gpt2Large,
        Preset::Gpt2LargeFineweb,
        Preset::Gpt2Xl,
        Preset::Gpt2Tiny,
        Preset::OpenLlama3b,
        Preset::LlamaTiny,
    ];

    /// The preset's configuration.
    pub fn config(self) -> ModelConfig {
        match self {
            Preset::Gpt2Small => ModelConfig::Gpt2(Gpt2Config::small()),
            Preset::Gpt2Medium => ModelConfig::Gpt2(Gpt2Config::medium()),
            Preset::Gpt2Large => ModelConfig::Gpt2(Gpt2Config::large()),
            Preset::Gpt2LargeFineweb => ModelConfig::Gpt2(Gpt2Config::large_fineweb()),
            Preset::Gpt2Xl => ModelConfig::Gpt2(Gpt2Config::xl()),
            Preset::Gpt2Tiny => ModelConfig::Gpt2(Gpt2Config::tiny()),
            Preset::OpenLlama3b => ModelConfig::Llama(LlamaConfig::open_llama_3b()),
            Preset::LlamaTiny => ModelConfig::Llama(LlamaConfig::tiny()),
        }
    }

    /// The preset's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Gpt2Small => "gpt2-small",
            Preset::Gpt2Medium => "gpt2-medium",
            Preset::Gpt2Large => "gpt2-large",
            Preset::Gpt2LargeFineweb => "gpt2-large-fineweb",
            Preset::Gpt2Xl => "gpt2-xl",
            Preset::Gpt2Tiny => "gpt2-tiny",
            Preset::OpenLlama3b => "open-llama-3b",
            Preset::LlamaTiny => "llama-tiny",
        }
    }
}
