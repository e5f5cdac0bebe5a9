//! Runs the full analysis on a randomly initialised preset model, to measure time and peak memory
//! at the paper's scale without a checkpoint on disk:
//! `/usr/bin/time -f %M cargo run --release -p inheritune-analysis --example analyze_preset -- gpt2-xl 100 100`.

use inheritune_analysis::{analyze, Settings};
use inheritune_model::tch::{self, Device, Kind, Tensor};
use inheritune_model::{CausalLm, DType, Preset};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| "gpt2-tiny".into());
    let n: i64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let t: i64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let preset = Preset::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| anyhow::anyhow!("unknown preset {name}"))?;
    tch::manual_seed(0);
    let config = preset.config();
    let start = std::time::Instant::now();
    let model = tch::no_grad(|| CausalLm::new(&config, Device::Cpu, DType::F32))?;
    let built = start.elapsed().as_secs_f64();
    let ids = Tensor::randint(config.vocab_size().min(50257), [n, t], (Kind::Int64, Device::Cpu));
    let a = analyze(&model, &name, &ids, "random ids", &Settings::default(), &mut |_, _| {})?;
    println!(
        "{{\"preset\": \"{name}\", \"layers\": {}, \"heads\": {}, \"windows\": {n}, \"tokens\": {t}, \"build_s\": {built:.1}, \"analyze_s\": {:.1}}}",
        a.n_layer,
        a.n_head,
        start.elapsed().as_secs_f64() - built
    );
    Ok(())
}
