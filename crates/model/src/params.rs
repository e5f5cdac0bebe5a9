//! The Hugging Face key vocabulary of both families in one place: a parameter's [`Role`]
//! (embedding, positions, block i and slot, final norm, head) with [`Role::hf_key`] and
//! [`Role::parse`]; the loader, the surgery and half-width ask a role what it is instead of
//! matching name suffixes.

use serde::{Deserialize, Serialize};

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// GPT-2 (`transformer.*`).
    Gpt2,
    /// The LLaMA family of decoders (`model.*`): LLaMA, Mistral, Qwen2/3, Gemma 2/3, Phi-3.
    Llama,
}

/// Weight or bias of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// `.weight`.
    Weight,
    /// `.bias`.
    Bias,
}

impl Part {
    fn suffix(self) -> &'static str {
        match self {
            Part::Weight => "weight",
            Part::Bias => "bias",
        }
    }
}

/// A module of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The norm before attention (GPT-2 `ln_1`, LLaMA `input_layernorm`).
    AttnNorm,
    /// GPT-2's fused query, key and value projection (`attn.c_attn`).
    Qkv,
    /// LLaMA's query projection.
    Q,
    /// LLaMA's key projection.
    K,
    /// LLaMA's value projection.
    V,
    /// The attention output projection (GPT-2 `attn.c_proj`, LLaMA `self_attn.o_proj`).
    AttnOut,
    /// The norm before the MLP (GPT-2 `ln_2`, LLaMA `post_attention_layernorm`).
    MlpNorm,
    /// GPT-2's MLP input projection (`mlp.c_fc`).
    MlpIn,
    /// LLaMA's gate projection.
    Gate,
    /// LLaMA's up projection.
    Up,
    /// The MLP output projection (GPT-2 `mlp.c_proj`, LLaMA `mlp.down_proj`).
    MlpOut,
    /// The per-head query norm before RoPE (Qwen3, Gemma 3 `self_attn.q_norm`).
    QNorm,
    /// The per-head key norm before RoPE (Qwen3, Gemma 3 `self_attn.k_norm`).
    KNorm,
    /// Gemma's norm before the MLP (`pre_feedforward_layernorm`).
    PreFfnNorm,
    /// Gemma's norm after the MLP (`post_feedforward_layernorm`).
    PostFfnNorm,
    /// Phi-3's fused gate and up projection (`mlp.gate_up_proj`).
    GateUp,
}

const GPT2_SLOTS: &[(Slot, &str)] = &[
    (Slot::AttnNorm, "ln_1"),
    (Slot::Qkv, "attn.c_attn"),
    (Slot::AttnOut, "attn.c_proj"),
    (Slot::MlpNorm, "ln_2"),
    (Slot::MlpIn, "mlp.c_fc"),
    (Slot::MlpOut, "mlp.c_proj"),
];

const LLAMA_SLOTS: &[(Slot, &str)] = &[
    (Slot::AttnNorm, "input_layernorm"),
    (Slot::Q, "self_attn.q_proj"),
    (Slot::K, "self_attn.k_proj"),
    (Slot::V, "self_attn.v_proj"),
    (Slot::AttnOut, "self_attn.o_proj"),
    (Slot::MlpNorm, "post_attention_layernorm"),
    (Slot::Gate, "mlp.gate_proj"),
    (Slot::Up, "mlp.up_proj"),
    (Slot::MlpOut, "mlp.down_proj"),
    (Slot::Qkv, "self_attn.qkv_proj"),
    (Slot::QNorm, "self_attn.q_norm"),
    (Slot::KNorm, "self_attn.k_norm"),
    (Slot::PreFfnNorm, "pre_feedforward_layernorm"),
    (Slot::PostFfnNorm, "post_feedforward_layernorm"),
    (Slot::GateUp, "mlp.gate_up_proj"),
];

impl Family {
    fn slots(self) -> &'static [(Slot, &'static str)] {
        match self {
            Family::Gpt2 => GPT2_SLOTS,
            Family::Llama => LLAMA_SLOTS,
        }
    }

    fn blocks(self) -> &'static str {
        match self {
            Family::Gpt2 => "transformer.h",
            Family::Llama => "model.layers",
        }
    }

    fn embedding(self) -> &'static str {
        match self {
            Family::Gpt2 => "transformer.wte.weight",
            Family::Llama => "model.embed_tokens.weight",
        }
    }

    fn final_norm(self) -> &'static str {
        match self {
            Family::Gpt2 => "transformer.ln_f",
            Family::Llama => "model.norm",
        }
    }
}

/// What a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The token embedding (tied with the head when the model ties them).
    Embedding,
    /// GPT-2's learned position embedding.
    Positions,
    /// A module of block `layer` (0-based).
    Block {
        /// 0-based block index.
        layer: i64,
        /// The module.
        slot: Slot,
        /// Weight or bias.
        part: Part,
    },
    /// The final norm.
    FinalNorm(Part),
    /// An untied output head (`lm_head`).
    Head,
}

impl Role {
    /// The parameter groups, by their names: what surgery's maps copy and `[train] trainable`
    /// names.
    pub const GROUPS: [&'static str; 8] = ["embed", "pos", "head", "final-norm", "attn", "ln1", "mlp", "ln2"];

    /// The group of this role: `embed`, `pos`, `head`, `final-norm`, `attn` (projections and q/k
    /// norms), `ln1` (the norm before attention), `mlp`, `ln2` (the norms around the MLP).
    pub fn group(&self) -> &'static str {
        match self {
            Role::Embedding => "embed",
            Role::Positions => "pos",
            Role::Head => "head",
            Role::FinalNorm(_) => "final-norm",
            Role::Block { slot, .. } => match slot {
                Slot::AttnNorm => "ln1",
                Slot::MlpNorm | Slot::PreFfnNorm | Slot::PostFfnNorm => "ln2",
                Slot::Qkv | Slot::Q | Slot::K | Slot::V | Slot::AttnOut | Slot::QNorm | Slot::KNorm => "attn",
                Slot::MlpIn | Slot::Gate | Slot::Up | Slot::GateUp | Slot::MlpOut => "mlp",
            },
        }
    }

    /// The Hugging Face key of this role in `family`.
    pub fn hf_key(&self, family: Family) -> String {
        match *self {
            Role::Embedding => family.embedding().to_string(),
            Role::Positions => "transformer.wpe.weight".to_string(),
            Role::Head => "lm_head.weight".to_string(),
            Role::FinalNorm(part) => format!("{}.{}", family.final_norm(), part.suffix()),
            Role::Block { layer, slot, part } => {
                let module = family.slots().iter().find(|(s, _)| *s == slot).map_or("?", |(_, m)| *m);
                format!("{}.{layer}.{module}.{}", family.blocks(), part.suffix())
            }
        }
    }

    /// The role of a Hugging Face key in `family`; None for keys that are not parameters
    /// (GPT-2's attention-mask buffers) or not of this family.
    pub fn parse(family: Family, key: &str) -> Option<Role> {
        if key == family.embedding() {
            return Some(Role::Embedding);
        }
        if key == "lm_head.weight" {
            return Some(Role::Head);
        }
        if family == Family::Gpt2 && key == "transformer.wpe.weight" {
            return Some(Role::Positions);
        }
        let (module, part) = key.rsplit_once('.')?;
        let part = match part {
            "weight" => Part::Weight,
            "bias" => Part::Bias,
            _ => return None,
        };
        if module == family.final_norm() {
            return Some(Role::FinalNorm(part));
        }
        let rest = module.strip_prefix(family.blocks())?.strip_prefix('.')?;
        let (layer, module) = rest.split_once('.')?;
        let layer: i64 = layer.parse().ok().filter(|&l| l >= 0)?;
        let slot = family.slots().iter().find(|(_, m)| *m == module)?.0;
        Some(Role::Block { layer, slot, part })
    }

    /// The same role in block `layer` (other roles are unchanged).
    pub fn in_layer(self, layer: i64) -> Role {
        match self {
            Role::Block { slot, part, .. } => Role::Block { layer, slot, part },
            other => other,
        }
    }

    /// The block index of a block role.
    pub fn layer(self) -> Option<i64> {
        match self {
            Role::Block { layer, .. } => Some(layer),
            _ => None,
        }
    }

    /// Embeddings and the head (what "non-embedding parameters" leave out).
    pub fn is_embedding(self) -> bool {
        matches!(self, Role::Embedding | Role::Positions | Role::Head)
    }

    /// A GPT-2 weight that Hugging Face stores transposed (`Conv1D`).
    pub fn is_conv1d(self, family: Family) -> bool {
        family == Family::Gpt2
            && matches!(
                self,
                Role::Block {
                    slot: Slot::Qkv | Slot::AttnOut | Slot::MlpIn | Slot::MlpOut,
                    part: Part::Weight,
                    ..
                }
            )
    }

    /// A projection that writes into the residual stream (attention and MLP outputs, weight or
    /// bias): zero in function-preserving growth.
    pub fn is_output_projection(self) -> bool {
        matches!(
            self,
            Role::Block {
                slot: Slot::AttnOut | Slot::MlpOut,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelConfig, Preset};

    /// Every parameter of both families' configs parses to a role whose key is the name again.
    #[test]
    fn every_key_round_trips() {
        let mut llama = Preset::LlamaTiny.config().to_value();
        llama["attention_bias"] = serde_json::json!(true);
        llama["mlp_bias"] = serde_json::json!(true);
        llama["tie_word_embeddings"] = serde_json::json!(false);
        let mut gpt2 = Preset::Gpt2Tiny.config().to_value();
        gpt2["bias"] = serde_json::json!(true);
        for (family, value) in [(Family::Gpt2, gpt2), (Family::Llama, llama)] {
            let config = ModelConfig::from_value(value, std::path::Path::new("config.json")).unwrap();
            let shapes = config.parameter_shapes();
            assert!(shapes.len() > 10);
            for p in shapes {
                let role = Role::parse(family, &p.name).unwrap_or_else(|| panic!("{}", p.name));
                assert_eq!(role.hf_key(family), p.name);
                if let Some(l) = role.layer() {
                    let moved = role.in_layer(l + 7).hf_key(family);
                    assert_eq!(Role::parse(family, &moved), Some(role.in_layer(l + 7)));
                }
            }
        }
    }

    #[test]
    fn what_the_roles_say() {
        let g = |k: &str| Role::parse(Family::Gpt2, k).unwrap();
        assert!(g("transformer.h.3.attn.c_attn.weight").is_conv1d(Family::Gpt2));
        assert!(!g("transformer.h.3.attn.c_attn.bias").is_conv1d(Family::Gpt2));
        assert!(!g("transformer.h.3.ln_1.weight").is_conv1d(Family::Gpt2));
        assert!(g("transformer.h.0.mlp.c_proj.bias").is_output_projection());
        assert!(g("transformer.wpe.weight").is_embedding());
        assert_eq!(g("transformer.ln_f.bias"), Role::FinalNorm(Part::Bias));
        let l = |k: &str| Role::parse(Family::Llama, k).unwrap();
        assert!(l("model.layers.1.mlp.down_proj.weight").is_output_projection());
        assert!(!l("model.layers.1.self_attn.q_proj.weight").is_conv1d(Family::Llama));
        for not_a_parameter in [
            "transformer.h.0.attn.bias",
            "transformer.h.0.attn.masked_bias",
            "transformer.h.x.ln_1.weight",
            "model.layers.0.self_attn.rotary_emb.inv_freq",
            "transformer.wte.weight.extra",
        ] {
            assert_eq!(Role::parse(Family::Gpt2, not_a_parameter), None, "{not_a_parameter}");
            assert_eq!(Role::parse(Family::Llama, not_a_parameter), None, "{not_a_parameter}");
        }
        assert_eq!(Role::parse(Family::Llama, "transformer.wpe.weight"), None);
    }
}
