//! Perplexity of a text under a tiny random GPT-2, windowed as `inheritune perplexity` does (the
//! first token of each window unscored). A random model is near ln V nats per token. CPU.
//! `cargo run -p inheritune-eval --example perplexity`

use inheritune_data::Tokenizer;
use inheritune_model::tch::Device;
use inheritune_model::{CausalLm, DType, Gpt2Config, ModelConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // GPT-2's vocabulary (padded to 50304), two tiny blocks.
    let config = ModelConfig::Gpt2(Gpt2Config {
        vocab_size: 50304,
        ..Gpt2Config::tiny()
    });
    let model = CausalLm::new(&config, Device::Cpu, DType::F32)?;
    let text = "Inheritune builds a smaller model from the first layers of a larger one. ".repeat(8);
    let tokens = Tokenizer::gpt2()?.encode_ordinary(&text)?;
    let p = inheritune_eval::perplexity::score_windows(&model, &tokens, 64, 4, &mut |_, _| {})?;
    println!(
        "{} tokens in {} windows: mean NLL {:.3} nats (ln V = {:.3}), perplexity {:.1}",
        p.tokens,
        p.windows,
        p.mean_nll,
        (config.vocab_size() as f64).ln(),
        p.perplexity
    );
    Ok(())
}
