//! The README's quick start, run as written: the `inheritune` lines of its `sh` block between
//! `<!-- quickstart -->` markers, in order, in a scratch folder that sees the repository's
//! `.smollm2.gguf`, `datasets/`, `docs/` and `crates/` (so the README's relative paths hold), with
//! `docs/quickstart/run.toml` as the run config. It checks what a user would look at: the lazy
//! layers numpy finds (23 and 24, `make_smollm2.py`), the tokenizer files carried by surgery, a
//! val split made by default, and training that lowers the inherited model's validation loss.
//!
//! Without `.smollm2.gguf` (setup could not fetch it) the test says so and passes without checking.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `inheritune` command lines of the README's quick start, comments removed.
fn quickstart_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let start = readme
        .find("<!-- quickstart -->")
        .expect("README.md has a <!-- quickstart --> block");
    let rest = &readme[start + 1..];
    let end = rest
        .find("<!-- /quickstart -->")
        .expect("the quick start block is closed");
    let block = &rest[..end];
    let commands: Vec<Vec<String>> = block
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .filter(|l| l.starts_with("inheritune "))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
        .collect();
    assert!(commands.len() >= 5, "the quick start lists its commands: {commands:?}");
    commands
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let gguf = std::env::var_os("INHERITUNE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".smollm2.gguf"));
    if !gguf.exists() {
        eprintln!("skipped: {} does not exist (run `cargo xtask setup`)", gguf.display());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = workspace().canonicalize().expect("workspace");
    std::os::unix::fs::symlink(&gguf, dir.path().join(".smollm2.gguf")).expect("link");
    for name in ["datasets", "docs", "crates"] {
        std::os::unix::fs::symlink(root.join(name), dir.path().join(name)).expect("link");
    }
    for args in quickstart_commands() {
        let began = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_inheritune"))
            .args(&args)
            .current_dir(dir.path())
            .env(
                "INHERITUNE_CACHE",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-cache"),
            )
            .env("RUST_LOG", "info")
            .output()
            .expect("inheritune runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "inheritune {} failed:\n{stderr}", args.join(" "));
        eprintln!("inheritune {}: {:.1} s", args.join(" "), began.elapsed().as_secs_f64());
        // Every verb says what it made and what comes next.
        if ["analyze", "surgery", "prepare", "train"].contains(&args[0].as_str()) {
            assert!(
                stderr.contains("next: "),
                "inheritune {} names no next step:\n{stderr}",
                args[0]
            );
        }
    }
    let d = dir.path();
    // The analysis finds the layers numpy finds over transformers' attention (0-based).
    let analysis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("runs/smollm2-analysis/analysis.json")).unwrap()).unwrap();
    assert_eq!(analysis["lazy_relaxed"], serde_json::json!([23, 24]));
    assert!(d.join("runs/smollm2-analysis/max_rank.png").exists());
    // Surgery keeps every tokenizer file of its source.
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        assert!(
            d.join("runs/smollm2-l15").join(f).exists(),
            "the inherited folder lacks {f}"
        );
    }
    // prepare made a val split without being asked.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("data/sotu-smollm2/manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["splits"]["val"]["tokens"].as_u64().unwrap_or(0) > 0,
        "{manifest}"
    );
    // Training heals the cut model: the last evaluation's val loss is below step 0's, and no
    // checkpoint of the untrained weights was written.
    let run = d.join("runs/smollm2-l15-trained");
    let evals: Vec<f64> = metrics(&run)
        .iter()
        .filter(|m| m["kind"] == "eval")
        .map(|m| m["val_loss"].as_f64().unwrap())
        .collect();
    assert!(
        evals.len() >= 2 && evals[evals.len() - 1] < evals[0] - 0.5,
        "val losses {evals:?}"
    );
    assert!(!run.join("step-00000000").exists(), "a step-0 checkpoint was written");
    assert!(run.join("final/config.json").exists() && run.join("final/tokenizer_config.json").exists());
}
