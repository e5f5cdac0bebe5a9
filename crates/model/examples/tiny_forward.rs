//! A tiny random GPT-2: logits and the next-token loss of random tokens, saved as a Hugging Face
//! folder and loaded back with a clean load report. CPU.
//! `cargo run -p inheritune-model --example tiny_forward`

use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::{Device, Kind, Tensor};
use inheritune_model::{CausalLm, DType, Preset};

fn main() -> inheritune_model::Result<()> {
    let config = Preset::Gpt2Tiny.config();
    let model = CausalLm::new(&config, Device::Cpu, DType::F32)?;
    let x = Tensor::randint(config.vocab_size(), [2, 16], (Kind::Int64, Device::Cpu));
    let y = Tensor::randint(config.vocab_size(), [2, 16], (Kind::Int64, Device::Cpu));
    let logits = model.forward(&x)?;
    let loss = model.loss(&x, &y)?.double_value(&[]);
    println!(
        "{} layers, {} parameters: logits {:?}, loss {loss:.3} (ln V = {:.3})",
        config.n_layer(),
        config.num_parameters(),
        logits.size(),
        (config.vocab_size() as f64).ln()
    );
    let dir = std::env::temp_dir().join(format!("inheritune-model-example-{}", std::process::id()));
    hf::save(&model, &dir)?;
    let (_, report) = hf::load(&dir, &LoadOptions::default())?;
    println!("reloaded from {}: {report}", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
