//! The stages as child `inheritune` processes (libtorch isolated per stage, every training stage
//! resumable): one function per stage, each returning its typed facts. A child's output goes to
//! `<run>/<stage>/log.txt` and, prefixed with the stage's name, to this process's stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use inheritune_model::{DeviceSpec, ModelConfig};
use inheritune_train::config::ModelSection;

use crate::config::{Growth, Recipe, TokenizerSpec};
use crate::error::{Error, Result};
use crate::facts::{AnalysisFacts, DataFacts, EvalFacts, Facts, ModelFacts, ReportFacts, StageFacts, TokenizerFacts};
use crate::graph::Executor;
use crate::stages::{Stage, Task};

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

impl Children<'_> {
    fn reference_config(&self) -> Result<ModelConfig> {
        self.recipe.reference_config()
    }

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

    /// Runs `inheritune <args>` for a stage; returns its stdout.
    fn inheritune(
        &self,
        stage: &str,
        dir: &Path,
        devices: &[DeviceSpec],
        args: &[String],
        stop: &AtomicBool,
    ) -> Result<String> {
        let log_path = dir.join("log.txt");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::file(&log_path, e))?;
        let shown = args.join(" ");
        let _ = writeln!(log, "$ inheritune {shown}");
        eprintln!("[{stage}] inheritune {shown}");
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let cuda: Vec<usize> = devices
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
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out = std::thread::scope(|s| -> Result<String> {
            let reader = s.spawn(move || {
                let mut text = String::new();
                let _ = stdout.read_to_string(&mut text);
                text
            });
            let name = stage.to_string();
            let echo = s.spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    let _ = writeln!(log, "{line}");
                    eprintln!("[{name}] {line}");
                }
            });
            let status = loop {
                if let Some(status) = child.try_wait().map_err(|e| Error::file(&self.exe, e))? {
                    break status;
                }
                if stop.load(Ordering::SeqCst) {
                    // SIGTERM: a training child stops; its last checkpoint resumes it.
                    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                    let _ = child.wait();
                    return Err(Error::Stopped);
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let _ = echo.join();
            let text = reader.join().unwrap_or_default();
            if !status.success() {
                return Err(Error::Child {
                    verb: args.first().cloned().unwrap_or_default(),
                    status: status.to_string(),
                    log: log_path.clone(),
                });
            }
            Ok(text)
        })?;
        Ok(out)
    }

    fn device_args(&self, devices: &[DeviceSpec], trains: bool) -> Vec<String> {
        let cuda = devices.iter().any(|d| d.is_cuda());
        let mut a = vec!["--device".to_string(), if cuda { "cuda".into() } else { "cpu".into() }];
        let ranks = if cuda { devices.len() } else { self.ranks };
        if trains && ranks > 1 {
            a.extend(["--nproc".to_string(), ranks.to_string()]);
        }
        a
    }

    /// Writes a training stage's run config and trains (resuming a partial run).
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        stop: &AtomicBool,
        model: ModelSection,
        init: Option<&Path>,
        factor: u64,
    ) -> Result<ModelFacts> {
        let config = self.recipe.run_config(model, self.data_dir(), factor);
        self.train_config(stage, dir, devices, stop, config, init)
    }

    /// Writes `config` as a training stage's run config and trains (resuming a partial run).
    fn train_config(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        stop: &AtomicBool,
        config: inheritune_train::RunConfig,
        init: Option<&Path>,
    ) -> Result<ModelFacts> {
        let layers = match init {
            Some(i) => ModelConfig::from_file(&i.join("config.json"))?.n_layer(),
            None => config.model_config()?.n_layer(),
        };
        let path = dir.join("config.toml");
        let text = toml::to_string(&config).map_err(|e| Error::file(&path, e))?;
        inheritune_fs::write_file(&path, text.as_bytes())?;
        let run = dir.join("run");
        let mut args = vec![
            "train".to_string(),
            "--config".into(),
            s(&path),
            "--run".into(),
            s(&run),
        ];
        args.extend(self.device_args(devices, true));
        if let Some(i) = init {
            args.extend(["--init".to_string(), s(i)]);
        }
        if run.join("metrics.jsonl").exists() {
            args.push("--resume".into());
        }
        let printed = self.inheritune(&stage.name, dir, devices, &args, stop)?;
        let last = printed.trim().lines().last().unwrap_or_default();
        let summary: inheritune_train::Summary = serde_json::from_str(last)
            .map_err(|e| Error::file(dir.join("log.txt"), format!("the summary train printed: {e}")))?;
        self.copy_tokenizer(&run.join("final"))?;
        Ok(ModelFacts {
            model: run.join("final"),
            layers,
            final_val_loss: summary.final_val_loss,
            final_val_tokens: summary.final_val_tokens,
            steps: Some(summary.steps),
            run: Some(run),
        })
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
    /// (by distillation from `teacher` when given).
    fn surgery_then_train(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        stop: &AtomicBool,
        surgery: Vec<String>,
    ) -> Result<ModelFacts> {
        self.surgery_then_heal(stage, dir, devices, stop, surgery, None)
    }

    fn surgery_then_heal(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        stop: &AtomicBool,
        mut surgery: Vec<String>,
        teacher: Option<PathBuf>,
    ) -> Result<ModelFacts> {
        let init = dir.join("init");
        // The surgery writes its folder atomically: present means complete.
        if !init.join("config.json").exists() {
            surgery.extend(["--out".to_string(), s(&init)]);
            self.inheritune(&stage.name, dir, &[], &surgery, stop)?;
        }
        if let Some(teacher) = teacher {
            let config = self
                .recipe
                .heal_run_config(section(&init.join("config.json")), self.data_dir(), teacher);
            return self.train_config(stage, dir, devices, stop, config, Some(&init));
        }
        self.train(
            stage,
            dir,
            devices,
            stop,
            section(&init.join("config.json")),
            Some(&init),
            1,
        )
    }

    /// With `[data] download`, fetches the corpus when an input is missing (`inheritune
    /// download`, into the manifest's folder), so the stage finds its inputs.
    fn ensure_inputs(&self, stage: &Stage, dir: &Path, stop: &AtomicBool) -> Result<()> {
        let d = &self.recipe.data;
        let Some(name) = &d.download else { return Ok(()) };
        if d.inputs.iter().all(|p| p.exists()) {
            return Ok(());
        }
        self.inheritune(&stage.name, dir, &[], &["download".to_string(), name.clone()], stop)?;
        match d.inputs.iter().find(|p| !p.exists()) {
            Some(p) => Err(Error::Invalid(format!(
                "data.inputs {}: still missing after `inheritune download {name}` (is it under the manifest's local_dir?)",
                p.display()
            ))),
            None => Ok(()),
        }
    }

    fn tokenizer(&self, stage: &Stage, dir: &Path, vocab: usize, stop: &AtomicBool) -> Result<StageFacts> {
        self.ensure_inputs(stage, dir, stop)?;
        let mut a = vec!["train-tokenizer".to_string(), "--vocab-size".into(), vocab.to_string()];
        a.extend(["--out".to_string(), s(dir), "--text".into()]);
        a.extend(self.recipe.data.inputs.iter().map(|p| s(p)));
        self.inheritune(&stage.name, dir, &[], &a, stop)?;
        Ok(StageFacts::Tokenizer(TokenizerFacts {
            tokenizer: dir.join("tokenizer.json"),
        }))
    }

    fn data(&self, stage: &Stage, dir: &Path, stop: &AtomicBool) -> Result<StageFacts> {
        self.ensure_inputs(stage, dir, stop)?;
        let d = &self.recipe.data;
        let mut a = vec![
            "prepare".to_string(),
            "--out".into(),
            s(dir),
            "--preset".into(),
            d.preset.clone(),
        ];
        if let Some(v) = d.val_tokens {
            a.extend(["--val-tokens".into(), v.to_string()]);
        }
        if let Some(v) = d.val_fraction {
            a.extend(["--val-fraction".into(), v.to_string()]);
        }
        if let Some(e) = d.eot {
            a.extend(["--eot".into(), e.arg().into()]);
        }
        if let Some(t) = &d.eot_token {
            a.extend(["--eot-token".into(), t.clone()]);
        }
        if let Some(v) = d.add_special_tokens {
            a.push(format!("--add-special-tokens={v}"));
        }
        match &d.tokenizer {
            TokenizerSpec::Gpt2 => {}
            TokenizerSpec::Bpe(_) => a.extend(["--tokenizer".into(), s(&self.run.join("tokenizer/tokenizer.json"))]),
            TokenizerSpec::File(p) => a.extend(["--tokenizer".into(), s(p)]),
        }
        a.push("--text".into());
        a.extend(d.inputs.iter().map(|p| s(p)));
        self.inheritune(&stage.name, dir, &[], &a, stop)?;
        Ok(StageFacts::Data(DataFacts { dir: dir.to_path_buf() }))
    }

    fn reference(&self, stage: &Stage, dir: &Path, devices: &[DeviceSpec], stop: &AtomicBool) -> Result<StageFacts> {
        let config = self.reference_config()?;
        if let Some(ckpt) = &self.recipe.reference.checkpoint {
            let seq = self.recipe.train.section.seq_len.to_string();
            let mut a = vec!["eval".to_string(), "loss".into(), "--model".into(), s(ckpt)];
            a.extend(["--data".into(), s(&self.data_dir()), "--seq-len".into(), seq]);
            a.extend(self.device_args(devices, false));
            let printed = self.inheritune(&stage.name, dir, devices, &a, stop)?;
            let r: inheritune_train::val::LossReport = serde_json::from_str(printed.trim())
                .map_err(|e| Error::file(dir.join("log.txt"), format!("the loss eval printed: {e}")))?;
            return Ok(StageFacts::Model(ModelFacts {
                model: ckpt.clone(),
                layers: config.n_layer(),
                final_val_loss: r.loss,
                final_val_tokens: r.tokens,
                steps: None,
                run: None,
            }));
        }
        let model = Self::config_file(dir, &config)?;
        Ok(StageFacts::Model(
            self.train(stage, dir, devices, stop, model, None, 1)?,
        ))
    }

    fn analyze(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        of: &str,
        facts: &Facts,
        stop: &AtomicBool,
    ) -> Result<StageFacts> {
        let model = Self::model_of(facts, of)?;
        let an = &self.recipe.analysis;
        let mut a = vec![
            "analyze".to_string(),
            "--model".into(),
            s(&model),
            "--data".into(),
            s(&self.data_dir()),
        ];
        // Its own folder beside the stage's log, replaced whole when the stage reruns.
        let out = dir.join("analysis");
        a.extend(["--out".into(), s(&out), "--overwrite".into()]);
        a.extend(["--num-windows".into(), an.windows.to_string()]);
        a.extend(["--window-len".into(), an.window_len.to_string()]);
        let loo = an.loo
            || self
                .recipe
                .inheritune
                .rules()
                .contains(&inheritune_analysis::depth::Rule::Loo);
        if loo && of == "reference" {
            a.push("--loo".into());
        }
        a.extend(self.device_args(devices, false));
        self.inheritune(&stage.name, dir, devices, &a, stop)?;
        let path = out.join("analysis.json");
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

    fn eval(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        of: &str,
        facts: &Facts,
        stop: &AtomicBool,
    ) -> Result<StageFacts> {
        let model = Self::model_of(facts, of)?;
        let e = &self.recipe.eval;
        let data = e.data_dir.clone().unwrap_or_default();
        // The folders the tasks read; any missing one is fetched first with `[eval] download`.
        let missing = e.tasks.iter().any(|t| {
            inheritune_eval::tasks::Task::resolve(t)
                .map_or(true, |ts| ts.iter().any(|t| !data.join(&t.folder).is_dir()))
        });
        if e.download && missing {
            let a = ["download", "eval", "--tasks", &e.tasks.join(","), "--out", &s(&data)].map(String::from);
            self.inheritune(&stage.name, dir, &[], &a, stop)?;
        }
        let mut a = vec![
            "eval".to_string(),
            "--model".into(),
            s(&model),
            "--tasks".into(),
            e.tasks.join(","),
        ];
        a.extend(["--data-dir".into(), s(&data), "--out".into(), s(dir)]);
        a.extend(self.device_args(devices, false));
        if let Some(l) = e.limit {
            a.extend(["--limit".into(), l.to_string()]);
        }
        self.inheritune(&stage.name, dir, devices, &a, stop)?;
        Ok(StageFacts::Eval(EvalFacts {
            model,
            results: dir.join("results.json"),
        }))
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
        let reference = || Self::model_of(facts, "reference");
        let ic = &self.recipe.inheritune;
        // `[inheritune] heal = "distill"`: the targets learn from the reference.
        let teacher = || -> Result<Option<PathBuf>> {
            match ic.heal {
                crate::config::Heal::Distill => Ok(Some(reference()?)),
                crate::config::Heal::Train => Ok(None),
            }
        };
        let model = |f: ModelFacts| Ok(StageFacts::Model(f));
        match &stage.task {
            Task::Tokenizer { vocab } => self.tokenizer(stage, dir, *vocab, stop),
            Task::Data => self.data(stage, dir, stop),
            Task::Reference => self.reference(stage, dir, devices, stop),
            Task::Analyze { of } => self.analyze(stage, dir, devices, of, facts, stop),
            Task::Eval { of } => self.eval(stage, dir, devices, of, facts, stop),
            Task::Inheritune { layers, previous, .. } => {
                let r = s(&reference()?);
                let argv = match (previous, ic.growth) {
                    (Some(p), Growth::WarmAppend) => vec![
                        "surgery".to_string(),
                        "grow".into(),
                        "--model".into(),
                        s(&Self::model_of(facts, p)?),
                        "--reference".into(),
                        r,
                        "--add".into(),
                        ic.grow_by.to_string(),
                        "--mode".into(),
                        "warm-append".into(),
                    ],
                    _ => vec![
                        "surgery".to_string(),
                        "inherit".into(),
                        "--model".into(),
                        r,
                        "--layers".into(),
                        layers.to_string(),
                        "--map".into(),
                        ic.map.arg().into(),
                    ],
                };
                model(self.surgery_then_heal(stage, dir, devices, stop, argv, teacher()?)?)
            }
            Task::Select { rule, layers } => {
                let analysis = facts
                    .analysis("analyze-reference")
                    .map(|a| a.analysis.clone())
                    .ok_or_else(|| Error::Invalid("stage analyze-reference has no analysis facts".into()))?;
                let argv = [
                    "surgery",
                    "inherit",
                    "--model",
                    &s(&reference()?),
                    "--layers",
                    &layers.to_string(),
                    "--map",
                    ic.map.arg(),
                    "--select",
                    rule,
                    "--analysis",
                    &s(analysis.parent().unwrap_or(Path::new("."))),
                ];
                let argv = argv.map(String::from).to_vec();
                model(self.surgery_then_heal(stage, dir, devices, stop, argv, teacher()?)?)
            }
            Task::ReferenceTrained => {
                let ckpt = reference()?;
                model(self.train(
                    stage,
                    dir,
                    devices,
                    stop,
                    section(&ckpt.join("config.json")),
                    Some(&ckpt),
                    1,
                )?)
            }
            Task::Scratch { layers, factor } => {
                let config = self.reference_config()?.with_layers(*layers);
                let m = Self::config_file(dir, &config)?;
                model(self.train(stage, dir, devices, stop, m, None, *factor)?)
            }
            Task::HybridStack { layers } => {
                let argv = [
                    "surgery",
                    "hybrid-stack",
                    "--model",
                    &s(&reference()?),
                    "--layers",
                    &layers.to_string(),
                ];
                model(self.surgery_then_train(stage, dir, devices, stop, argv.map(String::from).to_vec())?)
            }
            Task::HalfWidth => {
                // ⌊H/2⌋ heads for an odd count, METHOD.md's decision (GPT-2 XL: 12 of 25).
                let argv = ["surgery", "half-width", "--model", &s(&reference()?), "--floor-heads"];
                model(self.surgery_then_train(stage, dir, devices, stop, argv.map(String::from).to_vec())?)
            }
            Task::DistillInit { layers } => {
                let argv = [
                    "surgery",
                    "distill-init",
                    "--model",
                    &s(&reference()?),
                    "--layers",
                    &layers.to_string(),
                ];
                model(self.surgery_then_train(stage, dir, devices, stop, argv.map(String::from).to_vec())?)
            }
            Task::Kd { layers, init } => {
                let teacher = reference()?;
                let (model_section, init_dir) = if *init {
                    let init_dir = dir.join("init");
                    if !init_dir.join("config.json").exists() {
                        let argv = [
                            "surgery",
                            "distill-init",
                            "--model",
                            &s(&teacher),
                            "--layers",
                            &layers.to_string(),
                            "--out",
                            &s(&init_dir),
                        ];
                        self.inheritune(&stage.name, dir, &[], &argv.map(String::from), stop)?;
                    }
                    (section(&init_dir.join("config.json")), Some(init_dir))
                } else {
                    (
                        Self::config_file(dir, &self.reference_config()?.with_layers(*layers))?,
                        None,
                    )
                };
                let config = self.recipe.distill_run_config(model_section, self.data_dir(), teacher);
                model(self.train_config(stage, dir, devices, stop, config, init_dir.as_deref())?)
            }
            Task::Stack { of } => {
                let argv = ["surgery", "stack", "--model", &s(&Self::model_of(facts, of)?)];
                model(self.surgery_then_train(stage, dir, devices, stop, argv.map(String::from).to_vec())?)
            }
            Task::Report => {
                crate::report::write(self.recipe, dir, facts)?;
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

fn s(p: &Path) -> String {
    p.display().to_string()
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
