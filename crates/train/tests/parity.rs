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

/// Knowledge distillation against `tests/fixtures/kd/make_kd.py` (transformers student and
/// teacher, torch's `kl_div`): per step the total loss, the cross-entropy, the KL term and the
/// gradient norm within a relative 1e-4, f32 on CPU.
#[test]
fn distillation_matches_pytorch_step_by_step() -> anyhow::Result<()> {
    let parity = fixture();
    let kd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kd");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(kd.join("expected.json"))?)?;
    let tmp = tempfile::tempdir()?;
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
grad_accum_mode = "mean"
max_steps = 6
lr = 1e-2
min_lr = 1e-3
warmup_steps = 2
decay_steps = 6
weight_decay = 0.1
grad_clip = 1.0
eval_interval = 100
eval_iters = 1
[distill]
teacher = "{teacher}"
alpha = 0.6
temperature = 2.0
"#,
        init = parity.join("init").display(),
        data = parity.join("data").display(),
        teacher = kd.join("teacher").display(),
    );
    let path = tmp.path().join("kd.toml");
    std::fs::write(&path, text)?;
    let config = RunConfig::from_file(&path)?;
    let run = tmp.path().join("run");
    let options = Options {
        init: Some(parity.join("init")),
        ..Options::new(Device::Cpu)
    };
    train(&config, &run, &options, &mut |_| ControlFlow::Continue(()))?;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let train_lines: Vec<&serde_json::Value> = lines.iter().filter(|v| v["kind"] == "train").collect();
    assert_eq!(train_lines.len(), 6);
    for (s, line) in train_lines.iter().enumerate() {
        for key in ["loss", "ce", "kl", "grad_norm"] {
            let (ours, want) = (line[key].as_f64().unwrap(), expected[key][s].as_f64().unwrap());
            assert!(close(ours, want, 1e-4), "step {s}: {key} {ours} vs pytorch {want}");
        }
    }
    // Validation is the student's plain cross-entropy.
    let eval = lines.iter().find(|v| v["kind"] == "eval").unwrap();
    assert!(eval.get("kl").is_none() && eval["val_loss"].as_f64().is_some());
    Ok(())
}

/// `sum` mode with `sum_micro_batch`: two splits of one global batch (2 × 4 and 4 × 2 sequences,
/// sequential data) give one gradient, the released code's (micro-batches of 2, summed).
#[test]
fn sum_mode_gradient_does_not_depend_on_the_split() -> anyhow::Result<()> {
    let dir = fixture();
    let tmp = tempfile::tempdir()?;
    let mut norms = Vec::new();
    // The last two runs leave sum_micro_batch out: the plain sum of their own micro-steps.
    for (micro, accum, released) in [(2, 4, true), (4, 2, true), (8, 1, true), (2, 4, false), (4, 2, false)] {
        let text = format!(
            r#"[model]
config = "{init}/config.json"
[data]
dir = "{data}"
order = "sequential"
[train]
micro_batch = {micro}
seq_len = 16
grad_accum = {accum}
grad_accum_mode = "sum"
{released}
max_steps = 3
lr = 1e-2
warmup_steps = 0
min_lr = 1e-3
grad_clip = 0.0
eval_interval = 100
eval_iters = 1
"#,
            init = dir.join("init").display(),
            data = dir.join("data").display(),
            released = if released { "sum_micro_batch = 2" } else { "" },
        );
        let path = tmp.path().join(format!("sum-{micro}-{released}.toml"));
        std::fs::write(&path, text)?;
        let config = RunConfig::from_file(&path)?;
        let run = tmp.path().join(format!("sum-{micro}-{released}"));
        let options = Options {
            init: Some(dir.join("init")),
            ..Options::new(Device::Cpu)
        };
        train(&config, &run, &options, &mut |_| ControlFlow::Continue(()))?;
        let n: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))?
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["kind"] == "train")
            .map(|v| v["grad_norm"].as_f64().unwrap())
            .collect();
        norms.push(n);
    }
    // Every split gives the released gradient: the plain sum over micro-batches of 2.
    for n in &norms[..3] {
        for (a, b) in n.iter().zip(&norms[3]) {
            assert!(close(*a, *b, 1e-5), "{n:?} vs {:?}", norms[3]);
        }
    }
    // Without sum_micro_batch the summed gradient halves with half the micro-steps.
    assert!(
        close(norms[4][0] * 2.0, norms[3][0], 1e-5),
        "{:?} vs {:?}",
        norms[4],
        norms[3]
    );
    Ok(())
}

/// `released_loop = true`: the evaluation at `max_steps` comes before one more update, as in the
/// released loop (METHOD.md §8 item 17): 4 updates for 3 steps, the last at min_lr.
#[test]
fn released_loop_makes_one_more_update() -> anyhow::Result<()> {
    let dir = fixture();
    let tmp = tempfile::tempdir()?;
    let text = format!(
        r#"[model]
config = "{init}/config.json"
[data]
dir = "{data}"
order = "sequential"
[train]
micro_batch = 2
seq_len = 16
max_steps = 3
released_loop = true
lr = 1e-2
min_lr = 1e-3
warmup_steps = 1
eval_interval = 100
eval_iters = 1
"#,
        init = dir.join("init").display(),
        data = dir.join("data").display()
    );
    let path = tmp.path().join("released.toml");
    std::fs::write(&path, text)?;
    let config = RunConfig::from_file(&path)?;
    let run = tmp.path().join("run");
    let summary = train(&config, &run, &Options::new(Device::Cpu), &mut |_| {
        ControlFlow::Continue(())
    })?;
    assert_eq!(summary.steps, 4);
    let lines: Vec<(String, u64, Option<f64>)> = std::fs::read_to_string(run.join("metrics.jsonl"))?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["step"].as_u64().unwrap(),
                v["lr"].as_f64(),
            )
        })
        .collect();
    let kinds: Vec<(&str, u64)> = lines.iter().map(|l| (l.0.as_str(), l.1)).collect();
    assert_eq!(
        kinds,
        [
            ("eval", 0),
            ("train", 0),
            ("train", 1),
            ("train", 2),
            ("eval", 3),
            ("train", 3),
            ("final", 4)
        ]
    );
    assert_eq!(lines[5].2, Some(1e-3), "the extra update runs at min_lr");
    Ok(())
}
