//! GPT-2 (Radford et al. 2019) with the semantics of the paper's nanoGPT fork (arXiv 2404.08634, METHOD.md §3.1).
//!
//! Pre-LN blocks, learned positions, tanh GELU, optional biases, tied `wte`/`lm_head`, and the
//! optional 1/(layer_idx + 1) attention-logit scale. Weights are held in Linear (out × in) layout;
//! Conv1D transposition happens only in [`crate::hf`]. nanoGPT initialisation: N(0, 0.02) for
//! linear and embedding weights, N(0, 0.02/√(2·n_layer)) for every `c_proj`.

use tch::nn::{Init, Path};
use tch::Tensor;

use crate::config::Gpt2Config;
use crate::error::Result;
use crate::layers::{causal_attention, AttentionVisitor, LayerNorm, Linear};

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

    fn forward(&self, x: &Tensor, visit: Option<(usize, AttentionVisitor)>) -> Tensor {
        let x = x + self.attn.forward(&self.ln_1.forward(x), visit);
        let h = self.ln_2.forward(&x);
        &x + self
            .mlp
            .c_proj
            .forward(&self.mlp.c_fc.forward(&h).gelu(self.mlp.approximate))
    }
}

impl Attention {
    fn forward(&self, x: &Tensor, visit: Option<(usize, AttentionVisitor)>) -> Tensor {
        let (b, t, d) = x.size3().unwrap_or((0, 0, 0));
        let hs = d / self.n_head;
        let qkv = self.c_attn.forward(x).split(d, 2); // 3 × (B, T, d)
        let heads = |z: &Tensor| z.view([b, t, self.n_head, hs]).transpose(1, 2); // (B, nh, T, hs)
        let y = causal_attention(&heads(&qkv[0]), &heads(&qkv[1]), &heads(&qkv[2]), self.scale, visit);
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
        let wte = (&t / "wte").f_var("weight", &[c.vocab_size, c.n_embd], init)?;
        let wpe = (&t / "wpe").f_var("weight", &[c.n_positions, c.n_embd], init)?;
        let h = (0..c.n_layer)
            .map(|i| Block::new(&(&t / "h" / i), c, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(&(&t / "ln_f"), c.n_embd, c.bias, c.layer_norm_epsilon)?;
        let lm_head = if c.tie_word_embeddings {
            wte.shallow_clone()
        } else {
            (root / "lm_head").f_var("weight", &[c.vocab_size, c.n_embd], init)?
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
    pub fn hidden(&self, idx: &Tensor, mut visitor: Option<AttentionVisitor>) -> Tensor {
        let t = idx.size()[1];
        let pos = Tensor::arange(t, (tch::Kind::Int64, idx.device()));
        let mut x =
            Tensor::embedding(&self.wte, idx, -1, false, false) + Tensor::embedding(&self.wpe, &pos, -1, false, false); // (B, T, d)
        for (layer, block) in self.h.iter().enumerate() {
            let visit = visitor.as_mut().map(|v| (layer, &mut **v as AttentionVisitor));
            x = block.forward(&x, visit);
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
