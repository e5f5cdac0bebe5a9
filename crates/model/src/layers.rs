//! The building blocks shared by both model families: linear maps, norms and causal attention.
//!
//! Weights are created in a `tch` var store under their Hugging Face names; shapes are fixed at
//! construction, so `forward` uses plain (panicking-on-bug) tensor ops only on checked inputs.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use crate::error::Result;

thread_local! {
    /// Set while a model is built only to be overwritten by a checkpoint (see [`for_loading`]).
    static SKIP_INIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `build` with every variable created as zeros instead of its initialisation: a model
/// whose every weight is about to be loaded needs no random init, and `randn * std + mean`
/// would briefly hold three copies of the largest tensor (the embedding of a 128K vocabulary).
pub(crate) fn for_loading<T>(build: impl FnOnce() -> T) -> T {
    SKIP_INIT.with(|s| s.set(true));
    let out = build();
    SKIP_INIT.with(|s| s.set(false));
    out
}

/// Creates a variable under `path` with `init` (zeros while a model is built for loading).
///
/// # Errors
/// A torch error while allocating.
pub fn var(path: &Path, name: &str, dims: &[i64], init: Init) -> Result<Tensor> {
    let init = if SKIP_INIT.with(|s| s.get()) {
        Init::Const(0.0)
    } else {
        init
    };
    Ok(path.f_var(name, dims, init)?)
}

/// Receives the post-softmax attention probabilities `(B, nh, T, T)` of layer `l`, one layer at a time.
pub type AttentionVisitor<'a> = &'a mut dyn FnMut(usize, &Tensor);

/// Receives `(l, x_l)`: the residual stream `(B, T, d)` entering block l, and `(N, x_N)` leaving
/// the last block, before the final norm.
pub type ResidualVisitor<'a> = &'a mut dyn FnMut(usize, &Tensor);

/// What a forward pass reports besides its output, or changes in it.
#[derive(Default)]
pub struct Probe<'a> {
    /// Each layer's post-softmax attention (the explicit path; see [`AttentionVisitor`]).
    pub attention: Option<AttentionVisitor<'a>>,
    /// The residual stream between blocks (see [`ResidualVisitor`]).
    pub residual: Option<ResidualVisitor<'a>>,
    /// A block replaced by the identity (its output is its input), for leave-one-out criteria.
    pub skip: Option<usize>,
    /// Several sequences packed in each row (see [`Packing`]); `None`: one sequence per row.
    pub packing: Option<&'a Packing>,
}

/// Several sequences in one row: each token's position id and the tokens it may attend to, so that
/// continuations sharing a context run with it in one pass (a multiple-choice document's choices),
/// each token computing exactly what it computes in its own unpacked sequence.
#[derive(Debug)]
pub struct Packing {
    /// The position id of each token `(B, T)` (int64): its index in its own unpacked sequence.
    pub positions: Tensor,
    /// `allowed[b, 0, q, k]`: token q may attend to token k, `(B, 1, T, T)` bool. It includes
    /// causality, and every row must allow at least one key (its own token).
    pub allowed: Tensor,
}

impl Packing {
    /// The masked-out keys `(B, 1, T, T)`, with a sliding window applied by position distance
    /// (`q - window < k` in the unpacked sequence) where one is given.
    fn hidden(&self, window: Option<i64>) -> Tensor {
        let allowed = match window {
            Some(w) => {
                let distance = self.positions.unsqueeze(-1) - self.positions.unsqueeze(-2); // (B, T, T): q - k
                self.allowed.logical_and(&distance.lt(w).unsqueeze(1))
            }
            None => self.allowed.shallow_clone(),
        };
        allowed.logical_not()
    }
}

impl<'a> Probe<'a> {
    /// A probe that only visits the attention matrices (when `visitor` is given).
    pub fn attention(visitor: Option<AttentionVisitor<'a>>) -> Self {
        Probe {
            attention: visitor,
            ..Probe::default()
        }
    }
}

/// A linear map `y = x Wᵀ + b` with `W` of shape `(out, in)`.
#[derive(Debug)]
pub struct Linear {
    /// `(out, in)`.
    pub weight: Tensor,
    /// `(out)`, when the layer has one.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Creates `weight` ~ N(0, std) and a zero `bias` under `path`.
    ///
    /// # Errors
    /// A torch error while allocating.
    pub fn new(path: &Path, out_dim: i64, in_dim: i64, bias: bool, std: f64) -> Result<Self> {
        let weight = var(
            path,
            "weight",
            &[out_dim, in_dim],
            Init::Randn { mean: 0.0, stdev: std },
        )?;
        let bias = if bias {
            Some(var(path, "bias", &[out_dim], Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// Applies the map to the last dimension.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

/// LayerNorm over the last dimension, with an optional bias.
#[derive(Debug)]
pub struct LayerNorm {
    /// `(d)`, initialised to one.
    pub weight: Tensor,
    /// `(d)`, initialised to zero, when the layer has one.
    pub bias: Option<Tensor>,
    eps: f64,
    dim: i64,
}

impl LayerNorm {
    /// Creates the norm under `path`.
    ///
    /// # Errors
    /// A torch error while allocating.
    pub fn new(path: &Path, dim: i64, bias: bool, eps: f64) -> Result<Self> {
        let weight = var(path, "weight", &[dim], Init::Const(1.0))?;
        let bias = if bias {
            Some(var(path, "bias", &[dim], Init::Const(0.0))?)
        } else {
            None
        };
        Ok(LayerNorm { weight, bias, eps, dim })
    }

    /// Normalises the last dimension.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.dim], Some(&self.weight), self.bias.as_ref(), self.eps, true)
    }
}

/// RMSNorm over the last dimension, in either of the two forms `transformers` uses.
#[derive(Debug)]
pub struct RmsNorm {
    /// `(d)`: the scale (LLaMA, initialised to one) or its offset from one (Gemma, initialised to zero).
    pub weight: Tensor,
    eps: f64,
    offset: bool,
}

impl RmsNorm {
    /// LLaMA's norm (statistics in f32, cast back, then scaled by `weight`), under `path`.
    ///
    /// # Errors
    /// A torch error while allocating.
    pub fn new(path: &Path, dim: i64, eps: f64) -> Result<Self> {
        let weight = var(path, "weight", &[dim], Init::Const(1.0))?;
        Ok(RmsNorm {
            weight,
            eps,
            offset: false,
        })
    }

    /// Gemma's norm (`Gemma2RMSNorm`): normalised in f32, scaled by `1 + weight` in f32, then
    /// cast back; the weight is stored as an offset from one and initialised to zero.
    ///
    /// # Errors
    /// A torch error while allocating.
    pub fn gemma(path: &Path, dim: i64, eps: f64) -> Result<Self> {
        let weight = var(path, "weight", &[dim], Init::Const(0.0))?;
        Ok(RmsNorm {
            weight,
            eps,
            offset: true,
        })
    }

    /// Normalises the last dimension (f32 statistics, as `transformers` does for bf16 inputs).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let h = x.to_kind(Kind::Float);
        let variance = h.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let h = &h * (variance + self.eps).rsqrt();
        if self.offset {
            (h * (self.weight.to_kind(Kind::Float) + 1.0)).to_kind(kind)
        } else {
            &self.weight * h.to_kind(kind)
        }
    }
}

/// What restricts attention besides causality.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AttentionMask {
    /// A query at position q sees keys k with `q - window < k <= q` (Mistral, Qwen2, Gemma
    /// sliding layers); `None` for full causal attention.
    pub window: Option<i64>,
    /// Scores become `c · tanh(s / c)` before masking (Gemma 2's `attn_logit_softcapping`).
    pub softcap: Option<f64>,
}

/// Causal multi-head attention core.
///
/// `q` is `(B, nh, T, hs)`; `k` and `v` are `(B, nkv, T, hs)` with `nkv` dividing `nh`.
/// With no visitor the fused `scaled_dot_product_attention` runs; with one, the explicit
/// softmax path runs and the visitor sees the f32 probabilities. Both give the same output.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    packing: Option<&Packing>,
    visit: Option<(usize, AttentionVisitor)>,
) -> Tensor {
    attention(q, k, v, scale, AttentionMask::default(), packing, visit)
}

/// Attention core with a sliding window and soft-capping ([`AttentionMask`]), as the eager path
/// of `transformers` computes it, over packed rows where `packing` is given. Without a visitor,
/// SDPA runs where it computes the same thing (no soft-capping); soft-capped attention always takes
/// the explicit path.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: AttentionMask,
    packing: Option<&Packing>,
    visit: Option<(usize, AttentionVisitor)>,
) -> Tensor {
    let (nh, nkv, t) = (q.size()[1], k.size()[1], q.size()[2]);
    let window = mask.window.filter(|w| *w < t);
    let hidden = || match packing {
        Some(p) => p.hidden(window),
        None => {
            let future = Tensor::ones([t, t], (Kind::Bool, q.device())).triu(1);
            match window {
                Some(w) => future.logical_or(&Tensor::ones([t, t], (Kind::Bool, q.device())).tril(-w)),
                None => future,
            }
        }
    };
    if visit.is_none() && mask.softcap.is_none() {
        return match (window, packing) {
            (None, None) => Tensor::scaled_dot_product_attention(q, k, v, None::<Tensor>, 0.0, true, scale, nh != nkv),
            _ => {
                let allowed = hidden().logical_not();
                Tensor::scaled_dot_product_attention(q, k, v, Some(allowed), 0.0, false, scale, nh != nkv)
            }
        };
    }
    let (k, v) = if nh != nkv {
        let rep = nh / nkv;
        (
            k.repeat_interleave_self_int(rep, 1, None),
            v.repeat_interleave_self_int(rep, 1, None),
        )
    } else {
        (k.shallow_clone(), v.shallow_clone())
    };
    let mut att = q.matmul(&k.transpose(-2, -1)) * scale; // (B, nh, T, T)
    if let Some(c) = mask.softcap {
        att = (att / c).tanh() * c;
    }
    let probs = att.masked_fill(&hidden(), f64::NEG_INFINITY).softmax(-1, Kind::Float); // (B, nh, T, T)
    if let Some((layer, visitor)) = visit {
        visitor(layer, &probs);
    }
    probs.to_kind(v.kind()).matmul(&v) // (B, nh, T, hs)
}
