//! Rotary position embeddings as `transformers` 4.57 computes them (`modeling_rope_utils.py`):
//! the inverse frequencies of every supported `rope_type` and the attention factor that
//! multiplies cos and sin.
//!
//! Arithmetic follows the reference: tensors in f32 where it uses tensors, f64 where it uses
//! Python floats. `longrope` and unknown types are refused by [`RopeScaling::parse`].

use std::f64::consts::PI;

use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// A parsed `rope_scaling` (or `rope_parameters`) object.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// NTK-aware scaling: the base grows with the sequence beyond `max_position_embeddings`.
    Dynamic {
        /// The scaling factor.
        factor: f64,
    },
    /// Llama 3.1's wavelength-dependent scaling.
    Llama3 {
        /// The divisor of low frequencies.
        factor: f64,
        /// `low_freq_factor`.
        low_freq_factor: f64,
        /// `high_freq_factor`.
        high_freq_factor: f64,
        /// `original_max_position_embeddings`.
        original_max_position_embeddings: f64,
    },
    /// YaRN: a ramp between interpolation and extrapolation, and an attention factor.
    Yarn {
        /// The scaling factor.
        factor: f64,
        /// `attention_factor`, when given.
        attention_factor: Option<f64>,
        /// `mscale`.
        mscale: Option<f64>,
        /// `mscale_all_dim`.
        mscale_all_dim: Option<f64>,
        /// `beta_fast` (default 32).
        beta_fast: f64,
        /// `beta_slow` (default 1).
        beta_slow: f64,
        /// `original_max_position_embeddings`, when given (else the model's context).
        original_max_position_embeddings: Option<f64>,
        /// `truncate` (default true).
        truncate: bool,
    },
}

/// The rope types this crate computes, for messages.
pub const SUPPORTED: &str = "default, linear, dynamic, llama3, yarn";

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

impl RopeScaling {
    /// Parses a `rope_scaling` object (the type under `rope_type` or the older `type`).
    ///
    /// # Errors
    /// A one-line message naming an unsupported type or a missing or impossible key.
    pub fn parse(value: Option<&Value>) -> Result<Self, String> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Ok(RopeScaling::Default);
        };
        if !v.is_object() {
            return Err(format!("must be an object, got {v}"));
        }
        let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str);
        let need = |key: &str| -> Result<f64, String> {
            num(v, key).ok_or_else(|| format!("rope_type {:?} needs a number {key:?}", kind.unwrap_or("?")))
        };
        let factor_ok = |f: f64| -> Result<f64, String> {
            if f.is_finite() && f >= 1.0 {
                Ok(f)
            } else {
                Err(format!("factor must be a number >= 1, got {f}"))
            }
        };
        Ok(match kind {
            None | Some("default") => RopeScaling::Default,
            Some("linear") => RopeScaling::Linear {
                factor: factor_ok(need("factor")?)?,
            },
            Some("dynamic") => RopeScaling::Dynamic {
                factor: factor_ok(need("factor")?)?,
            },
            Some("llama3") => {
                let (low, high) = (need("low_freq_factor")?, need("high_freq_factor")?);
                if low == high {
                    return Err("llama3 low_freq_factor equals high_freq_factor".into());
                }
                RopeScaling::Llama3 {
                    factor: factor_ok(need("factor")?)?,
                    low_freq_factor: low,
                    high_freq_factor: high,
                    original_max_position_embeddings: need("original_max_position_embeddings")?,
                }
            }
            Some("yarn") => RopeScaling::Yarn {
                factor: factor_ok(need("factor")?)?,
                attention_factor: num(v, "attention_factor"),
                mscale: num(v, "mscale"),
                mscale_all_dim: num(v, "mscale_all_dim"),
                beta_fast: num(v, "beta_fast").filter(|b| *b != 0.0).unwrap_or(32.0),
                beta_slow: num(v, "beta_slow").filter(|b| *b != 0.0).unwrap_or(1.0),
                original_max_position_embeddings: num(v, "original_max_position_embeddings").filter(|x| *x != 0.0),
                truncate: v.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            },
            Some("longrope") => {
                return Err(format!(
                    "rope_type \"longrope\" (Phi-3.5 / Phi-3 128k) is not implemented; supported: {SUPPORTED}"
                ))
            }
            Some(other) => return Err(format!("rope_type {other:?} is not supported; supported: {SUPPORTED}")),
        })
    }

    /// The name `transformers` gives the type.
    pub fn name(&self) -> &'static str {
        match self {
            RopeScaling::Default => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Dynamic { .. } => "dynamic",
            RopeScaling::Llama3 { .. } => "llama3",
            RopeScaling::Yarn { .. } => "yarn",
        }
    }
}

/// What the rotary tables of one attention type depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// The base (`rope_theta`, or Gemma 3's `rope_local_base_freq` for sliding layers).
    pub theta: f64,
    /// The rotated dimensions (`head_dim × partial_rotary_factor`, even).
    pub dim: i64,
    /// The scaling.
    pub scaling: RopeScaling,
    /// The model's `max_position_embeddings` (dynamic and YaRN read it).
    pub max_position_embeddings: i64,
}

/// `1 / theta^(arange(0, dim, 2) / dim)` in f32, as `_compute_default_rope_parameters`.
fn default_inv_freq(theta: f64, dim: i64) -> Tensor {
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, Device::Cpu)).to_kind(Kind::Float) / dim as f64;
    Tensor::from(theta).to_kind(Kind::Float).pow(&exponents).reciprocal()
}

impl Rope {
    /// The inverse frequencies `(dim / 2)` in f32 on the CPU, and the attention factor, for a
    /// sequence of `seq_len` positions.
    pub fn inv_freq(&self, seq_len: i64) -> (Tensor, f64) {
        let dim = self.dim;
        match &self.scaling {
            RopeScaling::Default => (default_inv_freq(self.theta, dim), 1.0),
            RopeScaling::Linear { factor } => (default_inv_freq(self.theta, dim) / *factor, 1.0),
            RopeScaling::Dynamic { factor } => {
                let max_pos = self.max_position_embeddings as f64;
                let seq = (seq_len as f64).max(max_pos);
                let base =
                    self.theta * ((factor * seq / max_pos) - (factor - 1.0)).powf(dim as f64 / (dim as f64 - 2.0));
                (default_inv_freq(base, dim), 1.0)
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: old,
            } => {
                let inv = default_inv_freq(self.theta, dim);
                let (low_wl, high_wl) = (old / low, old / high);
                let wavelen = (inv.reciprocal() * (2.0 * PI)).to_kind(Kind::Float); // 2π / inv
                let inv_llama = (&inv / *factor).where_self(&wavelen.gt(low_wl), &inv); // torch.where(cond, a, b)
                let smooth = ((wavelen.reciprocal() * *old) - *low) / (high - low);
                let smoothed = ((smooth.ones_like() - &smooth) * &inv_llama) / *factor + &smooth * &inv_llama;
                let medium = wavelen
                    .lt(high_wl)
                    .logical_not()
                    .logical_and(&wavelen.gt(low_wl).logical_not());
                (smoothed.where_self(&medium, &inv_llama), 1.0)
            }
            RopeScaling::Yarn {
                factor,
                attention_factor,
                mscale,
                mscale_all_dim,
                beta_fast,
                beta_slow,
                original_max_position_embeddings,
                truncate,
            } => {
                let base = self.theta;
                let get_mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
                let attention = match (attention_factor, mscale, mscale_all_dim) {
                    (Some(a), _, _) => *a,
                    (None, Some(m), Some(ma)) if *m != 0.0 && *ma != 0.0 => {
                        get_mscale(*factor, *m) / get_mscale(*factor, *ma)
                    }
                    _ => get_mscale(*factor, 1.0),
                };
                let orig = original_max_position_embeddings.unwrap_or(self.max_position_embeddings as f64);
                let d = dim as f64;
                let correction = |rot: f64| (d * (orig / (rot * 2.0 * PI)).ln()) / (2.0 * base.ln());
                let (mut lo, mut hi) = (correction(*beta_fast), correction(*beta_slow));
                if *truncate {
                    lo = lo.floor();
                    hi = hi.ceil();
                }
                let (lo, mut hi) = (lo.max(0.0), hi.min(d - 1.0));
                if lo == hi {
                    hi += 0.001;
                }
                let exponents =
                    Tensor::arange_start_step(0, dim, 2, (Kind::Int64, Device::Cpu)).to_kind(Kind::Float) / d;
                let pos_freqs = Tensor::from(base).to_kind(Kind::Float).pow(&exponents);
                let extrapolation = pos_freqs.reciprocal();
                let interpolation = (&pos_freqs * *factor).reciprocal();
                let ramp = ((Tensor::arange(dim / 2, (Kind::Float, Device::Cpu)) - lo) / (hi - lo)).clamp(0.0, 1.0);
                let extra_factor = ramp.ones_like() - ramp;
                let inv = &interpolation * (extra_factor.ones_like() - &extra_factor) + &extrapolation * &extra_factor;
                (inv, attention)
            }
        }
    }

    /// `(cos, sin)` tables `(T, dim)` for positions `0..t`, computed in f32, multiplied by the
    /// attention factor, and cast to `kind` on `device`, as the rotary modules of `transformers` do.
    pub fn tables(&self, t: i64, device: Device, kind: Kind) -> (Tensor, Tensor) {
        let (inv_freq, attention) = self.inv_freq(t);
        let pos = Tensor::arange(t, (Kind::Float, Device::Cpu));
        let freqs = pos.outer(&inv_freq); // (T, dim/2)
        let emb = Tensor::cat(&[&freqs, &freqs], -1); // (T, dim)
        let (cos, sin) = if attention == 1.0 {
            (emb.cos(), emb.sin())
        } else {
            (emb.cos() * attention, emb.sin() * attention)
        };
        (cos.to_device(device).to_kind(kind), sin.to_device(device).to_kind(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_old_and_new_keys_and_refuses_by_name() {
        let v = json!({"type": "linear", "factor": 2.0});
        assert_eq!(
            RopeScaling::parse(Some(&v)).unwrap(),
            RopeScaling::Linear { factor: 2.0 }
        );
        let v = json!({"rope_type": "default"});
        assert_eq!(RopeScaling::parse(Some(&v)).unwrap(), RopeScaling::Default);
        let e = RopeScaling::parse(Some(&json!({"rope_type": "su", "factor": 2.0}))).unwrap_err();
        assert!(e.contains("\"su\""), "{e}");
        let e = RopeScaling::parse(Some(&json!({"rope_type": "longrope"}))).unwrap_err();
        assert!(e.contains("longrope") && e.contains("not implemented"), "{e}");
        let e = RopeScaling::parse(Some(&json!({"rope_type": "llama3", "factor": 8.0}))).unwrap_err();
        assert!(e.contains("low_freq_factor"), "{e}");
    }

    /// Llama 3's formula by hand (f64) at the three regimes: high frequencies kept, low ones
    /// divided by the factor, the middle band blended.
    #[test]
    fn llama3_by_hand() {
        let rope = Rope {
            theta: 500000.0,
            dim: 64,
            scaling: RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0,
            },
            max_position_embeddings: 131072,
        };
        let (inv, a) = rope.inv_freq(10);
        assert_eq!(a, 1.0);
        let got: Vec<f64> = Vec::<f64>::try_from(inv.to_kind(Kind::Double)).unwrap();
        for (i, g) in got.iter().enumerate() {
            let f = 1.0 / 500000f64.powf(2.0 * i as f64 / 64.0);
            let wl = 2.0 * PI / f;
            let want = if wl < 8192.0 / 4.0 {
                f
            } else if wl > 8192.0 {
                f / 32.0
            } else {
                let s = (8192.0 / wl - 1.0) / 3.0;
                (1.0 - s) * f / 32.0 + s * f
            };
            assert!((g - want).abs() <= 1e-6 * want, "{i}: {g} vs {want}");
        }
    }
}
