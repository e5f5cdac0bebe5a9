//! `inheritune stage --spec FILE`: one step of a recipe stage, run from a typed spec.
//!
//! The recipe ([`crate::children`]) writes a [`Spec`] (a versioned JSON file holding the verb's own
//! argument struct, the same one its command-line flags fill) and starts this program on it; the
//! step runs the verb's function and writes its [`Outcome`] to `spec.result` atomically. No argv is
//! assembled and no output is parsed on the way: a renamed field breaks the build, not a run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{analyze, download, eval, launch, prepare, surgery, tokenizer, train, SurgeryCommand};

/// The spec format; a spec of another version is refused (the binary and the recipe differ).
pub const VERSION: u32 = 1;

/// Arguments of `inheritune stage` (run by `inheritune recipe`, not by hand).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The step's spec (JSON, written by the recipe).
    #[arg(long)]
    pub spec: PathBuf,
}

/// One step of a stage: which verb, with which arguments, and where its outcome goes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    /// [`VERSION`].
    pub version: u32,
    /// The recipe stage this step belongs to (for messages).
    pub stage: String,
    /// Where the step writes its [`Outcome`] (JSON, atomically).
    pub result: PathBuf,
    /// The work.
    pub job: Job,
}

/// The verbs a recipe runs, each with the argument struct of its command-line verb.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "verb", content = "args", rename_all = "kebab-case")]
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// `inheritune download`.
    Download(download::Args),
    /// `inheritune train-tokenizer`.
    TrainTokenizer(tokenizer::Args),
    /// `inheritune prepare`.
    Prepare(prepare::Args),
    /// `inheritune train`, with the run config itself rather than a file.
    Train(TrainJob),
    /// `inheritune eval loss`.
    Loss(eval::LossArgs),
    /// `inheritune analyze`.
    Analyze(analyze::Args),
    /// `inheritune surgery <op>`.
    Surgery(SurgeryCommand),
    /// `inheritune eval tasks`.
    Eval(eval::TasksArgs),
}

/// A training step: the typed run config and the verb's other arguments.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainJob {
    /// The run config (`inheritune train --config` reads the same type from TOML).
    pub config: inheritune_train::RunConfig,
    /// Everything else `inheritune train` takes.
    pub opts: train::Opts,
}

/// What a step hands back to the recipe.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The verb wrote what its arguments name.
    Done,
    /// A training run's summary (rank 0).
    Trained(inheritune_train::Summary),
    /// A split's loss.
    Loss(inheritune_train::val::LossReport),
    /// An analysis: its `analysis.json`.
    Analyzed {
        /// `<out>/analysis.json`.
        analysis: PathBuf,
    },
    /// Downstream evaluation: its `results.json`.
    Evaluated {
        /// `<out>/results.json`.
        results: PathBuf,
    },
}

impl Spec {
    /// Reads and checks a spec file.
    ///
    /// # Errors
    /// An unreadable file, invalid JSON, or another [`VERSION`].
    pub fn read(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not a stage spec", path.display()))?;
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(VERSION)) {
            bail!(
                "{}: spec version {} but this inheritune reads version {VERSION} (rebuild the binary the recipe runs)",
                path.display(),
                version.map_or("missing".into(), |v| v.to_string())
            );
        }
        serde_json::from_value(value).with_context(|| format!("{}: not a stage spec", path.display()))
    }

    /// Writes the spec to `path` atomically.
    ///
    /// # Errors
    /// An unwritable file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        Ok(inheritune_fs::write_file(path, text.as_bytes())?)
    }
}

impl Outcome {
    /// Reads the outcome a step wrote.
    ///
    /// # Errors
    /// A missing or invalid file (the step did not finish).
    pub fn read(path: &Path) -> Result<Outcome> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{}: the step wrote no outcome", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a step outcome", path.display()))
    }
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    let spec = Spec::read(&args.spec)?;
    let outcome = match &spec.job {
        Job::Download(a) => download::run(a).map(|()| Some(Outcome::Done)),
        Job::TrainTokenizer(a) => tokenizer::run(a).map(|()| Some(Outcome::Done)),
        Job::Prepare(a) => prepare::run(a).map(|()| Some(Outcome::Done)),
        Job::Train(t) => {
            let config = t.config.clone().completed(t.opts.init.as_deref())?;
            // The ranks of `nproc` run this same spec; each one is then a rank, not a launcher.
            let rank = inheritune_dist::LaunchEnv::from_env()?.is_some();
            let mut opts = t.opts.clone();
            if rank {
                opts.dist.nproc = None;
            }
            let again = ["stage".to_string(), "--spec".into(), args.spec.display().to_string()];
            let trained = train::execute(&config, &opts, &again)?;
            let launched = t.opts.dist.nproc.is_some_and(|n| n > 1) && !rank;
            match trained {
                Some(summary) => Ok(Some(Outcome::Trained(summary))),
                // A launcher's rank 0 wrote the outcome; the other ranks write none.
                None if launched => match Outcome::read(&spec.result)? {
                    Outcome::Trained(_) => Ok(None),
                    other => bail!("{}: rank 0 wrote {other:?}", spec.result.display()),
                },
                None => Ok(None),
            }
        }
        Job::Loss(a) => eval::loss_report(a).map(|r| Some(Outcome::Loss(r))),
        Job::Analyze(a) => analyze::run(a).map(|()| {
            Some(Outcome::Analyzed {
                analysis: a.out.join("analysis.json"),
            })
        }),
        Job::Surgery(c) => c.run().map(|()| Some(Outcome::Done)),
        Job::Eval(a) => eval::tasks(a).map(|()| {
            Some(Outcome::Evaluated {
                results: a.out.join("results.json"),
            })
        }),
    }
    .with_context(|| format!("stage {}", spec.stage))?;
    if let Some(outcome) = outcome {
        let text = serde_json::to_string_pretty(&outcome)?;
        inheritune_fs::write_file(&spec.result, text.as_bytes())?;
    }
    Ok(())
}

// The verbs' argument structs as their flags' defaults give them (checked against clap below).

impl prepare::Args {
    /// `prepare --text <text> --out <out>`.
    pub fn new(text: Vec<PathBuf>, out: PathBuf) -> Self {
        prepare::Args {
            text,
            out,
            overwrite: false,
            preset: inheritune_data::prepare::Preset::Generic,
            tokenizer: None,
            column: "text".into(),
            shard_tokens: 100_000_000,
            eot: None,
            eot_token: None,
            add_special_tokens: None,
            val_docs: None,
            val_fraction: None,
            val_tokens: None,
            split_seed: 2357,
            threads: None,
        }
    }
}

impl tokenizer::Args {
    /// `train-tokenizer --text <text> --vocab-size <vocab_size> --out <out>`.
    pub fn new(text: Vec<PathBuf>, vocab_size: usize, out: PathBuf) -> Self {
        tokenizer::Args {
            text,
            column: "text".into(),
            vocab_size,
            out,
        }
    }
}

impl download::Args {
    /// `download <what>`.
    pub fn new(what: String) -> Self {
        download::Args {
            what: Some(what),
            out: None,
            tasks: vec![],
            include: vec![],
            manifest: None,
        }
    }
}

impl eval::LossArgs {
    /// `eval loss --model <model> --data <data>`.
    pub fn new(model: PathBuf, data: PathBuf) -> Self {
        eval::LossArgs {
            model,
            data,
            split: "val".into(),
            seq_len: None,
            batch_size: 8,
            device: inheritune_model::DeviceSpec::Cpu,
            dtype: crate::args::DTypeArg::F32,
        }
    }
}

impl eval::TasksArgs {
    /// `eval tasks --model <model> --tasks <tasks> --data-dir <data_dir> --out <out>`.
    pub fn new(model: PathBuf, tasks: Vec<String>, data_dir: PathBuf, out: PathBuf) -> Self {
        eval::TasksArgs {
            model,
            tasks,
            data_dir,
            limit: None,
            num_fewshot: None,
            batch_size: 16,
            device: inheritune_model::DeviceSpec::Cpu,
            dtype: crate::args::DTypeArg::F32,
            out,
            log_samples: false,
        }
    }
}

impl analyze::WindowArgs {
    /// No window source, the flags' defaults.
    pub fn none() -> Self {
        analyze::WindowArgs {
            data: None,
            split: "val".into(),
            windows: None,
            text: None,
            num_windows: 100,
            window_len: 100,
            window_seed: 1337,
            consecutive: false,
        }
    }
}

impl analyze::Args {
    /// `analyze --model <model> --data <data> --out <out>`.
    pub fn new(model: PathBuf, data: PathBuf, out: PathBuf) -> Self {
        analyze::Args {
            model,
            windows: analyze::WindowArgs {
                data: Some(data),
                ..analyze::WindowArgs::none()
            },
            out,
            overwrite: false,
            tau: 0.9,
            eta: 0.9,
            mass_index_order: false,
            loo: false,
            batch_size: 100,
            device: inheritune_model::DeviceSpec::Cpu,
            dtype: crate::args::DTypeArg::F32,
        }
    }
}

impl surgery::Common {
    /// `--out <out>` and the defaults.
    pub fn new(out: PathBuf) -> Self {
        surgery::Common {
            out,
            seed: 1337,
            device: inheritune_model::DeviceSpec::Cpu,
            dtype: crate::args::DTypeArg::F32,
        }
    }
}

impl surgery::MapOpts {
    /// `--map <map>`.
    pub fn new(map: inheritune_surgery::MapKind) -> Self {
        surgery::MapOpts { map, groups: vec![] }
    }
}

impl surgery::InheritArgs {
    /// `surgery inherit --model <from> --layers <layers> --out <out>`.
    pub fn new(from: PathBuf, layers: i64, out: PathBuf) -> Self {
        surgery::InheritArgs {
            from,
            layers,
            map: surgery::MapOpts::new(inheritune_surgery::MapKind::Paper),
            select: "first".into(),
            analysis: None,
            windows: analyze::WindowArgs::none(),
            common: surgery::Common::new(out),
        }
    }
}

impl surgery::GrowArgs {
    /// `surgery grow --model <from> --reference <reference> --out <out>`.
    pub fn new(from: PathBuf, reference: PathBuf, out: PathBuf) -> Self {
        surgery::GrowArgs {
            from,
            reference,
            add: 2,
            mode: inheritune_surgery::GrowMode::Restart,
            function_preserving: false,
            map: surgery::MapOpts::new(inheritune_surgery::MapKind::Paper),
            common: surgery::Common::new(out),
        }
    }
}

impl surgery::HybridArgs {
    /// `surgery hybrid-stack --model <from> --layers <layers> --out <out>`.
    pub fn new(from: PathBuf, layers: i64, out: PathBuf) -> Self {
        surgery::HybridArgs {
            from,
            layers,
            map: surgery::MapOpts::new(inheritune_surgery::MapKind::Paper),
            common: surgery::Common::new(out),
        }
    }
}

impl surgery::DistillArgs {
    /// `surgery distill-init --model <from> --layers <layers> --out <out>`.
    pub fn new(from: PathBuf, layers: i64, out: PathBuf) -> Self {
        surgery::DistillArgs {
            from,
            layers,
            indices: vec![],
            map: surgery::MapOpts::new(inheritune_surgery::MapKind::Paper),
            common: surgery::Common::new(out),
        }
    }
}

impl surgery::HalfWidthArgs {
    /// `surgery half-width --model <from> --out <out>`.
    pub fn new(from: PathBuf, out: PathBuf) -> Self {
        surgery::HalfWidthArgs {
            from,
            floor_heads: false,
            common: surgery::Common::new(out),
        }
    }
}

impl surgery::StackArgs {
    /// `surgery stack --model <from> --out <out>`.
    pub fn new(from: PathBuf, out: PathBuf) -> Self {
        surgery::StackArgs {
            from,
            common: surgery::Common::new(out),
        }
    }
}

impl train::Opts {
    /// Run as `nproc` local data-parallel ranks (`None`: one process), the other launch flags at
    /// their defaults.
    pub fn ranks(mut self, nproc: Option<usize>) -> Self {
        self.dist = launch::DistArgs {
            nproc,
            ..launch::DistArgs::default()
        };
        self
    }
}

#[cfg(test)]
mod tests {
    //! Each constructor above equals what clap makes of the same flags, field by field.

    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: crate::Command,
    }

    fn parsed(argv: &[&str]) -> serde_json::Value {
        let cli = Cli::try_parse_from(std::iter::once("inheritune").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let value = match cli.command {
            crate::Command::Prepare(a) => serde_json::to_value(a),
            crate::Command::TrainTokenizer(a) => serde_json::to_value(a),
            crate::Command::Download(a) => serde_json::to_value(a),
            crate::Command::Eval(eval::EvalCommand::Loss(a)) => serde_json::to_value(a),
            crate::Command::Eval(eval::EvalCommand::Tasks(a)) => serde_json::to_value(a),
            crate::Command::Analyze(a) => serde_json::to_value(a),
            crate::Command::Surgery(c) => serde_json::to_value(c),
            crate::Command::Train(a) => serde_json::to_value(a.opts),
            other => panic!("not compared: {other:?}"),
        };
        value.unwrap()
    }

    fn json<T: Serialize>(t: T) -> serde_json::Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn constructors_equal_the_flags_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().to_str().unwrap();
        let p = PathBuf::from(m);
        let o = PathBuf::from("o");
        let cases = [
            (
                vec!["prepare", "--text", "a", "--out", "o"],
                json(prepare::Args::new(vec!["a".into()], o.clone())),
            ),
            (
                vec!["train-tokenizer", "--text", "a", "--vocab-size", "512", "--out", "o"],
                json(tokenizer::Args::new(vec!["a".into()], 512, o.clone())),
            ),
            (vec!["download", "eval"], json(download::Args::new("eval".into()))),
            (
                vec!["eval", "loss", "--model", m, "--data", "d"],
                json(eval::LossArgs::new(p.clone(), "d".into())),
            ),
            (
                vec![
                    "eval",
                    "tasks",
                    "--model",
                    m,
                    "--tasks",
                    "a,b",
                    "--data-dir",
                    "d",
                    "--out",
                    "o",
                ],
                json(eval::TasksArgs::new(
                    p.clone(),
                    vec!["a".into(), "b".into()],
                    "d".into(),
                    o.clone(),
                )),
            ),
            (
                vec!["analyze", "--model", m, "--data", "d", "--out", "o"],
                json(analyze::Args::new(p.clone(), "d".into(), o.clone())),
            ),
            (
                vec!["surgery", "inherit", "--model", m, "--layers", "3", "--out", "o"],
                json(SurgeryCommand::Inherit(surgery::InheritArgs::new(
                    p.clone(),
                    3,
                    o.clone(),
                ))),
            ),
            (
                vec!["surgery", "grow", "--model", m, "--reference", m, "--out", "o"],
                json(SurgeryCommand::Grow(surgery::GrowArgs::new(
                    p.clone(),
                    p.clone(),
                    o.clone(),
                ))),
            ),
            (
                vec!["surgery", "hybrid-stack", "--model", m, "--layers", "4", "--out", "o"],
                json(SurgeryCommand::HybridStack(surgery::HybridArgs::new(
                    p.clone(),
                    4,
                    o.clone(),
                ))),
            ),
            (
                vec!["surgery", "distill-init", "--model", m, "--layers", "4", "--out", "o"],
                json(SurgeryCommand::DistillInit(surgery::DistillArgs::new(
                    p.clone(),
                    4,
                    o.clone(),
                ))),
            ),
            (
                vec!["surgery", "half-width", "--model", m, "--out", "o"],
                json(SurgeryCommand::HalfWidth(surgery::HalfWidthArgs::new(
                    p.clone(),
                    o.clone(),
                ))),
            ),
            (
                vec!["surgery", "stack", "--model", m, "--out", "o"],
                json(SurgeryCommand::Stack(surgery::StackArgs::new(p.clone(), o.clone()))),
            ),
            (
                vec!["train", "--config", "c.toml", "--run", "o"],
                json(train::Opts::new(o.clone(), inheritune_model::DeviceSpec::Cpu)),
            ),
        ];
        for (argv, built) in cases {
            assert_eq!(parsed(&argv), built, "{argv:?}");
        }
    }

    #[test]
    fn a_spec_of_another_version_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.json");
        let spec = Spec {
            version: VERSION,
            stage: "data".into(),
            result: dir.path().join("step.result.json"),
            job: Job::Download(download::Args::new("eval".into())),
        };
        spec.write(&path).unwrap();
        assert!(matches!(Spec::read(&path).unwrap().job, Job::Download(_)));
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"version\": 1", "\"version\": 99");
        std::fs::write(&path, text).unwrap();
        let e = Spec::read(&path).unwrap_err().to_string();
        assert!(e.contains("step.json") && e.contains("version 99"), "{e}");
        std::fs::write(&path, "{").unwrap();
        let e = format!("{:#}", Spec::read(&path).unwrap_err());
        assert!(e.contains("step.json"), "{e}");
        let e = format!("{:#}", Outcome::read(&dir.path().join("none.json")).unwrap_err());
        assert!(e.contains("none.json") && e.contains("no outcome"), "{e}");
    }
}
