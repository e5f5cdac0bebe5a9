//! Model configurations mirroring Hugging Face `config.json`, their validation, presets and parameter tables.
//!
//! Field names are the Hugging Face names, so a `config.json` written by `transformers` parses here and
//! ours parses there. Keys we do not interpret are kept in `extra` and written back unchanged.
//! This module must not touch tensors: it only describes shapes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

fn default_true() -> bool {
    true
}
fn default_gelu_new() -> String {
    "gelu_new".to_string()
}
fn default_ln_eps() -> f64 {
    1e-5
}
fn default_init_range() -> f64 {
    0.02
}
fn default_silu() -> String {
    "silu".to_string()
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_n_positions() -> i64 {
    1024
}
fn default_max_positions() -> i64 {
    2048
}

/// GPT-2 configuration with Hugging Face `GPT2Config` field names.
///
/// `bias` is ours: `false` gives the paper's bias-free model, saved with zero biases so that
/// `GPT2LMHeadModel` loads it with no missing keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size (50304 in the paper: 50257 padded to a multiple of 64).
    pub vocab_size: i64,
    /// Context length (learned positions).
    #[serde(default = "default_n_positions")]
    pub n_positions: i64,
    /// Model width.
    pub n_embd: i64,
    /// Number of blocks.
    pub n_layer: i64,
    /// Attention heads per block.
    pub n_head: i64,
    /// MLP width; `None` means 4 × `n_embd`.
    #[serde(default)]
    pub n_inner: Option<i64>,
    /// `gelu_new` / `gelu_pytorch_tanh` (tanh approximation) or `gelu` (exact).
    #[serde(default = "default_gelu_new")]
    pub activation_function: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_epsilon: f64,
    /// Standard deviation of the initialisation.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Divide attention logits by √d_head.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Divide attention logits of block i (0-based) by i + 1, as every script of the paper does.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Hugging Face's upcast-and-reorder attention variant; only `false` is supported.
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    /// `lm_head` shares `wte`.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Linear and LayerNorm biases (ours; absent in Hugging Face configs, where it is always true).
    #[serde(default = "default_true")]
    pub bias: bool,
    /// Every other key of `config.json`, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// LLaMA configuration with Hugging Face `LlamaConfig` field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Model width.
    pub hidden_size: i64,
    /// SwiGLU inner width.
    pub intermediate_size: i64,
    /// Number of decoder layers.
    pub num_hidden_layers: i64,
    /// Query heads.
    pub num_attention_heads: i64,
    /// Key/value heads (grouped-query attention); `None` means `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Head dimension; `None` means `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<i64>,
    /// MLP activation; only `silu` is supported.
    #[serde(default = "default_silu")]
    pub hidden_act: String,
    /// Context length.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (older `transformers` layout); see [`LlamaConfig::rope_theta`].
    #[serde(default, rename = "rope_theta", skip_serializing_if = "Option::is_none")]
    pub rope_theta_field: Option<f64>,
    /// RoPE parameters (newer `transformers` layout): `rope_type` must be `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<Value>,
    /// RoPE scaling (older layout); only absent or `default` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Value>,
    /// `lm_head` shares `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q, k, v and o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Standard deviation of the initialisation.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Every other key of `config.json`, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A model configuration of either supported family.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// GPT-2 (`GPT2LMHeadModel`).
    Gpt2(Gpt2Config),
    /// LLaMA (`LlamaForCausalLM`).
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
    fn new(name: String, shape: &[i64]) -> Self {
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

fn check_positive(problems: &mut Vec<String>, name: &str, value: i64) {
    if value <= 0 {
        problems.push(format!("{name} must be positive, got {value}"));
    }
}

fn check_eps(problems: &mut Vec<String>, name: &str, value: f64) {
    if !(value.is_finite() && value > 0.0) {
        problems.push(format!("{name} must be a positive number, got {value}"));
    }
}

impl Gpt2Config {
    /// The paper's GPT-2 (METHOD.md §3.1): vocabulary 50304, context 1024, no biases, tied head,
    /// tanh GELU, inverse-layer-index attention scaling.
    pub fn paper(n_layer: i64, n_head: i64, n_embd: i64) -> Self {
        Gpt2Config {
            vocab_size: 50304,
            n_positions: 1024,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: default_gelu_new(),
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: true,
            reorder_and_upcast_attn: false,
            tie_word_embeddings: true,
            bias: false,
            extra: BTreeMap::new(),
        }
    }

    /// GPT-2 Small, 12 × 768 (124.4M parameters).
    pub fn small() -> Self {
        Self::paper(12, 12, 768)
    }
    /// GPT-2 Medium, 24 × 1024 (354.6M).
    pub fn medium() -> Self {
        Self::paper(24, 16, 1024)
    }
    /// GPT-2 Large, 36 × 1280 (773.6M).
    pub fn large() -> Self {
        Self::paper(36, 20, 1280)
    }
    /// The custom 32-layer GPT-2 Large of the FineWeb-Edu runs (694.9M).
    pub fn large_fineweb() -> Self {
        Self::paper(32, 20, 1280)
    }
    /// GPT-2 XL, 48 × 1600 (1556.8M).
    pub fn xl() -> Self {
        Self::paper(48, 25, 1600)
    }
    /// A 2-layer, 64-wide model with a 256-token vocabulary and 64-token context, for CPU tests.
    pub fn tiny() -> Self {
        Gpt2Config {
            vocab_size: 256,
            n_positions: 64,
            ..Self::paper(2, 4, 64)
        }
    }

    /// The same config with another depth (the paper's inherited variants).
    pub fn with_layers(&self, n_layer: i64) -> Self {
        Gpt2Config {
            n_layer,
            ..self.clone()
        }
    }

    /// MLP width.
    pub fn inner(&self) -> i64 {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Head dimension.
    pub fn head_dim(&self) -> i64 {
        if self.n_head > 0 {
            self.n_embd / self.n_head
        } else {
            0
        }
    }

    /// Whether the MLP uses the tanh approximation of GELU.
    pub fn gelu_approximate(&self) -> &'static str {
        if self.activation_function == "gelu" {
            "none"
        } else {
            "tanh"
        }
    }

    /// Checks every field and reports all problems at once.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] listing each impossible or unsupported field.
    pub fn validate(&self) -> Result<()> {
        let mut p = Vec::new();
        check_positive(&mut p, "vocab_size", self.vocab_size);
        check_positive(&mut p, "n_positions", self.n_positions);
        check_positive(&mut p, "n_embd", self.n_embd);
        check_positive(&mut p, "n_layer", self.n_layer);
        check_positive(&mut p, "n_head", self.n_head);
        if let Some(inner) = self.n_inner {
            check_positive(&mut p, "n_inner", inner);
        }
        if self.n_head > 0 && self.n_embd > 0 && self.n_embd % self.n_head != 0 {
            p.push(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            ));
        }
        check_eps(&mut p, "layer_norm_epsilon", self.layer_norm_epsilon);
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu"
        ) {
            p.push(format!(
                "activation_function {:?} is not supported (gelu_new, gelu_pytorch_tanh, gelu)",
                self.activation_function
            ));
        }
        if self.reorder_and_upcast_attn {
            p.push("reorder_and_upcast_attn = true is not supported".to_string());
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            p.push(format!(
                "initializer_range must be >= 0, got {}",
                self.initializer_range
            ));
        }
        finish("GPT-2", p)
    }

    /// Every parameter with its shape, in construction order.
    pub fn parameter_shapes(&self) -> Vec<ParamShape> {
        let (d, v, inner) = (self.n_embd, self.vocab_size, self.inner());
        let mut out = vec![
            ParamShape::new("transformer.wte.weight".into(), &[v, d]),
            ParamShape::new("transformer.wpe.weight".into(), &[self.n_positions, d]),
        ];
        let push = |out: &mut Vec<ParamShape>, prefix: &str, w: &[i64], b: i64| {
            out.push(ParamShape::new(format!("{prefix}.weight"), w));
            if self.bias {
                out.push(ParamShape::new(format!("{prefix}.bias"), &[b]));
            }
        };
        for i in 0..self.n_layer.max(0) {
            let h = format!("transformer.h.{i}");
            push(&mut out, &format!("{h}.ln_1"), &[d], d);
            push(&mut out, &format!("{h}.attn.c_attn"), &[3 * d, d], 3 * d);
            push(&mut out, &format!("{h}.attn.c_proj"), &[d, d], d);
            push(&mut out, &format!("{h}.ln_2"), &[d], d);
            push(&mut out, &format!("{h}.mlp.c_fc"), &[inner, d], inner);
            push(&mut out, &format!("{h}.mlp.c_proj"), &[d, inner], d);
        }
        push(&mut out, "transformer.ln_f", &[d], d);
        if !self.tie_word_embeddings {
            out.push(ParamShape::new("lm_head.weight".into(), &[v, d]));
        }
        out
    }
}

impl LlamaConfig {
    /// OpenLLaMA-3B v1 (METHOD.md §3.3): 26 × 3200, 32 heads, SwiGLU 8640, vocabulary 32000, untied.
    pub fn open_llama_3b() -> Self {
        LlamaConfig {
            vocab_size: 32000,
            hidden_size: 3200,
            intermediate_size: 8640,
            num_hidden_layers: 26,
            num_attention_heads: 32,
            num_key_value_heads: Some(32),
            head_dim: None,
            hidden_act: default_silu(),
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-6,
            rope_theta_field: Some(10000.0),
            rope_parameters: None,
            rope_scaling: None,
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            initializer_range: 0.02,
            extra: BTreeMap::new(),
        }
    }

    /// A 2-layer, 64-wide grouped-query model (4 heads, 2 KV heads), 256 tokens, for CPU tests.
    pub fn tiny() -> Self {
        LlamaConfig {
            vocab_size: 256,
            hidden_size: 64,
            intermediate_size: 172,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            max_position_embeddings: 64,
            tie_word_embeddings: true,
            ..Self::open_llama_3b()
        }
    }

    /// The same config with another depth.
    pub fn with_layers(&self, num_hidden_layers: i64) -> Self {
        LlamaConfig {
            num_hidden_layers,
            ..self.clone()
        }
    }

    /// Key/value heads.
    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Head dimension.
    pub fn head_dim(&self) -> i64 {
        match self.head_dim {
            Some(h) => h,
            None if self.num_attention_heads > 0 => self.hidden_size / self.num_attention_heads,
            None => 0,
        }
    }

    /// The RoPE base, from `rope_theta` or `rope_parameters.rope_theta` (default 10000).
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta_field
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10000.0)
    }

    /// Checks every field and reports all problems at once.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] listing each impossible or unsupported field.
    pub fn validate(&self) -> Result<()> {
        let mut p = Vec::new();
        check_positive(&mut p, "vocab_size", self.vocab_size);
        check_positive(&mut p, "hidden_size", self.hidden_size);
        check_positive(&mut p, "intermediate_size", self.intermediate_size);
        check_positive(&mut p, "num_hidden_layers", self.num_hidden_layers);
        check_positive(&mut p, "num_attention_heads", self.num_attention_heads);
        check_positive(&mut p, "num_key_value_heads", self.kv_heads());
        check_positive(&mut p, "max_position_embeddings", self.max_position_embeddings);
        let (nh, nkv) = (self.num_attention_heads, self.kv_heads());
        if nh > 0 && nkv > 0 && nh % nkv != 0 {
            p.push(format!(
                "num_key_value_heads {nkv} does not divide num_attention_heads {nh}"
            ));
        }
        match self.head_dim {
            Some(h) => check_positive(&mut p, "head_dim", h),
            None => {
                if nh > 0 && self.hidden_size > 0 && self.hidden_size % nh != 0 {
                    p.push(format!(
                        "hidden_size {} is not divisible by num_attention_heads {nh}",
                        self.hidden_size
                    ));
                }
            }
        }
        if self.head_dim() > 0 && self.head_dim() % 2 != 0 {
            p.push(format!("head_dim {} must be even for RoPE", self.head_dim()));
        }
        check_eps(&mut p, "rms_norm_eps", self.rms_norm_eps);
        if self.hidden_act != "silu" {
            p.push(format!("hidden_act {:?} is not supported (silu)", self.hidden_act));
        }
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 0.0) {
            p.push(format!("rope_theta must be positive, got {theta}"));
        }
        for (field, value) in [
            ("rope_parameters", &self.rope_parameters),
            ("rope_scaling", &self.rope_scaling),
        ] {
            if let Some(v) = value {
                let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str);
                if !(v.is_null() || kind.is_none() || kind == Some("default")) {
                    p.push(format!("{field}: rope_type {kind:?} is not supported (default)"));
                }
            }
        }
        if let Some(tp) = self.extra.get("pretraining_tp").and_then(Value::as_i64) {
            if tp != 1 {
                p.push(format!("pretraining_tp {tp} is not supported (1)"));
            }
        }
        finish("LLaMA", p)
    }

    /// Every parameter with its shape, in construction order.
    pub fn parameter_shapes(&self) -> Vec<ParamShape> {
        let (d, v, im) = (self.hidden_size, self.vocab_size, self.intermediate_size);
        let (q, kv) = (
            self.num_attention_heads * self.head_dim(),
            self.kv_heads() * self.head_dim(),
        );
        let mut out = vec![ParamShape::new("model.embed_tokens.weight".into(), &[v, d])];
        let lin = |out: &mut Vec<ParamShape>, prefix: String, o: i64, i: i64, bias: bool| {
            out.push(ParamShape::new(format!("{prefix}.weight"), &[o, i]));
            if bias {
                out.push(ParamShape::new(format!("{prefix}.bias"), &[o]));
            }
        };
        for l in 0..self.num_hidden_layers.max(0) {
            let h = format!("model.layers.{l}");
            out.push(ParamShape::new(format!("{h}.input_layernorm.weight"), &[d]));
            lin(&mut out, format!("{h}.self_attn.q_proj"), q, d, self.attention_bias);
            lin(&mut out, format!("{h}.self_attn.k_proj"), kv, d, self.attention_bias);
            lin(&mut out, format!("{h}.self_attn.v_proj"), kv, d, self.attention_bias);
            lin(&mut out, format!("{h}.self_attn.o_proj"), d, q, self.attention_bias);
            out.push(ParamShape::new(format!("{h}.post_attention_layernorm.weight"), &[d]));
            lin(&mut out, format!("{h}.mlp.gate_proj"), im, d, self.mlp_bias);
            lin(&mut out, format!("{h}.mlp.up_proj"), im, d, self.mlp_bias);
            lin(&mut out, format!("{h}.mlp.down_proj"), d, im, self.mlp_bias);
        }
        out.push(ParamShape::new("model.norm.weight".into(), &[d]));
        if !self.tie_word_embeddings {
            out.push(ParamShape::new("lm_head.weight".into(), &[v, d]));
        }
        out
    }
}

fn finish(model: &'static str, problems: Vec<String>) -> Result<()> {
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
            Some("llama") => {
                strip_generated(&mut value);
                ModelConfig::Llama(serde_json::from_value(value).map_err(json_err)?)
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
            ModelConfig::Llama(c) => (serde_json::to_value(c), "llama", "LlamaForCausalLM"),
        };
        let mut map = match value {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
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
            ModelConfig::Llama(_) => "llama",
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
