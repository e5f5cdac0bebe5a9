//! LLaMA (Touvron et al. 2023, arXiv 2302.13971) as in Hugging Face `LlamaForCausalLM`.
//!
//! RMSNorm, rotary position embeddings over the full head (non-interleaved halves, configurable
//! base), SwiGLU MLP, grouped-query attention, tied or untied head. Initialisation N(0, 0.02) for
//! linear and embedding weights, ones for norms, as `transformers` does.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use crate::config::LlamaConfig;
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
