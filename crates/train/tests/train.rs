//! The training loop on the bundled sample corpus: loss falls, an interrupted run resumes to the
//! same losses, AdamW matches hand-computed updates, and bad configs list every problem.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use inheritune_data::prepare::{prepare, PrepareConfig, SplitRule};
use inheritune_data::source::discover;
use inheritune_data::Tokenizer;
use inheritune_model::tch::{Device, Kind, Tensor};
use inheritune_train::adamw::{AdamW, AdamWConfig};
use inheritune_train::{train, Options, RunConfig};

fn corpus(dir: &Path) -> anyhow::Result<PathBuf> {
    // The first part of the State of the Union corpus: val = first 20k tokens.
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures/prepare/owt.parquet");
    let out = dir.join("data");
    let config = PrepareConfig {
        split: SplitRule::FirstTokens { tokens: 300 },
        shard_tokens: 100_000,
        ..PrepareConfig::generic()
    };
    prepare(&discover(&[input])?, &Tokenizer::gpt2()?, &config, &out, &mut |_| {
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

fn config(data: &Path, steps: u64) -> anyhow::Result<RunConfig> {
    let text = format!(
        r#"
[model]
preset = "gpt2-tiny"
[model.overrides]
vocab_size = 50304
n_positions = 32
n_embd = 32
n_head = 2
n_layer = 2
[data]
dir = "{}"
order = "sequential"
[train]
micro_batch = 2
seq_len = 16
grad_accum = 2
max_steps = {steps}
lr = 3e-3
min_lr = 3e-4
warmup_steps = 2
eval_interval = 4
eval_iters = 2
seed = 7
"#,
        data.display()
    );
    let path = data.with_file_name("run.toml");
    std::fs::write(&path, text)?;
    Ok(RunConfig::from_file(&path)?)
}

fn losses(run: &Path) -> anyhow::Result<Vec<(String, u64, f64)>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let loss = v["loss"].as_f64().or(v["val_loss"].as_f64()).unwrap_or(f64::NAN);
            (
                v["kind"].as_str().unwrap_or_default().to_string(),
                v["step"].as_u64().unwrap_or(0),
                loss,
            )
        })
        .collect())
}

#[test]
fn loss_falls_and_resume_is_exact() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = corpus(tmp.path())?;
    let cfg = config(&data, 12)?;
    let opts = Options::new(Device::Cpu);
    let full = tmp.path().join("full");
    let summary = train(&cfg, &full, &opts, &mut |_| ControlFlow::Continue(()))?;
    let l = losses(&full)?;
    let first_eval = l.iter().find(|(k, _, _)| k == "eval").map(|x| x.2).unwrap_or(0.0);
    assert!(
        summary.final_val_loss < first_eval - 0.3,
        "val loss {} did not fall from {first_eval}",
        summary.final_val_loss
    );
    assert!(full.join("final").join("DONE").exists() && full.join("step-00000012").join("DONE").exists());

    // Stop after the update of step 6 (a checkpoint exists at step 4), then resume.
    let part = tmp.path().join("part");
    let stopped = train(&cfg, &part, &opts, &mut |m| {
        if m.kind == inheritune_train::MetricKind::Train && m.step == 6 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(stopped.is_err());
    let resumed = train(
        &cfg,
        &part,
        &Options {
            resume: true,
            ..opts.clone()
        },
        &mut |_| ControlFlow::Continue(()),
    )?;
    assert_eq!(losses(&part)?, losses(&full)?, "resumed run differs");
    assert_eq!(resumed.final_val_loss, summary.final_val_loss);
    Ok(())
}

#[test]
fn adamw_matches_hand_computed_steps() -> anyhow::Result<()> {
    adamw_hand_computed(false)
}

/// PyTorch's `_fused_adamw_` kernel (the CUDA path) through the shim, on CPU.
#[test]
fn fused_adamw_matches_hand_computed_steps() -> anyhow::Result<()> {
    adamw_hand_computed(true)
}

fn adamw_hand_computed(fused: bool) -> anyhow::Result<()> {
    let w = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0])
        .view([2, 2])
        .set_requires_grad(true);
    let params = BTreeMap::from([("model.layers.0.mlp.up_proj.weight".to_string(), w.shallow_clone())]);
    let c = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = AdamW::new(&params, c)?;
    if fused {
        opt.use_fused(Device::Cpu)?;
        assert!(opt.is_fused());
    }
    let (mut p, mut m, mut v) = ([1.0f64, -2.0, 0.5, 3.0], [0.0f64; 4], [0.0f64; 4]);
    for (step, lr) in [(1, 0.1), (2, 0.05), (3, 0.2)] {
        let loss = (&w * &w).sum(Kind::Float) * 0.5 + w.sum(Kind::Float); // grad = w + 1
        loss.backward();
        opt.step(lr)?;
        opt.zero_grad();
        for i in 0..4 {
            let g = p[i] + 1.0;
            p[i] *= 1.0 - lr * c.weight_decay;
            m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g;
            v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g * g;
            let mhat = m[i] / (1.0 - c.beta1.powi(step));
            let vhat = v[i] / (1.0 - c.beta2.powi(step));
            p[i] -= lr * mhat / (vhat.sqrt() + c.eps);
        }
        let got: Vec<f32> = Vec::try_from(w.flatten(0, -1))?;
        for i in 0..4 {
            assert!(
                (got[i] as f64 - p[i]).abs() < 1e-5,
                "step {step}: {} vs {}",
                got[i],
                p[i]
            );
        }
    }
    Ok(())
}

/// Clipping scales by min(1, max / (norm + 1e-6)) and reports the norm before clipping, on the
/// per-tensor path and on the foreach kernels alike.
#[test]
fn clipping_matches_hand_computed_norm() -> anyhow::Result<()> {
    for fused in [false, true] {
        let a = Tensor::from_slice(&[3.0f32, 0.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[0.0f32, 4.0, 12.0])
            .view([1, 3])
            .set_requires_grad(true);
        let params = BTreeMap::from([
            ("a".to_string(), a.shallow_clone()),
            ("b".to_string(), b.shallow_clone()),
        ]);
        let mut opt = AdamW::new(
            &params,
            AdamWConfig {
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
                weight_decay: 0.0,
            },
        )?;
        if fused {
            opt.use_fused(Device::Cpu)?;
        }
        // grads equal the values: global norm sqrt(9 + 16 + 144) = 13.
        ((&a * &a).sum(Kind::Float) * 0.5 + (&b * &b).sum(Kind::Float) * 0.5).backward();
        let norm = opt.clip_grad_norm(6.5)?.double_value(&[]);
        assert!((norm - 13.0).abs() < 1e-5, "norm {norm}");
        let coef = 6.5 / (13.0 + 1e-6);
        let got: Vec<f32> = Vec::try_from(b.grad().flatten(0, -1))?;
        for (g, want) in got.iter().zip([0.0, 4.0 * coef, 12.0 * coef]) {
            assert!((*g as f64 - want).abs() < 1e-5, "fused {fused}: {g} vs {want}");
        }
        // Below the threshold nothing changes.
        let again = opt.clip_grad_norm(100.0)?.double_value(&[]);
        assert!((again - 6.5).abs() < 1e-4, "second norm {again}");
    }
    Ok(())
}

#[test]
fn bad_configs_list_every_problem() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("bad.toml");
    std::fs::write(
        &path,
        "[model]\npreset = \"gpt2-huge\"\n[data]\ndir = \"/nowhere\"\n[train]\nmicro_batch = 0\nlr = -1.0\n",
    )?;
    let err = RunConfig::from_file(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    for needle in [
        "bad.toml",
        "unknown preset",
        "micro_batch must be positive",
        "train.lr",
        "data.dir",
    ] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
    std::fs::write(
        &path,
        "[model]\npreset = \"gpt2-tiny\"\ncolour = 1\n[data]\ndir = \"x\"\n",
    )?;
    let err = RunConfig::from_file(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("colour"), "{err}");
    Ok(())
}

/// The family presets carry METHOD.md §4.1/§4.2/§4.5's tokens per step, rates and betas, and keys the
/// config sets itself win over the preset.
#[test]
fn presets_match_the_spec() -> anyhow::Result<()> {
    // (preset, tokens per step, lr, beta2, grad_accum sum?, sequential?, the released code's
    // summed micro-batch and ranks (METHOD.md §4.1, §4.2))
    let expected = [
        ("owt-gpt2-medium", 393_216, 3e-4, 0.95, true, false, Some(4), None),
        ("owt-gpt2-large", 131_072, 2e-4, 0.95, true, false, Some(2), None),
        ("owt-gpt2-xl", 131_072, 1.5e-4, 0.95, true, false, Some(2), None),
        ("fineweb-gpt2-large", 61_440, 2e-4, 0.999, true, true, Some(2), Some(3)),
        ("fineweb-gpt2-medium", 61_440, 3e-4, 0.999, true, true, Some(2), Some(3)),
        ("llama-lowdata", 131_072, 3e-4, 0.999, false, false, None, None),
    ];
    assert_eq!(expected.len(), inheritune_train::config::PRESETS.len());
    for (name, tokens, lr, beta2, sum, sequential, sum_micro, sum_world) in expected {
        let cfg = RunConfig::parse(&format!(
            "preset = \"{name}\"\n[model]\npreset = \"gpt2-medium\"\n[data]\ndir = \"d\"\n"
        ))?;
        assert_eq!(cfg.train.sum_micro_batch, sum_micro, "{name}");
        assert_eq!(cfg.train.sum_world, sum_world, "{name}");
        // The global batch does not change with the world size; the accumulation follows it.
        for world in [1, 2, 4] {
            assert_eq!(cfg.tokens_per_step(world), tokens, "{name}");
            let (b, t) = (cfg.train.micro_batch as u64, cfg.train.seq_len as u64);
            if tokens % (b * t * world) == 0 {
                assert_eq!(cfg.accum(world)? as u64 * b * t * world, tokens, "{name} on {world}");
            } else {
                let err = cfg.accum(world).unwrap_err().to_string();
                assert!(err.contains(&format!("tokens_per_step {tokens}")), "{err}");
                assert!(err.contains(&format!("= {}", b * t * world)), "{err}");
            }
        }
        assert_eq!(cfg.train.lr, lr, "{name}");
        assert_eq!(cfg.train.beta2, beta2, "{name}");
        assert_eq!(
            cfg.train.max_steps,
            if name == "llama-lowdata" { 64_000 } else { 100_000 }
        );
        assert_eq!(
            cfg.train.grad_accum_mode == inheritune_train::config::GradAccum::Sum,
            sum,
            "{name}"
        );
        assert_eq!(
            cfg.data.order == inheritune_data::loader::Order::Sequential,
            sequential,
            "{name}"
        );
    }
    let cfg = RunConfig::parse(
        "preset = \"owt-gpt2-xl\"\n[model]\npreset = \"gpt2-xl\"\n[data]\ndir = \"d\"\n[train]\nlr = 1e-3\n",
    )?;
    assert_eq!((cfg.train.lr, cfg.train.warmup_steps), (1e-3, 2000));
    // A config that sets the per-rank accumulation takes no batch key from the preset.
    let cfg = RunConfig::parse(
        "preset = \"owt-gpt2-xl\"\n[model]\npreset = \"gpt2-xl\"\n[data]\ndir = \"d\"\n[train]\ngrad_accum = 3\n",
    )?;
    assert_eq!((cfg.train.grad_accum, cfg.train.tokens_per_step), (Some(3), None));
    assert_eq!(cfg.tokens_per_step(2), 8 * 1024 * 3 * 2);
    let err = RunConfig::parse("preset = \"nope\"\n[model]\npreset = \"gpt2-xl\"\n[data]\ndir = \"d\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("unknown training preset \"nope\""), "{err}");
    Ok(())
}

/// Unknown keys are all reported at once, a typo in `[model.overrides]` is one of them, and
/// `config.json` keys transformers knows (token ids, dropout) pass.
#[test]
fn unknown_keys_are_all_reported() {
    let err = RunConfig::parse(
        "colour = 1\n[model]\npreset = \"gpt2-tiny\"\nsize = 2\n[data]\ndir = \"d\"\nshuffle = true\n[train]\nlr = 1e-3\nlearning_rate = 1e-3\nwarmup = 3\n",
    )
    .unwrap_err()
    .to_string();
    for key in [
        "colour",
        "model.size",
        "data.shuffle",
        "train.learning_rate",
        "train.warmup",
    ] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
    let cfg = RunConfig::parse(
        "[model]\npreset = \"gpt2-tiny\"\n[model.overrides]\nn_heads = 4\nn_layers = 2\nbos_token_id = 0\nresid_pdrop = 0.0\n[data]\ndir = \"d\"\n",
    )
    .unwrap();
    let err = cfg.model_config().unwrap_err().to_string();
    assert!(
        err.contains("model.overrides.n_heads") && err.contains("model.overrides.n_layers"),
        "{err}"
    );
    assert!(!err.contains("bos_token_id") && !err.contains("resid_pdrop"), "{err}");
}
