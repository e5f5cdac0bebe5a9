//! The building blocks shared by both model families: linear maps, norms and causal attention.
//!
//! Weights are created in a `tch` var store under their Hugging Face names; shapes are fixed at
//! construction, so `forward` uses plain (panicking-on-bug) tensor ops only on checked inputs.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use crate::error::Result;

/// Receives the post-softmax attention probabilities `(B, nh, T, T)` of layer `l`, one layer at a time.
pub type AttentionVisitor<'a> = &'a mut dyn FnMut(usize, &Tensor);

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
        let weight = path.f_var("weight", &[out_dim, in_dim], Init::Randn { mean: 0.0, stdev: std })?;
        let bias = if bias {
            Some(path.f_var("bias", &[out_dim], Init::Const(0.0))?)
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
        let weight = path.f_var("weight", &[dim], Init::Const(1.0))?;
        let bias = if bias {
            Some(path.f_var("bias", &[dim], Init::Const(0.0))?)
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

/// RMSNorm as in LLaMA: computed in f32, cast back, then scaled.
#[derive(Debug)]
pub struct RmsNorm {
    /// `(d)`, initialised to one.
    pub weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Creates the norm under `path`.
    ///
    /// # Errors
    /// A torch error while allocating.
    pub fn new(path: &Path, dim: i64, eps: f64) -> Result<Self> {
        let weight = path.f_var("weight", &[dim], Init::Const(1.0))?;
        Ok(RmsNorm { weight, eps })
    }

    /// Normalises the last dimension (f32 statistics, as `transformers` does for bf16 inputs).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let h = x.to_kind(Kind::Float);
        let variance = h.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let h = &h * (variance + self.eps).rsqrt();
        &self.weight * h.to_kind(kind)
    }
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
    visit: Option<(usize, AttentionVisitor)>,
) -> Tensor {
    let (nh, nkv) = (q.size()[1], k.size()[1]);
    let Some((layer, visitor)) = visit else {
        return Tensor::scaled_dot_product_attention(q, k, v, None::<Tensor>, 0.0, true, scale, nh != nkv);
    };
    let (k, v) = if nh != nkv {
        let rep = nh / nkv;
        (
            k.repeat_interleave_self_int(rep, 1, None),
            v.repeat_interleave_self_int(rep, 1, None),
        )
    } else {
        (k.shallow_clone(), v.shallow_clone())
    };
    let t = q.size()[2];
    let att = q.matmul(&k.transpose(-2, -1)) * scale; // (B, nh, T, T)
    let future = Tensor::ones([t, t], (Kind::Bool, q.device())).triu(1);
    let probs = att.masked_fill(&future, f64::NEG_INFINITY).softmax(-1, Kind::Float); // (B, nh, T, T)
    visitor(layer, &probs);
    probs.to_kind(v.kind()).matmul(&v) // (B, nh, T, hs)
}
