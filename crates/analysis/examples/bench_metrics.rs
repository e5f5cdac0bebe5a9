//! Times the metrics of this crate on stored attention tensors, for `cargo xtask bench analyze`.
//!
//! `bench_metrics make FILE LAYERS HEADS WINDOWS SEQ SEED` writes random causal softmax attention
//! (`attn.{l}`: (N, H, T, T) f32) to FILE; `bench_metrics time FILE` computes k*, m* and dom for
//! every layer as `inheritune analyze` does and prints one JSON line with the seconds and a checksum
//! (the sum of all k* and m*), which `bench/numpy_metrics.py` prints too for the same file.

use std::time::Instant;

use inheritune_analysis::{analyze_layer, Settings};
use inheritune_model::tch::{self, Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("usage: bench_metrics make FILE L H N T SEED | time FILE"))
    };
    match arg(0)?.as_str() {
        "make" => {
            let file = arg(1)?;
            let [l, h, n, t, seed]: [i64; 5] = [
                arg(2)?.parse()?,
                arg(3)?.parse()?,
                arg(4)?.parse()?,
                arg(5)?.parse()?,
                arg(6)?.parse()?,
            ];
            tch::manual_seed(seed);
            let mask = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).triu(1);
            let layers: Vec<(String, Tensor)> = (0..l)
                .map(|i| {
                    // Sharper logits in deeper layers, so ranks range from near 1 to tens.
                    let logits = Tensor::randn([n, h, t, t], (Kind::Float, Device::Cpu)) * (0.5 + 2.0 * i as f64);
                    (
                        format!("attn.{i}"),
                        logits.masked_fill(&mask, f64::NEG_INFINITY).softmax(-1, Kind::Float),
                    )
                })
                .collect();
            let refs: Vec<(&str, &Tensor)> = layers.iter().map(|(k, v)| (k.as_str(), v)).collect();
            Tensor::write_safetensors(&refs, &file)?;
        }
        "time" => {
            let file = arg(1)?;
            let mut layers = Tensor::read_safetensors(&file)?;
            layers.sort_by_key(|(k, _)| k.trim_start_matches("attn.").parse::<usize>().unwrap_or(0));
            let settings = Settings {
                tau_sweep: Vec::new(),
                ..Settings::default()
            };
            let start = Instant::now();
            let mut checksum = 0i64;
            for (i, (_, a)) in layers.iter().enumerate() {
                let r = analyze_layer(i, a, &settings)?;
                for h in &r.heads {
                    checksum += h.rank_per_window.iter().sum::<i64>() + h.mass_per_window.iter().sum::<i64>();
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            println!("{{\"impl\": \"inheritune-analysis (libtorch f64)\", \"threads\": {}, \"seconds\": {seconds:.4}, \"checksum\": {checksum}}}", tch::get_num_threads());
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
    Ok(())
}
