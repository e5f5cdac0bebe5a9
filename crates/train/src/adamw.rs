//! AdamW with moments we own (so they can be checkpointed), nanoGPT's two parameter groups, and
//! global-norm clipping, following `torch.optim.AdamW` (single-tensor path) operation by operation.
//! On CUDA the update runs through PyTorch's own multi-tensor kernels instead (`_fused_adamw_`,
//! foreach clipping), like `AdamW(fused=True)`: the same math, a few kernels per step.

use std::collections::BTreeMap;

use inheritune_model::kernels;
use inheritune_model::tch::{self, Device, Kind, Tensor};
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
    /// `Some(step tensor)` when the fused kernels are used.
    fused: Option<Tensor>,
}

/// Whether a parameter is in the weight-decay group: the matrices of linear layers (METHOD.md §4.1);
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
        Ok(AdamW {
            config,
            slots,
            step: 0,
            fused: None,
        })
    }

    /// Switches to PyTorch's fused multi-tensor kernels (default on CUDA; on CPU they exist too
    /// but the single-tensor path is what `torch.optim.AdamW` runs there).
    ///
    /// # Errors
    /// The kernels are not available in this build.
    pub fn use_fused(&mut self, device: Device) -> Result<()> {
        // Probe the kernel on throwaway tensors, so a missing kernel fails here, not mid-run.
        let probe: Vec<Tensor> = (0..4)
            .map(|_| Tensor::f_zeros([2], (Kind::Float, device)))
            .collect::<std::result::Result<_, _>>()?;
        let one = Tensor::f_ones([], (Kind::Float, device))?;
        kernels::fused_adamw(
            &[&probe[0]],
            &[&probe[1]],
            &[&probe[2]],
            &[&probe[3]],
            &one,
            0.0,
            (0.9, 0.9),
            0.0,
            1e-8,
        )?;
        self.fused = Some(Tensor::f_full([], self.step as f64, (Kind::Float, device))?);
        Ok(())
    }

    /// Whether the fused kernels are in use.
    pub fn is_fused(&self) -> bool {
        self.fused.is_some()
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The gradients that are defined, in name order (for the data-parallel all-reduce).
    pub fn grads(&self) -> Vec<Tensor> {
        self.slots
            .iter()
            .map(|s| s.param.grad())
            .filter(Tensor::defined)
            .collect()
    }

    /// Names of the parameters in the decay group.
    pub fn decay_group(&self) -> Vec<&str> {
        self.slots.iter().filter(|s| s.decay).map(|s| s.name.as_str()).collect()
    }

    /// Drops every gradient (`zero_grad(set_to_none=True)`, PyTorch's default), so the next
    /// backward pass allocates them afresh and the forward pass runs without them in memory.
    pub fn zero_grad(&mut self) {
        let mut params: Vec<Tensor> = self.slots.iter().map(|s| s.param.shallow_clone()).collect();
        kernels::grads_to_none(&mut params);
    }

    /// Scales gradients so their global L2 norm is at most `max` (as `clip_grad_norm_`: every
    /// gradient is multiplied by min(1, max / (norm + 1e-6)) on the device), and returns the
    /// norm before clipping as a device scalar, so no host synchronisation is forced.
    ///
    /// # Errors
    /// A torch failure.
    pub fn clip_grad_norm(&mut self, max: f64) -> Result<Tensor> {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self
                .slots
                .iter()
                .map(|s| s.param.grad())
                .filter(Tensor::defined)
                .collect();
            if grads.is_empty() {
                return Ok(Tensor::from(0.0f32));
            }
            if self.fused.is_some() {
                let refs: Vec<&Tensor> = grads.iter().collect();
                return Ok(kernels::foreach_clip(&refs, max)?);
            }
            let norms: Vec<Tensor> = grads
                .iter()
                .map(|g| g.f_norm())
                .collect::<std::result::Result<_, _>>()?;
            let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
            if max.is_finite() {
                let coef = (total.f_add_scalar(1e-6)?.f_reciprocal()? * max).f_clamp_max(1.0)?;
                for mut g in grads {
                    let _ = g.f_mul_(&coef)?;
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
        if let Some(step) = &mut self.fused {
            return tch::no_grad(|| -> Result<()> {
                let _ = step.f_add_scalar_(1.0)?;
                for decay in [true, false] {
                    let group: Vec<&Slot> = self
                        .slots
                        .iter()
                        .filter(|s| s.decay == decay && s.param.grad().defined())
                        .collect();
                    let grads: Vec<Tensor> = group.iter().map(|s| s.param.grad()).collect();
                    kernels::fused_adamw(
                        &group.iter().map(|s| &s.param).collect::<Vec<_>>(),
                        &grads.iter().collect::<Vec<_>>(),
                        &group.iter().map(|s| &s.exp_avg).collect::<Vec<_>>(),
                        &group.iter().map(|s| &s.exp_avg_sq).collect::<Vec<_>>(),
                        step,
                        lr,
                        (c.beta1, c.beta2),
                        if decay { c.weight_decay } else { 0.0 },
                        c.eps,
                    )?;
                }
                Ok(())
            });
        }
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
        if let Some(step) = &mut self.fused {
            let _ = step.fill_(steps as f64);
        }
        Ok(())
    }
}
