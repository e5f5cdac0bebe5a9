//! Trains a tiny GPT-2 for 20 steps on CPU: a few generated documents prepared with GPT-2's
//! tokenizer, a run config in TOML, checkpoints and `metrics.jsonl` in a temporary run folder.
//! `cargo run -p inheritune-train --example train_tiny`

use std::ops::ControlFlow;

use inheritune_data::prepare::SplitRule;
use inheritune_data::{prepare, source, PrepareConfig, Tokenizer};
use inheritune_model::tch::Device;
use inheritune_train::{train, Options, RunConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("inheritune-train-example-{}", std::process::id()));
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs)?;
    for i in 0..40 {
        let text = format!("Document {i}. The quick brown fox jumps over the lazy dog {i} times. ").repeat(20);
        std::fs::write(docs.join(format!("{i:03}.txt")), text)?;
    }
    let config = PrepareConfig {
        split: SplitRule::FirstTokens { tokens: 4000 },
        ..PrepareConfig::generic()
    };
    let data = dir.join("data");
    prepare(
        &source::discover(&[docs])?,
        &Tokenizer::gpt2()?,
        &config,
        &data,
        &mut |_| ControlFlow::Continue(()),
    )?;
    let run_config = format!(
        "[model]\npreset = \"gpt2-tiny\"\n[model.overrides]\nvocab_size = 50304\n[data]\ndir = {data:?}\n[train]\nmicro_batch = 4\nseq_len = 64\nmax_steps = 20\nlr = 3e-3\nwarmup_steps = 2\neval_interval = 10\neval_iters = 2\n"
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, run_config)?;
    let summary = train(
        &RunConfig::from_file(&path)?,
        &dir.join("run"),
        &Options::new(Device::Cpu),
        &mut |m| {
            if let Some(loss) = m.loss {
                println!("{:?} step {}: loss {loss:.4}", m.kind, m.step);
            }
            ControlFlow::Continue(())
        },
    )?;
    println!(
        "{} steps, final full-pass val loss {:.4}",
        summary.steps, summary.final_val_loss
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
