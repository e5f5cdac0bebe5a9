//! Writes random checkpoints of both families, with our logits, for `transformers` to check.
//!
//! `cargo run -p inheritune-model --example export_random -- OUT_DIR`, then
//! `python crates/model/tests/fixtures/check_transformers_loads.py OUT_DIR`: every folder must load
//! in `transformers` with no missing or unexpected keys and give our logits within 1e-4.

use std::path::PathBuf;

use inheritune_model::hf;
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{CausalLm, DType, Gpt2Config, LlamaConfig, ModelConfig};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: export_random OUT_DIR"))?,
    );
    tch::manual_seed(3);
    let models = [
        (
            "gpt2_paper",
            ModelConfig::Gpt2(Gpt2Config {
                vocab_size: 320,
                n_positions: 40,
                ..Gpt2Config::paper(3, 4, 48)
            }),
        ),
        (
            "gpt2_bias_untied",
            ModelConfig::Gpt2(Gpt2Config {
                bias: true,
                tie_word_embeddings: false,
                n_inner: Some(40),
                ..Gpt2Config::tiny()
            }),
        ),
        (
            "llama_gqa",
            ModelConfig::Llama(LlamaConfig {
                rope_theta_field: Some(50000.0),
                ..LlamaConfig::tiny()
            }),
        ),
        (
            "llama_untied_bias",
            ModelConfig::Llama(LlamaConfig {
                tie_word_embeddings: false,
                attention_bias: true,
                num_key_value_heads: Some(1),
                ..LlamaConfig::tiny()
            }),
        ),
    ];
    for (name, config) in models {
        let model = CausalLm::new(&config, Device::Cpu, DType::F32)?;
        // Spread the weights so that attention and logits are far from uniform.
        tch::no_grad(|| {
            for (_, mut t) in model.named_parameters() {
                let noise = Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.1;
                let _ = t.f_add_(&noise);
            }
        });
        let dir = out.join(name);
        hf::save(&model, &dir)?;
        let ids = Tensor::randint(config.vocab_size(), [2, 20], (Kind::Int64, Device::Cpu));
        let logits = model.forward(&ids)?;
        Tensor::write_safetensors(
            &[("input_ids", &ids), ("logits", &logits)],
            dir.join("ours.safetensors"),
        )?;
        println!("{}", dir.display());
    }
    Ok(())
}
