//! AdamW with moments we own (so they can be checkpointed), nanoGPT's two parameter groups, and
//! global-norm clipping, following `torch.optim.AdamW` (single-tensor path) operation by operation.

use std::collections::BTreeMap;

use inheritune_model::tch::{self, Kind, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// AdamW hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay of the decay group.
    pub weight_decay: f64,
}

struct Slot {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

/// AdamW over named parameters.
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
}

/// Whether a parameter is in the weight-decay group: the matrices of linear layers (spec §4.1);
/// embeddings, positions, norms and biases are not decayed.
pub fn decays(name: &str, dim: usize) -> bool {
    dim >= 2
        && !matches!(
            name,
            "transformer.wte.weight" | "transformer.wpe.weight" | "model.embed_tokens.weight"
        )
}

impl AdamW {
    /// An optimizer for `params` (Hugging Face name → trainable tensor), in name order.
    ///
    /// # Errors
    /// A torch failure allocating the moments.
    pub fn new(params: &BTreeMap<String, Tensor>, config: AdamWConfig) -> Result<Self> {
        let slots = params
            .iter()
            .map(|(name, p)| {
                Ok(Slot {
                    name: name.clone(),
                    param: p.shallow_clone(),
                    exp_avg: p.f_zeros_like()?.f_to_kind(Kind::Float)?,
                    exp_avg_sq: p.f_zeros_like()?.f_to_kind(Kind::Float)?,
                    decay: decays(name, p.dim()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW { config, slots, step: 0 })
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Names of the parameters in the decay group.
    pub fn decay_group(&self) -> Vec<&str> {
        self.slots.iter().filter(|s| s.decay).map(|s| s.name.as_str()).collect()
    }

    /// Sets every gradient to zero (or leaves undefined ones undefined).
    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.param.zero_grad();
        }
    }

    /// Scales gradients so their global L2 norm is at most `max` (as `clip_grad_norm_`), and
    /// returns the norm before clipping.
    ///
    /// # Errors
    /// A torch failure.
    pub fn clip_grad_norm(&mut self, max: f64) -> Result<f64> {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .slots
                .iter()
                .map(|s| s.param.grad())
                .filter(Tensor::defined)
                .collect();
            if grads.is_empty() {
                return Ok(0.0);
            }
            let norms: Vec<Tensor> = grads
                .iter()
                .map(|g| g.f_norm())
                .collect::<std::result::Result<_, _>>()?;
            let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
            let coef = (max / (total + 1e-6)).min(1.0);
            if max > 0.0 {
                for mut g in grads {
                    let _ = g.f_mul_scalar_(coef)?;
                }
            }
            Ok(total)
        })
    }

    /// One update with learning rate `lr` from the current gradients.
    ///
    /// # Errors
    /// A torch failure.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        let step_size = lr / bias1;
        tch::no_grad(|| -> Result<()> {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let g = g.f_to_kind(Kind::Float)?;
                if s.decay {
                    let _ = s.param.f_mul_scalar_(1.0 - lr * c.weight_decay)?;
                }
                let _ = s.exp_avg.f_lerp_(&g, 1.0 - c.beta1)?;
                let _ = s.exp_avg_sq.f_mul_scalar_(c.beta2)?;
                // addcmul(value = 1 − β2): value · g · g, left to right as the CPU kernel does.
                let _ = s.exp_avg_sq.f_add_(&(g.f_mul_scalar(1.0 - c.beta2)?.f_mul(&g)?))?;
                let denom = (s.exp_avg_sq.f_sqrt()? / bias2_sqrt).f_add_scalar(c.eps)?;
                // addcdiv(value = −step_size): value · m / denom.
                let update = s.exp_avg.f_mul_scalar(-step_size)?.f_div(&denom)?;
                let _ = s.param.f_add_(&update.f_to_kind(s.param.kind())?)?;
            }
            Ok(())
        })
    }

    /// The moments keyed `<parameter>.exp_avg` / `<parameter>.exp_avg_sq`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("{}.exp_avg", s.name), s.exp_avg.shallow_clone()),
                    (format!("{}.exp_avg_sq", s.name), s.exp_avg_sq.shallow_clone()),
                ]
            })
            .collect()
    }

    /// Restores moments written by [`AdamW::state`] and the update count.
    ///
    /// # Errors
    /// A missing moment or one of the wrong shape, named in the message.
    pub fn load_state(&mut self, tensors: &BTreeMap<String, Tensor>, steps: u64) -> std::result::Result<(), String> {
        for s in &mut self.slots {
            for (suffix, dst) in [("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)] {
                let key = format!("{}.{suffix}", s.name);
                let src = tensors.get(&key).ok_or_else(|| format!("missing {key}"))?;
                if src.size() != dst.size() {
                    return Err(format!("{key}: shape {:?}, expected {:?}", src.size(), dst.size()));
                }
                tch::no_grad(|| dst.f_copy_(src)).map_err(|e| format!("{key}: {e}"))?;
            }
        }
        self.step = steps;
        Ok(())
    }
}
