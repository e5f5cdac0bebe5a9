//! LLaMA (Touvron et al. 2023, arXiv 2302.13971) as in Hugging Face `LlamaForCausalLM`.
//!
//! RMSNorm, rotary position embeddings over the full head (non-interleaved halves, configurable
//! base), SwiGLU MLP, grouped-query attention, tied or untied head. Initialisation N(0, 0.02) for
//! linear and embedding weights, ones for norms, as `transformers` does.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{check_eps, check_positive, finish, ParamShape};
use crate::config::{default_init_range, default_max_positions, default_rms_eps, default_silu};

use crate::error::Result;
use crate::layers::{causal_attention, AttentionVisitor, Linear, RmsNorm};

#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_head: i64,
    n_kv: i64,
    head_dim: i64,
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

#[derive(Debug)]
struct Layer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

/// A LLaMA language model.
#[derive(Debug)]
pub struct Llama {
    config: LlamaConfig,
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Tensor,
}

/// `rotate_half` of `transformers`: `(x1, x2) -> (-x2, x1)` on the two halves of the last dimension.
fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[x.dim() - 1] / 2;
    let x1 = x.narrow(-1, 0, half);
    let x2 = x.narrow(-1, half, half);
    Tensor::cat(&[-x2, x1], -1)
}

impl Layer {
    fn new(p: &Path, c: &LlamaConfig) -> Result<Self> {
        let (d, hd, std) = (c.hidden_size, c.head_dim(), c.initializer_range);
        let (q, kv) = (c.num_attention_heads * hd, c.kv_heads() * hd);
        let (pa, pm) = (p / "self_attn", p / "mlp");
        let ab = c.attention_bias;
        Ok(Layer {
            input_layernorm: RmsNorm::new(&(p / "input_layernorm"), d, c.rms_norm_eps)?,
            self_attn: Attention {
                q_proj: Linear::new(&(&pa / "q_proj"), q, d, ab, std)?,
                k_proj: Linear::new(&(&pa / "k_proj"), kv, d, ab, std)?,
                v_proj: Linear::new(&(&pa / "v_proj"), kv, d, ab, std)?,
                o_proj: Linear::new(&(&pa / "o_proj"), d, q, ab, std)?,
                n_head: c.num_attention_heads,
                n_kv: c.kv_heads(),
                head_dim: hd,
            },
            post_attention_layernorm: RmsNorm::new(&(p / "post_attention_layernorm"), d, c.rms_norm_eps)?,
            mlp: Mlp {
                gate_proj: Linear::new(&(&pm / "gate_proj"), c.intermediate_size, d, c.mlp_bias, std)?,
                up_proj: Linear::new(&(&pm / "up_proj"), c.intermediate_size, d, c.mlp_bias, std)?,
                down_proj: Linear::new(&(&pm / "down_proj"), d, c.intermediate_size, c.mlp_bias, std)?,
            },
        })
    }
}

impl Attention {
    fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, visit: Option<(usize, AttentionVisitor)>) -> Tensor {
        let (b, t, _) = x.size3().unwrap_or((0, 0, 0));
        let heads = |z: Tensor, n: i64| z.view([b, t, n, self.head_dim]).transpose(1, 2); // (B, n, T, hd)
        let q = heads(self.q_proj.forward(x), self.n_head);
        let k = heads(self.k_proj.forward(x), self.n_kv);
        let v = heads(self.v_proj.forward(x), self.n_kv);
        let rope = |z: &Tensor| z * cos + rotate_half(z) * sin;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let y = causal_attention(&rope(&q), &rope(&k), &v, scale, visit); // (B, nh, T, hd)
        self.o_proj
            .forward(&y.transpose(1, 2).contiguous().view([b, t, self.n_head * self.head_dim]))
    }
}

impl Llama {
    /// Builds the model under `root` (normally the var store's root).
    ///
    /// # Errors
    /// An invalid config, or a torch error while allocating.
    pub fn new(root: &Path, config: &LlamaConfig) -> Result<Self> {
        config.validate()?;
        let c = config;
        let m = root / "model";
        let init = Init::Randn {
            mean: 0.0,
            stdev: c.initializer_range,
        };
        let embed_tokens = (&m / "embed_tokens").f_var("weight", &[c.vocab_size, c.hidden_size], init)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::new(&(&m / "layers" / i), c))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(&(&m / "norm"), c.hidden_size, c.rms_norm_eps)?;
        let lm_head = if c.tie_word_embeddings {
            embed_tokens.shallow_clone()
        } else {
            (root / "lm_head").f_var("weight", &[c.vocab_size, c.hidden_size], init)?
        };
        Ok(Llama {
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// RoPE tables `(T, hd)` computed in f32 and cast to `kind`, as `transformers` does.
    fn rope_tables(&self, t: i64, device: tch::Device, kind: Kind) -> (Tensor, Tensor) {
        let hd = self.config.head_dim();
        let exponents = Tensor::arange_start_step(0, hd, 2, (Kind::Int64, device)).to_kind(Kind::Float) / hd as f64;
        let inv_freq = Tensor::from(self.config.rope_theta())
            .to_device(device)
            .to_kind(Kind::Float)
            .pow(&exponents)
            .reciprocal(); // (hd/2)
        let pos = Tensor::arange(t, (Kind::Float, device));
        let freqs = pos.outer(&inv_freq); // (T, hd/2)
        let emb = Tensor::cat(&[&freqs, &freqs], -1); // (T, hd)
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }

    /// Final hidden states `(B, T, d)` after the last norm, for ids `(B, T)` already checked by the caller.
    pub fn hidden(&self, idx: &Tensor, mut visitor: Option<AttentionVisitor>) -> Tensor {
        let t = idx.size()[1];
        let mut x = Tensor::embedding(&self.embed_tokens, idx, -1, false, false); // (B, T, d)
        let (cos, sin) = self.rope_tables(t, idx.device(), x.kind());
        for (i, layer) in self.layers.iter().enumerate() {
            let visit = visitor.as_mut().map(|v| (i, &mut **v as AttentionVisitor));
            let h = layer
                .self_attn
                .forward(&layer.input_layernorm.forward(&x), &cos, &sin, visit);
            x = &x + h; // not `+=`: in-place would break autograd
            let h = layer.post_attention_layernorm.forward(&x);
            let m = &layer.mlp;
            x = &x
                + m.down_proj
                    .forward(&(m.gate_proj.forward(&h).silu() * m.up_proj.forward(&h)));
        }
        self.norm.forward(&x)
    }

    /// Logits `(B, T, V)` for ids `(B, T)` already checked by the caller.
    pub fn logits(&self, idx: &Tensor, visitor: Option<AttentionVisitor>) -> Tensor {
        self.head(&self.hidden(idx, visitor))
    }

    /// Logits for final hidden states of any leading shape `(..., d)`.
    pub fn head(&self, hidden: &Tensor) -> Tensor {
        hidden.linear(&self.lm_head, None::<&Tensor>)
    }
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
    /// [`crate::Error::InvalidConfig`] listing each impossible or unsupported field.
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
