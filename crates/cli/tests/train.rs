//! `inheritune train --resume` started on an empty folder, killed with SIGKILL at several points
//! (the first before any checkpoint exists) and restarted with `--resume` each time, logs
//! bit-identical losses, learning rates and gradient norms to an uninterrupted run, and ends
//! with the same final weights.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, prepare};

fn write_config(dir: &Path, data: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("run.toml");
    std::fs::write(
        &path,
        format!(
            r#"[model]
preset = "gpt2-tiny"
[model.overrides]
vocab_size = 50304
n_positions = 32
n_embd = 32
n_head = 2
n_layer = 2
[data]
dir = "{}"
order = "random"
[train]
micro_batch = 2
seq_len = 16
grad_accum = 2
max_steps = 40
lr = 3e-3
min_lr = 3e-4
warmup_steps = 4
eval_interval = 5
eval_iters = 2
keep_last = 1
seed = 11
"#,
            data.display()
        ),
    )?;
    Ok(path)
}

fn start(config: &Path, run: &Path, resume: bool) -> anyhow::Result<Child> {
    let mut c = bin();
    c.arg("train").arg("--config").arg(config).arg("--run").arg(run);
    if resume {
        c.arg("--resume");
    }
    Ok(c.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?)
}

/// The deterministic fields of every metrics line (timings excluded).
fn metrics(run: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl"))?;
    Ok(text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("metrics line is JSON");
            format!(
                "{} {} {} {} {} {} {}",
                v["kind"], v["step"], v["tokens"], v["loss"], v["val_loss"], v["lr"], v["grad_norm"]
            )
        })
        .collect())
}

fn lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn sigkill_and_resume_repeat_the_uninterrupted_run() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = prepare(tmp.path());
    let config = write_config(tmp.path(), &data)?;

    let full = tmp.path().join("full");
    assert!(start(&config, &full, false)?.wait()?.success());
    let reference = metrics(&full)?;
    assert_eq!(reference.iter().filter(|l| l.starts_with("\"train\"")).count(), 40);

    // Every start is `--resume`, the first on an empty folder. Kill before anything is logged
    // (while the config is written), right after the step-0 evaluation (before or during its
    // checkpoint), mid first interval, around a checkpoint, and late.
    let part = tmp.path().join("part");
    let mut kills = 0;
    for threshold in [0, 1, 3, 14, 30, 44] {
        let mut child = start(&config, &part, true)?;
        let began = Instant::now();
        let reached = |n: usize| {
            if n == 0 {
                part.join("config.toml").exists()
            } else {
                lines(&part) >= n
            }
        };
        while !reached(threshold) && child.try_wait()?.is_none() && began.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait()?.is_none() {
            child.kill()?; // SIGKILL
            kills += 1;
        }
        child.wait()?;
    }
    assert!(kills >= 5, "the run finished before it could be killed ({kills} kills)");
    assert!(start(&config, &part, true)?.wait()?.success());
    assert_eq!(
        metrics(&part)?,
        reference,
        "resumed metrics differ from the uninterrupted run"
    );
    for run in [&full, &part] {
        assert!(run.join("final").join("DONE").exists());
        assert!(!std::fs::read_dir(run)?.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))));
    }
    let weights = |run: &Path| std::fs::read(run.join("final").join("model.safetensors"));
    assert_eq!(weights(&full)?, weights(&part)?, "final weights differ");
    Ok(())
}
