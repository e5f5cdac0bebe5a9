//! GPT-2 (Radford et al. 2019) with the semantics of the paper's nanoGPT fork (arXiv 2404.08634, METHOD.md §3.1).
//!
//! Pre-LN blocks, learned positions, tanh GELU, optional biases, tied `wte`/`lm_head`, and the
//! optional 1/(layer_idx + 1) attention-logit scale. Weights are held in Linear (out × in) layout;
//! Conv1D transposition happens only in [`crate::hf`]. nanoGPT initialisation: N(0, 0.02) for
//! linear and embedding weights, N(0, 0.02/√(2·n_layer)) for every `c_proj`.

use tch::nn::{Init, Path};
use tch::Tensor;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{check_eps, check_positive, finish, ParamShape};
use crate::config::{default_gelu_new, default_init_range, default_ln_eps, default_n_positions, default_true};

use crate::error::Result;
use crate::layers::{causal_attention, AttentionVisitor, LayerNorm, Linear, Packing, Probe};

#[derive(Debug)]
struct Attention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: i64,
    scale: f64,
}

#[derive(Debug)]
struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
    approximate: &'static str,
}

#[derive(Debug)]
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

/// A GPT-2 language model.
#[derive(Debug)]
pub struct Gpt2 {
    config: Gpt2Config,
    wte: Tensor,
    wpe: Tensor,
    h: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Tensor,
}

impl Block {
    fn new(p: &Path, c: &Gpt2Config, layer: i64) -> Result<Self> {
        let (d, std) = (c.n_embd, c.initializer_range);
        let proj_std = std / (2.0 * c.n_layer as f64).sqrt();
        let mut scale = if c.scale_attn_weights {
            1.0 / (c.head_dim() as f64).sqrt()
        } else {
            1.0
        };
        if c.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        let (pa, pm) = (p / "attn", p / "mlp");
        Ok(Block {
            ln_1: LayerNorm::new(&(p / "ln_1"), d, c.bias, c.layer_norm_epsilon)?,
            attn: Attention {
                c_attn: Linear::new(&(&pa / "c_attn"), 3 * d, d, c.bias, std)?,
                c_proj: Linear::new(&(&pa / "c_proj"), d, d, c.bias, proj_std)?,
                n_head: c.n_head,
                scale,
            },
            ln_2: LayerNorm::new(&(p / "ln_2"), d, c.bias, c.layer_norm_epsilon)?,
            mlp: Mlp {
                c_fc: Linear::new(&(&pm / "c_fc"), c.inner(), d, c.bias, std)?,
                c_proj: Linear::new(&(&pm / "c_proj"), d, c.inner(), c.bias, proj_std)?,
                approximate: c.gelu_approximate(),
            },
        })
    }

    fn forward(&self, x: &Tensor, packing: Option<&Packing>, visit: Option<(usize, AttentionVisitor)>) -> Tensor {
        let x = x + self.attn.forward(&self.ln_1.forward(x), packing, visit);
        let h = self.ln_2.forward(&x);
        &x + self
            .mlp
            .c_proj
            .forward(&self.mlp.c_fc.forward(&h).gelu(self.mlp.approximate))
    }
}

impl Attention {
    fn forward(&self, x: &Tensor, packing: Option<&Packing>, visit: Option<(usize, AttentionVisitor)>) -> Tensor {
        let (b, t, d) = x.size3().unwrap_or((0, 0, 0));
        let hs = d / self.n_head;
        let qkv = self.c_attn.forward(x).split(d, 2); // 3 × (B, T, d)
        let heads = |z: &Tensor| z.view([b, t, self.n_head, hs]).transpose(1, 2); // (B, nh, T, hs)
        let y = causal_attention(
            &heads(&qkv[0]),
            &heads(&qkv[1]),
            &heads(&qkv[2]),
            self.scale,
            packing,
            visit,
        );
        self.c_proj.forward(&y.transpose(1, 2).contiguous().view([b, t, d]))
    }
}

impl Gpt2 {
    /// Builds the model under `root` (normally the var store's root) with nanoGPT initialisation.
    ///
    /// # Errors
    /// An invalid config, or a torch error while allocating.
    pub fn new(root: &Path, config: &Gpt2Config) -> Result<Self> {
        config.validate()?;
        let c = config;
        let t = root / "transformer";
        let init = Init::Randn {
            mean: 0.0,
            stdev: c.initializer_range,
        };
        let wte = crate::layers::var(&(&t / "wte"), "weight", &[c.vocab_size, c.n_embd], init)?;
        let wpe = crate::layers::var(&(&t / "wpe"), "weight", &[c.n_positions, c.n_embd], init)?;
        let h = (0..c.n_layer)
            .map(|i| Block::new(&(&t / "h" / i), c, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(&(&t / "ln_f"), c.n_embd, c.bias, c.layer_norm_epsilon)?;
        let lm_head = if c.tie_word_embeddings {
            wte.shallow_clone()
        } else {
            crate::layers::var(&(root / "lm_head"), "weight", &[c.vocab_size, c.n_embd], init)?
        };
        Ok(Gpt2 {
            config: config.clone(),
            wte,
            wpe,
            h,
            ln_f,
            lm_head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// Final hidden states `(B, T, d)` after `ln_f`, for ids `(B, T)` already checked by the caller.
    pub fn hidden(&self, idx: &Tensor, visitor: Option<AttentionVisitor>) -> Tensor {
        self.hidden_probed(idx, &mut Probe::attention(visitor))
    }

    /// As [`Gpt2::hidden`], reporting to or changing the pass as `probe` asks.
    pub fn hidden_probed(&self, idx: &Tensor, probe: &mut Probe) -> Tensor {
        let t = idx.size()[1];
        let pos = match probe.packing {
            Some(p) => p.positions.shallow_clone(),
            None => Tensor::arange(t, (tch::Kind::Int64, idx.device())),
        };
        let mut x =
            Tensor::embedding(&self.wte, idx, -1, false, false) + Tensor::embedding(&self.wpe, &pos, -1, false, false); // (B, T, d)
        for (layer, block) in self.h.iter().enumerate() {
            if let Some(r) = probe.residual.as_mut() {
                r(layer, &x);
            }
            if probe.skip == Some(layer) {
                continue;
            }
            let visit = probe.attention.as_mut().map(|v| (layer, &mut **v as AttentionVisitor));
            x = block.forward(&x, probe.packing, visit);
        }
        if let Some(r) = probe.residual.as_mut() {
            r(self.h.len(), &x);
        }
        self.ln_f.forward(&x)
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
    /// [`crate::Error::InvalidConfig`] listing each impossible or unsupported field.
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
