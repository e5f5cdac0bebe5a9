//! The recipe's stages as child `inheritune stage` processes: one method per stage, each returning
//! its typed facts.
//!
//! A stage's steps are [`stage::Job`]s, each the argument struct of the verb it runs (the same
//! struct that verb's flags fill), written as a versioned spec into `<run>/<stage>/steps/` and
//! run by `inheritune stage --spec`, which writes its [`stage::Outcome`] beside it. Why a child
//! process at all: each stage gets its own devices (`CUDA_VISIBLE_DEVICES`, its share of the CPU
//! threads) and its own libtorch state, and a training stage can be stopped with SIGTERM and
//! resumed from its last checkpoint without taking the recipe down. A child's standard output and
//! error go to `<run>/<stage>/log.txt` and, prefixed with the stage's name, to this process's
//! stderr; the recipe reads nothing from them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use inheritune_model::{DeviceSpec, ModelConfig};
use inheritune_recipe::config::{GrowMode, Heal, Recipe, TokenizerSpec};
use inheritune_recipe::facts::{
    AnalysisFacts, DataFacts, EvalFacts, Facts, ModelFacts, ReportFacts, StageFacts, TokenizerFacts,
};
use inheritune_recipe::stages::{Stage, Task};
use inheritune_recipe::{Error, Executor, Result};
use inheritune_train::config::ModelSection;
use inheritune_train::{RunConfig, RunDir};

use crate::stage::{self, Job, Outcome, Spec, TrainJob};
use crate::surgery::{self, MapOpts};
use crate::{analyze, download, eval, prepare, supervise, tokenizer, train, SurgeryCommand};

/// Runs stages as child processes of the `inheritune` binary `exe`.
pub struct Children<'a> {
    /// The recipe.
    pub recipe: &'a Recipe,
    /// The run folder.
    pub run: PathBuf,
    /// The `inheritune` binary.
    pub exe: PathBuf,
    /// Data-parallel ranks of every training stage.
    pub ranks: usize,
    /// Devices the whole graph shares (for the CPU thread split).
    pub all_devices: usize,
}

/// Where a stage runs its steps.
struct At<'s> {
    stage: &'s Stage,
    dir: &'s Path,
    devices: &'s [DeviceSpec],
    stop: &'s AtomicBool,
}

impl At<'_> {
    /// The device a step's verb is given.
    fn device(&self) -> DeviceSpec {
        if self.devices.iter().any(|d| d.is_cuda()) {
            DeviceSpec::Cuda(0)
        } else {
            DeviceSpec::Cpu
        }
    }
}

fn invalid(e: anyhow::Error) -> Error {
    Error::Invalid(format!("{e:#}"))
}

impl Children<'_> {
    fn data_dir(&self) -> PathBuf {
        self.recipe
            .data
            .prepared
            .clone()
            .unwrap_or_else(|| self.run.join("data"))
    }

    fn model_of(facts: &Facts, stage: &str) -> Result<PathBuf> {
        facts
            .model(stage)
            .map(|m| m.model.clone())
            .ok_or_else(|| Error::Invalid(format!("stage {stage} has no model facts")))
    }

    /// Runs one step of a stage (`name`: the step's file name in `<stage>/steps/`) as
    /// `inheritune stage --spec`, and returns what it wrote.
    fn step(&self, at: &At, name: &str, job: Job) -> Result<Outcome> {
        let steps = at.dir.join("steps");
        std::fs::create_dir_all(&steps).map_err(|e| Error::file(&steps, e))?;
        let spec_path = steps.join(format!("{name}.json"));
        let result = steps.join(format!("{name}.result.json"));
        if result.exists() {
            std::fs::remove_file(&result).map_err(|e| Error::file(&result, e))?;
        }
        let spec = Spec {
            version: stage::VERSION,
            stage: at.stage.name.clone(),
            result: result.clone(),
            job,
        };
        spec.write(&spec_path).map_err(invalid)?;
        let log_path = at.dir.join("log.txt");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::file(&log_path, e))?;
        // The verb, then how it runs: the spec holds its arguments.
        let _ = writeln!(
            log,
            "$ inheritune {name}: inheritune stage --spec {}",
            spec_path.display()
        );
        eprintln!("[{}] {name}: {}", at.stage.name, spec_path.display());
        let mut cmd = Command::new(&self.exe);
        cmd.arg("stage")
            .arg("--spec")
            .arg(&spec_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let cuda: Vec<usize> = at
            .devices
            .iter()
            .filter_map(|d| match d {
                DeviceSpec::Cuda(i) => Some(*i),
                DeviceSpec::Cpu => None,
            })
            .collect();
        if !cuda.is_empty() {
            cmd.env("CUDA_VISIBLE_DEVICES", visible_devices(&cuda));
        } else if self.all_devices > 1 && std::env::var_os("INHERITUNE_THREADS").is_none() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cmd.env("INHERITUNE_THREADS", (cores / self.all_devices).max(1).to_string());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::file(&self.exe, format!("starting: {e}")))?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let log = std::sync::Mutex::new(log);
        let status = std::thread::scope(|s| {
            for pipe in [
                stdout.map(|o| Box::new(o) as Box<dyn Read + Send>),
                stderr.map(|e| Box::new(e) as _),
            ]
            .into_iter()
            .flatten()
            {
                let (log, stage) = (&log, &at.stage.name);
                s.spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(|l| l.ok()) {
                        if let Ok(mut log) = log.lock() {
                            let _ = writeln!(log, "{line}");
                        }
                        eprintln!("[{stage}] {line}");
                    }
                });
            }
            // SIGTERM on stop: a training child stops; its last checkpoint resumes it.
            supervise::wait_or_stop(&mut child, at.stop)
        })
        .map_err(|e| Error::file(&self.exe, e))?;
        match status {
            None => Err(Error::Stopped),
            Some(status) if !status.success() => Err(Error::Child {
                verb: name.to_string(),
                status: status.to_string(),
                log: log_path,
            }),
            Some(_) => Outcome::read(&result).map_err(invalid),
        }
    }

    /// Trains `config` in `<dir>/run` (resuming a partial run), from `init` when given.
    fn train(&self, at: &At, config: RunConfig, init: Option<&Path>) -> Result<ModelFacts> {
        let layers = match init {
            Some(i) => ModelConfig::from_file(&i.join("config.json"))?.n_layer(),
            None => config.model_config()?.n_layer(),
        };
        // The run config as a file beside the run, for whoever reads the stage's folder.
        let path = at.dir.join("config.toml");
        let text = toml::to_string(&config).map_err(|e| Error::file(&path, e))?;
        inheritune_fs::write_file(&path, text.as_bytes())?;
        let run = RunDir::new(at.dir.join("run"));
        let cuda = at.devices.iter().any(|d| d.is_cuda());
        let ranks = if cuda { at.devices.len() } else { self.ranks };
        let mut opts = train::Opts::new(run.root().to_path_buf(), at.device()).ranks((ranks > 1).then_some(ranks));
        opts.init = init.map(Path::to_path_buf);
        opts.resume = run.metrics().exists();
        let summary = match self.step(at, "train", Job::Train(TrainJob { config, opts }))? {
            Outcome::Trained(s) => s,
            other => return Err(Error::Invalid(format!("train: unexpected outcome {other:?}"))),
        };
        self.copy_tokenizer(&run.final_model())?;
        Ok(ModelFacts {
            model: run.final_model(),
            layers,
            final_val_loss: summary.final_val_loss,
            final_val_tokens: summary.final_val_tokens,
            steps: Some(summary.steps),
            run: Some(run.root().to_path_buf()),
        })
    }

    /// Trains with the recipe's shared schedule (`factor` times its steps).
    fn train_model(&self, at: &At, model: ModelSection, init: Option<&Path>, factor: u64) -> Result<ModelFacts> {
        let config = self.recipe.run_config(model, self.data_dir(), factor);
        self.train(at, config, init)
    }

    /// Puts the recipe's tokenizer next to a model, so analysis and eval find it.
    fn copy_tokenizer(&self, model: &Path) -> Result<()> {
        let files: Vec<(PathBuf, &str)> = match &self.recipe.data.tokenizer {
            TokenizerSpec::Gpt2 => vec![],
            TokenizerSpec::Bpe(_) => ["tokenizer.json", "tokenizer_config.json"]
                .map(|f| (self.run.join("tokenizer").join(f), f))
                .to_vec(),
            // A published tokenizer.json comes with the tokenizer_config.json beside it (BOS/EOS).
            TokenizerSpec::File(p) => vec![
                (p.clone(), "tokenizer.json"),
                (p.with_file_name("tokenizer_config.json"), "tokenizer_config.json"),
            ],
        };
        for (src, name) in files {
            if src.exists() && model.exists() {
                let bytes = std::fs::read(&src).map_err(|e| Error::file(&src, e))?;
                inheritune_fs::write_file(&model.join(name), &bytes)?;
            }
        }
        Ok(())
    }

    fn config_file(dir: &Path, config: &ModelConfig) -> Result<ModelSection> {
        let path = dir.join("model-config.json");
        let text = serde_json::to_string_pretty(&config.to_value()).map_err(|e| Error::file(&path, e))?;
        inheritune_fs::write_file(&path, text.as_bytes())?;
        Ok(section(&path))
    }

    /// A surgery into `<dir>/init` (kept when a resumed stage finds it complete), then training
    /// (by distillation from `teacher` when given). `op` builds the surgery's arguments for an
    /// output folder.
    fn surgery_then_heal(
        &self,
        at: &At,
        op: impl FnOnce(PathBuf) -> SurgeryCommand,
        teacher: Option<PathBuf>,
    ) -> Result<ModelFacts> {
        let init = self.surgery(at, op)?;
        let model = section(&init.join("config.json"));
        let config = match teacher {
            Some(teacher) => self.recipe.heal_run_config(model, self.data_dir(), teacher),
            None => self.recipe.run_config(model, self.data_dir(), 1),
        };
        self.train(at, config, Some(&init))
    }

    /// The surgery `op` into `<dir>/init`, unless a resumed stage finds it there (a surgery writes
    /// its folder atomically: present means complete).
    fn surgery(&self, at: &At, op: impl FnOnce(PathBuf) -> SurgeryCommand) -> Result<PathBuf> {
        let init = at.dir.join("init");
        if !init.join("config.json").exists() {
            let cpu = At { devices: &[], ..*at };
            self.step(&cpu, "surgery", Job::Surgery(op(init.clone())))?;
        }
        Ok(init)
    }

    /// With `[data] download`, fetches the corpus when an input is missing (`inheritune
    /// download`, into the manifest's folder), so the stage finds its inputs.
    fn ensure_inputs(&self, at: &At) -> Result<()> {
        let at = &At { devices: &[], ..*at };
        let d = &self.recipe.data;
        let Some(name) = &d.download else { return Ok(()) };
        if d.inputs.iter().all(|p| p.exists()) {
            return Ok(());
        }
        self.step(at, "download", Job::Download(download::Args::new(name.clone())))?;
        match d.inputs.iter().find(|p| !p.exists()) {
            Some(p) => Err(Error::Invalid(format!(
                "data.inputs {}: still missing after `inheritune download {name}` (is it under the manifest's local_dir?)",
                p.display()
            ))),
            None => Ok(()),
        }
    }

    fn tokenizer(&self, at: &At, vocab: usize) -> Result<StageFacts> {
        let at = &At { devices: &[], ..*at };
        self.ensure_inputs(at)?;
        let args = tokenizer::Args::new(self.recipe.data.inputs.clone(), vocab, at.dir.to_path_buf());
        self.step(at, "train-tokenizer", Job::TrainTokenizer(args))?;
        Ok(StageFacts::Tokenizer(TokenizerFacts {
            tokenizer: at.dir.join("tokenizer.json"),
        }))
    }

    fn data(&self, at: &At) -> Result<StageFacts> {
        let at = &At { devices: &[], ..*at };
        self.ensure_inputs(at)?;
        let d = &self.recipe.data;
        let tokenizer = match &d.tokenizer {
            TokenizerSpec::Gpt2 => None,
            TokenizerSpec::Bpe(_) => Some(self.run.join("tokenizer/tokenizer.json")),
            TokenizerSpec::File(p) => Some(p.clone()),
        };
        let args = prepare::Args {
            preset: d.preset,
            val_tokens: d.val_tokens,
            val_fraction: d.val_fraction,
            eot: d.eot,
            eot_token: d.eot_token.clone(),
            add_special_tokens: d.add_special_tokens,
            tokenizer,
            ..prepare::Args::new(d.inputs.clone(), at.dir.to_path_buf())
        };
        self.step(at, "prepare", Job::Prepare(args))?;
        Ok(StageFacts::Data(DataFacts {
            dir: at.dir.to_path_buf(),
        }))
    }

    fn reference(&self, at: &At) -> Result<StageFacts> {
        let config = self.recipe.reference_config()?;
        if let Some(ckpt) = &self.recipe.reference.checkpoint {
            let args = eval::LossArgs {
                seq_len: Some(self.recipe.train.section.seq_len),
                device: at.device(),
                ..eval::LossArgs::new(ckpt.clone(), self.data_dir())
            };
            let r = match self.step(at, "loss", Job::Loss(args))? {
                Outcome::Loss(r) => r,
                other => return Err(Error::Invalid(format!("loss: unexpected outcome {other:?}"))),
            };
            return Ok(StageFacts::Model(ModelFacts {
                model: ckpt.clone(),
                layers: config.n_layer(),
                final_val_loss: r.loss,
                final_val_tokens: r.tokens,
                steps: None,
                run: None,
            }));
        }
        let model = Self::config_file(at.dir, &config)?;
        Ok(StageFacts::Model(self.train_model(at, model, None, 1)?))
    }

    fn analyze(&self, at: &At, of: &str, facts: &Facts) -> Result<StageFacts> {
        let model = Self::model_of(facts, of)?;
        let an = &self.recipe.analysis;
        let loo = an.loo
            || self
                .recipe
                .inheritune
                .rules()
                .contains(&inheritune_analysis::depth::Rule::Loo);
        // Its own folder beside the stage's log, replaced whole when the stage reruns.
        let mut args = analyze::Args {
            overwrite: true,
            loo: loo && of == "reference",
            device: at.device(),
            ..analyze::Args::new(model.clone(), self.data_dir(), at.dir.join("analysis"))
        };
        args.windows.num_windows = an.windows;
        args.windows.window_len = an.window_len;
        let path = match self.step(at, "analyze", Job::Analyze(args))? {
            Outcome::Analyzed { analysis } => analysis,
            other => return Err(Error::Invalid(format!("analyze: unexpected outcome {other:?}"))),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e))?;
        let analysis: inheritune_analysis::Analysis = serde_json::from_str(&text).map_err(|e| Error::file(&path, e))?;
        Ok(StageFacts::Analysis(AnalysisFacts {
            model,
            analysis: path,
            n_layer: analysis.n_layer,
            lazy_strict: analysis.lazy_strict,
            lazy_relaxed: analysis.lazy_relaxed,
            first_lazy_depth: analysis.first_lazy_depth,
        }))
    }

    fn eval(&self, at: &At, of: &str, facts: &Facts) -> Result<StageFacts> {
        let model = Self::model_of(facts, of)?;
        let e = &self.recipe.eval;
        let data = e.data_dir.clone().unwrap_or_default();
        // The folders the tasks read; any missing one is fetched first with `[eval] download`.
        let missing = e.tasks.iter().any(|t| {
            inheritune_eval::tasks::Task::resolve(t)
                .map_or(true, |ts| ts.iter().any(|t| !data.join(&t.folder).is_dir()))
        });
        if e.download && missing {
            let args = download::Args {
                out: Some(data.clone()),
                tasks: e.tasks.clone(),
                ..download::Args::new("eval".into())
            };
            let cpu = At { devices: &[], ..*at };
            self.step(&cpu, "download", Job::Download(args))?;
        }
        let args = eval::TasksArgs {
            limit: e.limit,
            device: at.device(),
            ..eval::TasksArgs::new(model.clone(), e.tasks.clone(), data, at.dir.to_path_buf())
        };
        let results = match self.step(at, "eval", Job::Eval(args))? {
            Outcome::Evaluated { results } => results,
            other => return Err(Error::Invalid(format!("eval: unexpected outcome {other:?}"))),
        };
        Ok(StageFacts::Eval(EvalFacts { model, results }))
    }
}

impl Executor for Children<'_> {
    fn run(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        facts: &Facts,
        stop: &AtomicBool,
    ) -> Result<StageFacts> {
        let at = &At {
            stage,
            dir,
            devices,
            stop,
        };
        let reference = || Self::model_of(facts, "reference");
        let ic = &self.recipe.inheritune;
        // `[inheritune] heal = "distill"`: the targets learn from the reference.
        let teacher = || -> Result<Option<PathBuf>> {
            match ic.heal {
                Heal::Distill => Ok(Some(reference()?)),
                Heal::Train => Ok(None),
            }
        };
        let map = MapOpts::new(ic.map);
        let model = |f: ModelFacts| Ok(StageFacts::Model(f));
        match &stage.task {
            Task::Tokenizer { vocab } => self.tokenizer(at, *vocab),
            Task::Data => self.data(at),
            Task::Reference => self.reference(at),
            Task::Analyze { of } => self.analyze(at, of, facts),
            Task::Eval { of } => self.eval(at, of, facts),
            Task::Inheritune { layers, previous, .. } => {
                let r = reference()?;
                let op: Box<dyn FnOnce(PathBuf) -> SurgeryCommand> = match (previous, ic.growth) {
                    (Some(p), GrowMode::WarmAppend) => {
                        let trained = Self::model_of(facts, p)?;
                        Box::new(move |out| {
                            SurgeryCommand::Grow(surgery::GrowArgs {
                                add: ic.grow_by,
                                mode: GrowMode::WarmAppend,
                                ..surgery::GrowArgs::new(trained, r, out)
                            })
                        })
                    }
                    _ => Box::new(move |out| {
                        SurgeryCommand::Inherit(surgery::InheritArgs {
                            map,
                            ..surgery::InheritArgs::new(r, *layers, out)
                        })
                    }),
                };
                model(self.surgery_then_heal(at, op, teacher()?)?)
            }
            Task::Select { rule, layers } => {
                let analysis = facts
                    .analysis("analyze-reference")
                    .map(|a| a.analysis.clone())
                    .ok_or_else(|| Error::Invalid("stage analyze-reference has no analysis facts".into()))?;
                let r = reference()?;
                let op = move |out| {
                    SurgeryCommand::Inherit(surgery::InheritArgs {
                        map,
                        select: rule.clone(),
                        analysis: Some(analysis.parent().unwrap_or(Path::new(".")).to_path_buf()),
                        ..surgery::InheritArgs::new(r, *layers, out)
                    })
                };
                model(self.surgery_then_heal(at, op, teacher()?)?)
            }
            Task::ReferenceTrained => {
                let ckpt = reference()?;
                model(self.train_model(at, section(&ckpt.join("config.json")), Some(&ckpt), 1)?)
            }
            Task::Scratch { layers, factor } => {
                let config = self.recipe.reference_config()?.with_layers(*layers);
                let m = Self::config_file(dir, &config)?;
                model(self.train_model(at, m, None, *factor)?)
            }
            Task::HybridStack { layers } => {
                let r = reference()?;
                let op = |out| SurgeryCommand::HybridStack(surgery::HybridArgs::new(r, *layers, out));
                model(self.surgery_then_heal(at, op, None)?)
            }
            Task::HalfWidth => {
                // ⌊H/2⌋ heads for an odd count, METHOD.md's decision (GPT-2 XL: 12 of 25).
                let r = reference()?;
                let op = |out| {
                    SurgeryCommand::HalfWidth(surgery::HalfWidthArgs {
                        floor_heads: true,
                        ..surgery::HalfWidthArgs::new(r, out)
                    })
                };
                model(self.surgery_then_heal(at, op, None)?)
            }
            Task::DistillInit { layers } => {
                let r = reference()?;
                let op = |out| SurgeryCommand::DistillInit(surgery::DistillArgs::new(r, *layers, out));
                model(self.surgery_then_heal(at, op, None)?)
            }
            Task::Kd { layers, init } => {
                let teacher = reference()?;
                let (model_section, init_dir) = if *init {
                    let t = teacher.clone();
                    let op = |out| SurgeryCommand::DistillInit(surgery::DistillArgs::new(t, *layers, out));
                    let init_dir = self.surgery(at, op)?;
                    (section(&init_dir.join("config.json")), Some(init_dir))
                } else {
                    let config = self.recipe.reference_config()?.with_layers(*layers);
                    (Self::config_file(dir, &config)?, None)
                };
                let config = self.recipe.distill_run_config(model_section, self.data_dir(), teacher);
                model(self.train(at, config, init_dir.as_deref())?)
            }
            Task::Stack { of } => {
                let trained = Self::model_of(facts, of)?;
                let op = |out| SurgeryCommand::Stack(surgery::StackArgs::new(trained, out));
                model(self.surgery_then_heal(at, op, None)?)
            }
            Task::Report => {
                inheritune_recipe::report::write(self.recipe, dir, facts)?;
                Ok(StageFacts::Report(ReportFacts {
                    report: dir.join("report.md"),
                }))
            }
        }
    }

    fn devices_needed(&self, stage: &Stage, devices: &[DeviceSpec]) -> usize {
        if stage.task.trains() && devices.iter().all(|d| d.is_cuda()) {
            self.ranks
        } else {
            1
        }
    }
}

fn section(config: &Path) -> ModelSection {
    ModelSection {
        preset: None,
        config: Some(config.to_path_buf()),
        overrides: Default::default(),
    }
}

/// `CUDA_VISIBLE_DEVICES` for these device indices, which count within this process's own
/// visible set when it has one.
fn visible_devices(indices: &[usize]) -> String {
    let parent: Option<Vec<String>> = std::env::var("CUDA_VISIBLE_DEVICES").ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    indices
        .iter()
        .map(|&i| match &parent {
            Some(p) => p.get(i).cloned().unwrap_or_else(|| i.to_string()),
            None => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}
