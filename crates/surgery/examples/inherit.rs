//! Inheritune's step 1 on a random 4-layer GPT-2: a 2-layer model from its first two blocks,
//! embeddings, head and final norm (the paper's map), with the serialisable plan of every
//! tensor. CPU. `cargo run -p inheritune-surgery --example inherit`

use inheritune_model::tch::Device;
use inheritune_model::{CausalLm, DType, Gpt2Config, ModelConfig};
use inheritune_surgery::{inherit, InheritMap, Selection};

fn main() -> inheritune_surgery::Result<()> {
    let reference = CausalLm::new(
        &ModelConfig::Gpt2(Gpt2Config::tiny().with_layers(4)),
        Device::Cpu,
        DType::F32,
    )?;
    let (target, plan) = inherit(&reference, 2, &InheritMap::Paper, &Selection::First, 1337)?;
    print!("{}", plan.table());
    let same = target.named_parameters()["transformer.h.1.attn.c_attn.weight"]
        .equal(&reference.named_parameters()["transformer.h.1.attn.c_attn.weight"]);
    println!("block 1 copied exactly: {same}");
    Ok(())
}
