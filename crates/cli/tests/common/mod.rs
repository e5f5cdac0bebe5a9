//! Helpers shared by the CLI's integration tests: the binary, a small prepared corpus, training
//! runs and their metrics.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `inheritune` binary, quiet, outside any launched job.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inheritune"));
    c.env("RUST_LOG", "warn");
    for var in [
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "SLURM_PROCID",
        "SLURM_NTASKS",
    ] {
        c.env_remove(var);
    }
    c
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The OpenWebText fixture of the data crate prepared into `dir/data` (300 val tokens).
pub fn prepare(dir: &Path) -> PathBuf {
    let input = workspace().join("crates/data/tests/fixtures/prepare/owt.parquet");
    let out = dir.join("data");
    let status = bin()
        .args(["prepare", "--input"])
        .arg(input)
        .arg("--out")
        .arg(&out)
        .args(["--val-tokens", "300", "--threads", "1"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("inheritune prepare runs");
    assert!(status.success(), "inheritune prepare failed");
    out
}

/// Writes `dir/name`: a 2-layer, 32-wide GPT-2 with the GPT-2 vocabulary on the prepared `data`,
/// with `data_keys` added to `[data]` and `train_keys` as `[train]`.
pub fn tiny_config(dir: &Path, name: &str, data: &Path, data_keys: &str, train_keys: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!(
        "[model]\npreset = \"gpt2-tiny\"\n[model.overrides]\nvocab_size = 50304\nn_positions = 32\nn_embd = 32\nn_head = 2\nn_layer = 2\n\
         [data]\ndir = \"{}\"\n{data_keys}\n[train]\n{train_keys}\n",
        data.display()
    );
    std::fs::write(&path, text).expect("writing the run config");
    path
}

fn train_command(config: &Path, run: &Path, extra: &[&str]) -> Command {
    let mut c = bin();
    c.arg("train")
        .arg("--config")
        .arg(config)
        .arg("--run")
        .arg(run)
        .args(extra);
    c
}

/// `inheritune train --config CONFIG --run RUN EXTRA...`, waited for.
pub fn train(config: &Path, run: &Path, extra: &[&str]) -> Output {
    train_command(config, run, extra)
        .output()
        .expect("inheritune train runs")
}

/// The same, started in the background (stdout discarded, stderr as given).
pub fn spawn_train(config: &Path, run: &Path, extra: &[&str], stderr: Stdio) -> Child {
    train_command(config, run, extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("inheritune train starts")
}

/// Asserts success, showing stderr otherwise.
pub fn ok(out: &Output) {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every line of a run's metrics.jsonl (none when it does not exist).
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line is JSON"))
        .collect()
}
