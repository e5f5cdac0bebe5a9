//! The run folder: every name in it, for every crate that reads one.
//!
//! ```text
//! <run>/config.toml          the resolved run config (resume compares against it)
//! <run>/metrics.jsonl        one JSON line per train step, evaluation and the final pass
//! <run>/step-00001000/       a checkpoint (Hugging Face folder + optimizer + state.json + DONE)
//! <run>/final/               the trained model (a complete Hugging Face folder)
//! <run>/loss.png, loss.svg   the loss curves
//! <run>/events.out.tfevents.* TensorBoard events (train.tensorboard = true)
//! ```

use std::path::{Path, PathBuf};

/// The marker a checkpoint folder gets last: present means complete.
pub const DONE: &str = "DONE";
const STEP_PREFIX: &str = "step-";
const EVENTS_PREFIX: &str = "events.out.tfevents.";

/// A run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`: the resolved run config.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `final/`: the trained model.
    pub fn final_model(&self) -> PathBuf {
        self.root.join("final")
    }

    /// The plot stem of the loss curves (`loss` → `loss.png`, `loss.svg`).
    pub const LOSS_PLOT: &'static str = "loss";

    /// `step-NNNNNNNN/`: the checkpoint at `step`.
    pub fn step(&self, step: u64) -> PathBuf {
        self.root.join(format!("{STEP_PREFIX}{step:08}"))
    }

    /// The complete checkpoints (those with [`DONE`]), by step.
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let step = name.strip_prefix(STEP_PREFIX)?.parse().ok()?;
                e.path().join(DONE).exists().then(|| (step, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// A TensorBoard event file's name for this host and time.
    pub fn events(&self, unix_seconds: u64, host: &str) -> PathBuf {
        self.root
            .join(format!("{EVENTS_PREFIX}{unix_seconds}.{host}.inheritune"))
    }

    /// Whether the entry `name` is part of a run (what `--overwrite` replaces): metrics, config,
    /// plots, checkpoints (complete or not), the final model, TensorBoard events.
    pub fn is_run_entry(name: &str) -> bool {
        matches!(
            name,
            "metrics.jsonl" | "config.toml" | "loss.png" | "loss.svg" | "final"
        ) || name.starts_with(STEP_PREFIX)
            || name.starts_with(EVENTS_PREFIX)
    }

    /// What of a run the folder holds (metrics, checkpoints, the final model), sorted: empty for
    /// a new folder.
    pub fn contents(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n == "metrics.jsonl" || n == "final" || (n.starts_with(STEP_PREFIX) && !n.ends_with(".tmp")))
            .collect();
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert!(run.contents().is_empty());
        assert_eq!(run.step(1000), dir.path().join("step-00001000"));
        for (step, done) in [(20, true), (10, true), (30, false)] {
            std::fs::create_dir_all(run.step(step)).unwrap();
            if done {
                std::fs::write(run.step(step).join(DONE), "").unwrap();
            }
        }
        std::fs::create_dir_all(dir.path().join("step-00000040.tmp")).unwrap();
        std::fs::write(run.metrics(), "").unwrap();
        let steps: Vec<u64> = run.checkpoints().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, [10, 20]);
        assert_eq!(
            run.contents(),
            ["metrics.jsonl", "step-00000010", "step-00000020", "step-00000030"]
        );
        assert!(RunDir::is_run_entry("events.out.tfevents.1.host.inheritune"));
        assert!(RunDir::is_run_entry("step-00000040.tmp"));
        assert!(!RunDir::is_run_entry("notes.txt"));
    }
}
