//! Surgery plans: for every parameter of a target model, where its values come from.
//!
//! A plan names a target configuration and, per target parameter, a source: a (possibly sliced)
//! tensor of one of the donor models, a fresh initialisation from a recorded seed, or zeros.
//! Applying a plan builds the target with its own initialisation (seeded), then overwrites.
//! Every operation of this crate is a plan; the plan is also the `surgery.json` report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use inheritune_model::tch::{self, Tensor};
use inheritune_model::{CausalLm, ModelConfig};
use serde::Serialize;

use crate::error::{invalid, Result};

/// Where one target parameter comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// Copied from a donor's tensor, optionally sliced.
    Copy {
        /// The donor's label (e.g. `reference`, `trained`).
        donor: String,
        /// The donor's parameter name.
        from: String,
        /// Per-dimension ranges `[start, end)` to keep and concatenate; empty means the whole tensor.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        slices: Vec<DimSlice>,
    },
    /// The target model's own initialisation, drawn after `tch::manual_seed(seed)`.
    Fresh {
        /// The seed.
        seed: i64,
    },
    /// All zeros (function-preserving growth).
    Zero,
}

/// Ranges kept along one dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DimSlice {
    /// The dimension.
    pub dim: i64,
    /// `[start, end)` ranges, concatenated in order.
    pub ranges: Vec<(i64, i64)>,
}

/// One row of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Target parameter (Hugging Face name).
    pub target: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Where its values come from.
    pub source: Source,
}

/// A complete surgery: the target config and the source of every target parameter.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The operation, e.g. `inherit`, `grow`, `stack`.
    pub operation: String,
    /// Operation settings (map, selection, Δ, ...), for the report.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The seed of every fresh tensor.
    pub seed: i64,
    /// The target configuration.
    #[serde(serialize_with = "config_value")]
    pub target: ModelConfig,
    /// One entry per target parameter, in name order.
    pub entries: Vec<Entry>,
}

fn config_value<S: serde::Serializer>(c: &ModelConfig, s: S) -> std::result::Result<S::Ok, S::Error> {
    c.to_value().serialize(s)
}

impl Plan {
    /// Starts a plan in which every parameter of `target` is fresh.
    pub(crate) fn fresh(operation: &str, target: ModelConfig, seed: i64) -> Self {
        let mut entries: Vec<Entry> = target
            .parameter_shapes()
            .into_iter()
            .map(|p| Entry {
                target: p.name,
                shape: p.shape,
                source: Source::Fresh { seed },
            })
            .collect();
        entries.sort_by(|a, b| a.target.cmp(&b.target));
        Plan {
            operation: operation.to_string(),
            settings: BTreeMap::new(),
            seed,
            target,
            entries,
        }
    }

    /// Sets the source of `target`.
    pub(crate) fn set(&mut self, target: &str, source: Source) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.target == target) {
            e.source = source;
        }
    }

    /// Records a setting for the report.
    pub(crate) fn setting(&mut self, key: &str, value: impl Serialize) {
        self.settings.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
    }

    /// Builds the target: its own initialisation after `tch::manual_seed(seed)`, then every copy
    /// and zero applied, on the device and in the dtype of the first donor. libtorch's generator is
    /// process-global: fresh tensors are reproducible only while no other thread draws from it.
    ///
    /// # Errors
    /// A donor lacking a named tensor, a slice of the wrong shape, or a torch failure.
    pub fn apply(&self, donors: &[(&str, &CausalLm)]) -> Result<CausalLm> {
        let Some((_, first)) = donors.first() else {
            return invalid("a plan needs at least one donor model");
        };
        tch::manual_seed(self.seed);
        let model = CausalLm::new(&self.target, first.device(), first.dtype())?;
        let params = model.named_parameters();
        let donor_params: BTreeMap<&str, BTreeMap<String, Tensor>> =
            donors.iter().map(|(label, m)| (*label, m.named_parameters())).collect();
        for e in &self.entries {
            let Some(dst) = params.get(&e.target) else {
                return invalid(format!("target has no parameter {}", e.target));
            };
            match &e.source {
                Source::Fresh { .. } => {}
                Source::Zero => {
                    let _ = tch::no_grad(|| dst.shallow_clone().f_zero_())?;
                }
                Source::Copy { donor, from, slices } => {
                    let Some(src) = donor_params.get(donor.as_str()).and_then(|p| p.get(from)) else {
                        return invalid(format!("donor {donor} has no parameter {from}"));
                    };
                    let mut t = src.shallow_clone();
                    for s in slices {
                        let parts: Vec<Tensor> = s.ranges.iter().map(|&(a, b)| t.narrow(s.dim, a, b - a)).collect();
                        t = Tensor::f_cat(&parts, s.dim)?;
                    }
                    if t.size() != dst.size() {
                        return invalid(format!(
                            "{} from {donor}:{from}: shape {:?} does not fit {:?}",
                            e.target,
                            t.size(),
                            dst.size()
                        ));
                    }
                    tch::no_grad(|| dst.shallow_clone().f_copy_(&t))?;
                }
            }
        }
        Ok(model)
    }

    /// A fixed-width table of the plan: target, shape, source.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} (seed {})", self.operation, self.seed);
        for (k, v) in &self.settings {
            let _ = writeln!(out, "  {k} = {v}");
        }
        for e in &self.entries {
            let source = match &e.source {
                Source::Fresh { seed } => format!("fresh (seed {seed})"),
                Source::Zero => "zero".to_string(),
                Source::Copy { donor, from, slices } => {
                    let mut s = format!("{donor}:{from}");
                    for d in slices {
                        let r: Vec<String> = d.ranges.iter().map(|(a, b)| format!("{a}:{b}")).collect();
                        let _ = write!(s, " dim{}[{}]", d.dim, r.join(","));
                    }
                    s
                }
            };
            let _ = writeln!(out, "{:<44} {:<14} {}", e.target, format!("{:?}", e.shape), source);
        }
        out
    }
}
