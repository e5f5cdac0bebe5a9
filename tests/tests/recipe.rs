//! The whole recipe end to end on a reduced tiny recipe (the bundled corpus, a 4-layer 32-wide
//! reference, a 512-token BPE, 30 steps per run): tokenizer, data, reference, analysis, two
//! Inheritune rounds (the tolerance forces growth 2 → 4 layers), scratch baselines at 1× and 2×,
//! target analysis and the report. The run is killed with SIGKILL in the middle of a training
//! stage and rerun: finished stages are skipped, the interrupted one resumes from its
//! checkpoint (every step logged once), and the report's numbers equal the metrics files. Every
//! training stage runs data parallel on 2 Gloo ranks (`--nproc 2`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `inheritune` binary `cargo test --workspace` builds next to this test (built here if absent).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("inheritune");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .current_dir(root())
            .args(["build", "-p", "inheritune-cli"])
            .status()
            .expect("cargo build");
        assert!(ok.success(), "building the inheritune binary failed");
    }
    bin
}

fn recipe(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("e2e.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "e2e"
description = "reduced tiny recipe for the end-to-end test"
notes = "A 4-layer, 32-wide reference: too small to show anything."
[data]
inputs = ["{corpus}"]
val_fraction = 0.05
tokenizer = "bpe-512"
[reference.model]
preset = "gpt2-tiny"
[reference.model.overrides]
vocab_size = 512
n_positions = 32
n_embd = 32
n_head = 2
n_layer = 4
bos_token_id = 0
eos_token_id = 0
[train]
micro_batch = 4
seq_len = 32
max_steps = 30
lr = 3e-3
min_lr = 3e-4
warmup_steps = 5
eval_interval = 10
eval_iters = 2
keep_last = 1
[inheritune]
tolerance = -100.0
max_rounds = 3
[baselines]
scratch = true
scratch_2x = true
[analysis]
windows = 8
window_len = 32
"#,
            corpus = root().join("datasets/sotu/sotu.parquet").display()
        ),
    )?;
    Ok(path)
}

fn start(recipe: &Path, run: &Path) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    Command::new(binary())
        .arg("recipe")
        .arg("--config")
        .arg(recipe)
        .arg("--run")
        .arg(run)
        .args(["--nproc", "2"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
}

/// Runs the recipe to the end (stdout dropped, stderr shown) with `extra` arguments.
fn run_recipe(recipe: &Path, run: &Path, extra: &[&str]) -> std::io::Result<std::process::ExitStatus> {
    Command::new(binary())
        .arg("recipe")
        .arg("--config")
        .arg(recipe)
        .arg("--run")
        .arg(run)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()
}

fn final_loss(run: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "final")
        .and_then(|v| v["val_loss"].as_f64())
}

#[test]
fn tiny_recipe_runs_resumes_and_reports() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let recipe = recipe(tmp.path())?;
    let run = tmp.path().join("run");

    // Interrupt the first Inheritune round mid-training (the whole process group, SIGKILL).
    let mut child = start(&recipe, &run)?;
    let metrics = run.join("inheritune-l2/run/metrics.jsonl");
    let began = Instant::now();
    while child.try_wait()?.is_none() && began.elapsed() < Duration::from_secs(600) {
        let lines = std::fs::read_to_string(&metrics)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 15 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait()?.is_none(),
        "the recipe ended before it could be interrupted"
    );
    let killed = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status()?;
    assert!(killed.success(), "kill failed");
    child.wait()?;
    assert!(run.join("reference/DONE").exists(), "reference unfinished at the kill");
    assert!(
        !run.join("inheritune-l2/DONE").exists(),
        "inheritune-l2 finished before the kill"
    );
    let reference_done = std::fs::metadata(run.join("reference/DONE"))?.modified()?;

    // Rerun: finished stages are skipped, the interrupted one resumes.
    let status = start(&recipe, &run)?.wait()?;
    assert!(status.success(), "rerun failed");
    assert_eq!(
        std::fs::metadata(run.join("reference/DONE"))?.modified()?,
        reference_done,
        "reference was redone"
    );
    for stage in [
        "tokenizer",
        "data",
        "reference",
        "analyze-reference",
        "inheritune-l2",
        "inheritune-l4",
        "scratch-l4",
        "scratch-l4-2x",
        "analyze-target",
        "report",
    ] {
        assert!(run.join(stage).join("DONE").exists(), "{stage} has no DONE");
    }
    let steps: Vec<u64> = std::fs::read_to_string(&metrics)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .filter_map(|v| v["step"].as_u64())
        .collect();
    assert_eq!(
        steps,
        (0..30).collect::<Vec<_>>(),
        "every step of the resumed stage logged once"
    );

    // The report's facts are the metrics files' facts.
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("report/summary.json"))?)?;
    let reference_loss = final_loss(&run.join("reference/run")).expect("reference final");
    assert_eq!(summary["reference_final_val_loss"].as_f64(), Some(reference_loss));
    let rows = summary["rows"].as_array().expect("rows");
    for (name, dir) in [
        ("inheritune-l2", "inheritune-l2/run"),
        ("inheritune-l4", "inheritune-l4/run"),
        ("scratch-l4", "scratch-l4/run"),
        ("scratch-l4-2x", "scratch-l4-2x/run"),
    ] {
        let row = rows
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} row"));
        assert_eq!(row["final_val_loss"].as_f64(), final_loss(&run.join(dir)), "{name}");
    }
    // The premise, from the same metrics files and the reference's analysis.
    let premise = &summary["premise"];
    let scratch_loss = final_loss(&run.join("scratch-l4/run")).expect("scratch final");
    assert_eq!(
        premise["reference_better_than_scratch"].as_bool(),
        Some(reference_loss < scratch_loss),
        "{premise}"
    );
    let analysis: Value = serde_json::from_str(&std::fs::read_to_string(
        run.join("analyze-reference/analysis/analysis.json"),
    )?)?;
    assert_eq!(premise["lazy_relaxed"], analysis["lazy_relaxed"], "{premise}");
    assert_eq!(
        premise["avg_rank_second_half"], analysis["avg_rank_second_half"],
        "{premise}"
    );
    assert_eq!(premise["inheritune_matched"].as_bool(), Some(false), "{premise}");
    let two_x = rows.iter().find(|r| r["name"] == "scratch-l4-2x").unwrap();
    assert_eq!(
        two_x["steps"].as_u64(),
        Some(60),
        "the 2x baseline trains twice the steps"
    );
    assert_eq!(
        summary["rounds"].as_array().map(Vec::len),
        Some(2),
        "growth 2 -> 4 layers"
    );
    let report = std::fs::read_to_string(run.join("report/report.md"))?;
    assert!(
        report.contains(&format!("{reference_loss:.4}")),
        "report lists the reference loss"
    );
    for f in ["val_loss.png", "val_loss.svg", "max_rank.png", "avg_mass.svg"] {
        assert!(run.join("report").join(f).exists(), "{f} missing");
    }
    assert!(report.contains("## Growth (Algorithm 1)"), "{report}");
    // Each stage's wall time, in the report and in summary.json.
    assert!(
        report.contains("## Stage times") && report.contains("| reference | "),
        "{report}"
    );
    assert!(
        summary["stage_seconds"]["reference"].as_f64().is_some_and(|s| s > 0.0),
        "{}",
        summary["stage_seconds"]
    );
    assert!(
        report.contains("## Premise") && report.contains("too small to show anything"),
        "{report}"
    );

    // Redo the baselines on two CPU slots at once: the same numbers, each stage with its log.
    let scratch_before = final_loss(&run.join("scratch-l4/run"));
    let status = run_recipe(
        &recipe,
        &run,
        &["--from", "scratch", "--devices", "cpu,cpu", "--nproc", "2"],
    )?;
    assert!(status.success(), "concurrent rerun failed");
    assert_eq!(
        std::fs::metadata(run.join("reference/DONE"))?.modified()?,
        reference_done,
        "--from scratch redid the reference"
    );
    assert_eq!(
        final_loss(&run.join("scratch-l4/run")),
        scratch_before,
        "same result on a shared slot"
    );
    for stage in ["scratch-l4", "scratch-l4-2x"] {
        let log = std::fs::read_to_string(run.join(stage).join("log.txt"))?;
        assert!(log.contains("inheritune train"), "{stage} log: {log}");
    }
    Ok(())
}

/// `xtask/recipes/tiny-full.toml` at a reduced size: every stage type runs (hybrid stacking,
/// half-width, DistilBERT-style init, stacking's two stages, both distillation students), and
/// the report lists each with the numbers of its own metrics file.
#[test]
fn every_stage_type_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let text = std::fs::read_to_string(root().join("xtask/recipes/tiny-full.toml"))?;
    let reduced = text
        .replace(
            "\"datasets/sotu/sotu.parquet\"",
            &format!("{:?}", root().join("datasets/sotu/sotu.parquet")),
        )
        .replace("bpe-2048", "bpe-512")
        .replace("vocab_size = 2048", "vocab_size = 512")
        .replace("n_positions = 128", "n_positions = 32")
        .replace("n_embd = 64", "n_embd = 32")
        .replace("n_head = 4", "n_head = 2")
        .replace("seq_len = 128", "seq_len = 32")
        .replace("micro_batch = 16", "micro_batch = 4")
        .replace("max_steps = 150", "max_steps = 20")
        .replace("eval_interval = 50", "eval_interval = 10")
        .replace("max_steps = 75", "max_steps = 10")
        .replace("windows = 20", "windows = 4")
        .replace("window_len = 100", "window_len = 32")
        // Two rounds that never match, the second grown from the first (warm-append).
        .replace("growth = \"restart\"", "growth = \"warm-append\"")
        .replace("tolerance = 0.05", "tolerance = -100.0")
        .replace("max_rounds = 1", "max_rounds = 2");
    assert_ne!(reduced, text);
    let recipe = tmp.path().join("tiny-full.toml");
    std::fs::write(&recipe, reduced)?;
    let run = tmp.path().join("run");
    let status = run_recipe(&recipe, &run, &["--devices", "cpu,cpu"])?;
    assert!(status.success(), "tiny-full failed");
    let trained = [
        "reference",
        "inheritune-l2",
        "inheritune-l4",
        "scratch-l2",
        "scratch-l2-2x",
        "hybrid-stack-l2",
        "half-width",
        "distill-init-l2",
        "kd-l2",
        "kd-init-l2",
        "scratch-l1",
        "stack-l2",
    ];
    for stage in trained
        .iter()
        .chain(&["tokenizer", "data", "analyze-reference", "analyze-target", "report"])
    {
        assert!(run.join(stage).join("DONE").exists(), "{stage} has no DONE");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("report/summary.json"))?)?;
    let rows = summary["rows"].as_array().expect("rows");
    for stage in trained {
        let row = rows
            .iter()
            .find(|r| r["name"] == stage)
            .unwrap_or_else(|| panic!("no report row for {stage}"));
        assert_eq!(
            row["final_val_loss"].as_f64(),
            final_loss(&run.join(stage).join("run")),
            "{stage}"
        );
    }
    // The distillation students log their two terms and train the [distill] schedule.
    for stage in ["kd-l2", "kd-init-l2"] {
        let lines: Vec<Value> = std::fs::read_to_string(run.join(stage).join("run/metrics.jsonl"))?
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &Value| v["kind"] == "train")
            .collect();
        assert_eq!(lines.len(), 10, "{stage}: [distill] max_steps");
        assert!(
            lines
                .iter()
                .all(|v| v["ce"].as_f64().is_some() && v["kl"].as_f64().is_some()),
            "{stage}"
        );
    }
    // Round 2 grew round 1's trained model by the reference's next two blocks.
    let grow: Value = serde_json::from_str(&std::fs::read_to_string(run.join("inheritune-l4/init/surgery.json"))?)?;
    assert_eq!(grow["operation"], "grow", "{grow}");
    let rounds = summary["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    assert!(rounds.iter().all(|r| r["matched"] == false), "{rounds:?}");
    let report = std::fs::read_to_string(run.join("report/report.md"))?;
    assert!(
        report.contains("No round matched; the loop stopped at 4 layers"),
        "{report}"
    );
    // DistilBERT-style: alternate teacher blocks (0, 2 of 4); half-width: 1 head of 16.
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(run.join("kd-init-l2/init/surgery.json"))?)?;
    assert_eq!(plan["settings"]["blocks"], serde_json::json!([0, 2]), "{plan}");
    let half: Value = serde_json::from_str(&std::fs::read_to_string(run.join("half-width/init/config.json"))?)?;
    assert_eq!((half["n_embd"].as_i64(), half["n_head"].as_i64()), (Some(16), Some(1)));
    Ok(())
}

/// `xtask/recipes/openllama-3b-1b.toml` at a reduced size: a given LLaMA reference saved by
/// transformers as `pytorch_model.bin` (3 layers, a 300-token BPE that prepends BOS), the data
/// prepared with the tokenizer's own BOS rule and no end-of-text, the reference scored by one
/// full val pass, Inheritune from the `.bin` reference, the METHOD.md §6.8 task list (on the
/// eval fixtures' documents) and the report with both MMLU averages.
#[test]
fn llama_low_data_recipe_reaches_its_report() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let reference = root().join("crates/model/tests/fixtures/llama_mqa_untied_bin");
    let text = std::fs::read_to_string(root().join("xtask/recipes/openllama-3b-1b.toml"))?;
    let reduced = text
        .replace("\"data/raw/redpajama-1t-sample\"", &format!("{:?}", root().join("datasets/sotu/sotu.parquet")))
        .replace("val_fraction = 0.001", "val_fraction = 0.01")
        .replace("\"checkpoints/open_llama_3b/tokenizer.json\"", &format!("{:?}", reference.join("tokenizer.json")))
        .replace("\"checkpoints/open_llama_3b\"", &format!("{:?}", reference))
        .replace("[reference.model]\npreset = \"open-llama-3b\"\n", "")
        .replace(
            "preset = \"llama-lowdata\"",
            "preset = \"llama-lowdata\"\nmicro_batch = 4\nseq_len = 32\ngrad_accum = 1\nmax_steps = 10\nwarmup_steps = 2\neval_interval = 5\neval_iters = 2",
        )
        .replace("start_depth = 13", "start_depth = 1")
        .replace("\"data/eval\"", &format!("{:?}", root().join("crates/eval/tests/fixtures/lmeval/data")))
        // The eval fixtures hold one MMLU subject (the group is built from the subjects run).
        .replace("\"logiqa\", \"mmlu\",", "\"logiqa\", \"mmlu_abstract_algebra\",")
        + "limit = 3\n[analysis]\nwindows = 4\nwindow_len = 32\n";
    assert!(
        !reduced.contains("preset = \"open-llama-3b\"") && !reduced.contains("\"checkpoints/"),
        "{reduced}"
    );
    let recipe = tmp.path().join("llama.toml");
    std::fs::write(&recipe, &reduced)?;
    let run = tmp.path().join("run");
    let status = run_recipe(&recipe, &run, &[])?;
    assert!(status.success(), "the LLaMA recipe failed");
    // The tokenizer's own rule (its BOS before every document), no end-of-text.
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(run.join("data/manifest.json"))?)?;
    assert_eq!(manifest["config"]["add_special_tokens"], true, "{manifest}");
    assert_eq!(manifest["config"]["eot"], "none", "{manifest}");
    // The reference was scored, not trained: its facts point at the .bin folder.
    let facts: Value = serde_json::from_str(&std::fs::read_to_string(run.join("reference/facts.json"))?)?;
    assert_eq!(facts["model"].as_str(), reference.to_str());
    assert!(facts["final_val_loss"].as_f64().is_some_and(f64::is_finite), "{facts}");
    for stage in [
        "inheritune-l1",
        "scratch-l1",
        "eval-reference",
        "eval-inheritune-l1",
        "report",
    ] {
        assert!(run.join(stage).join("DONE").exists(), "{stage} has no DONE");
    }
    let results: Value = serde_json::from_str(&std::fs::read_to_string(run.join("eval-reference/results.json"))?)?;
    for task in [
        "wsc",
        "piqa",
        "boolq",
        "winogrande",
        "logiqa",
        "mmlu",
        "wnli",
        "qnli",
        "mnli",
        "truthfulqa_mc2",
    ] {
        assert!(
            results["results"][task]["acc,none"].as_f64().is_some(),
            "{task}: {results}"
        );
    }
    let mmlu = &results["results"]["mmlu"];
    let subject = results["results"]["mmlu_abstract_algebra"]["acc,none"].as_f64();
    assert_eq!(
        mmlu["acc_macro,none"].as_f64(),
        subject,
        "one subject: macro = its accuracy"
    );
    let report = std::fs::read_to_string(run.join("report/report.md"))?;
    assert!(
        report.contains("mmlu (acc)") && report.contains("mmlu (acc_macro"),
        "{report}"
    );
    Ok(())
}

/// `xtask/recipes/smollm2.toml` at a reduced size: a given LLaMA reference (3 layers, its own
/// 300-token tokenizer, `tokenizer = "reference"`), the analysis with every depth criterion, one
/// 2-layer target per rule (first, block-influence, angular, loo) trained alike, scratch, the
/// reference trained the same steps, and the report's strategy comparison: each row keeps the
/// blocks its rule picks from the reference's analysis.
#[test]
fn the_strategy_comparison_trains_every_rule_and_reports_them() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let reference = root().join("crates/model/tests/fixtures/llama_mqa_untied_bin");
    let text = std::fs::read_to_string(root().join("xtask/recipes/smollm2.toml"))?;
    // SmolLM2's stated shapes go with the real checkpoint only.
    let (head, rest) = text
        .split_once("[reference.model]")
        .expect("the recipe states SmolLM2's shapes");
    let (_, tail) = rest
        .split_once("tie_word_embeddings = true\n")
        .expect("the shapes end with tie_word_embeddings");
    let text = format!("{head}{tail}");
    let reduced = text
        .replace(
            "\"datasets/sotu/sotu.parquet\"",
            &format!("{:?}", root().join("datasets/sotu/sotu.parquet")),
        )
        .replace("\".smollm2.gguf\"", &format!("{:?}", reference))
        .replace("val_tokens = 8192", "val_tokens = 512")
        .replace("seq_len = 128", "seq_len = 32")
        .replace("max_steps = 120", "max_steps = 4")
        .replace("warmup_steps = 10", "warmup_steps = 1")
        .replace("eval_interval = 20", "eval_interval = 2")
        .replace("eval_iters = 4", "eval_iters = 2")
        .replace("start_depth = 15", "start_depth = 2")
        .replace("depth = 15", "depth = 2")
        .replace("windows = 20\nwindow_len = 100", "windows = 4\nwindow_len = 16")
        // Healing by distillation from the reference (Minitron's), for every target alike.
        .replace("selections = [", "heal = \"distill\"\nselections = [");
    assert!(
        !reduced.contains(".smollm2.gguf") && reduced.contains("windows = 4"),
        "{reduced}"
    );
    let recipe = tmp.path().join("smollm2.toml");
    std::fs::write(&recipe, &reduced)?;
    let run = tmp.path().join("run");
    let status = run_recipe(&recipe, &run, &[])?;
    assert!(status.success(), "the comparison recipe failed");
    let stages = [
        "reference-trained",
        "inheritune-l2",
        "select-block-influence-l2",
        "select-angular-l2",
        "select-loo-l2",
        "scratch-l2",
        "report",
    ];
    for stage in stages {
        assert!(run.join(stage).join("DONE").exists(), "{stage} has no DONE");
    }
    let analysis: inheritune_analysis::Analysis = serde_json::from_str(&std::fs::read_to_string(
        run.join("analyze-reference/analysis/analysis.json"),
    )?)?;
    assert!(
        analysis.layers.iter().all(|l| l.loo_nll_increase.is_some()),
        "loo was computed"
    );
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(run.join("report/summary.json"))?)?;
    let rows = summary["strategies"].as_array().expect("strategies");
    let rules: Vec<&str> = rows.iter().map(|r| r["rule"].as_str().unwrap_or_default()).collect();
    assert_eq!(
        rules,
        [
            "first",
            "block-influence",
            "angular",
            "loo",
            "scratch",
            "reference-trained",
            "reference"
        ]
    );
    for row in &rows[..4] {
        let rule = inheritune_analysis::depth::Rule::parse(row["rule"].as_str().unwrap()).unwrap();
        let want = analysis.select(rule, 2)?;
        assert_eq!(row["blocks"], serde_json::json!(want), "{row}");
        assert!(row["zero_shot_val"].as_f64().is_some_and(f64::is_finite), "{row}");
        assert!(row["final_val_loss"].as_f64().is_some_and(f64::is_finite), "{row}");
    }
    let report = std::fs::read_to_string(run.join("report/report.md"))?;
    assert!(
        report.contains("## Strategy comparison (2 of 3 blocks") && report.contains("strategies.png"),
        "{report}"
    );
    // Every target healed by distillation (its metrics carry the KL term); scratch did not.
    let kl = |stage: &str| -> anyhow::Result<bool> {
        let text = std::fs::read_to_string(run.join(stage).join("run/metrics.jsonl"))?;
        Ok(text
            .lines()
            .any(|l| l.contains("\"kl\":") && !l.contains("\"kl\":null")))
    };
    for stage in [
        "inheritune-l2",
        "select-block-influence-l2",
        "select-angular-l2",
        "select-loo-l2",
    ] {
        assert!(kl(stage)?, "{stage} was not distilled");
    }
    assert!(!kl("scratch-l2")?, "scratch is plain training");
    Ok(())
}
