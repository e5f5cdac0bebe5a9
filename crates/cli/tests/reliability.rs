//! Nothing lost, nothing hangs, nothing silently accepted (issue 13), on `inheritune train` and the
//! data it reads: each case asserts the exit code, that the message is one line naming the folder,
//! file or key, that nothing panicked, and that what was already written is intact.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use inheritune_model::tch::Tensor;

mod common;
use common::{bin, metrics, ok, prepare, spawn_train, tiny_config, train};

fn config(dir: &Path, name: &str, data: &Path, train: &str) -> PathBuf {
    let base =
        "micro_batch = 2\nseq_len = 16\ngrad_accum = 2\nmin_lr = 0.0\nwarmup_steps = 0\neval_iters = 2\nseed = 3";
    tiny_config(dir, name, data, "", &format!("{base}\n{train}"))
}

/// A temporary folder with the prepared fixture corpus and a run config `name` of `train` keys.
fn setup(name: &str, train: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let cfg = config(tmp.path(), name, &data, train);
    (tmp, data, cfg)
}

/// The command failed with one line (no panic) that contains `want`.
fn refused(out: &Output, want: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Progress lines may come before it (stderr is not a terminal here); the error is one line.
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("step ") && !l.starts_with("eval at ") && !l.starts_with("progress: "))
        .collect();
    assert_eq!(errors.len(), 1, "not one line: {err}");
    assert!(
        errors[0].starts_with("error: ") && errors[0].contains(want),
        "expected {want:?} in: {err}"
    );
    errors[0].to_string()
}

/// The deterministic fields of the metrics (timings excluded).
fn trace(run: &Path) -> Vec<String> {
    metrics(run)
        .iter()
        .map(|v| {
            format!(
                "{} {} {} {} {}",
                v["kind"], v["step"], v["loss"], v["val_loss"], v["grad_norm"]
            )
        })
        .collect()
}

fn checkpoints(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_diverging_run_keeps_a_finite_checkpoint_and_resumes_from_it() {
    let (tmp, _, cfg) = setup(
        "diverge.toml",
        "lr = 1e30\nmax_steps = 30\neval_interval = 3\nkeep_last = 1\ngrad_clip = 0.0\nweight_decay = 0.0\ncheckpoint_at_start = true",
    );
    let run = tmp.path().join("run");
    let out = train(&cfg, &run, &[]);
    let err = refused(&out, "stopped before the update");
    assert!(err.contains("at step "), "{err}");
    // Every train line has a finite loss and gradient norm: the non-finite step was not applied.
    let lines = metrics(&run);
    for l in lines.iter().filter(|l| l["kind"] == "train") {
        assert!(
            l["loss"].as_f64().is_some_and(f64::is_finite) && l["grad_norm"].as_f64().is_some_and(f64::is_finite),
            "{l}"
        );
    }
    let kept = checkpoints(&run);
    assert!(!kept.is_empty());
    for name in &kept {
        for (key, t) in Tensor::read_safetensors(run.join(name).join("model.safetensors")).unwrap() {
            assert!(
                bool::try_from(t.isfinite().all()).unwrap(),
                "{name}: {key} is not finite"
            );
        }
    }
    // --resume starts from the finite checkpoint and stops at the same step with the same message.
    let again = train(&cfg, &run, &["--resume"]);
    let err2 = refused(&again, "stopped before the update");
    let step = |e: &str| {
        e.split("at step ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .map(str::to_string)
    };
    assert_eq!(step(&err), step(&err2));
}

#[test]
fn an_existing_run_is_refused_or_overwritten_never_mixed() {
    let (tmp, data, cfg) = setup("a.toml", "lr = 3e-3\nmax_steps = 6\neval_interval = 2\nkeep_last = 5");
    let run = tmp.path().join("run");
    ok(&train(&cfg, &run, &[]));
    let before = std::fs::read(run.join("metrics.jsonl")).unwrap();
    let steps = checkpoints(&run);
    refused(&train(&cfg, &run, &[]), "already holds a run");
    assert_eq!(
        std::fs::read(run.join("metrics.jsonl")).unwrap(),
        before,
        "metrics were touched"
    );
    assert_eq!(checkpoints(&run), steps);
    // --overwrite removes the old run completely: a shorter run leaves only its own checkpoints.
    let short = config(
        tmp.path(),
        "b.toml",
        &data,
        "lr = 3e-3\nmax_steps = 2\neval_interval = 1\nkeep_last = 5",
    );
    ok(&train(&short, &run, &["--overwrite"]));
    // No checkpoint of the untrained weights unless checkpoint_at_start.
    assert_eq!(checkpoints(&run), ["step-00000001", "step-00000002"]);
    assert_eq!(metrics(&run).iter().filter(|l| l["kind"] == "train").count(), 2);
}

#[test]
fn resume_refuses_a_changed_config_and_allows_a_longer_run() {
    let (tmp, data, cfg) = setup("a.toml", "lr = 3e-3\nmax_steps = 4\neval_interval = 2\ndecay_steps = 8");
    let run = tmp.path().join("run");
    ok(&train(&cfg, &run, &[]));
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let changed = config(
        tmp.path(),
        "b.toml",
        &data,
        "lr = 1e-3\nmax_steps = 4\neval_interval = 2\ndecay_steps = 8\nbeta2 = 0.99",
    );
    let err = refused(&train(&changed, &run, &["--resume"]), "train.lr (0.003 → 0.001)");
    assert!(
        err.contains("train.beta2 (0.95 → 0.99)"),
        "every differing key is named: {err}"
    );
    assert_eq!(std::fs::read_to_string(run.join("config.toml")).unwrap(), saved);
    // max_steps may change: the run continues to step 8 exactly as a run of 8 steps would.
    let longer = config(
        tmp.path(),
        "c.toml",
        &data,
        "lr = 3e-3\nmax_steps = 8\neval_interval = 2\ndecay_steps = 8",
    );
    ok(&train(&longer, &run, &["--resume"]));
    let whole = tmp.path().join("whole");
    ok(&train(&longer, &whole, &[]));
    assert_eq!(trace(&run), trace(&whole));
}

#[test]
fn resume_with_nothing_saved_is_a_fresh_start() {
    let (tmp, _, cfg) = setup("a.toml", "lr = 3e-3\nmax_steps = 6\neval_interval = 3");
    let fresh = tmp.path().join("fresh");
    ok(&train(&cfg, &fresh, &[]));
    // An empty folder, and the state of a run killed before its first checkpoint: some metrics
    // lines, a half-written checkpoint folder and temporary files, no complete checkpoint.
    let empty = tmp.path().join("empty");
    ok(&train(&cfg, &empty, &["--resume"]));
    assert_eq!(trace(&empty), trace(&fresh));
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(killed.join("step-00000000.tmp")).unwrap();
    let partial: Vec<String> = std::fs::read_to_string(fresh.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .take(3)
        .map(|l| l.to_string() + "\n")
        .collect();
    std::fs::write(killed.join("metrics.jsonl"), partial.concat()).unwrap();
    std::fs::write(killed.join("config.toml.tmp"), "half").unwrap();
    std::fs::write(killed.join("loss.tmp.png"), "half").unwrap();
    ok(&train(&cfg, &killed, &["--resume"]));
    assert_eq!(trace(&killed), trace(&fresh));
    let left: Vec<String> = std::fs::read_dir(&killed)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "leftovers: {left:?}");
}

#[test]
fn a_second_process_on_a_run_folder_is_refused() {
    let (tmp, _, cfg) = setup("a.toml", "lr = 3e-3\nmax_steps = 100000\neval_interval = 1000");
    let run = tmp.path().join("run");
    let mut first = spawn_train(&cfg, &run, &[], Stdio::null());
    let began = Instant::now();
    while metrics(&run).len() < 3 {
        assert!(began.elapsed() < Duration::from_secs(60), "the first run did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let lines = metrics(&run).len();
    refused(&train(&cfg, &run, &["--resume"]), "in use by another process");
    refused(&train(&cfg, &run, &["--overwrite"]), "in use by another process");
    assert!(metrics(&run).len() >= lines, "the second process touched the metrics");
    first.kill().unwrap(); // SIGKILL: the lock goes with the process
    first.wait().unwrap();
    let mut again = spawn_train(&cfg, &run, &["--resume"], Stdio::null());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        again.try_wait().unwrap().is_none(),
        "the lock outlived the killed process"
    );
    again.kill().unwrap();
    again.wait().unwrap();
}

#[test]
fn a_manifest_that_overstates_a_shard_is_an_error_not_a_panic_or_a_hang() {
    let (tmp, data, cfg) = setup("a.toml", "lr = 3e-3\nmax_steps = 1");
    let good = tmp.path().join("good");
    ok(&train(&cfg, &good, &[]));
    let path = data.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for shard in manifest["shards"].as_array_mut().unwrap() {
        let n = shard["tokens"].as_u64().unwrap();
        shard["tokens"] = (n + 5000).into();
    }
    std::fs::write(&path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let began = Instant::now();
    let err = refused(&train(&cfg, &tmp.path().join("run"), &[]), "the manifest says");
    assert!(
        err.contains("train-000000.parquet") && err.contains("but the shard holds 445"),
        "{err}"
    );
    // `eval loss` on the same data (it looped forever before): the same one-line error.
    let out = bin()
        .args(["eval", "loss", "--model"])
        .arg(good.join("final"))
        .arg("--data")
        .arg(&data)
        .args(["--seq-len", "16"])
        .output()
        .unwrap();
    let err = refused(&out, "the manifest says");
    assert!(err.contains("val-000000.parquet") && err.contains("holds 300"), "{err}");
    assert!(began.elapsed() < Duration::from_secs(60));
}

#[test]
fn progress_lines_without_a_terminal() {
    let (tmp, _, cfg) = setup(
        "a.toml",
        "lr = 3e-3\nmax_steps = 20\neval_interval = 10\nlog_interval = 5",
    );
    let out = train(&cfg, &tmp.path().join("run"), &[]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let steps: Vec<&str> = err.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(steps.len(), 4, "{err}");
    assert!(
        steps[0].starts_with("step 5/20 | loss ") && steps[0].contains("tok/s") && steps[0].contains("ETA"),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("eval at step 10: train ")), "{err}");
    assert!(err.lines().any(|l| l.starts_with("final at step 20")), "{err}");
}

/// One line naming the flag, key or file, for inputs that used to be accepted silently.
#[test]
fn bad_inputs_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixture = root.join("crates/model/tests/fixtures/gpt2_bias");
    let corpus = root.join("crates/data/tests/fixtures/prepare/owt.parquet");
    let text = tmp.path().join("text.txt");
    std::fs::write(&text, "Hello there, this is a short text for scoring.").unwrap();
    let docs = tmp.path().join("docs.json");
    std::fs::write(&docs, "[0, 99]").unwrap();
    let s = |p: &Path| p.display().to_string();
    let recipe = s(&root.join("xtask/recipes/tiny.toml"));
    // (arguments, exit code, text the error line must contain)
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "inherit".into(),
                "--from".into(),
                s(&fixture),
                "--layers".into(),
                "1".into(),
                "--map".into(),
                "custom".into(),
                "--out".into(),
                s(&tmp.path().join("o1")),
            ],
            1,
            "--map custom needs --groups",
        ),
        (
            vec![
                "recipe".into(),
                "--config".into(),
                recipe.clone(),
                "--only".into(),
                "referense".into(),
                "--dry-run".into(),
            ],
            1,
            "--only \"referense\": not a stage",
        ),
        (
            vec![
                "recipe".into(),
                "--config".into(),
                recipe.clone(),
                "--from".into(),
                "inheritune-lx".into(),
                "--dry-run".into(),
            ],
            1,
            "--from \"inheritune-lx\": not a stage",
        ),
        (
            vec![
                "eval".into(),
                "loss".into(),
                "--model".into(),
                s(&fixture),
                "--data".into(),
                s(&data),
                "--batch-size".into(),
                "0".into(),
            ],
            2,
            "--batch-size",
        ),
        (
            vec![
                "eval".into(),
                "loss".into(),
                "--model".into(),
                s(&fixture),
                "--data".into(),
                s(&data),
                "--seq-len".into(),
                "0".into(),
            ],
            2,
            "--seq-len",
        ),
        (
            vec![
                "perplexity".into(),
                "--model".into(),
                s(&fixture),
                "--text".into(),
                s(&text),
                "--batch-size".into(),
                "0".into(),
            ],
            2,
            "--batch-size",
        ),
        (
            vec![
                "bench".into(),
                "train".into(),
                "--n-layer".into(),
                "1".into(),
                "--n-head".into(),
                "1".into(),
                "--n-embd".into(),
                "8".into(),
                "--steps".into(),
                "0".into(),
            ],
            2,
            "--steps",
        ),
        (
            vec![
                "bench".into(),
                "train".into(),
                "--n-layer".into(),
                "1".into(),
                "--n-head".into(),
                "1".into(),
                "--n-embd".into(),
                "8".into(),
                "--batch".into(),
                "0".into(),
            ],
            2,
            "--batch",
        ),
        (
            vec![
                "prepare".into(),
                "--input".into(),
                s(&corpus),
                "--out".into(),
                s(&tmp.path().join("p1")),
                "--preset".into(),
                "generic".into(),
                "--val-fraction".into(),
                "-0.1".into(),
            ],
            1,
            "-0.1",
        ),
        (
            vec![
                "prepare".into(),
                "--input".into(),
                s(&corpus),
                "--out".into(),
                s(&tmp.path().join("p2")),
                "--preset".into(),
                "generic".into(),
                "--val-docs".into(),
                s(&docs),
            ],
            1,
            "val document index 99 is past the corpus",
        ),
        (
            vec![
                "half-width".into(),
                "--from".into(),
                s(&root.join("crates/model/tests/fixtures/gpt2_inverse_scale")),
                "--out".into(),
                s(&tmp.path().join("o2")),
            ],
            1,
            "3 heads do not halve; pass --floor-heads",
        ),
        (
            vec![
                "grow".into(),
                "--from".into(),
                s(&fixture),
                "--reference".into(),
                s(&fixture),
                "--add".into(),
                "2".into(),
                "--out".into(),
                s(&tmp.path().join("o3")),
            ],
            1,
            "cannot grow a 2-layer model by 2 to 4 layers: the reference has only 2",
        ),
        (
            vec![
                "eval".into(),
                "--model".into(),
                s(&fixture),
                "--tasks".into(),
                "arc_easy,piqa,arc_easy".into(),
                "--data-dir".into(),
                s(tmp.path()),
                "--out".into(),
                s(&tmp.path().join("o4")),
            ],
            1,
            "--tasks lists \"arc_easy\" twice",
        ),
        (
            vec![
                "eval".into(),
                "--model".into(),
                s(&fixture),
                "--tasks".into(),
                "piqa".into(),
                "--data-dir".into(),
                s(tmp.path()),
                "--out".into(),
                s(&tmp.path().join("o5")),
                "--limit".into(),
                "0".into(),
            ],
            2,
            "--limit",
        ),
        (
            vec![
                "eval".into(),
                "loss".into(),
                "--model".into(),
                s(&fixture),
                "--data".into(),
                s(&data),
                "--split".into(),
                "test".into(),
            ],
            1,
            "there is no \"test\" split (it has \"train\", \"val\")",
        ),
        (
            vec![
                "prepare".into(),
                "--input".into(),
                s(&corpus),
                "--out".into(),
                s(&tmp.path().join("p3")),
                "--column".into(),
                "body".into(),
            ],
            1,
            "body",
        ),
        (
            vec![
                "train-tokenizer".into(),
                "--input".into(),
                s(&corpus),
                "--vocab-size".into(),
                "100".into(),
                "--out".into(),
                s(&tmp.path().join("o6")),
            ],
            1,
            "--vocab-size 100: a byte-level BPE needs at least 257 tokens",
        ),
        (
            vec![
                "train-tokenizer".into(),
                "--input".into(),
                s(&corpus),
                "--vocab-size".into(),
                "100000".into(),
                "--out".into(),
                s(&tmp.path().join("o7")),
            ],
            1,
            "--vocab-size 100000: the corpus only supports",
        ),
    ];
    for (args, code, want) in cases {
        let out = bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let first = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
        assert!(first.contains(want), "{args:?}: expected {want:?} in {err}");
        if code == 1 {
            let lines = err.lines().filter(|l| !l.starts_with("progress: ")).count();
            assert_eq!(lines, 1, "{args:?}: not one line: {err}");
        }
    }
    assert!(
        !tmp.path().join("p3").exists(),
        "a failed prepare left its new, empty output folder"
    );
    for out in ["o1", "o2", "o3", "o4", "o5", "o6", "o7"] {
        assert!(!tmp.path().join(out).exists(), "a refused verb left {out}");
    }
    // A 1-layer model keeps its layer: analyze suggests depth 1, not 0.
    let one = tmp.path().join("one");
    ok(&bin()
        .arg("inherit")
        .arg("--from")
        .arg(&fixture)
        .args(["--layers", "1", "--out"])
        .arg(&one)
        .output()
        .unwrap());
    let analysis = tmp.path().join("analysis");
    let windows = tmp.path().join("windows.json");
    std::fs::write(&windows, "[[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]").unwrap();
    let out = bin()
        .arg("analyze")
        .arg("--model")
        .arg(&one)
        .arg("--windows")
        .arg(&windows)
        .arg("--out")
        .arg(&analysis)
        .output()
        .unwrap();
    ok(&out);
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(analysis.join("analysis.json")).unwrap()).unwrap();
    assert_eq!(a["suggested_depth"], 1);
    // Config values name the key and the value.
    let cfg = config(
        tmp.path(),
        "bad.toml",
        &data,
        "lr = 3e-3\nmax_steps = 2\neps = -1.0\nweight_decay = -0.5",
    );
    let err = refused(
        &train(&cfg, &tmp.path().join("r1"), &[]),
        "train.eps must be positive, got -1",
    );
    assert!(
        err.contains("train.weight_decay must be a non-negative number, got -0.5"),
        "{err}"
    );
    // A model whose weights are NaN: perplexity and eval loss fail instead of printing null.
    let good = tmp.path().join("good");
    let cfg = config(tmp.path(), "ok.toml", &data, "lr = 3e-3\nmax_steps = 1");
    ok(&train(&cfg, &good, &[]));
    let nan = tmp.path().join("nan");
    std::fs::create_dir_all(&nan).unwrap();
    std::fs::copy(good.join("final/config.json"), nan.join("config.json")).unwrap();
    let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(good.join("final/model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let t = if k.ends_with("weight") { t * f64::NAN } else { t };
            (k, t)
        })
        .collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, nan.join("model.safetensors")).unwrap();
    let out = bin()
        .arg("perplexity")
        .arg("--model")
        .arg(&nan)
        .arg("--text")
        .arg(&text)
        .output()
        .unwrap();
    refused(&out, "not finite");
    let out = bin()
        .args(["eval", "loss", "--model"])
        .arg(&nan)
        .arg("--data")
        .arg(&data)
        .args(["--seq-len", "16"])
        .output()
        .unwrap();
    refused(&out, "not finite");
}

/// Checkpoints carry the tokenizer of the data, so `perplexity` works on a model trained with
/// its own BPE; an `--init` model is refused on data prepared with another tokenizer.
#[test]
fn checkpoints_carry_their_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sotu/sotu.parquet");
    let mut data = Vec::new();
    for vocab in ["400", "300"] {
        let bpe = tmp.path().join(format!("bpe-{vocab}"));
        let out = bin()
            .arg("train-tokenizer")
            .arg("--input")
            .arg(&corpus)
            .args(["--vocab-size", vocab])
            .arg("--out")
            .arg(&bpe)
            .output()
            .unwrap();
        ok(&out);
        let dir = tmp.path().join(format!("data-{vocab}"));
        let out = bin()
            .arg("prepare")
            .arg("--input")
            .arg(&corpus)
            .arg("--out")
            .arg(&dir)
            .arg("--tokenizer")
            .arg(bpe.join("tokenizer.json"))
            .args(["--preset", "generic", "--val-fraction", "0.05", "--threads", "2"])
            .output()
            .unwrap();
        ok(&out);
        assert!(dir.join("tokenizer.json").exists() && dir.join("tokenizer_config.json").exists());
        data.push(dir);
    }
    let cfg = |name: &str, data: &Path| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[model]\npreset = \"gpt2-tiny\"\n[model.overrides]\nvocab_size = 512\nn_positions = 32\nn_embd = 32\nn_head = 2\nn_layer = 2\n\
                 [data]\ndir = \"{}\"\n[train]\nmicro_batch = 2\nseq_len = 16\nmax_steps = 2\neval_interval = 1\neval_iters = 1\n",
                data.display()
            ),
        )
        .unwrap();
        path
    };
    let run = tmp.path().join("run");
    ok(&train(&cfg("a.toml", &data[0]), &run, &[]));
    for dir in ["final", "step-00000001"] {
        let got = std::fs::read(run.join(dir).join("tokenizer.json")).unwrap();
        assert_eq!(got, std::fs::read(data[0].join("tokenizer.json")).unwrap(), "{dir}");
    }
    let text = tmp.path().join("t.txt");
    std::fs::write(&text, "The state of the union is strong, and our people are stronger.").unwrap();
    let out = bin()
        .arg("perplexity")
        .arg("--model")
        .arg(run.join("final"))
        .arg("--text")
        .arg(&text)
        .output()
        .unwrap();
    ok(&out);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        printed["tokenizer"].as_str().unwrap().ends_with("final/tokenizer.json"),
        "{printed}"
    );
    let init = run.join("final");
    let init_s = init.display().to_string();
    let refused_out = train(
        &cfg("b.toml", &data[1]),
        &tmp.path().join("other"),
        &["--init", &init_s],
    );
    refused(&refused_out, "is not the tokenizer");
    ok(&train(
        &cfg("a.toml", &data[0]),
        &tmp.path().join("same"),
        &["--init", &init_s],
    ));
}
