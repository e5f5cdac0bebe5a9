//! The Inheritune recipe (METHOD.md Algorithm 1, §1.2–§1.6) as a library: the typed recipe
//! ([`Recipe`]), its stages as a graph over the finished stages' facts ([`stages`]), Algorithm
//! 1's growth loop as a pure function ([`growth::Rule`]), a runner that skips finished stages,
//! honours `--from` / `--only` and runs independent stages at once on disjoint devices
//! ([`Graph`]) through an [`Executor`] that runs one stage, the dry-run plan ([`plan()`]) and the
//! report ([`report::write`]).
//!
//! The `inheritune` binary's executor runs each stage as child `inheritune stage` processes, each
//! given a typed, versioned spec (the verb's own argument struct) and writing a typed outcome
//! file; the recipe assembles no command line and reads no output. Child processes earn their
//! place: every stage gets its own devices (`CUDA_VISIBLE_DEVICES`, its share of the CPU threads)
//! and its own libtorch state, stages on disjoint devices run at once, and a training stage can be
//! stopped with SIGTERM and resumed from its last checkpoint without taking the recipe down. The
//! report stage runs in process.
//!
//! tokenizer (optional BPE) → data → reference (trained, or a given checkpoint scored on val) →
//! analyze the reference → Inheritune rounds (inherit l0 = L/2 blocks, train the same budget,
//! compare the final full-val loss with the reference's within `tolerance`, grow by Δ while
//! worse) → baselines (same-size scratch for 1× and 2× the steps; optionally hybrid stacking,
//! half-width, DistilBERT-style init, stacking) → analyze the target → downstream eval when eval
//! data is present → report.
//!
//! Every stage writes `<run>/<stage>/facts.json`, then `DONE`, last; a rerun skips finished
//! stages, and an interrupted training stage resumes from its last checkpoint.
//!
//! ```
//! use inheritune_recipe::{growth::Next, stages, Facts, Recipe};
//! let recipe = Recipe::parse(r#"
//! name = "demo"
//! [data]
//! inputs = ["corpus.txt"]
//! [reference.model]
//! preset = "gpt2-tiny"
//! [reference.model.overrides]
//! n_layer = 8
//! [train]
//! max_steps = 100
//! "#).unwrap();
//! let first = stages::stages(&recipe, 8, &Facts::default(), false);
//! assert_eq!(first.last().unwrap().name, "inheritune-l4");
//! let rule = stages::rule(&recipe, 8, &Facts::default()).unwrap();
//! assert_eq!(rule.next(3.0, &[2.9]), Next::Matched { layers: 4 });
//! ```

pub mod config;
pub mod error;
pub mod facts;
pub mod graph;
pub mod growth;
pub mod plan;
pub mod report;
pub mod stages;

use std::path::{Path, PathBuf};

use inheritune_model::DeviceSpec;

pub use config::Recipe;
pub use error::{Error, Result};
pub use facts::{Facts, StageFacts};
pub use graph::{Executor, Graph, Outcome, Selection};
pub use plan::plan;

/// How to run a recipe.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder.
    pub run: PathBuf,
    /// Devices the stages share.
    pub devices: Vec<DeviceSpec>,
    /// Which stages.
    pub selection: Selection,
}

/// `--devices`: a comma-separated list (`cuda:0,cuda:1`, `cpu,cpu`) or a GPU count (`4` =
/// cuda:0..cuda:3).
///
/// # Errors
/// An unknown device, zero, cpu mixed with cuda, or a GPU named twice.
pub fn parse_devices(text: &str) -> Result<Vec<DeviceSpec>> {
    if let Ok(n) = text.trim().parse::<usize>() {
        if n == 0 {
            return Err(Error::Invalid("--devices 0: give at least one device".into()));
        }
        return Ok((0..n).map(DeviceSpec::Cuda).collect());
    }
    let devices: Vec<DeviceSpec> = text
        .split(',')
        .map(|d| {
            d.parse::<DeviceSpec>()
                .map_err(|e| Error::Invalid(format!("--devices: {e}")))
        })
        .collect::<Result<_>>()?;
    let cuda = devices.iter().filter(|d| d.is_cuda()).count();
    if cuda > 0 && cuda < devices.len() {
        return Err(Error::Invalid(format!("--devices {text}: mixes cpu and cuda devices")));
    }
    let mut distinct = devices.clone();
    distinct.sort();
    distinct.dedup();
    if cuda > 0 && distinct.len() != devices.len() {
        return Err(Error::Invalid(format!("--devices {text}: names a GPU twice")));
    }
    Ok(devices)
}

/// Runs `recipe` (read from `source`, whose text is copied into the run folder with the plan):
/// every stage not finished, each through `executor`, then the report.
///
/// # Errors
/// An unwritable run folder, an invalid selection, or the first failing stage.
pub fn run(recipe: &Recipe, source: &Path, options: &RunOptions, executor: &impl Executor) -> Result<Outcome> {
    let dir = &options.run;
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let text = std::fs::read(source).map_err(|e| Error::file(source, e))?;
    inheritune_fs::write_file(&dir.join("recipe.toml"), &text)?;
    inheritune_fs::write_file(&dir.join("plan.md"), plan(recipe)?.as_bytes())?;
    let l_ref = recipe.reference_config()?.n_layer();
    let eval = recipe
        .eval
        .data_dir
        .as_ref()
        .is_some_and(|d| d.is_dir() || recipe.eval.download);
    if let (Some(d), false) = (&recipe.eval.data_dir, eval) {
        eprintln!(
            "[recipe] eval: skipped, {} is not a folder (fetch the tasks with `inheritune download eval`, datasets/eval.md, or set [eval] download = true)",
            d.display()
        );
    }
    let graph = Graph {
        run: dir.clone(),
        devices: options.devices.clone(),
        selection: options.selection.clone(),
        log: &|line| eprintln!("[recipe] {line}"),
    };
    let plan = |facts: &Facts| stages::stages(recipe, l_ref, facts, eval);
    graph.run(&plan, executor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        assert_eq!(parse_devices("2").unwrap(), [DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)]);
        assert_eq!(parse_devices("cpu,cpu").unwrap(), [DeviceSpec::Cpu, DeviceSpec::Cpu]);
        assert_eq!(
            parse_devices("cuda:3,cuda:1").unwrap(),
            [DeviceSpec::Cuda(3), DeviceSpec::Cuda(1)]
        );
        for (bad, says) in [
            ("0", "at least one"),
            ("cpu,cuda:0", "mixes"),
            ("cuda:1,cuda:1", "twice"),
            ("tpu", "not a device"),
        ] {
            let e = parse_devices(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
