//! Snapshots (insta) of every verb's `--help` and of the one-line errors a newcomer meets, so a
//! changed flag or message shows in review. Review a change with `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test -p inheritune-cli --test help` and read the diff).
//!
//! Also checked here, beyond the snapshots: every verb's help holds an example, lists `--device`
//! values where it has one, and cites no section of another document.

mod common;

use std::path::Path;

use common::{bin, workspace};

const VERBS: &[&[&str]] = &[
    &[],
    &["recipe"],
    &["download"],
    &["prepare"],
    &["train-tokenizer"],
    &["train"],
    &["plot-loss"],
    &["eval"],
    &["eval", "tasks"],
    &["eval", "loss"],
    &["perplexity"],
    &["convert"],
    &["analyze"],
    &["surgery"],
    &["surgery", "inherit"],
    &["surgery", "grow"],
    &["surgery", "stack"],
    &["surgery", "hybrid-stack"],
    &["surgery", "half-width"],
    &["surgery", "distill-init"],
    &["bench"],
    &["bench", "train"],
    &["bench", "allreduce"],
];

fn help(verb: &[&str]) -> String {
    let out = bin().args(verb).arg("--help").output().expect("inheritune runs");
    assert!(out.status.success(), "{verb:?} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn every_help_text_is_as_reviewed() {
    for verb in VERBS {
        let text = help(verb);
        let name = if verb.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", verb.join("_"))
        };
        insta::assert_snapshot!(name, text);
        assert!(!text.contains('§'), "{verb:?} --help cites a document section:\n{text}");
        let leaf = !matches!(verb, [] | ["eval"] | ["surgery"] | ["bench"]);
        if leaf {
            assert!(text.contains("Example"), "{verb:?} --help has no example");
        }
        if text.contains("--device <") {
            assert!(
                text.contains("cpu|cuda|cuda:N"),
                "{verb:?} --help lists no device values"
            );
        }
    }
}

/// Environment variables of one case.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Runs the binary in `dir`; the error it ends with, which must be its only `error:` line and
/// one line, with `dir` and the fixtures folder written as `<tmp>` and `<fixtures>`.
fn one_line_error(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = bin();
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("inheritune runs");
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{args:?}: expected one error line, got:\n{stderr}");
    assert!(
        stderr.trim_end().ends_with(errors[0]),
        "{args:?}: the error is not the last line:\n{stderr}"
    );
    let fixtures = workspace().join("crates/model/tests/fixtures").canonicalize().unwrap();
    let tmp = dir.canonicalize().unwrap();
    format!("$ inheritune {}\n{}\n", args.join(" "), errors[0])
        .replace(fixtures.to_str().unwrap(), "<fixtures>")
        .replace(tmp.to_str().unwrap(), "<tmp>")
        .replace(dir.to_str().unwrap(), "<tmp>")
}

#[test]
fn newcomer_errors_are_one_line_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixtures = workspace().join("crates/model/tests/fixtures").canonicalize().unwrap();
    let llama = fixtures.join("fam_llama3");
    let llama = llama.to_str().unwrap();
    let hf_home = d.join("hf");
    // The Hub stands behind a port nothing listens on: offline.
    let offline = [
        ("HF_HOME", hf_home.to_str().unwrap()),
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
    ];
    std::fs::write(d.join("empty.txt"), "").unwrap();
    std::fs::write(d.join("text.txt"), "A few words of text.\n").unwrap();
    std::fs::create_dir_all(d.join("used")).unwrap();
    std::fs::write(d.join("used/analysis.json"), "{}").unwrap();
    std::fs::write(
        d.join("typo.toml"),
        "[data]\ndir = \"data\"\n[train]\nmax_step = 5\nmicro_batch = 1\n",
    )
    .unwrap();
    std::fs::write(
        d.join("preset.toml"),
        "[model]\npreset = \"gpt2-smal\"\n[data]\ndir = \"data\"\n",
    )
    .unwrap();
    let mut all = String::new();
    let cases: Vec<(Vec<&str>, Env)> = vec![
        (
            vec!["perplexity", "--model", "models/x", "--text", "text.txt"],
            &offline,
        ),
        (vec!["surgery", "half-width", "--model", llama, "--out", "half"], &[]),
        (
            vec![
                "surgery",
                "inherit",
                "--model",
                llama,
                "--layers",
                "2",
                "--map",
                "custom",
                "--groups",
                "embed,pos",
                "--out",
                "l2",
            ],
            &[],
        ),
        (vec!["perplexity", "--model", llama, "--text", "empty.txt"], &[]),
        (vec!["prepare", "--text", "empty.txt", "--out", "data"], &[]),
        (
            vec!["analyze", "--model", llama, "--text", "text.txt", "--out", "used"],
            &[],
        ),
        (vec!["train", "--config", "typo.toml", "--run", "run"], &[]),
        (vec!["train", "--config", "preset.toml", "--run", "run"], &[]),
        (
            vec![
                "analyze", "--model", llama, "--text", "text.txt", "--out", "a", "--device", "tpu",
            ],
            &[],
        ),
        // A relative path that is not there is not tried as a Hub id.
        (vec!["perplexity", "--model", "./models/x", "--text", "text.txt"], &[]),
        // The fixture's context is 64 tokens; the default window is 100.
        (vec!["analyze", "--model", llama, "--data", "data", "--out", "b"], &[]),
        // No tokenizer.json in a LLaMA folder: GPT-2's is not guessed for it.
        (
            vec![
                "analyze",
                "--model",
                llama,
                "--text",
                "text.txt",
                "--window-len",
                "8",
                "--num-windows",
                "1",
                "--out",
                "c",
            ],
            &[],
        ),
    ];
    for (args, env) in cases {
        all += &one_line_error(d, &args, env);
    }
    insta::assert_snapshot!("newcomer_errors", all);
}

#[test]
fn a_tokenizer_mismatch_names_the_prepare_to_run() {
    // Data prepared with the GPT-2 tokenizer (50257 tokens) for a LLaMA of 97 tokens: the error
    // names the prepare to rerun.
    let dir = tempfile::tempdir().unwrap();
    let data = common::prepare(dir.path());
    let llama = workspace().join("crates/model/tests/fixtures/fam_llama3");
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        format!("[data]\ndir = \"{}\"\n[train]\nmax_steps = 1\n", data.display()),
    )
    .unwrap();
    let out = bin()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--init")
        .arg(&llama)
        .arg("--run")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("inheritune prepare --tokenizer") && stderr.contains("vocab_size 97"),
        "{stderr}"
    );
}

#[test]
fn an_analysis_of_another_model_is_refused_by_inherit_select() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = workspace().join("crates/model/tests/fixtures");
    // Windows of token ids both vocabularies hold (79 and 97 tokens).
    let windows = dir.path().join("windows.json");
    std::fs::write(&windows, "[[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16]]").unwrap();
    let analysis = dir.path().join("a3");
    let out = bin()
        .args(["analyze", "--model"])
        .arg(fixtures.join("fam_llama3"))
        .arg("--windows")
        .arg(&windows)
        .arg("--out")
        .arg(&analysis)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inherit = |model: &str, out: &str| {
        bin()
            .args(["surgery", "inherit", "--model"])
            .arg(fixtures.join(model))
            .args(["--layers", "2", "--select", "block-influence", "--analysis"])
            .arg(&analysis)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    // The 2-layer Qwen3 fixture with the 3-layer LLaMA's analysis.
    let o = inherit("fam_qwen3", "q");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("3-layer model") && err.contains("analysis.json"),
        "{err}"
    );
    assert!(!dir.path().join("q").exists());
    // The model it was made for: the rule's blocks, recorded in surgery.json.
    let o = inherit("fam_llama3", "l");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("l/surgery.json")).unwrap()).unwrap();
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(analysis.join("analysis.json")).unwrap()).unwrap();
    let bi: Vec<f64> = (0..3)
        .map(|l| a["layers"][l]["block_influence"].as_f64().unwrap())
        .collect();
    // The two of highest Block Influence, in model order (hand-applied rule).
    let mut order = [0usize, 1, 2];
    order.sort_by(|&x, &y| bi[y].total_cmp(&bi[x]));
    let mut want = vec![order[0], order[1]];
    want.sort();
    assert_eq!(plan["settings"]["blocks"], serde_json::json!(want));
    assert_eq!(plan["settings"]["rule"], "block-influence");
}
