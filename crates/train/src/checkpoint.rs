//! Run folders and checkpoints: `runs/<name>/step-XXXXXXXX/` holds the model as a Hugging Face
//! folder, `optimizer.safetensors`, `state.json` and an empty `DONE` written last; each checkpoint
//! is assembled under `.tmp` and renamed. The last N are kept, plus milestones. What a resume may
//! change is checked against the run's `config.toml` (every differing key named), not a hash.

use crate::run_dir::RunDir;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inheritune_model::tch::Tensor;
use inheritune_model::{hf, CausalLm};
use serde::{Deserialize, Serialize};

use crate::adamw::AdamW;
use crate::error::{file_err, Result};

/// What `state.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The next optimizer step to run (updates taken so far).
    pub step: u64,
    /// Training tokens consumed.
    pub tokens: u64,
    /// The data order and evaluation batches are pure functions of (seed, rank, step, micro-step),
    /// so no generator state needs saving; recorded for the reader.
    pub rng: String,
    /// Loader position: the step the next batch is drawn for.
    pub loader_step: u64,
    /// Ranks of the run that wrote it (1 for checkpoints from before data parallelism).
    #[serde(default = "one")]
    pub world: u64,
    /// Micro-batches per step on each rank (0: not recorded).
    #[serde(default)]
    pub accum: u64,
}

fn one() -> u64 {
    1
}

/// The folder name of a checkpoint.
pub fn step_dir(run: &Path, step: u64) -> PathBuf {
    RunDir::new(run).step(step)
}

/// Writes a checkpoint of `model` and `opt` at `state.step`, with copies of `extra` files (the
/// tokenizer, so the folder is a complete Hugging Face checkpoint).
///
/// # Errors
/// A write failure, named with the file.
pub fn save(run: &Path, model: &CausalLm, opt: &AdamW, state: &TrainState, extra: &[PathBuf]) -> Result<PathBuf> {
    let dir = step_dir(run, state.step);
    save_to(&dir, model, Some(opt), state, extra)?;
    Ok(dir)
}

/// Writes a checkpoint into `dir` (replacing it), optimizer optional, `extra` files copied in.
///
/// # Errors
/// A write failure, named with the file.
pub fn save_to(dir: &Path, model: &CausalLm, opt: Option<&AdamW>, state: &TrainState, extra: &[PathBuf]) -> Result<()> {
    let mut tmp_name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = dir.with_file_name(tmp_name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| file_err(&tmp, e))?;
    }
    hf::save(model, &tmp)?;
    if let Some(opt) = opt {
        let state_tensors = opt.state();
        let refs: Vec<(&str, &Tensor)> = state_tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let path = tmp.join("optimizer.safetensors");
        Tensor::write_safetensors(&refs, &path).map_err(|e| file_err(&path, e))?;
    }
    for file in extra {
        if let Some(name) = file.file_name() {
            std::fs::copy(file, tmp.join(name)).map_err(|e| file_err(file, e))?;
        }
    }
    let path = tmp.join("state.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(state).map_err(|e| file_err(&path, e))? + "\n",
    )
    .map_err(|e| file_err(&path, e))?;
    let done = tmp.join(crate::run_dir::DONE);
    std::fs::write(&done, "").map_err(|e| file_err(&done, e))?;
    inheritune_fs::commit_dir(&tmp, dir).map_err(|e| file_err(&e.path, format!("{}: {}", e.op, e.source)))
}

/// Complete checkpoints of a run (those with `DONE`), by step.
pub fn list(run: &Path) -> Vec<(u64, PathBuf)> {
    RunDir::new(run).checkpoints()
}

/// The retention rule: of the complete checkpoints at `steps` (ascending), the ones to delete:
/// all but the newest `keep` (at least one: the newest is never deleted), sparing multiples of
/// `milestone` (0: none).
pub fn to_delete(steps: &[u64], keep: usize, milestone: u64) -> Vec<u64> {
    let keep = keep.max(1);
    let n = steps.len();
    steps
        .iter()
        .enumerate()
        .filter(|&(i, &step)| i + keep < n && !(milestone > 0 && step % milestone == 0))
        .map(|(_, &step)| step)
        .collect()
}

/// Deletes the checkpoints [`to_delete`] names.
pub fn prune(run: &Path, keep: usize, milestone: u64) {
    let all = list(run);
    let steps: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    let doomed = to_delete(&steps, keep, milestone);
    for (step, path) in all {
        if doomed.contains(&step) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Loads a checkpoint's weights into `model`, its moments into `opt`, and returns its state.
///
/// # Errors
/// Missing or corrupt files, or tensors that do not fit.
pub fn restore(dir: &Path, model: &mut CausalLm, opt: &mut AdamW) -> Result<TrainState> {
    let report = hf::load_weights(model, &[dir.join(hf::WEIGHTS_FILE)])?;
    if !report.is_clean() {
        return Err(file_err(dir, format!("checkpoint does not fit the model: {report}")));
    }
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| file_err(&path, e))?;
    let path = dir.join("optimizer.safetensors");
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
        .map_err(|e| file_err(&path, e))?
        .into_iter()
        .collect();
    opt.load_state(&tensors, state.step).map_err(|e| file_err(&path, e))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::to_delete;

    #[test]
    fn retention_keeps_the_newest_and_milestones() {
        let steps = [0, 5, 10, 15, 20, 25];
        assert_eq!(to_delete(&steps, 2, 0), [0, 5, 10, 15]);
        assert_eq!(to_delete(&steps, 2, 10), [5, 15]);
        // keep 0 still keeps the newest.
        assert_eq!(to_delete(&steps, 0, 0), [0, 5, 10, 15, 20]);
        assert_eq!(to_delete(&steps, 10, 0), Vec::<u64>::new());
        assert_eq!(to_delete(&[], 1, 0), Vec::<u64>::new());
        assert_eq!(to_delete(&[7], 1, 3), Vec::<u64>::new());
    }
}
