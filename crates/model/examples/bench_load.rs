//! Writes a random checkpoint of a real model's shape for `cargo xtask bench load`, streaming
//! one tensor at a time so that writing it needs little memory.
//!
//! `cargo run --release -p inheritune-model --example bench_load -- make DIR [llama-3.2-3b|llama-3.2-1b|tiny|gpt2-xl]`
//! writes `DIR/config.json`, `DIR/model.safetensors` (bf16, N(0, 0.02) weights, unit norms,
//! zero biases) and GPT-2's `DIR/tokenizer.json`.

use std::io::Write;
use std::path::PathBuf;

use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{hf, DType, DecoderFamily, Gpt2Config, LlamaConfig, ModelConfig};

/// Llama-3.2-3B's shape (config.json of meta-llama/Llama-3.2-3B), smaller siblings, or the
/// paper's GPT-2 XL (48 layers × 25 heads × 1600).
fn config(name: &str) -> anyhow::Result<ModelConfig> {
    let base = LlamaConfig {
        family: DecoderFamily::Llama,
        vocab_size: 128256,
        hidden_size: 3072,
        intermediate_size: 8192,
        num_hidden_layers: 28,
        num_attention_heads: 24,
        num_key_value_heads: Some(8),
        head_dim: Some(128),
        max_position_embeddings: 131072,
        rms_norm_eps: 1e-5,
        rope_theta_field: Some(500000.0),
        rope_scaling: Some(serde_json::json!({
            "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192
        })),
        tie_word_embeddings: true,
        ..LlamaConfig::open_llama_3b()
    };
    Ok(ModelConfig::Llama(match name {
        "gpt2-xl" => return Ok(ModelConfig::Gpt2(Gpt2Config::xl())),
        "llama-3.2-3b" => base,
        "llama-3.2-1b" => LlamaConfig {
            hidden_size: 2048,
            num_hidden_layers: 16,
            num_attention_heads: 32,
            head_dim: Some(64),
            ..base
        },
        "tiny" => LlamaConfig {
            vocab_size: 128256,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: Some(16),
            ..base
        },
        other => anyhow::bail!("unknown shape {other:?} (llama-3.2-3b, llama-3.2-1b, tiny, gpt2-xl)"),
    }))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some("make"), Some(dir)) = (args.first().map(String::as_str), args.get(1)) else {
        anyhow::bail!("usage: bench_load make DIR [llama-3.2-3b|llama-3.2-1b|tiny|gpt2-xl]");
    };
    let model_config = config(args.get(2).map_or("llama-3.2-3b", String::as_str))?;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    model_config.validate()?;
    // GPT-2's projections are `Conv1D`s, stored (in, out) in Hugging Face checkpoints.
    let conv1d = [
        "attn.c_attn.weight",
        "attn.c_proj.weight",
        "mlp.c_fc.weight",
        "mlp.c_proj.weight",
    ];
    let mut shapes = model_config.parameter_shapes();
    if matches!(model_config, ModelConfig::Gpt2(_)) {
        for p in shapes.iter_mut().filter(|p| conv1d.iter().any(|c| p.name.ends_with(c))) {
            p.shape.reverse();
        }
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for p in &shapes {
        let bytes = p.numel() as u64 * 2;
        header.insert(
            p.name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": p.shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut text = serde_json::to_string(&header)?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let tmp = dir.join("model.safetensors.tmp");
    let mut out = std::io::BufWriter::with_capacity(1 << 24, std::fs::File::create(&tmp)?);
    out.write_all(&(text.len() as u64).to_le_bytes())?;
    out.write_all(text.as_bytes())?;
    tch::manual_seed(0);
    for p in &shapes {
        let norm = ["norm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight"];
        let t = if norm.iter().any(|n| p.name.ends_with(n)) {
            Tensor::ones(p.shape.as_slice(), (Kind::BFloat16, Device::Cpu))
        } else if p.name.ends_with(".bias") {
            Tensor::zeros(p.shape.as_slice(), (Kind::BFloat16, Device::Cpu))
        } else {
            (Tensor::randn(p.shape.as_slice(), (Kind::Float, Device::Cpu)) * 0.02).to_kind(Kind::BFloat16)
        };
        let n = p.numel() as usize;
        let mut buf = vec![0u8; n * 2];
        t.f_copy_data_u8(&mut buf, n)?;
        out.write_all(&buf)?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, dir.join("model.safetensors"))?;
    hf::write_config(&model_config, DType::Bf16, &dir)?;
    // GPT-2's tokenizer (ids below 50257 fit every shape's vocabulary), so text-taking verbs run.
    inheritune_data::Tokenizer::gpt2()?.save(&dir.join("tokenizer.json"))?;
    println!(
        "{}: {} parameters, {:.2} GB of bf16 weights",
        dir.display(),
        model_config.num_parameters(),
        offset as f64 / 1e9
    );
    Ok(())
}
