//! The field's depth criteria, from the residual stream (see METHOD.md, "Depth criteria"), and
//! the selection rules that keep blocks by them.
//!
//! Let x_l be the residual stream entering block l (x_0 is the embeddings' output, with Gemma's
//! √d scaling; x_N leaves the last block, before the final norm):
//! - Block Influence (ShortGPT; Minitron's depth score): 1 − mean over every position of every
//!   window of cos(x_l, x_{l+1}).
//! - Angular distance (Gromov et al.): for block size n and start l, the mean over windows of
//!   arccos(cos(x_l, x_{l+n})) / π at the last position of each window.
//! - Leave-one-out NLL increase: the windows' mean next-token NLL with block l replaced by the
//!   identity, minus the full model's.
//!
//! Cosines are taken in f64 from the model's own activations.

use std::collections::BTreeMap;

use inheritune_model::tch::{Kind, Tensor};
use inheritune_model::{CausalLm, Probe};

use crate::error::{Error, Result};

/// Angular distances keyed by block size n, each a list over starts l.
pub type Angular = BTreeMap<String, Vec<f64>>;

/// Accumulates Block Influence and the last-position states over chunks of windows.
pub(crate) struct ResidualAcc {
    n_layer: usize,
    /// Σ over positions of cos(x_l, x_{l+1}), per block.
    cos_sum: Vec<f64>,
    /// Positions summed.
    positions: u64,
    /// Per state l = 0..=N, the last position of every window seen `(windows, d)` in f64.
    last: Vec<Vec<Tensor>>,
    /// The previous state of the current chunk (f64).
    prev: Option<Tensor>,
}

fn cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = a.f_mul(b)?.f_sum_dim_intlist(-1, false, Kind::Double)?;
    let na = a.f_norm_scalaropt_dim(2, -1, false)?;
    let nb = b.f_norm_scalaropt_dim(2, -1, false)?;
    Ok(dot.f_div(&na.f_mul(&nb)?)?)
}

impl ResidualAcc {
    pub(crate) fn new(n_layer: usize) -> Self {
        ResidualAcc {
            n_layer,
            cos_sum: vec![0.0; n_layer],
            positions: 0,
            last: (0..=n_layer).map(|_| Vec::new()).collect(),
            prev: None,
        }
    }

    /// Takes x_l `(B, T, d)` of the current chunk (l = 0 starts a chunk).
    pub(crate) fn visit(&mut self, l: usize, x: &Tensor) -> Result<()> {
        let x = x.f_to_kind(Kind::Double)?;
        if l == 0 {
            let s = x.size();
            self.positions += (s[0] * s[1]) as u64;
        } else if let Some(prev) = &self.prev {
            self.cos_sum[l - 1] += cosine(prev, &x)?.f_sum(Kind::Double)?.f_double_value(&[])?;
        }
        // A copy: the view would keep the whole `(B, T, d)` state of every layer alive.
        self.last[l].push(x.f_select(1, -1)?.copy());
        self.prev = (l < self.n_layer).then_some(x);
        Ok(())
    }

    /// Block Influence per block, and angular distance keyed by block size n = 1..N−1.
    pub(crate) fn finish(self) -> Result<(Vec<f64>, Angular)> {
        let bi: Vec<f64> = self
            .cos_sum
            .iter()
            .map(|c| 1.0 - c / self.positions.max(1) as f64)
            .collect();
        let last = self
            .last
            .iter()
            .map(|chunks| Tensor::f_cat(chunks, 0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let n = self.n_layer;
        let mut angular = BTreeMap::new();
        for size in 1..n {
            let row = (0..=n - size)
                .map(|l| {
                    let c = cosine(&last[l], &last[l + size])?.f_clamp(-1.0, 1.0)?;
                    Ok(c.f_arccos()?.f_mean(Kind::Double)?.f_double_value(&[])? / std::f64::consts::PI)
                })
                .collect::<Result<Vec<f64>>>()?;
            angular.insert(size.to_string(), row);
        }
        Ok((bi, angular))
    }
}

/// Sum of next-token NLL over `ids` `(B, T)` (positions 1..T predicted) with block `skip`
/// replaced by the identity (None: the full model), and the tokens predicted.
fn nll_sum(model: &CausalLm, ids: &Tensor, skip: Option<usize>) -> Result<(f64, u64)> {
    let hidden = model.probe(
        ids,
        &mut Probe {
            skip,
            ..Probe::default()
        },
    )?;
    let t = ids.size()[1];
    let logits = model.head(&hidden.f_narrow(1, 0, t - 1)?);
    let v = logits.size()[2];
    let targets = ids
        .f_narrow(1, 1, t - 1)?
        .f_to_device(logits.device())?
        .f_reshape([-1])?;
    let loss = logits
        .f_reshape([-1, v])?
        .f_to_kind(Kind::Float)?
        .f_cross_entropy_loss::<Tensor>(&targets, None, inheritune_model::tch::Reduction::Sum, -100, 0.0)?;
    Ok((loss.f_double_value(&[])?, targets.size()[0] as u64))
}

/// The full model's mean next-token NLL over `windows` `(N, T)`, and for each block the increase
/// when it is replaced by the identity; `batch` windows per pass; `progress(done, total)` counts
/// passes of one batch.
///
/// # Errors
/// Windows shorter than 2 tokens, or a model failure.
pub fn leave_one_out(
    model: &CausalLm,
    windows: &Tensor,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(f64, Vec<f64>)> {
    let (n, t) = (windows.size()[0], windows.size()[1]);
    if t < 2 {
        return Err(Error::Invalid(
            "leave-one-out NLL needs windows of at least 2 tokens".into(),
        ));
    }
    let n_layer = model.config().n_layer() as usize;
    let batch = batch.max(1) as i64;
    let chunks = (n + batch - 1) / batch;
    let total = chunks as usize * (n_layer + 1);
    let mut sums = vec![0.0f64; n_layer + 1];
    let mut count = 0u64;
    let mut done = 0;
    inheritune_model::tch::no_grad(|| -> Result<()> {
        for c in 0..chunks {
            let ids = windows.f_narrow(0, c * batch, batch.min(n - c * batch))?;
            for (k, sum) in sums.iter_mut().enumerate() {
                let skip = (k < n_layer).then_some(k);
                let (s, tokens) = nll_sum(model, &ids, skip)?;
                *sum += s;
                if skip.is_none() {
                    count += tokens;
                }
                done += 1;
                progress(done, total);
            }
        }
        Ok(())
    })?;
    let full = sums[n_layer] / count as f64;
    Ok((full, sums[..n_layer].iter().map(|s| s / count as f64 - full).collect()))
}

/// A rule that chooses which blocks of a reference to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The first blocks (Inheritune).
    First,
    /// The last blocks.
    Last,
    /// The blocks of highest Block Influence (ShortGPT).
    BlockInfluence,
    /// Every block but the contiguous run of least angular distance (Gromov et al.).
    Angular,
    /// The blocks whose removal raises the NLL most.
    Loo,
}

impl Rule {
    /// Every rule, in the order reports list them.
    pub const ALL: [Rule; 5] = [Rule::First, Rule::Last, Rule::BlockInfluence, Rule::Angular, Rule::Loo];

    /// The kebab-case name (`first`, `last`, `block-influence`, `angular`, `loo`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::First => "first",
            Rule::Last => "last",
            Rule::BlockInfluence => "block-influence",
            Rule::Angular => "angular",
            Rule::Loo => "loo",
        }
    }

    /// Parses a name of [`Rule::name`].
    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == s)
    }

    /// Whether the rule needs criteria computed on windows.
    pub fn needs_criteria(self) -> bool {
        !matches!(self, Rule::First | Rule::Last)
    }
}

/// `0-3, 7, 9-10`: sorted block indices as runs (`none` when empty).
pub fn runs<T: Copy + TryInto<i64>>(v: &[T]) -> String {
    let v: Vec<i64> = v.iter().map(|&x| x.try_into().unwrap_or(i64::MAX)).collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

fn check_keep(n_layer: usize, keep: usize) -> Result<()> {
    if keep == 0 || keep > n_layer {
        return Err(Error::Invalid(format!(
            "cannot keep {keep} of {n_layer} blocks (1 to {n_layer})"
        )));
    }
    Ok(())
}

/// The `keep` indices of highest `values`, in model order; ties go to the lower index.
///
/// # Errors
/// `keep` outside 1..=len, or a value that is not finite.
pub fn keep_highest(values: &[f64], keep: usize) -> Result<Vec<usize>> {
    check_keep(values.len(), keep)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!("the criterion of block {i} is {}", values[i])));
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    // Stable: equal values keep index order, so the lower index wins a tie.
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut kept: Vec<usize> = order.into_iter().take(keep).collect();
    kept.sort_unstable();
    Ok(kept)
}

/// Every block of an `n_layer`-block model but the `n_layer − keep` contiguous ones starting
/// where `angular[n_layer − keep]` is least (the lowest start on a tie); all blocks when
/// `keep = n_layer`.
///
/// # Errors
/// `keep` outside 1..=n_layer, or no distances for that block size.
pub fn keep_angular(angular: &BTreeMap<String, Vec<f64>>, n_layer: usize, keep: usize) -> Result<Vec<usize>> {
    check_keep(n_layer, keep)?;
    let size = n_layer - keep;
    if size == 0 {
        return Ok((0..n_layer).collect());
    }
    let row = angular
        .get(&size.to_string())
        .ok_or_else(|| Error::Invalid(format!("angular_distance has no entry for block size {size}")))?;
    if row.len() != n_layer - size + 1 {
        return Err(Error::Invalid(format!(
            "angular_distance[{size}] has {} starts, expected {}",
            row.len(),
            n_layer - size + 1
        )));
    }
    if let Some(i) = row.iter().position(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!("angular_distance[{size}][{i}] is {}", row[i])));
    }
    let start = (0..row.len()).fold(0, |best, i| if row[i] < row[best] { i } else { best });
    Ok((0..n_layer).filter(|&l| l < start || l >= start + size).collect())
}

/// The blocks `rule` keeps out of `n_layer`, from the criteria where it needs them.
///
/// # Errors
/// `keep` outside 1..=n_layer, or a criterion the rule needs that is missing or not finite.
pub fn select(
    rule: Rule,
    n_layer: usize,
    keep: usize,
    block_influence: Option<&[f64]>,
    angular: Option<&BTreeMap<String, Vec<f64>>>,
    loo: Option<&[f64]>,
) -> Result<Vec<usize>> {
    check_keep(n_layer, keep)?;
    let need = |v: Option<&[f64]>, name: &str| -> Result<Vec<f64>> {
        let v = v.ok_or_else(|| Error::Invalid(format!("the {name} criterion was not computed")))?;
        if v.len() != n_layer {
            return Err(Error::Invalid(format!(
                "{name} has {} values for {n_layer} blocks",
                v.len()
            )));
        }
        Ok(v.to_vec())
    };
    match rule {
        Rule::First => Ok((0..keep).collect()),
        Rule::Last => Ok((n_layer - keep..n_layer).collect()),
        Rule::BlockInfluence => keep_highest(&need(block_influence, "block-influence")?, keep),
        Rule::Loo => keep_highest(&need(loo, "loo (analyze --loo)")?, keep),
        Rule::Angular => keep_angular(
            angular.ok_or_else(|| Error::Invalid("the angular criterion was not computed".into()))?,
            n_layer,
            keep,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_values_keep_model_order_and_lower_index_on_ties() {
        assert_eq!(keep_highest(&[0.1, 0.5, 0.3, 0.5, 0.0], 2).unwrap(), vec![1, 3]);
        // A tie at the cut: the lower index is kept.
        assert_eq!(keep_highest(&[0.2, 0.9, 0.2, 0.2], 2).unwrap(), vec![0, 1]);
        assert_eq!(keep_highest(&[0.2, 0.9, 0.2, 0.2], 3).unwrap(), vec![0, 1, 2]);
        // L = N − 1 drops the single least.
        assert_eq!(keep_highest(&[0.4, 0.1, 0.3], 2).unwrap(), vec![0, 2]);
        assert!(keep_highest(&[0.4, f64::NAN], 1).is_err());
        assert!(keep_highest(&[0.4, 0.1], 0).is_err());
        assert!(keep_highest(&[0.4, 0.1], 3).is_err());
    }

    #[test]
    fn angular_removes_the_closest_contiguous_run() {
        // 5 blocks; keep 3 → remove 2 contiguous blocks, starts 0..=3.
        let mut a = BTreeMap::new();
        a.insert("2".to_string(), vec![0.30, 0.10, 0.20, 0.10]);
        a.insert("1".to_string(), vec![0.5, 0.4, 0.05, 0.4, 0.05]);
        // argmin 0.10 first at start 1 → remove 1, 2.
        assert_eq!(keep_angular(&a, 5, 3).unwrap(), vec![0, 3, 4]);
        // L = N − 1: remove the single block at the (first) argmin of n = 1.
        assert_eq!(keep_angular(&a, 5, 4).unwrap(), vec![0, 1, 3, 4]);
        assert_eq!(keep_angular(&a, 5, 5).unwrap(), vec![0, 1, 2, 3, 4]);
        assert!(keep_angular(&a, 5, 2).is_err()); // no n = 3 row
        a.insert("2".to_string(), vec![0.3]);
        assert!(keep_angular(&a, 5, 3).is_err()); // wrong length
    }

    #[test]
    fn rules_name_and_need_what_they_use() {
        for r in Rule::ALL {
            assert_eq!(Rule::parse(r.name()), Some(r));
        }
        assert_eq!(select(Rule::First, 6, 2, None, None, None).unwrap(), vec![0, 1]);
        assert_eq!(select(Rule::Last, 6, 2, None, None, None).unwrap(), vec![4, 5]);
        assert!(select(Rule::Loo, 6, 2, None, None, None)
            .unwrap_err()
            .to_string()
            .contains("loo"));
        assert!(select(Rule::BlockInfluence, 3, 2, Some(&[0.1, 0.2]), None, None).is_err());
    }
}
