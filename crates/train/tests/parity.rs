//! Per-step parity with an independent PyTorch implementation (transformers' GPT2LMHeadModel and
//! torch.optim.AdamW, `tests/fixtures/parity/make_parity.py`): same `--init` checkpoint,
//! `sequential` data, f32 on CPU, the paper's summed accumulation with clipping. Every step's
//! loss and gradient norm agree within a relative 1e-4, the learning rates exactly, and the
//! final full validation pass too, with the fused and the single-tensor AdamW alike.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use inheritune_model::tch::Device;
use inheritune_train::{train, Options, RunConfig};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-6)
}

#[test]
fn losses_match_pytorch_step_by_step() -> anyhow::Result<()> {
    let dir = fixture();
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json"))?)?;
    let tmp = tempfile::tempdir()?;
    for fused in [true, false] {
        let text = format!(
            r#"[model]
config = "{init}/config.json"
[data]
dir = "{data}"
order = "sequential"
[train]
micro_batch = 2
seq_len = 16
grad_accum = 2
grad_accum_mode = "sum"
max_steps = 8
lr = 1e-2
min_lr = 1e-3
warmup_steps = 2
decay_steps = 8
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
weight_decay = 0.1
grad_clip = 1.0
eval_interval = 100
eval_iters = 1
fused_adamw = {fused}
"#,
            init = dir.join("init").display(),
            data = dir.join("data").display()
        );
        let path = tmp.path().join(format!("run-{fused}.toml"));
        std::fs::write(&path, text)?;
        let config = RunConfig::from_file(&path)?;
        let run = tmp.path().join(format!("run-{fused}"));
        let options = Options {
            init: Some(dir.join("init")),
            ..Options::new(Device::Cpu)
        };
        let summary = train(&config, &run, &options, &mut |_| ControlFlow::Continue(()))?;
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let train_lines: Vec<&serde_json::Value> = lines.iter().filter(|v| v["kind"] == "train").collect();
        assert_eq!(train_lines.len(), 8);
        for (s, line) in train_lines.iter().enumerate() {
            let (loss, want) = (line["loss"].as_f64().unwrap(), expected["loss"][s].as_f64().unwrap());
            assert!(
                close(loss, want, 1e-4),
                "fused {fused} step {s}: loss {loss} vs pytorch {want}"
            );
            let (lr, want_lr) = (line["lr"].as_f64().unwrap(), expected["lr"][s].as_f64().unwrap());
            assert!((lr - want_lr).abs() < 1e-12, "step {s}: lr {lr} vs {want_lr}");
            let (norm, want_norm) = (
                line["grad_norm"].as_f64().unwrap(),
                expected["grad_norm"][s].as_f64().unwrap(),
            );
            assert!(
                close(norm, want_norm, 1e-4),
                "fused {fused} step {s}: grad norm {norm} vs {want_norm}"
            );
        }
        let want = expected["final_val_loss"].as_f64().unwrap();
        assert!(
            close(summary.final_val_loss, want, 1e-4),
            "final val loss {} vs pytorch {want}",
            summary.final_val_loss
        );
        assert_eq!(summary.final_val_tokens, expected["final_val_tokens"].as_u64().unwrap());
    }
    Ok(())
}
