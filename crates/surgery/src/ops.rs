//! The operations of METHOD.md §1.4–1.7 and §5: inheritance, growth, stacking, hybrid stacking,
//! half-width and the DistilBERT-style initialisation.
//!
//! Each builds a [`Plan`] and applies it. Copied tensors are bit-identical to their sources;
//! everything else is the target's own initialisation from the recorded seed. A block keeps
//! the attention scale of its *new* position (METHOD.md §8 item 6), since the scale is a function of
//! position in the model, not a weight.

use std::collections::BTreeSet;

use inheritune_model::{CausalLm, Gpt2Config, ModelConfig, Part, Role, Slot};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::plan::{DimSlice, Plan, Source};

/// A group of parameters that an inheritance map copies or leaves fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// Token embedding (`wte` / `embed_tokens`); with tied weights also the head.
    Embed,
    /// Learned position embedding (`wpe`; GPT-2 only).
    Pos,
    /// An untied output head (`lm_head`).
    Head,
    /// The final norm (`ln_f` / `norm`).
    FinalNorm,
    /// Attention weights of a block (`c_attn`, `attn.c_proj` / `q,k,v,o_proj`).
    Attn,
    /// The norm before attention (`ln_1` / `input_layernorm`).
    Ln1,
    /// MLP weights of a block (`c_fc`, `mlp.c_proj` / `gate,up,down_proj`).
    Mlp,
    /// The norm before the MLP (`ln_2` / `post_attention_layernorm`).
    Ln2,
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 8] = [
        Group::Embed,
        Group::Pos,
        Group::Head,
        Group::FinalNorm,
        Group::Attn,
        Group::Ln1,
        Group::Mlp,
        Group::Ln2,
    ];

    /// Parses a kebab-case name (`embed`, `pos`, `head`, `final-norm`, `attn`, `ln1`, `mlp`, `ln2`).
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Group> {
        Group::ALL.into_iter().find(|g| g.name() == s).map_or_else(
            || {
                invalid(format!(
                    "unknown parameter group {s:?} (embed, pos, head, final-norm, attn, ln1, mlp, ln2)"
                ))
            },
            Ok,
        )
    }

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Group::Embed => "embed",
            Group::Pos => "pos",
            Group::Head => "head",
            Group::FinalNorm => "final-norm",
            Group::Attn => "attn",
            Group::Ln1 => "ln1",
            Group::Mlp => "mlp",
            Group::Ln2 => "ln2",
        }
    }
}

/// Which parameter groups inheritance copies (METHOD.md §1.4, §8 item 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InheritMap {
    /// The paper: embeddings, positions, head, the blocks whole, and the final norm (default).
    Paper,
    /// The released OWT code: the blocks and the tied `wte`/`lm_head` (an untied `lm_head` for
    /// LLaMA); positions and final norm stay fresh.
    ReleasedCode,
    /// Exactly these groups (e.g. the sub-module ablation of METHOD.md §1.7(3)).
    Custom(BTreeSet<Group>),
}

impl InheritMap {
    /// The groups copied for a model of this config.
    ///
    /// # Errors
    /// A custom map naming a group the model has no parameter of (e.g. `pos` on LLaMA, which has
    /// no learned position embedding).
    pub fn groups(&self, config: &ModelConfig) -> Result<BTreeSet<Group>> {
        if let InheritMap::Custom(g) = self {
            let present: BTreeSet<Group> = config
                .parameter_shapes()
                .iter()
                .map(|p| role(config, &p.name).map(group_of))
                .collect::<Result<_>>()?;
            let absent: Vec<&str> = g.iter().filter(|g| !present.contains(g)).map(|g| g.name()).collect();
            if !absent.is_empty() {
                return invalid(format!(
                    "--groups {}: a {} model has no such parameters (its groups: {})",
                    absent.join(","),
                    config.model_type(),
                    present.iter().map(|g| g.name()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(match self {
            InheritMap::Paper => Group::ALL.into_iter().collect(),
            InheritMap::ReleasedCode => {
                let tied = match config {
                    ModelConfig::Gpt2(c) => c.tie_word_embeddings,
                    ModelConfig::Llama(c) => c.tie_word_embeddings,
                };
                let head = if tied { Group::Embed } else { Group::Head };
                [head, Group::Attn, Group::Ln1, Group::Mlp, Group::Ln2]
                    .into_iter()
                    .collect()
            }
            InheritMap::Custom(g) => g.clone(),
        })
    }

    /// A name for reports.
    pub fn name(&self) -> String {
        match self {
            InheritMap::Paper => "paper".into(),
            InheritMap::ReleasedCode => "released-code".into(),
            InheritMap::Custom(g) => format!("custom({})", g.iter().map(|g| g.name()).collect::<Vec<_>>().join(",")),
        }
    }
}

/// Which reference blocks become the target's blocks (METHOD.md §1.7(1), (2)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Blocks 0..l−1 (default).
    First,
    /// Blocks L−l..L−1.
    Last,
    /// These block indices, in this order, without repeats.
    Indices(Vec<i64>),
}

/// How growth initialises the deeper model (METHOD.md §1.6): re-inherit l + Δ blocks from the
/// reference (the paper's logs; default), or keep the trained model and append the reference's
/// next Δ blocks. The one definition `surgery grow --mode` and a recipe's `growth` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum GrowMode {
    /// Re-inherit from the reference.
    #[default]
    Restart,
    /// Keep the trained blocks and append.
    WarmAppend,
}

/// Which inheritance map, by name ([`InheritMap`] with its groups): the one definition
/// `--map` and a recipe's `map` share (a recipe takes `paper` or `released-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum MapKind {
    /// Embeddings, positions, head, blocks and final norm (the paper).
    #[default]
    Paper,
    /// Blocks and the tied embedding/head only (the released OWT code).
    ReleasedCode,
    /// The groups named by --groups.
    Custom,
}

/// The role of one of `config`'s parameters (every name of its parameter list has one).
fn role(config: &ModelConfig, name: &str) -> Result<Role> {
    Role::parse(config.family(), name)
        .ok_or_else(|| Error::Invalid(format!("{name} is not a parameter of a {:?} model", config.family())))
}

/// The group of a parameter role.
pub fn group_of(role: Role) -> Group {
    let name = role.group();
    Group::ALL.into_iter().find(|g| g.name() == name).unwrap_or(Group::Attn)
}

fn with_layers(config: &ModelConfig, n: i64) -> ModelConfig {
    match config {
        ModelConfig::Gpt2(c) => ModelConfig::Gpt2(c.with_layers(n)),
        ModelConfig::Llama(c) => ModelConfig::Llama(c.with_layers(n)),
    }
}

fn copy(donor: &str, from: String) -> Source {
    Source::Copy {
        donor: donor.to_string(),
        from,
        slices: Vec::new(),
    }
}

/// A plan that places reference blocks `blocks[j]` at target position j and copies the
/// non-block groups of `groups`; repeats are allowed (stacking baselines).
fn place_blocks(
    operation: &str,
    reference: &ModelConfig,
    blocks: &[i64],
    groups: &BTreeSet<Group>,
    seed: i64,
) -> Result<Plan> {
    let target = reference.with_blocks(blocks);
    let mut plan = Plan::fresh(operation, target, seed);
    let names: Vec<String> = plan.entries.iter().map(|e| e.target.clone()).collect();
    for name in names {
        let r = role(reference, &name)?;
        if !groups.contains(&group_of(r)) {
            continue;
        }
        let from = match r.layer() {
            Some(j) => r.in_layer(blocks[j as usize]).hf_key(reference.family()),
            None => name.clone(),
        };
        plan.set(&name, copy("reference", from));
    }
    Ok(plan)
}

fn check_depth(what: &str, l: i64, max: i64) -> Result<()> {
    if l < 1 || l > max {
        return invalid(format!("{what} must be between 1 and {max}, got {l}"));
    }
    Ok(())
}

/// The reference blocks a selection picks for a target of depth `l`.
///
/// # Errors
/// `l` outside 1..=L, an index outside 0..L, a repeated index, or a list whose length is not `l`.
pub fn select_blocks(selection: &Selection, l: i64, n_layer: i64) -> Result<Vec<i64>> {
    check_depth("the number of layers", l, n_layer)?;
    match selection {
        Selection::First => Ok((0..l).collect()),
        Selection::Last => Ok((n_layer - l..n_layer).collect()),
        Selection::Indices(ix) => {
            if ix.len() as i64 != l {
                return invalid(format!("{} block indices given for {l} layers", ix.len()));
            }
            let mut seen = BTreeSet::new();
            for &i in ix {
                if i < 0 || i >= n_layer {
                    return invalid(format!("block index {i} is outside 0..{n_layer}"));
                }
                if !seen.insert(i) {
                    return invalid(format!("block index {i} is repeated"));
                }
            }
            Ok(ix.clone())
        }
    }
}

/// Inherits `l` blocks of `reference` (METHOD.md §1.2) under `map` and `selection`.
///
/// # Errors
/// An invalid selection (see [`select_blocks`]) or a failure while building the target.
pub fn inherit(
    reference: &CausalLm,
    l: i64,
    map: &InheritMap,
    selection: &Selection,
    seed: i64,
) -> Result<(CausalLm, Plan)> {
    let config = reference.config();
    let blocks = select_blocks(selection, l, config.n_layer())?;
    let mut plan = place_blocks("inherit", config, &blocks, &map.groups(config)?, seed)?;
    plan.setting("map", map.name());
    plan.setting("blocks", &blocks);
    let model = plan.apply(&[("reference", reference)])?;
    Ok((model, plan))
}

/// Keeps the first `l` blocks and every non-block parameter of `model` (the inverse of growth).
///
/// # Errors
/// `l` outside 1..=L.
pub fn truncate(model: &CausalLm, l: i64) -> Result<(CausalLm, Plan)> {
    let (m, mut plan) = inherit(model, l, &InheritMap::Paper, &Selection::First, 0)?;
    plan.operation = "truncate".into();
    Ok((m, plan))
}

fn same_shape_but_depth(a: &ModelConfig, b: &ModelConfig) -> bool {
    // Per-layer settings (`layer_types`) travel with blocks and may differ between depths.
    let strip = |c: &ModelConfig| match with_layers(c, 1) {
        ModelConfig::Llama(mut l) => {
            l.layer_types = None;
            ModelConfig::Llama(l)
        }
        other => other,
    };
    strip(a) == strip(b)
}

/// Grows `trained` (l blocks) by `delta` blocks of `reference` (METHOD.md §1.6).
///
/// `Restart` re-inherits l + Δ blocks from the reference under `map`; `WarmAppend` keeps every
/// parameter of `trained` and appends reference blocks l..l+Δ−1. With `function_preserving`, the
/// appended blocks' output projections (and their biases) are zero, so the logits do not change.
///
/// # Errors
/// Models of different families or widths, Δ < 1, or l + Δ beyond the reference's depth.
pub fn grow(
    trained: &CausalLm,
    reference: &CausalLm,
    delta: i64,
    mode: GrowMode,
    map: &InheritMap,
    function_preserving: bool,
    seed: i64,
) -> Result<(CausalLm, Plan)> {
    let (tc, rc) = (trained.config(), reference.config());
    if !same_shape_but_depth(tc, rc) {
        return invalid(format!(
            "cannot grow a {} model of width {} from a {} reference of width {}: families and shapes must match",
            tc.model_type(),
            tc.n_embd(),
            rc.model_type(),
            rc.n_embd()
        ));
    }
    let l = tc.n_layer();
    if delta < 1 {
        return invalid(format!("growth must add at least one layer, got {delta}"));
    }
    if l + delta > rc.n_layer() {
        return invalid(format!(
            "cannot grow a {l}-layer model by {delta} to {} layers: the reference has only {}",
            l + delta,
            rc.n_layer()
        ));
    }
    check_depth("the grown depth", l + delta, rc.n_layer())?;
    if function_preserving && mode == GrowMode::Restart {
        return invalid("function-preserving growth needs --mode warm-append");
    }
    let mut plan = match mode {
        GrowMode::Restart => {
            let blocks: Vec<i64> = (0..l + delta).collect();
            place_blocks("grow", rc, &blocks, &map.groups(rc)?, seed)?
        }
        GrowMode::WarmAppend => {
            let mut plan = Plan::fresh("grow", with_layers(rc, l + delta), seed);
            let names: Vec<String> = plan.entries.iter().map(|e| e.target.clone()).collect();
            for name in names {
                let r = role(rc, &name)?;
                let source = match r.layer() {
                    Some(j) if j >= l => {
                        if function_preserving && r.is_output_projection() {
                            Source::Zero
                        } else {
                            copy("reference", r.hf_key(rc.family()))
                        }
                    }
                    _ => copy("trained", name.clone()),
                };
                plan.set(&name, source);
            }
            plan
        }
    };
    plan.setting("mode", mode);
    plan.setting("delta", delta);
    plan.setting("from_layers", l);
    plan.setting("function_preserving", function_preserving);
    if mode == GrowMode::Restart {
        plan.setting("map", map.name());
    }
    let model = plan.apply(&[("trained", trained), ("reference", reference)])?;
    Ok((model, plan))
}

/// Stacking (METHOD.md §5.4): a 2n-layer model whose blocks n..2n−1 repeat blocks 0..n−1 of `small`;
/// every non-block parameter is copied from `small`.
///
/// # Errors
/// A failure while building the target.
pub fn stack(small: &CausalLm, seed: i64) -> Result<(CausalLm, Plan)> {
    let n = small.config().n_layer();
    let blocks: Vec<i64> = (0..n).chain(0..n).collect();
    let mut plan = place_blocks(
        "stack",
        small.config(),
        &blocks,
        &Group::ALL.into_iter().collect(),
        seed,
    )?;
    plan.setting("blocks", &blocks);
    let model = plan.apply(&[("reference", small)])?;
    Ok((model, plan))
}

/// Hybrid stacking (METHOD.md §5.5): an l-layer model with reference blocks 0..l/2−1 at positions
/// 0..l/2−1 and again at l/2..l−1; non-block groups follow `map`.
///
/// # Errors
/// `l` odd, below 2, or above the reference's depth.
pub fn hybrid_stack(reference: &CausalLm, l: i64, map: &InheritMap, seed: i64) -> Result<(CausalLm, Plan)> {
    let config = reference.config();
    check_depth("the number of layers", l, config.n_layer())?;
    if l < 2 || l % 2 != 0 {
        return invalid(format!("hybrid stacking needs an even number of layers, got {l}"));
    }
    let blocks: Vec<i64> = (0..l / 2).chain(0..l / 2).collect();
    let mut plan = place_blocks("hybrid-stack", config, &blocks, &map.groups(config)?, seed)?;
    plan.setting("map", map.name());
    plan.setting("blocks", &blocks);
    let model = plan.apply(&[("reference", reference)])?;
    Ok((model, plan))
}

/// The DistilBERT-style student initialisation (METHOD.md §4.3): the first min(l, L/2) student blocks
/// come from reference blocks 0, 2, 4, …; the rest from 3L/4, 3L/4 + 1, … (for 16 of 24:
/// 0, 2, …, 22, then 18, 19, 20, 21). `indices` overrides the list. Non-block groups follow `map`.
///
/// # Errors
/// An index outside the reference, a list whose length is not `l`, or `l` outside 1..=L.
pub fn distill_init(
    reference: &CausalLm,
    l: i64,
    indices: Option<Vec<i64>>,
    map: &InheritMap,
    seed: i64,
) -> Result<(CausalLm, Plan)> {
    let big = reference.config().n_layer();
    check_depth("the number of layers", l, big)?;
    let blocks = match indices {
        Some(ix) => ix,
        None => {
            let alternate = l.min(big / 2);
            let start = 3 * big / 4;
            (0..alternate)
                .map(|i| 2 * i)
                .chain((0..l - alternate).map(|i| start + i))
                .collect()
        }
    };
    if blocks.len() as i64 != l {
        return invalid(format!("{} block indices given for {l} layers", blocks.len()));
    }
    if let Some(&bad) = blocks.iter().find(|&&i| i < 0 || i >= big) {
        return invalid(format!("block index {bad} is outside 0..{big}"));
    }
    let mut plan = place_blocks(
        "distill-init",
        reference.config(),
        &blocks,
        &map.groups(reference.config())?,
        seed,
    )?;
    plan.setting("map", map.name());
    plan.setting("blocks", &blocks);
    let model = plan.apply(&[("reference", reference)])?;
    Ok((model, plan))
}

/// The half-width model's configuration (METHOD.md §5.6): ⌊H/2⌋ heads of the same size, width
/// ⌊H/2⌋·d_head, MLP halved (4·d' by default).
///
/// # Errors
/// A LLaMA model, or a model with a single head.
pub fn half_width_config(config: &ModelConfig) -> Result<Gpt2Config> {
    let ModelConfig::Gpt2(c) = config else {
        return invalid("half-width is defined for GPT-2 models only");
    };
    if c.n_head < 2 {
        return invalid(format!("half-width needs at least 2 heads, got {}", c.n_head));
    }
    let hd = c.head_dim();
    let heads = c.n_head / 2;
    let dh = heads * hd;
    let inner = c.inner();
    let inner_h = match c.n_inner {
        Some(n) => n / 2,
        None => 4 * dh,
    };
    if inner_h > inner || inner_h < 1 {
        return invalid(format!(
            "half-width MLP of {inner_h} units does not fit the reference's {inner}"
        ));
    }
    Ok(Gpt2Config {
        n_embd: dh,
        n_head: heads,
        n_inner: c.n_inner.map(|_| inner_h),
        ..c.clone()
    })
}

/// Half-width (METHOD.md §5.6): all L layers, H' = ⌊H/2⌋ heads of the same size (XL: 12 of 25), width
/// d' = H'·d_head, MLP width halved (4·d' by default), initialised from the reference's first
/// heads, hidden units and coordinates. GPT-2 only.
///
/// # Errors
/// A LLaMA model, or a model with a single head.
pub fn half_width(reference: &CausalLm, seed: i64) -> Result<(CausalLm, Plan)> {
    let target = half_width_config(reference.config())?;
    let (d, dh, heads) = (reference.config().n_embd(), target.n_embd, target.n_head);
    let inner_h = target.inner();
    let mut plan = Plan::fresh("half-width", ModelConfig::Gpt2(target), seed);
    let cols = |n: i64| DimSlice {
        dim: 1,
        ranges: vec![(0, n)],
    };
    let rows = |n: i64| DimSlice {
        dim: 0,
        ranges: vec![(0, n)],
    };
    let qkv = |dim: i64| DimSlice {
        dim,
        ranges: vec![(0, dh), (d, d + dh), (2 * d, 2 * d + dh)],
    };
    let names: Vec<String> = plan.entries.iter().map(|e| e.target.clone()).collect();
    for name in names {
        let block = |slot, part| Role::Block { layer: 0, slot, part };
        let slices = match role(reference.config(), &name)?.in_layer(0) {
            r if r == block(Slot::Qkv, Part::Weight) => vec![qkv(0), cols(dh)],
            r if r == block(Slot::Qkv, Part::Bias) => vec![qkv(0)],
            r if r == block(Slot::AttnOut, Part::Weight) => vec![rows(dh), cols(dh)],
            r if r == block(Slot::MlpIn, Part::Weight) => vec![rows(inner_h), cols(dh)],
            r if r == block(Slot::MlpIn, Part::Bias) => vec![rows(inner_h)],
            r if r == block(Slot::MlpOut, Part::Weight) => vec![rows(dh), cols(inner_h)],
            Role::Embedding | Role::Positions | Role::Head => vec![cols(dh)],
            // The norms' weights and biases, and the remaining (d)-sized biases.
            Role::FinalNorm(_)
            | Role::Block {
                slot: Slot::AttnNorm | Slot::MlpNorm,
                ..
            }
            | Role::Block { part: Part::Bias, .. } => vec![rows(dh)],
            _ => return invalid(format!("half-width does not know how to slice {name}")),
        };
        plan.set(
            &name,
            Source::Copy {
                donor: "reference".into(),
                from: name.clone(),
                slices,
            },
        );
    }
    plan.setting("heads", heads);
    plan.setting("n_embd", dh);
    plan.setting("n_inner", inner_h);
    let model = plan.apply(&[("reference", reference)])?;
    Ok((model, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_models_groups() {
        let names: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(names, Role::GROUPS);
        for g in Group::ALL {
            assert_eq!(Group::parse(g.name()).unwrap(), g);
        }
    }
}
