//! Running the stage graph: ready stages (every dependency finished) start as devices free up,
//! finished ones are skipped, `--from` redoes a stage and everything that depends on it,
//! `--only` runs the stages it names (their dependencies must have finished), and with several
//! devices independent stages run at the same time, each on its own devices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use inheritune_model::DeviceSpec;

use crate::error::{Error, Result};
use crate::facts::{self, Facts, StageFacts};
use crate::stages::{is_stage_name, Stage, PATTERNS};

/// Which stages to (re)run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Redo the stages this names (a name or a prefix) and every stage that depends on them.
    pub from: Option<String>,
    /// Run only the stages this names; the others must have finished when they are needed.
    pub only: Option<String>,
}

impl Selection {
    /// Checks the names against the recipe's stage patterns.
    ///
    /// # Errors
    /// A name that no stage can have, or both options at once.
    pub fn check(&self) -> Result<()> {
        if self.from.is_some() && self.only.is_some() {
            return Err(Error::Invalid("--from and --only cannot be combined".into()));
        }
        for (flag, name) in [("--from", &self.from), ("--only", &self.only)] {
            if let Some(name) = name {
                if !is_stage_name(name) {
                    return Err(Error::Invalid(format!(
                        "{flag} {name:?}: not a stage of the recipe (stages: {}; a prefix such as `inheritune` names all its rounds)",
                        PATTERNS.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    fn names(pattern: &Option<String>, stage: &str) -> bool {
        pattern.as_deref().is_some_and(|p| stage.starts_with(p))
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs one stage: the part the graph leaves to its user (child processes, or a test's fake).
pub trait Executor: Sync {
    /// Runs `stage` in its folder `dir` on `devices`, with the facts of its dependencies (and
    /// every other finished stage) in `facts`. It should return soon after `stop` is set.
    ///
    /// # Errors
    /// Whatever the stage hits.
    fn run(
        &self,
        stage: &Stage,
        dir: &Path,
        devices: &[DeviceSpec],
        facts: &Facts,
        stop: &AtomicBool,
    ) -> Result<StageFacts>;

    /// Devices a stage needs at once (training stages on several GPUs need one per rank).
    fn devices_needed(&self, stage: &Stage, devices: &[DeviceSpec]) -> usize {
        let _ = (stage, devices);
        1
    }
}

/// What happened to each stage in one run of the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Every finished stage's facts (skipped or run).
    pub facts: Facts,
    /// Stages run in this invocation, in the order they finished.
    pub ran: Vec<String>,
    /// Stages found finished and skipped.
    pub skipped: Vec<String>,
}

/// The run: its folder, the devices stages share, and a line printer for progress.
pub struct Graph<'a> {
    /// The run folder; stage `s` lives in `<run>/<s>`.
    pub run: PathBuf,
    /// Devices (one stage at a time when there is one).
    pub devices: Vec<DeviceSpec>,
    /// Which stages.
    pub selection: Selection,
    /// Progress lines (`[recipe] ...`).
    pub log: &'a (dyn Fn(&str) + Sync),
}

impl Graph<'_> {
    /// Runs the graph that `plan` describes given the finished stages' facts, until no stage
    /// is left that can run.
    ///
    /// # Errors
    /// An invalid selection, a stage that needs more devices than there are, a stage that
    /// needs an unfinished one under `--only`, or the first stage that fails (the others
    /// running then are stopped, and what they finished is kept).
    pub fn run(&self, plan: &dyn Fn(&Facts) -> Vec<Stage>, exec: &dyn Executor) -> Result<Outcome> {
        self.selection.check()?;
        if self.devices.is_empty() {
            return Err(Error::Invalid("no devices to run on".into()));
        }
        let mut out = Outcome::default();
        // Stages settled in this invocation: finished (with facts) or, under --only, left alone.
        let mut settled: BTreeSet<String> = BTreeSet::new();
        let mut rerun: BTreeSet<String> = BTreeSet::new();
        let mut left_alone: BTreeSet<String> = BTreeSet::new();
        let mut running: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut free = vec![true; self.devices.len()];
        let mut matched = false;
        let mut failure: Option<Error> = None;
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(String, Result<StageFacts>)>();
        std::thread::scope(|scope| -> Result<()> {
            // Whatever ends this closure (an error included) stops the stages still running.
            let _stop_on_exit = StopOnDrop(&stop);
            loop {
                let stages = plan(&out.facts);
                let mut progressed = false;
                let mut ready: Vec<&Stage> = Vec::new();
                for stage in &stages {
                    if settled.contains(&stage.name) || running.contains_key(&stage.name) {
                        continue;
                    }
                    // Decide only once every dependency has settled (a redone one makes
                    // this one stale).
                    if stage.deps.iter().any(|d| !settled.contains(d)) {
                        continue;
                    }
                    let dir = self.run.join(&stage.name);
                    let named_from = Selection::names(&self.selection.from, &stage.name);
                    let named_only = Selection::names(&self.selection.only, &stage.name);
                    matched |= named_from || named_only;
                    let selected = self.selection.only.is_none() || named_only;
                    let redo = named_from || stage.deps.iter().any(|d| rerun.contains(d));
                    if !selected || (!redo && !stage.always) {
                        if let Some(f) = facts::read(&dir)? {
                            (self.log)(&format!("{}: done", stage.name));
                            out.facts.0.insert(stage.name.clone(), f);
                            out.skipped.push(stage.name.clone());
                            settled.insert(stage.name.clone());
                            progressed = true;
                            continue;
                        }
                    }
                    let missing: Vec<&String> = stage.deps.iter().filter(|d| !out.facts.has(d)).collect();
                    if !selected || (!missing.is_empty() && !stage.always) {
                        // Left alone (--only), or blocked by a failed or left-alone stage.
                        if let Some(d) = missing.iter().find(|d| left_alone.contains(d.as_str())) {
                            if selected {
                                return Err(Error::Invalid(format!(
                                    "stage {} needs {d}, which has not finished (run it first, or leave out --only)",
                                    stage.name
                                )));
                            }
                        }
                        if !selected {
                            left_alone.insert(stage.name.clone());
                        }
                        settled.insert(stage.name.clone());
                        progressed = true;
                        continue;
                    }
                    if redo && dir.exists() {
                        std::fs::remove_dir_all(&dir).map_err(|e| Error::file(&dir, e))?;
                    }
                    ready.push(stage);
                }
                if failure.is_none() {
                    for stage in ready {
                        let need = exec.devices_needed(stage, &self.devices);
                        if need > self.devices.len() {
                            return Err(Error::Invalid(format!(
                                "stage {} needs {need} devices at once, but {} were given (--devices)",
                                stage.name,
                                self.devices.len()
                            )));
                        }
                        let slots: Vec<usize> = (0..free.len()).filter(|&i| free[i]).take(need).collect();
                        if slots.len() < need {
                            continue;
                        }
                        for &i in &slots {
                            free[i] = false;
                        }
                        let devices: Vec<DeviceSpec> = slots.iter().map(|&i| self.devices[i]).collect();
                        let shown: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
                        (self.log)(&format!("{}: running on {}", stage.name, shown.join(",")));
                        running.insert(stage.name.clone(), slots);
                        let (tx, stop, facts) = (tx.clone(), &stop, out.facts.clone());
                        let dir = self.run.join(&stage.name);
                        let stage = stage.clone();
                        scope.spawn(move || {
                            let began = std::time::Instant::now();
                            let result = std::fs::create_dir_all(&dir)
                                .map_err(|e| Error::file(&dir, e))
                                .and_then(|_| exec.run(&stage, &dir, &devices, &facts, stop))
                                .and_then(|f| {
                                    facts::write_seconds(&dir, began.elapsed().as_secs_f64())?;
                                    facts::write(&dir, &f).map(|_| f)
                                });
                            let _ = tx.send((stage.name.clone(), result));
                        });
                    }
                }
                if progressed {
                    continue;
                }
                if running.is_empty() {
                    break;
                }
                let Ok((name, result)) = rx.recv() else { break };
                for i in running.remove(&name).unwrap_or_default() {
                    free[i] = true;
                }
                settled.insert(name.clone());
                match result {
                    Ok(f) => {
                        (self.log)(&format!("{name}: finished"));
                        out.facts.0.insert(name.clone(), f);
                        rerun.insert(name.clone());
                        out.ran.push(name);
                    }
                    Err(e) => {
                        if failure.is_none() {
                            stop.store(true, Ordering::SeqCst);
                            failure = Some(Error::Stage {
                                stage: name,
                                source: Box::new(e),
                            });
                        }
                    }
                }
            }
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if !matched {
            if let Some(p) = self.selection.from.as_ref().or(self.selection.only.as_ref()) {
                return Err(Error::Invalid(format!(
                    "{p:?} names no stage of this recipe (its stages: {})",
                    plan(&out.facts)
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::facts::DataFacts;
    use crate::stages::Task;

    /// One stage's run: name, start, end, devices.
    type Ran = (String, Instant, Instant, Vec<DeviceSpec>);

    /// Runs every stage by sleeping, recording when and where it ran; `fail` names a stage
    /// that fails.
    #[derive(Default)]
    struct Fake {
        log: Mutex<Vec<Ran>>,
        fail: Option<&'static str>,
        sleep_ms: u64,
    }

    impl Executor for Fake {
        fn run(
            &self,
            stage: &Stage,
            dir: &Path,
            devices: &[DeviceSpec],
            facts: &Facts,
            stop: &AtomicBool,
        ) -> Result<StageFacts> {
            for d in &stage.deps {
                assert!(facts.has(d), "{} ran before its dependency {d}", stage.name);
            }
            let began = Instant::now();
            while began.elapsed() < Duration::from_millis(self.sleep_ms) {
                if stop.load(Ordering::SeqCst) {
                    return Err(Error::Stopped);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.fail == Some(stage.name.as_str()) {
                return Err(Error::Invalid("boom".into()));
            }
            std::fs::write(dir.join("out"), &stage.name).unwrap();
            self.log
                .lock()
                .unwrap()
                .push((stage.name.clone(), began, Instant::now(), devices.to_vec()));
            Ok(StageFacts::Data(DataFacts { dir: dir.to_path_buf() }))
        }
    }

    fn stage(name: &str, deps: &[&str]) -> Stage {
        Stage {
            name: name.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            task: Task::Data,
            always: false,
        }
    }

    /// data → reference → inheritune-l2 → (analyze-target once it finished); data → scratch-l2
    /// (independent of the reference); report after everything.
    fn plan(facts: &Facts) -> Vec<Stage> {
        let mut s = vec![
            stage("data", &[]),
            stage("reference", &["data"]),
            stage("scratch-l2", &["data"]),
            stage("inheritune-l2", &["reference"]),
        ];
        if facts.has("inheritune-l2") {
            s.push(stage("analyze-target", &["inheritune-l2"]));
        }
        let mut report = stage("report", &[]);
        report.deps = s.iter().map(|s| s.name.clone()).collect();
        report.always = true;
        s.push(report);
        s
    }

    fn graph<'a>(run: &Path, devices: usize, from: Option<&str>, only: Option<&str>) -> Graph<'a> {
        Graph {
            run: run.to_path_buf(),
            devices: vec![DeviceSpec::Cpu; devices],
            selection: Selection {
                from: from.map(String::from),
                only: only.map(String::from),
            },
            log: &|_| {},
        }
    }

    fn ran(o: &Outcome) -> Vec<&str> {
        let mut v: Vec<&str> = o.ran.iter().map(String::as_str).collect();
        v.sort();
        v
    }

    #[test]
    fn runs_in_dependency_order_then_skips() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let o = graph(dir.path(), 1, None, None).run(&plan, &fake).unwrap();
        assert_eq!(o.ran.len(), 6, "{:?}", o.ran);
        assert_eq!(o.ran.last().map(String::as_str), Some("report"));
        let again = graph(dir.path(), 1, None, None).run(&plan, &fake).unwrap();
        assert_eq!(ran(&again), ["report"], "only the report reruns");
        assert_eq!(again.skipped.len(), 5);
    }

    #[test]
    fn from_redoes_the_stage_and_its_dependents() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        graph(dir.path(), 1, None, None).run(&plan, &fake).unwrap();
        let o = graph(dir.path(), 1, Some("reference"), None).run(&plan, &fake).unwrap();
        assert_eq!(ran(&o), ["analyze-target", "inheritune-l2", "reference", "report"]);
        assert!(o.skipped.contains(&"scratch-l2".to_string()) && o.skipped.contains(&"data".to_string()));
    }

    #[test]
    fn only_runs_the_named_stages_and_needs_their_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let e = graph(dir.path(), 1, None, Some("reference"))
            .run(&plan, &fake)
            .unwrap_err();
        assert!(e.to_string().contains("stage reference needs data"), "{e}");
        graph(dir.path(), 1, None, Some("data")).run(&plan, &fake).unwrap();
        let o = graph(dir.path(), 1, None, Some("scratch")).run(&plan, &fake).unwrap();
        assert_eq!(ran(&o), ["scratch-l2"]);
        assert!(!dir.path().join("reference").exists(), "reference left alone");
    }

    #[test]
    fn unknown_or_absent_stages_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let e = graph(dir.path(), 1, None, Some("refrence"))
            .run(&plan, &fake)
            .unwrap_err();
        assert!(e.to_string().contains("not a stage of the recipe"), "{e}");
        let e = graph(dir.path(), 1, Some("hybrid-stack"), None)
            .run(&plan, &fake)
            .unwrap_err();
        assert!(e.to_string().contains("names no stage of this recipe"), "{e}");
        let both = Selection {
            from: Some("data".into()),
            only: Some("data".into()),
        };
        assert!(both.check().is_err());
    }

    #[test]
    fn independent_stages_run_at_once_on_disjoint_devices() {
        let overlap = |devices: usize| {
            let dir = tempfile::tempdir().unwrap();
            let fake = Fake {
                sleep_ms: 150,
                ..Fake::default()
            };
            let mut g = graph(dir.path(), devices, None, None);
            g.devices = (0..devices).map(DeviceSpec::Cuda).collect();
            g.run(&plan, &fake).unwrap();
            let log = fake.log.into_inner().unwrap();
            let at = |n: &str| log.iter().find(|l| l.0 == n).unwrap().clone();
            let (r, s) = (at("reference"), at("scratch-l2"));
            assert_ne!(
                r.3,
                s.3.clone().into_iter().chain([DeviceSpec::Cpu]).collect::<Vec<_>>()
            );
            (r.1 < s.2 && s.1 < r.2, r.3 != s.3)
        };
        assert_eq!(
            overlap(2),
            (true, true),
            "two devices: reference and scratch together, apart"
        );
        assert!(!overlap(1).0, "one device: one stage at a time");
    }

    #[test]
    fn a_failure_stops_the_others_and_keeps_what_finished() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake {
            fail: Some("reference"),
            sleep_ms: 100,
            ..Fake::default()
        };
        let e = graph(dir.path(), 2, None, None).run(&plan, &fake).unwrap_err();
        assert!(matches!(&e, Error::Stage { stage, .. } if stage == "reference"), "{e}");
        assert!(dir.path().join("data/DONE").exists());
        assert!(!dir.path().join("inheritune-l2").exists());
        assert!(!dir.path().join("report/DONE").exists());
    }

    #[test]
    fn each_stage_records_its_wall_time() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake {
            sleep_ms: 50,
            ..Fake::default()
        };
        graph(dir.path(), 1, None, None).run(&plan, &fake).unwrap();
        let data = facts::seconds(&dir.path().join("data")).expect("data/time.json");
        assert!((0.05..60.0).contains(&data), "{data}");
        assert!(facts::seconds(&dir.path().join("nowhere")).is_none());
    }
}
