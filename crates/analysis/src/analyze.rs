//! Runs a model over windows and aggregates the metrics of METHOD.md §2 per head and layer.
//!
//! Attention is computed one layer at a time through the model's explicit path; each layer's
//! matrices are reduced to per-window numbers before the next layer runs, so memory stays at
//! one layer's matrices for one chunk of windows.

use std::collections::BTreeMap;

use inheritune_model::tch::{self, Kind, Tensor};
use inheritune_model::{CausalLm, Probe};
use serde::{Deserialize, Serialize};

use crate::depth::{ResidualAcc, Rule};
use crate::error::{Error, Result};
use crate::metrics::{approx_rank, metrics};

/// Column ordering for m*(η) (METHOD.md §2.6 DECISION: sorted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MassOrder {
    /// Largest shares first: the fewest columns (default).
    Sorted,
    /// Columns 0, 1, 2, … as the paper's printed formula.
    Index,
}

/// Analysis settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Energy threshold τ of k* (0.90).
    pub tau: f64,
    /// Mass threshold η of m* (0.90).
    pub eta: f64,
    /// The sensitivity sweep of τ (METHOD.md §2.8).
    pub tau_sweep: Vec<f64>,
    /// Column ordering of m*.
    pub mass_order: MassOrder,
    /// A head is "collapsed" when Rank(h, l) is below this (METHOD.md §2.5: 1.5, our choice).
    pub collapsed_below: f64,
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Also compute the leave-one-out NLL increase of every block (N + 1 passes with the head).
    #[serde(default)]
    pub loo: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tau: 0.9,
            eta: 0.9,
            tau_sweep: vec![0.80, 0.85, 0.90, 0.95],
            mass_order: MassOrder::Sorted,
            collapsed_below: 1.5,
            batch_size: 100,
            loo: false,
        }
    }
}

impl Settings {
    /// Checks the thresholds.
    ///
    /// # Errors
    /// A threshold outside (0, 1], or a zero batch size; every problem is listed.
    pub fn validate(&self) -> Result<()> {
        let mut p = Vec::new();
        for (name, v) in [("tau", self.tau), ("eta", self.eta)]
            .into_iter()
            .chain(self.tau_sweep.iter().map(|&t| ("tau_sweep", t)))
        {
            if !(v > 0.0 && v <= 1.0) {
                p.push(format!("{name} must be in (0, 1], got {v}"));
            }
        }
        if self.batch_size == 0 {
            p.push("batch_size must be positive".to_string());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!("invalid analysis settings: {}", p.join("; "))))
        }
    }
}

/// Per-head results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadResult {
    /// 0-based head index.
    pub head: usize,
    /// Rank(h, l) = mean over windows of k*(τ).
    pub rank_mean: f64,
    /// k*(τ) per window.
    pub rank_per_window: Vec<i64>,
    /// m(h, l) = mean over windows of m*(η).
    pub mass_mean: f64,
    /// m*(η) per window.
    pub mass_per_window: Vec<i64>,
    /// Mean over windows of dom(A).
    pub dom_mean: f64,
    /// k* of the window-averaged matrix (METHOD.md §2.4 (b)).
    pub rank_of_mean_matrix: i64,
    /// Rank(h, l) < `collapsed_below` (our threshold, METHOD.md §2.5).
    pub collapsed: bool,
}

/// Per-layer results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerResult {
    /// 0-based layer index.
    pub layer: usize,
    /// MaxRank(l) = max over heads of Rank(h, l) (the paper's metric).
    pub max_rank: f64,
    /// Mean over heads of Rank(h, l).
    pub avg_rank: f64,
    /// Spec §2.4 (a): mean over windows of (max over heads of k*).
    pub max_rank_window_mean: f64,
    /// Its standard deviation over windows (population).
    pub max_rank_window_std: f64,
    /// Spec §2.4 (b): max over heads of the k* of the window-averaged matrix.
    pub max_rank_of_mean_matrix: i64,
    /// AvgMass(l) = mean over heads of m(h, l).
    pub avg_mass: f64,
    /// Mean over heads of the mean dom(A).
    pub dom_mean: f64,
    /// Max over heads of the mean dom(A).
    pub dom_max: f64,
    /// MaxRank(l) == 1 exactly (every head of every window has k* = 1).
    pub lazy_strict: bool,
    /// ⌊MaxRank(l)⌋ == 1 (MaxRank < 2).
    pub lazy_relaxed: bool,
    /// MaxRank(l) for each τ of the sweep, keyed by τ.
    pub max_rank_by_tau: BTreeMap<String, f64>,
    /// Block Influence: 1 − mean over every position of every window of cos(x_l, x_{l+1}).
    #[serde(default)]
    pub block_influence: Option<f64>,
    /// Mean next-token NLL with this block replaced by the identity, minus the full model's
    /// (with `settings.loo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loo_nll_increase: Option<f64>,
    /// Per-head results.
    pub heads: Vec<HeadResult>,
}

/// The whole analysis of one model on one set of windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    /// The model (a path or a name).
    pub model: String,
    /// `gpt2` or `llama`.
    pub model_type: String,
    /// Layers of the model.
    pub n_layer: usize,
    /// Query heads per layer.
    pub n_head: usize,
    /// Where the windows came from (data split with seed, file, or text).
    pub window_source: String,
    /// The settings used.
    pub settings: Settings,
    /// The analysed windows, as token ids.
    pub windows: Vec<Vec<i64>>,
    /// Per-layer results.
    pub layers: Vec<LayerResult>,
    /// 0-based indices of strictly lazy layers.
    pub lazy_strict: Vec<usize>,
    /// 0-based indices of relaxed lazy layers.
    pub lazy_relaxed: Vec<usize>,
    /// AvgRank (mean of MaxRank) over the first ⌊L/2⌋ layers.
    pub avg_rank_first_half: f64,
    /// AvgRank over the remaining layers.
    pub avg_rank_second_half: f64,
    /// The paper's inheritance depth: ⌊L/2⌋.
    pub suggested_depth: usize,
    /// The non-paper alternative: the index of the first strictly lazy layer (the blocks before it), if any.
    pub first_lazy_depth: Option<usize>,
    /// Angular distance keyed by block size n = 1..N−1: per start l = 0..=N−n, the mean over
    /// windows of arccos(cos(x_l, x_{l+n})) / π at the last position.
    #[serde(default)]
    pub angular_distance: BTreeMap<String, Vec<f64>>,
    /// The full model's mean next-token NLL over the windows (with `settings.loo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nll: Option<f64>,
    /// The blocks each rule keeps at the suggested depth, keyed by rule name (0-based).
    #[serde(default)]
    pub kept_by_rule: BTreeMap<String, Vec<usize>>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(
        t.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?,
    )?)
}

fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        t.f_to_device(tch::Device::Cpu)?
            .f_flatten(0, -1)?
            .f_to_kind(Kind::Double)?,
    )?)
}

/// Hands the heap's free memory back to the kernel (glibc; elsewhere nothing). Each layer's
/// metrics allocate and free f64 copies, Gram products and LAPACK workspaces of 1–50 MB, which
/// glibc keeps once its mmap threshold has risen to their size: the resident size grew by about
/// 28 MB per layer and window batch (a random GPT-2 XL in passes of 25 windows reached 13 GB,
/// its weights being 6.2 GB). Trimmed once per layer it stays flat, and each layer re-faults its
/// pages once (a few ms) where a fixed low mmap threshold cost 15–25 % of SmolLM2's analysis.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of the allocator's arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raw per-window numbers of one layer, filled chunk by chunk.
struct LayerAcc {
    /// [head][window][tau index]
    ranks: Vec<Vec<Vec<i64>>>,
    mass: Vec<Vec<i64>>,
    dom: Vec<Vec<f64>>,
    /// Σ over windows of A, `(H, T, T)` f64.
    sum: Option<Tensor>,
}

/// Analyses `model` on `windows` `(N, T)`; `progress(done, total)` is called after each chunk.
///
/// # Errors
/// Invalid settings, no windows, windows longer than the context, or a model failure.
pub fn analyze(
    model: &CausalLm,
    model_name: &str,
    windows: &Tensor,
    window_source: &str,
    settings: &Settings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Analysis> {
    settings.validate()?;
    let size = windows.size();
    if size.len() != 2 || size[0] == 0 || size[1] < 1 {
        return Err(Error::Invalid(format!(
            "windows must be a non-empty (N, T) tensor, got shape {size:?}"
        )));
    }
    let (n, n_layer, n_head) = (
        size[0] as usize,
        model.config().n_layer() as usize,
        model.config().n_head() as usize,
    );
    let taus = all_taus(settings);
    let mut acc: Vec<LayerAcc> = (0..n_layer)
        .map(|_| LayerAcc {
            ranks: vec![Vec::new(); n_head],
            mass: vec![Vec::new(); n_head],
            dom: vec![Vec::new(); n_head],
            sum: None,
        })
        .collect();
    let mut failure: Option<Error> = None;
    let mut residual_failure: Option<Error> = None;
    let mut residual = ResidualAcc::new(n_layer);
    let mut done = 0;
    // With leave-one-out, each window also runs N + 1 passes through the head.
    let total = if settings.loo { n * (n_layer + 2) } else { n };
    for start in (0..n).step_by(settings.batch_size) {
        let len = settings.batch_size.min(n - start);
        let chunk = windows.narrow(0, start as i64, len as i64);
        let mut visitor = |layer: usize, probs: &Tensor| {
            if failure.is_some() {
                return;
            }
            if let Err(e) = reduce_layer(&mut acc[layer], probs, &taus, settings) {
                failure = Some(e);
            }
            trim_heap();
        };
        let mut on_residual = |l: usize, x: &Tensor| {
            if residual_failure.is_none() {
                if let Err(e) = residual.visit(l, x) {
                    residual_failure = Some(e);
                }
            }
        };
        // Only what the visitors saw is needed, not the final hidden states.
        let _final_states = tch::no_grad(|| {
            model.probe(
                &chunk,
                &mut Probe {
                    attention: Some(&mut visitor),
                    residual: Some(&mut on_residual),
                    skip: None,
                    packing: None,
                },
            )
        })?;
        if let Some(e) = failure.take().or(residual_failure.take()) {
            return Err(e);
        }
        done += len;
        progress(done, total);
    }
    let (block_influence, angular_distance) = residual.finish()?;
    let loo = if settings.loo {
        // The head's logits are (batch, T, V): a few windows at a time.
        let batch = (settings.batch_size).min(8);
        let (full, increase) = crate::depth::leave_one_out(model, windows, batch, &mut |d, t| {
            progress(n + (d * n * (n_layer + 1)) / t.max(1), total)
        })?;
        Some((full, increase))
    } else {
        None
    };
    let mut layers = acc
        .into_iter()
        .enumerate()
        .map(|(l, a)| aggregate_layer(l, a, &taus, n, settings))
        .collect::<Result<Vec<_>>>()?;
    for (l, layer) in layers.iter_mut().enumerate() {
        layer.block_influence = Some(block_influence[l]);
        layer.loo_nll_increase = loo.as_ref().map(|(_, inc)| inc[l]);
    }
    let lazy_strict: Vec<usize> = layers.iter().filter(|l| l.lazy_strict).map(|l| l.layer).collect();
    let lazy_relaxed: Vec<usize> = layers.iter().filter(|l| l.lazy_relaxed).map(|l| l.layer).collect();
    let half = (n_layer / 2).max(1); // a 1-layer model keeps its layer
    let max_ranks: Vec<f64> = layers.iter().map(|l| l.max_rank).collect();
    Ok(Analysis {
        model: model_name.to_string(),
        model_type: model.config().model_type().to_string(),
        n_layer,
        n_head,
        window_source: window_source.to_string(),
        settings: settings.clone(),
        windows: (0..n)
            .map(|i| to_vec_i64(&windows.get(i as i64)))
            .collect::<Result<_>>()?,
        avg_rank_first_half: mean(&max_ranks[..half]),
        avg_rank_second_half: mean(&max_ranks[half..]),
        suggested_depth: half,
        first_lazy_depth: lazy_strict.first().copied(),
        kept_by_rule: kept_by_rule(&layers, &angular_distance, n_layer, half),
        layers,
        lazy_strict,
        lazy_relaxed,
        angular_distance,
        nll: loo.map(|(full, _)| full),
    })
}

/// The blocks each rule keeps at depth `keep`, for the rules whose criteria are present.
fn kept_by_rule(
    layers: &[LayerResult],
    angular: &BTreeMap<String, Vec<f64>>,
    n_layer: usize,
    keep: usize,
) -> BTreeMap<String, Vec<usize>> {
    let bi: Option<Vec<f64>> = layers.iter().map(|l| l.block_influence).collect();
    let loo: Option<Vec<f64>> = layers.iter().map(|l| l.loo_nll_increase).collect();
    Rule::ALL
        .into_iter()
        .filter_map(|rule| {
            crate::depth::select(rule, n_layer, keep, bi.as_deref(), Some(angular), loo.as_deref())
                .ok()
                .map(|kept| (rule.name().to_string(), kept))
        })
        .collect()
}

impl Analysis {
    /// The blocks `rule` keeps out of this model's at depth `keep` (0-based, model order).
    ///
    /// # Errors
    /// `keep` outside 1..=N, or a criterion the rule needs that this analysis lacks (an
    /// analysis.json from before the criteria, or `loo` without `--loo`).
    pub fn select(&self, rule: Rule, keep: usize) -> Result<Vec<usize>> {
        let bi: Option<Vec<f64>> = self.layers.iter().map(|l| l.block_influence).collect();
        let loo: Option<Vec<f64>> = self.layers.iter().map(|l| l.loo_nll_increase).collect();
        let angular = (!self.angular_distance.is_empty() || self.n_layer == 1).then_some(&self.angular_distance);
        crate::depth::select(rule, self.n_layer, keep, bi.as_deref(), angular, loo.as_deref())
    }
}

/// Analyses one layer's attention matrices `(N, H, T, T)` directly (no model), as [`analyze`] does
/// for each layer.
///
/// # Errors
/// Invalid settings or a torch failure.
pub fn analyze_layer(layer: usize, probs: &Tensor, settings: &Settings) -> Result<LayerResult> {
    settings.validate()?;
    let size = probs.size();
    if size.len() != 4 || size[2] != size[3] {
        return Err(Error::Invalid(format!("attention must be (N, H, T, T), got {size:?}")));
    }
    let n_head = size[1] as usize;
    let mut acc = LayerAcc {
        ranks: vec![Vec::new(); n_head],
        mass: vec![Vec::new(); n_head],
        dom: vec![Vec::new(); n_head],
        sum: None,
    };
    let taus = all_taus(settings);
    reduce_layer(&mut acc, probs, &taus, settings)?;
    aggregate_layer(layer, acc, &taus, size[0] as usize, settings)
}

fn all_taus(settings: &Settings) -> Vec<f64> {
    let mut taus = vec![settings.tau];
    taus.extend(settings.tau_sweep.iter().copied());
    taus
}

/// Matrices per metrics pass: bounds a layer's f64 copies, Gram products and LAPACK workspaces
/// (about 48 MB each at 100 tokens) whatever the number of windows in the forward batch.
const MATRICES_PER_PASS: usize = 600;

fn reduce_layer(acc: &mut LayerAcc, probs: &Tensor, taus: &[f64], settings: &Settings) -> Result<()> {
    let heads = probs.size().get(1).copied().unwrap_or(1).max(1) as usize;
    let windows = (MATRICES_PER_PASS / heads).max(1) as i64;
    for part in probs.f_split(windows, 0)? {
        reduce_windows(acc, &part, taus, settings)?;
    }
    Ok(())
}

fn reduce_windows(acc: &mut LayerAcc, probs: &Tensor, taus: &[f64], settings: &Settings) -> Result<()> {
    let a = probs.f_to_kind(Kind::Double)?; // (B, H, T, T)
    let (b, h) = (a.size()[0] as usize, a.size()[1] as usize);
    let all = metrics(&a, taus, settings.eta, settings.mass_order == MassOrder::Sorted);
    let k = to_vec_i64(&all.rank)?; // (B, H, ntau)
    let m = to_vec_i64(&all.mass)?; // (B, H)
    let d = to_vec_f64(&all.dom)?; // (B, H)
    let nt = taus.len();
    for w in 0..b {
        for head in 0..h {
            let i = w * h + head;
            acc.ranks[head].push(k[i * nt..(i + 1) * nt].to_vec());
            acc.mass[head].push(m[i]);
            acc.dom[head].push(d[i]);
        }
    }
    let s = a.f_sum_dim_intlist(0, false, Kind::Double)?; // (H, T, T)
    acc.sum = Some(match acc.sum.take() {
        Some(prev) => prev.f_add(&s)?,
        None => s,
    });
    Ok(())
}

fn aggregate_layer(layer: usize, acc: LayerAcc, taus: &[f64], n: usize, settings: &Settings) -> Result<LayerResult> {
    let n_head = acc.ranks.len();
    let rank_of_mean = match &acc.sum {
        Some(s) => to_vec_i64(&approx_rank(&(s / n as f64), &[settings.tau]))?,
        None => vec![0; n_head],
    };
    let rank_mean_at = |head: usize, t: usize| mean(&acc.ranks[head].iter().map(|r| r[t] as f64).collect::<Vec<_>>());
    let heads: Vec<HeadResult> = (0..n_head)
        .map(|h| {
            let rank_mean = rank_mean_at(h, 0);
            HeadResult {
                head: h,
                rank_mean,
                rank_per_window: acc.ranks[h].iter().map(|r| r[0]).collect(),
                mass_mean: mean(&acc.mass[h].iter().map(|&m| m as f64).collect::<Vec<_>>()),
                mass_per_window: acc.mass[h].clone(),
                dom_mean: mean(&acc.dom[h]),
                rank_of_mean_matrix: rank_of_mean.get(h).copied().unwrap_or(0),
                collapsed: rank_mean < settings.collapsed_below,
            }
        })
        .collect();
    let max_rank = heads.iter().map(|h| h.rank_mean).fold(f64::MIN, f64::max);
    // Spec §2.4 (a): per window, the max over heads; then mean and std over windows.
    let per_window_max: Vec<f64> = (0..n)
        .map(|w| (0..n_head).map(|h| acc.ranks[h][w][0] as f64).fold(f64::MIN, f64::max))
        .collect();
    let wmean = mean(&per_window_max);
    let wstd = mean(&per_window_max.iter().map(|x| (x - wmean).powi(2)).collect::<Vec<_>>()).sqrt();
    let max_rank_by_tau = taus[1..]
        .iter()
        .enumerate()
        .map(|(i, tau)| {
            (
                format!("{tau:.2}"),
                (0..n_head).map(|h| rank_mean_at(h, i + 1)).fold(f64::MIN, f64::max),
            )
        })
        .collect();
    let doms: Vec<f64> = heads.iter().map(|h| h.dom_mean).collect();
    Ok(LayerResult {
        layer,
        max_rank,
        avg_rank: mean(&heads.iter().map(|h| h.rank_mean).collect::<Vec<_>>()),
        max_rank_window_mean: wmean,
        max_rank_window_std: wstd,
        max_rank_of_mean_matrix: rank_of_mean.iter().copied().max().unwrap_or(0),
        avg_mass: mean(&heads.iter().map(|h| h.mass_mean).collect::<Vec<_>>()),
        dom_mean: mean(&doms),
        dom_max: doms.iter().copied().fold(f64::MIN, f64::max),
        lazy_strict: max_rank == 1.0,
        lazy_relaxed: max_rank < 2.0,
        max_rank_by_tau,
        block_influence: None,
        loo_nll_increase: None,
        heads,
    })
}

impl Analysis {
    /// A short human-readable summary: lazy layers and the suggested inheritance depth.
    pub fn summary(&self) -> String {
        let list = |v: &[usize]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            }
        };
        let collapsed: usize = self
            .layers
            .iter()
            .map(|l| l.heads.iter().filter(|h| h.collapsed).count())
            .sum();
        let mut s = format!(
            "model: {} ({}, {} layers × {} heads)\nwindows: {} × {} tokens from {}\nτ = {}, η = {}, mass order {:?}\n",
            self.model,
            self.model_type,
            self.n_layer,
            self.n_head,
            self.windows.len(),
            self.windows.first().map_or(0, Vec::len),
            self.window_source,
            self.settings.tau,
            self.settings.eta,
            self.settings.mass_order
        );
        s += &format!(
            "lazy layers, strict (MaxRank = 1), 0-based: {}\n",
            list(&self.lazy_strict)
        );
        s += &format!(
            "lazy layers, relaxed (MaxRank < 2), 0-based: {}\n",
            list(&self.lazy_relaxed)
        );
        s += &format!(
            "collapsed heads (Rank < {}, our threshold): {collapsed} of {}\n",
            self.settings.collapsed_below,
            self.n_layer * self.n_head
        );
        s += &format!(
            "AvgRank first {} layers: {:.2}; remaining {} layers: {:.2}\n",
            self.suggested_depth,
            self.avg_rank_first_half,
            self.n_layer - self.suggested_depth,
            self.avg_rank_second_half
        );
        s += &format!("suggested inheritance depth (paper, L/2): {}\n", self.suggested_depth);
        match self.first_lazy_depth {
            Some(d) => s += &format!("alternative (non-paper), blocks before the first lazy layer: {d}\n"),
            None => {
                s += "alternative (non-paper), blocks before the first lazy layer: none (no layer has MaxRank = 1)\n"
            }
        }
        s += "columns (layers 0-based, as Hugging Face's model.layers.N):\n";
        s += "  MaxRank      max over heads of the mean over windows of k* (the columns holding τ of the attention energy)\n";
        s += "  win mean±std per window the max over heads of k*, then its mean and spread over windows\n";
        s += "  AvgMass      mean over heads of m* (the columns holding η of the attention mass, largest first unless index order)\n";
        s += "  dom_max      max over heads of the mean share of the attention energy in its largest column\n";
        s += "  BI           Block Influence: 1 − mean cos(x_l, x_l+1) over every position (residual stream, before the final norm)\n";
        s += "  LOO ΔNLL     mean NLL with the block skipped minus the full model's (analyze --loo)\n";
        s += "  lazy         strict: MaxRank = 1; relaxed: MaxRank < 2\n";
        s += "layer  MaxRank  win mean ± std     AvgMass  dom_max      BI  LOO ΔNLL  lazy\n";
        let opt = |v: Option<f64>, w: usize, p: usize| v.map_or(format!("{:>w$}", "-"), |v| format!("{v:>w$.p$}"));
        for l in &self.layers {
            s += &format!(
                "{:>5}  {:>7.2}  {:>9.2} ± {:<7.2}  {:>7.2}  {:>7.3}  {}  {}  {}\n",
                l.layer,
                l.max_rank,
                l.max_rank_window_mean,
                l.max_rank_window_std,
                l.avg_mass,
                l.dom_max,
                opt(l.block_influence, 6, 4),
                opt(l.loo_nll_increase, 8, 4),
                if l.lazy_strict {
                    "strict"
                } else if l.lazy_relaxed {
                    "relaxed"
                } else {
                    ""
                }
            );
        }
        if !self.kept_by_rule.is_empty() {
            s += &format!(
                "blocks each rule drops to keep {} of {} (0-based; surgery inherit --select RULE --layers {}):\n",
                self.suggested_depth, self.n_layer, self.suggested_depth
            );
            for rule in Rule::ALL {
                if let Some(kept) = self.kept_by_rule.get(rule.name()) {
                    let dropped: Vec<usize> = (0..self.n_layer).filter(|l| !kept.contains(l)).collect();
                    s += &format!("  {:<16} {}\n", rule.name(), crate::depth::runs(&dropped));
                }
            }
        }
        s
    }
}
