//! The LLaMA family of decoders, as `transformers` 4.57 computes each of them:
//! LLaMA (incl. Llama 3.x and SmolLM2), Mistral, Qwen2/2.5, Qwen3, Gemma 2, Gemma 3 (text) and Phi-3.
//!
//! They share one skeleton (token embedding, pre-norm blocks of grouped-query attention with
//! rotary positions and a gated MLP, a final RMSNorm, a tied or untied head) and differ in
//! details that [`DecoderFamily`] and [`LlamaConfig`] switch on:
//! - biases: LLaMA's `attention_bias`/`mlp_bias`, Qwen2's fixed q/k/v biases;
//! - q/k norms before RoPE (Qwen3, Gemma 3);
//! - Gemma's `(1 + w)` norms, embedding scaled by `sqrt(hidden)`, four norms per block,
//!   `query_pre_attn_scalar`, attention and final-logit soft-capping, GeGLU;
//! - sliding-window layers (Mistral, Qwen2/3 with `use_sliding_window`, Gemma's `layer_types`),
//!   Gemma 3's local RoPE base on sliding layers;
//! - Phi-3's fused `qkv_proj`/`gate_up_proj` and partial rotary dimensions;
//! - RoPE scaling (`linear`, `dynamic`, `llama3`, `yarn`: [`crate::rope`]).
//!
//! Initialisation N(0, `initializer_range`) for linear and embedding weights, ones for norms
//! (zeros for Gemma's offset norms), as `transformers` does.

use tch::nn::{Init, Path};
use tch::Tensor;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{check_eps, check_positive, finish, ParamShape};
use crate::config::{default_init_range, default_max_positions, default_rms_eps, default_silu};

use crate::error::Result;
use crate::layers::{attention, AttentionMask, AttentionVisitor, Linear, Packing, Probe, RmsNorm};
use crate::rope::{Rope, RopeScaling};

/// The `model_type`s of the LLaMA family of decoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DecoderFamily {
    /// `llama` (`LlamaForCausalLM`): LLaMA 1–3.x, OpenLLaMA, SmolLM2.
    #[default]
    Llama,
    /// `mistral` (`MistralForCausalLM`).
    Mistral,
    /// `qwen2` (`Qwen2ForCausalLM`): Qwen2 and Qwen2.5.
    Qwen2,
    /// `qwen3` (`Qwen3ForCausalLM`).
    Qwen3,
    /// `gemma2` (`Gemma2ForCausalLM`).
    Gemma2,
    /// `gemma3_text` (`Gemma3ForCausalLM`): Gemma 3 1B and 270M, or the text model of larger ones.
    Gemma3Text,
    /// `phi3` (`Phi3ForCausalLM`).
    Phi3,
}

impl DecoderFamily {
    /// Every family.
    pub const ALL: [DecoderFamily; 7] = [
        DecoderFamily::Llama,
        DecoderFamily::Mistral,
        DecoderFamily::Qwen2,
        DecoderFamily::Qwen3,
        DecoderFamily::Gemma2,
        DecoderFamily::Gemma3Text,
        DecoderFamily::Phi3,
    ];

    /// `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            DecoderFamily::Llama => "llama",
            DecoderFamily::Mistral => "mistral",
            DecoderFamily::Qwen2 => "qwen2",
            DecoderFamily::Qwen3 => "qwen3",
            DecoderFamily::Gemma2 => "gemma2",
            DecoderFamily::Gemma3Text => "gemma3_text",
            DecoderFamily::Phi3 => "phi3",
        }
    }

    /// The `transformers` class that loads it.
    pub fn architecture(self) -> &'static str {
        match self {
            DecoderFamily::Llama => "LlamaForCausalLM",
            DecoderFamily::Mistral => "MistralForCausalLM",
            DecoderFamily::Qwen2 => "Qwen2ForCausalLM",
            DecoderFamily::Qwen3 => "Qwen3ForCausalLM",
            DecoderFamily::Gemma2 => "Gemma2ForCausalLM",
            DecoderFamily::Gemma3Text => "Gemma3ForCausalLM",
            DecoderFamily::Phi3 => "Phi3ForCausalLM",
        }
    }

    /// The family of a `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.model_type() == model_type)
    }

    /// Gemma 2 or 3: offset norms, scaled embedding, four norms per block, GeGLU.
    pub fn is_gemma(self) -> bool {
        matches!(self, DecoderFamily::Gemma2 | DecoderFamily::Gemma3Text)
    }

    /// Whether its attention reads `layer_types` (else every layer is alike).
    pub fn reads_layer_types(self) -> bool {
        matches!(
            self,
            DecoderFamily::Qwen2 | DecoderFamily::Qwen3 | DecoderFamily::Gemma2 | DecoderFamily::Gemma3Text
        )
    }

    /// The defaults of the family's `transformers` config class that differ from this crate's
    /// serde defaults, for keys a `config.json` may leave out (`save_pretrained` omits some).
    pub fn defaults(self) -> Vec<(&'static str, Value)> {
        use serde_json::json;
        match self {
            DecoderFamily::Llama => vec![],
            DecoderFamily::Mistral => vec![
                ("max_position_embeddings", json!(131072)),
                ("sliding_window", json!(4096)),
            ],
            DecoderFamily::Qwen2 | DecoderFamily::Qwen3 => {
                let mut d = vec![
                    ("max_position_embeddings", json!(32768)),
                    ("use_sliding_window", json!(false)),
                    ("sliding_window", json!(4096)),
                    ("max_window_layers", json!(28)),
                ];
                if self == DecoderFamily::Qwen3 {
                    d.push(("head_dim", json!(128)));
                }
                d
            }
            DecoderFamily::Gemma2 => vec![
                ("head_dim", json!(256)),
                ("hidden_activation", json!("gelu_pytorch_tanh")),
                ("max_position_embeddings", json!(8192)),
                ("tie_word_embeddings", json!(true)),
                ("query_pre_attn_scalar", json!(256)),
                ("sliding_window", json!(4096)),
                ("final_logit_softcapping", json!(30.0)),
                ("attn_logit_softcapping", json!(50.0)),
            ],
            DecoderFamily::Gemma3Text => vec![
                ("head_dim", json!(256)),
                ("hidden_activation", json!("gelu_pytorch_tanh")),
                ("max_position_embeddings", json!(131072)),
                ("tie_word_embeddings", json!(true)),
                ("rope_theta", json!(1_000_000.0)),
                ("query_pre_attn_scalar", json!(256)),
                ("sliding_window", json!(4096)),
                ("rope_local_base_freq", json!(10000.0)),
            ],
            DecoderFamily::Phi3 => vec![("rms_norm_eps", json!(1e-5)), ("max_position_embeddings", json!(4096))],
        }
    }
}

#[derive(Debug)]
enum QkvProj {
    Separate {
        q: Linear,
        k: Linear,
        v: Linear,
    },
    /// Phi-3's `qkv_proj`: q rows, then k rows, then v rows.
    Fused(Linear),
}

#[derive(Debug)]
struct Attention {
    proj: QkvProj,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    n_head: i64,
    n_kv: i64,
    head_dim: i64,
    rope_dim: i64,
    scale: f64,
    mask: AttentionMask,
    /// Uses the local (sliding-layer) rotary tables (Gemma 3).
    local_rope: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Silu,
    GeluTanh,
    Gelu,
}

impl Act {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Act::Silu),
            "gelu_pytorch_tanh" => Some(Act::GeluTanh),
            "gelu" => Some(Act::Gelu),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Act::Silu => x.silu(),
            Act::GeluTanh => x.gelu("tanh"),
            Act::Gelu => x.gelu("none"),
        }
    }
}

#[derive(Debug)]
enum MlpIn {
    Separate {
        gate: Linear,
        up: Linear,
    },
    /// Phi-3's `gate_up_proj`: gate rows, then up rows.
    Fused(Linear),
}

#[derive(Debug)]
struct Mlp {
    input: MlpIn,
    down_proj: Linear,
    act: Act,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let inner = match &self.input {
            MlpIn::Separate { gate, up } => self.act.apply(&gate.forward(x)) * up.forward(x),
            MlpIn::Fused(gate_up) => {
                let both = gate_up.forward(x);
                let halves = both.chunk(2, -1);
                &halves[1] * self.act.apply(&halves[0])
            }
        };
        self.down_proj.forward(&inner)
    }
}

#[derive(Debug)]
struct Layer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    /// LLaMA: the norm before the MLP. Gemma: the norm of the attention output.
    post_attention_layernorm: RmsNorm,
    /// Gemma's norms before and after the MLP.
    ffw_norms: Option<(RmsNorm, RmsNorm)>,
    mlp: Mlp,
}

/// A decoder of the LLaMA family.
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
    fn new(p: &Path, c: &LlamaConfig, index: i64) -> Result<Self> {
        let (d, hd, std, eps) = (c.hidden_size, c.head_dim(), c.initializer_range, c.rms_norm_eps);
        let (q, kv) = (c.num_attention_heads * hd, c.kv_heads() * hd);
        let (pa, pm) = (p / "self_attn", p / "mlp");
        let gemma = c.family.is_gemma();
        let norm = |path: &Path, dim: i64| {
            if gemma {
                RmsNorm::gemma(path, dim, eps)
            } else {
                RmsNorm::new(path, dim, eps)
            }
        };
        let (qkv_bias, o_bias) = c.attention_biases();
        let proj = if c.family == DecoderFamily::Phi3 {
            QkvProj::Fused(Linear::new(&(&pa / "qkv_proj"), q + 2 * kv, d, false, std)?)
        } else {
            QkvProj::Separate {
                q: Linear::new(&(&pa / "q_proj"), q, d, qkv_bias, std)?,
                k: Linear::new(&(&pa / "k_proj"), kv, d, qkv_bias, std)?,
                v: Linear::new(&(&pa / "v_proj"), kv, d, qkv_bias, std)?,
            }
        };
        let qk_norms = matches!(c.family, DecoderFamily::Qwen3 | DecoderFamily::Gemma3Text);
        let mlp_bias = c.family == DecoderFamily::Llama && c.mlp_bias;
        let im = c.intermediate_size;
        let input = if c.family == DecoderFamily::Phi3 {
            MlpIn::Fused(Linear::new(&(&pm / "gate_up_proj"), 2 * im, d, false, std)?)
        } else {
            MlpIn::Separate {
                gate: Linear::new(&(&pm / "gate_proj"), im, d, mlp_bias, std)?,
                up: Linear::new(&(&pm / "up_proj"), im, d, mlp_bias, std)?,
            }
        };
        Ok(Layer {
            input_layernorm: norm(&(p / "input_layernorm"), d)?,
            self_attn: Attention {
                proj,
                o_proj: Linear::new(&(&pa / "o_proj"), d, q, o_bias, std)?,
                q_norm: if qk_norms {
                    Some(norm(&(&pa / "q_norm"), hd)?)
                } else {
                    None
                },
                k_norm: if qk_norms {
                    Some(norm(&(&pa / "k_norm"), hd)?)
                } else {
                    None
                },
                n_head: c.num_attention_heads,
                n_kv: c.kv_heads(),
                head_dim: hd,
                rope_dim: c.rope_dim(),
                scale: c.attention_scale(),
                mask: AttentionMask {
                    window: c.layer_window(index),
                    softcap: c.attn_logit_softcapping.filter(|_| c.family == DecoderFamily::Gemma2),
                },
                local_rope: c.family == DecoderFamily::Gemma3Text && c.is_sliding(index),
            },
            post_attention_layernorm: norm(&(p / "post_attention_layernorm"), d)?,
            ffw_norms: if gemma {
                Some((
                    norm(&(p / "pre_feedforward_layernorm"), d)?,
                    norm(&(p / "post_feedforward_layernorm"), d)?,
                ))
            } else {
                None
            },
            mlp: Mlp {
                input,
                down_proj: Linear::new(&(&pm / "down_proj"), d, im, mlp_bias, std)?,
                act: Act::parse(c.activation()).unwrap_or(Act::Silu),
            },
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        tables: &RopeTables,
        packing: Option<&Packing>,
        visit: Option<(usize, AttentionVisitor)>,
    ) -> Tensor {
        let (cos, sin) = if self.self_attn.local_rope {
            tables.local.as_ref().unwrap_or(&tables.global)
        } else {
            &tables.global
        };
        let h = self
            .self_attn
            .forward(&self.input_layernorm.forward(x), cos, sin, packing, visit);
        match &self.ffw_norms {
            None => {
                let x = x + h; // not `+=`: in-place would break autograd
                let m = self.mlp.forward(&self.post_attention_layernorm.forward(&x));
                &x + m
            }
            Some((pre, post)) => {
                let x = x + self.post_attention_layernorm.forward(&h);
                let m = post.forward(&self.mlp.forward(&pre.forward(&x)));
                &x + m
            }
        }
    }
}

struct RopeTables {
    global: (Tensor, Tensor),
    local: Option<(Tensor, Tensor)>,
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        packing: Option<&Packing>,
        visit: Option<(usize, AttentionVisitor)>,
    ) -> Tensor {
        let (b, t, _) = x.size3().unwrap_or((0, 0, 0));
        let (q, k, v) = match &self.proj {
            QkvProj::Separate { q, k, v } => (q.forward(x), k.forward(x), v.forward(x)),
            QkvProj::Fused(qkv) => {
                let all = qkv.forward(x);
                let (nq, nk) = (self.n_head * self.head_dim, self.n_kv * self.head_dim);
                (
                    all.narrow(-1, 0, nq),
                    all.narrow(-1, nq, nk),
                    all.narrow(-1, nq + nk, nk),
                )
            }
        };
        let heads = |z: Tensor, n: i64, norm: &Option<RmsNorm>| {
            let z = z.view([b, t, n, self.head_dim]);
            let z = match norm {
                Some(norm) => norm.forward(&z),
                None => z,
            };
            z.transpose(1, 2) // (B, n, T, hd)
        };
        let q = heads(q, self.n_head, &self.q_norm);
        let k = heads(k, self.n_kv, &self.k_norm);
        let v = heads(v, self.n_kv, &None);
        let rope = |z: &Tensor| {
            if self.rope_dim == self.head_dim {
                z * cos + rotate_half(z) * sin
            } else {
                let rot = z.narrow(-1, 0, self.rope_dim);
                let pass = z.narrow(-1, self.rope_dim, self.head_dim - self.rope_dim);
                Tensor::cat(&[&rot * cos + rotate_half(&rot) * sin, pass], -1)
            }
        };
        let y = attention(&rope(&q), &rope(&k), &v, self.scale, self.mask, packing, visit); // (B, nh, T, hd)
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
        let embed_tokens = crate::layers::var(&(&m / "embed_tokens"), "weight", &[c.vocab_size, c.hidden_size], init)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::new(&(&m / "layers" / i), c, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = if c.family.is_gemma() {
            RmsNorm::gemma(&(&m / "norm"), c.hidden_size, c.rms_norm_eps)?
        } else {
            RmsNorm::new(&(&m / "norm"), c.hidden_size, c.rms_norm_eps)?
        };
        let lm_head = if c.tie_word_embeddings {
            embed_tokens.shallow_clone()
        } else {
            crate::layers::var(&(root / "lm_head"), "weight", &[c.vocab_size, c.hidden_size], init)?
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

    /// Final hidden states `(B, T, d)` after the last norm, for ids `(B, T)` already checked by the caller.
    pub fn hidden(&self, idx: &Tensor, visitor: Option<AttentionVisitor>) -> Tensor {
        self.hidden_probed(idx, &mut Probe::attention(visitor))
    }

    /// As [`Llama::hidden`], reporting to or changing the pass as `probe` asks.
    pub fn hidden_probed(&self, idx: &Tensor, probe: &mut Probe) -> Tensor {
        let t = idx.size()[1];
        let mut x = Tensor::embedding(&self.embed_tokens, idx, -1, false, false); // (B, T, d)
        if self.config.family.is_gemma() {
            // `torch.tensor(hidden_size ** 0.5, dtype=hidden_states.dtype)`: the constant rounded first.
            let normalizer = Tensor::from((self.config.hidden_size as f64).sqrt())
                .to_kind(x.kind())
                .to_device(x.device());
            x = &x * &normalizer;
        }
        let (device, kind) = (idx.device(), x.kind());
        let tables = match probe.packing {
            None => RopeTables {
                global: self.config.rope().tables(t, device, kind),
                local: self.config.rope_local().map(|r| r.tables(t, device, kind)),
            },
            Some(p) => {
                // Each token's rows of the tables of the longest unpacked sequence, `(B, 1, T, hd)`.
                let len = p.positions.max().int64_value(&[]) + 1;
                let at = |(cos, sin): (Tensor, Tensor)| {
                    let pick = |z: Tensor| {
                        let hd = z.size()[1];
                        z.index_select(0, &p.positions.flatten(0, -1)).view([
                            p.positions.size()[0],
                            1,
                            p.positions.size()[1],
                            hd,
                        ])
                    };
                    (pick(cos), pick(sin))
                };
                RopeTables {
                    global: at(self.config.rope().tables(len, device, kind)),
                    local: self.config.rope_local().map(|r| at(r.tables(len, device, kind))),
                }
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(r) = probe.residual.as_mut() {
                r(i, &x);
            }
            if probe.skip == Some(i) {
                continue;
            }
            let visit = probe.attention.as_mut().map(|v| (i, &mut **v as AttentionVisitor));
            x = layer.forward(&x, &tables, probe.packing, visit);
        }
        if let Some(r) = probe.residual.as_mut() {
            r(self.layers.len(), &x);
        }
        self.norm.forward(&x)
    }

    /// Logits `(B, T, V)` for ids `(B, T)` already checked by the caller.
    pub fn logits(&self, idx: &Tensor, visitor: Option<AttentionVisitor>) -> Tensor {
        self.head(&self.hidden(idx, visitor))
    }

    /// Logits for final hidden states of any leading shape `(..., d)` (soft-capped where the
    /// family caps them).
    pub fn head(&self, hidden: &Tensor) -> Tensor {
        let logits = hidden.linear(&self.lm_head, None::<&Tensor>);
        match self.config.final_softcap() {
            Some(c) => (logits / c).tanh() * c,
            None => logits,
        }
    }
}

/// Configuration of a decoder of the LLaMA family, with the Hugging Face field names of
/// `LlamaConfig` and of the other families' config classes. [`LlamaConfig::family`] says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Which family (`model_type`); not a serde field: [`crate::ModelConfig`] reads and writes it.
    #[serde(skip)]
    pub family: DecoderFamily,
    /// Vocabulary size.
    pub vocab_size: i64,
    /// Model width.
    pub hidden_size: i64,
    /// Gated-MLP inner width.
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
    /// MLP activation (`silu`); Gemma reads [`LlamaConfig::hidden_activation`] instead.
    #[serde(default = "default_silu")]
    pub hidden_act: String,
    /// Gemma's MLP activation (`gelu_pytorch_tanh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    /// Context length.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: i64,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (older `transformers` layout); see [`LlamaConfig::rope_theta`].
    #[serde(default, rename = "rope_theta", skip_serializing_if = "Option::is_none")]
    pub rope_theta_field: Option<f64>,
    /// RoPE parameters (newer `transformers` layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<Value>,
    /// RoPE scaling: `linear`, `dynamic`, `llama3` or `yarn` (under `rope_type` or `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Value>,
    /// Phi-3's share of each head that is rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_rotary_factor: Option<f64>,
    /// Gemma 3's RoPE base on sliding layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_local_base_freq: Option<f64>,
    /// `lm_head` shares `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q, k, v and o projections (LLaMA, Qwen3, Gemma).
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections (LLaMA).
    #[serde(default)]
    pub mlp_bias: bool,
    /// The window of sliding-window layers (`None`: no window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<i64>,
    /// Qwen2/3: whether `sliding_window` is used at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    /// Qwen2/3: layers from this index on slide (when `layer_types` is not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_window_layers: Option<i64>,
    /// Per layer, `full_attention` or `sliding_attention` (Qwen2/3, Gemma).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Gemma: the attention scale is `query_pre_attn_scalar ** -0.5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 2: attention scores become `c · tanh(s / c)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma: logits become `c · tanh(z / c)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_logit_softcapping: Option<f64>,
    /// Standard deviation of the initialisation.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Every other key of `config.json`, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

const FULL: &str = "full_attention";
const SLIDING: &str = "sliding_attention";

impl LlamaConfig {
    /// OpenLLaMA-3B v1 (METHOD.md §3.3): 26 × 3200, 32 heads, SwiGLU 8640, vocabulary 32000, untied.
    pub fn open_llama_3b() -> Self {
        LlamaConfig {
            family: DecoderFamily::Llama,
            vocab_size: 32000,
            hidden_size: 3200,
            intermediate_size: 8640,
            num_hidden_layers: 26,
            num_attention_heads: 32,
            num_key_value_heads: Some(32),
            head_dim: None,
            hidden_act: default_silu(),
            hidden_activation: None,
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-6,
            rope_theta_field: Some(10000.0),
            rope_parameters: None,
            rope_scaling: None,
            partial_rotary_factor: None,
            rope_local_base_freq: None,
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            sliding_window: None,
            use_sliding_window: None,
            max_window_layers: None,
            layer_types: None,
            query_pre_attn_scalar: None,
            attn_logit_softcapping: None,
            final_logit_softcapping: None,
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

    /// The same config with another depth (per-layer lists cut, or extended by the family's rule).
    pub fn with_layers(&self, num_hidden_layers: i64) -> Self {
        let layer_types = self.layer_types.as_ref().map(|types| {
            (0..num_hidden_layers)
                .map(|i| {
                    types
                        .get(i as usize)
                        .cloned()
                        .unwrap_or_else(|| self.default_layer_type(i).to_string())
                })
                .collect()
        });
        LlamaConfig {
            num_hidden_layers,
            layer_types,
            ..self.clone()
        }
    }

    /// The config of a model made of these blocks of this one, in this order: per-layer
    /// settings (`layer_types`) travel with their blocks, written out in full where the family
    /// reads them, so `transformers` computes what the blocks computed before.
    pub fn with_blocks(&self, blocks: &[i64]) -> Self {
        let mut c = self.with_layers(blocks.len() as i64);
        if self.family.reads_layer_types() {
            c.layer_types = Some(
                blocks
                    .iter()
                    .map(|&b| (if self.is_sliding(b) { SLIDING } else { FULL }).to_string())
                    .collect(),
            );
        }
        c
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

    /// The rotated part of each head (Phi-3's `partial_rotary_factor`; all of it elsewhere).
    pub fn rope_dim(&self) -> i64 {
        match self.partial_rotary_factor {
            Some(f) if self.family == DecoderFamily::Phi3 => (self.head_dim() as f64 * f) as i64,
            _ => self.head_dim(),
        }
    }

    /// The attention scale: `query_pre_attn_scalar ** -0.5` (Gemma) or `head_dim ** -0.5`.
    pub fn attention_scale(&self) -> f64 {
        match self.query_pre_attn_scalar {
            Some(s) if self.family.is_gemma() => s.powf(-0.5),
            _ => (self.head_dim() as f64).powf(-0.5),
        }
    }

    /// Whether q, k and v, and o, have biases.
    pub fn attention_biases(&self) -> (bool, bool) {
        match self.family {
            DecoderFamily::Qwen2 => (true, false),
            DecoderFamily::Mistral | DecoderFamily::Phi3 => (false, false),
            _ => (self.attention_bias, self.attention_bias),
        }
    }

    /// The MLP activation's name.
    pub fn activation(&self) -> &str {
        if self.family.is_gemma() {
            self.hidden_activation.as_deref().unwrap_or("gelu_pytorch_tanh")
        } else {
            &self.hidden_act
        }
    }

    /// The final-logit soft-cap, where the family applies one.
    pub fn final_softcap(&self) -> Option<f64> {
        self.final_logit_softcapping.filter(|_| self.family.is_gemma())
    }

    fn default_layer_type(&self, i: i64) -> &'static str {
        let sliding = match self.family {
            DecoderFamily::Gemma2 => (i + 1) % 2 != 0,
            DecoderFamily::Gemma3Text => {
                let pattern = self
                    .extra
                    .get("sliding_window_pattern")
                    .and_then(Value::as_i64)
                    .filter(|p| *p > 0)
                    .unwrap_or(6);
                (i + 1) % pattern != 0
            }
            DecoderFamily::Qwen2 | DecoderFamily::Qwen3 => {
                self.qwen_window().is_some() && i >= self.max_window_layers.unwrap_or(28)
            }
            _ => false,
        };
        if sliding {
            SLIDING
        } else {
            FULL
        }
    }

    /// Qwen's effective window: `sliding_window` only with `use_sliding_window`.
    fn qwen_window(&self) -> Option<i64> {
        self.sliding_window.filter(|_| self.use_sliding_window == Some(true))
    }

    /// Whether layer `i` is a sliding-attention layer by the family's rule.
    pub fn is_sliding(&self, i: i64) -> bool {
        match self.family {
            DecoderFamily::Llama => false,
            DecoderFamily::Mistral | DecoderFamily::Phi3 => self.sliding_window.is_some(),
            _ => match &self.layer_types {
                Some(types) => types.get(i as usize).map(String::as_str) == Some(SLIDING),
                None => self.default_layer_type(i) == SLIDING,
            },
        }
    }

    /// The attention window of layer `i`, as its `transformers` class applies it.
    pub fn layer_window(&self, i: i64) -> Option<i64> {
        if !self.is_sliding(i) {
            return None;
        }
        match self.family {
            DecoderFamily::Qwen2 | DecoderFamily::Qwen3 => self.qwen_window(),
            _ => self.sliding_window,
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

    /// The RoPE scaling (`rope_scaling`, or `rope_parameters` in the newer layout).
    ///
    /// # Errors
    /// An unsupported type, named.
    pub fn rope_scaling(&self) -> std::result::Result<RopeScaling, String> {
        match (&self.rope_scaling, &self.rope_parameters) {
            (Some(v), _) if !v.is_null() => RopeScaling::parse(Some(v)),
            (_, Some(v)) => RopeScaling::parse(Some(v)),
            _ => Ok(RopeScaling::Default),
        }
    }

    /// The rotary embedding of full-attention layers (and of every layer outside Gemma 3).
    pub fn rope(&self) -> Rope {
        Rope {
            theta: self.rope_theta(),
            dim: self.rope_dim(),
            scaling: self.rope_scaling().unwrap_or(RopeScaling::Default),
            max_position_embeddings: self.max_position_embeddings,
        }
    }

    /// Gemma 3's rotary embedding of sliding layers: plain RoPE on `rope_local_base_freq`.
    pub fn rope_local(&self) -> Option<Rope> {
        if self.family != DecoderFamily::Gemma3Text || !(0..self.num_hidden_layers).any(|i| self.is_sliding(i)) {
            return None;
        }
        Some(Rope {
            theta: self.rope_local_base_freq.unwrap_or(10000.0),
            dim: self.rope_dim(),
            scaling: RopeScaling::Default,
            max_position_embeddings: self.max_position_embeddings,
        })
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
        match self.partial_rotary_factor {
            Some(f) if !(f > 0.0 && f <= 1.0) => p.push(format!("partial_rotary_factor must be in (0, 1], got {f}")),
            Some(f) if f != 1.0 && self.family != DecoderFamily::Phi3 => p.push(format!(
                "partial_rotary_factor {f} is not supported for {} (only phi3 rotates part of a head)",
                self.family.model_type()
            )),
            _ => {}
        }
        if self.rope_dim() > 0 && self.rope_dim() % 2 != 0 {
            p.push(format!("the rotary dimension {} must be even", self.rope_dim()));
        }
        check_eps(&mut p, "rms_norm_eps", self.rms_norm_eps);
        let (act_key, act) = if self.family.is_gemma() {
            ("hidden_activation", self.activation())
        } else {
            ("hidden_act", self.hidden_act.as_str())
        };
        if Act::parse(act).is_none() {
            p.push(format!(
                "{act_key} {act:?} is not supported (silu, gelu_pytorch_tanh, gelu)"
            ));
        }
        let theta = self.rope_theta();
        if !(theta.is_finite() && theta > 0.0) {
            p.push(format!("rope_theta must be positive, got {theta}"));
        }
        for (field, value) in [
            ("rope_parameters", &self.rope_parameters),
            ("rope_scaling", &self.rope_scaling),
        ] {
            if let Err(e) = RopeScaling::parse(value.as_ref()) {
                p.push(format!("{field}: {e}"));
            }
        }
        if let Some(base) = self.rope_local_base_freq {
            if !(base.is_finite() && base > 0.0) {
                p.push(format!("rope_local_base_freq must be positive, got {base}"));
            }
        }
        if let Some(tp) = self.extra.get("pretraining_tp").and_then(Value::as_i64) {
            if tp != 1 {
                p.push(format!("pretraining_tp {tp} is not supported (1)"));
            }
        }
        if let Some(w) = self.sliding_window {
            check_positive(&mut p, "sliding_window", w);
        }
        if let Some(types) = &self.layer_types {
            if types.len() as i64 != self.num_hidden_layers {
                p.push(format!(
                    "layer_types has {} entries for num_hidden_layers {}",
                    types.len(),
                    self.num_hidden_layers
                ));
            }
            if let Some(bad) = types.iter().find(|t| t.as_str() != FULL && t.as_str() != SLIDING) {
                p.push(format!(
                    "layer_types entry {bad:?} is not supported ({FULL}, {SLIDING})"
                ));
            }
        }
        for (key, value) in [
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("attn_logit_softcapping", self.attn_logit_softcapping),
            ("final_logit_softcapping", self.final_logit_softcapping),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && v > 0.0) {
                    p.push(format!("{key} must be positive, got {v}"));
                }
            }
        }
        if self.extra.get("use_bidirectional_attention").and_then(Value::as_bool) == Some(true) {
            p.push("use_bidirectional_attention true is not supported (a causal language model is needed)".into());
        }
        let name = match self.family {
            DecoderFamily::Llama => "LLaMA",
            DecoderFamily::Mistral => "Mistral",
            DecoderFamily::Qwen2 => "Qwen2",
            DecoderFamily::Qwen3 => "Qwen3",
            DecoderFamily::Gemma2 => "Gemma 2",
            DecoderFamily::Gemma3Text => "Gemma 3",
            DecoderFamily::Phi3 => "Phi-3",
        };
        finish(name, p)
    }

    /// Every parameter with its shape, in construction order.
    pub fn parameter_shapes(&self) -> Vec<ParamShape> {
        let (d, v, im, hd) = (
            self.hidden_size,
            self.vocab_size,
            self.intermediate_size,
            self.head_dim(),
        );
        let (q, kv) = (self.num_attention_heads * hd, self.kv_heads() * hd);
        let (qkv_bias, o_bias) = self.attention_biases();
        let mlp_bias = self.family == DecoderFamily::Llama && self.mlp_bias;
        let phi3 = self.family == DecoderFamily::Phi3;
        let qk_norms = matches!(self.family, DecoderFamily::Qwen3 | DecoderFamily::Gemma3Text);
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
            if phi3 {
                lin(&mut out, format!("{h}.self_attn.qkv_proj"), q + 2 * kv, d, false);
            } else {
                lin(&mut out, format!("{h}.self_attn.q_proj"), q, d, qkv_bias);
                lin(&mut out, format!("{h}.self_attn.k_proj"), kv, d, qkv_bias);
                lin(&mut out, format!("{h}.self_attn.v_proj"), kv, d, qkv_bias);
            }
            lin(&mut out, format!("{h}.self_attn.o_proj"), d, q, o_bias);
            if qk_norms {
                out.push(ParamShape::new(format!("{h}.self_attn.q_norm.weight"), &[hd]));
                out.push(ParamShape::new(format!("{h}.self_attn.k_norm.weight"), &[hd]));
            }
            out.push(ParamShape::new(format!("{h}.post_attention_layernorm.weight"), &[d]));
            if self.family.is_gemma() {
                out.push(ParamShape::new(format!("{h}.pre_feedforward_layernorm.weight"), &[d]));
                out.push(ParamShape::new(format!("{h}.post_feedforward_layernorm.weight"), &[d]));
            }
            if phi3 {
                lin(&mut out, format!("{h}.mlp.gate_up_proj"), 2 * im, d, false);
            } else {
                lin(&mut out, format!("{h}.mlp.gate_proj"), im, d, mlp_bias);
                lin(&mut out, format!("{h}.mlp.up_proj"), im, d, mlp_bias);
            }
            lin(&mut out, format!("{h}.mlp.down_proj"), d, im, mlp_bias);
        }
        out.push(ParamShape::new("model.norm.weight".into(), &[d]));
        if !self.tie_word_embeddings {
            out.push(ParamShape::new("lm_head.weight".into(), &[v, d]));
        }
        out
    }
}
