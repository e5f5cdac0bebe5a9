//! `inheritune eval` end to end on the lm-eval fixture (results.json in the harness's layout,
//! samples, table), `inheritune eval loss` against PyTorch's full validation pass, and one-line
//! errors naming the task, file and row for bad data folders, with nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .arg("eval")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs")
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

#[test]
fn results_json_and_samples_match_lm_eval() -> anyhow::Result<()> {
    let fx = root().join("eval/tests/fixtures/lmeval");
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("out");
    let o = eval(&[
        "--model",
        fx.join("model").to_str().unwrap(),
        "--tasks",
        "arc_easy,hellaswag,truthfulqa_mc2,wikitext,lambada_openai",
        "--data-dir",
        fx.join("data").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--log-samples",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json"))?)?;
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json"))?)?;
    // As lm-eval writes them: a lower-case device, and zero shots when no task is few-shot.
    assert_eq!(results["config"]["device"], "cpu");
    assert_eq!(results["config"]["num_fewshot"], 0);
    for (task, metric) in [
        ("arc_easy", "acc"),
        ("arc_easy", "acc_norm"),
        ("hellaswag", "acc_norm"),
        ("truthfulqa_mc2", "acc"),
        ("wikitext", "word_perplexity"),
        ("wikitext", "bits_per_byte"),
        ("lambada_openai", "perplexity"),
    ] {
        let ours = results["results"][task][format!("{metric},none")].as_f64().unwrap();
        let theirs = expected[task]["metrics"][metric].as_f64().unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1e-9),
            "{task} {metric}: {ours} vs {theirs}"
        );
    }
    let samples = std::fs::read_to_string(out.join("samples.jsonl"))?;
    // 3 arc docs (4 + 3 + 5 choices), 3 × 4 hellaswag, 4 + 3 mc2, 3 pages, 3 lambada rows.
    assert_eq!(samples.lines().count(), 12 + 12 + 7 + 3 + 3);
    let table = std::fs::read_to_string(out.join("results.md"))?;
    assert!(
        table.contains("hellaswag (acc_norm)") && table.contains("| avg |"),
        "{table}"
    );
    Ok(())
}

#[test]
fn eval_loss_matches_pytorch_full_pass() -> anyhow::Result<()> {
    let fx = root().join("train/tests/fixtures/parity");
    let o = eval(&[
        "loss",
        "--model",
        fx.join("init").to_str().unwrap(),
        "--data",
        fx.join("data").to_str().unwrap(),
        "--seq-len",
        "16",
        "--batch-size",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json"))?)?;
    let (ours, theirs) = (
        got["loss"].as_f64().unwrap(),
        expected["init_val_loss"].as_f64().unwrap(),
    );
    assert!((ours - theirs).abs() < 1e-5 * theirs, "{ours} vs pytorch {theirs}");
    assert_eq!(got["tokens"], expected["final_val_tokens"]);
    Ok(())
}

#[test]
fn bad_data_folders_give_one_line_errors() -> anyhow::Result<()> {
    let fx = root().join("eval/tests/fixtures/lmeval");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    copy_dir(&fx.join("data"), &data)?;
    std::fs::remove_dir_all(data.join("sciq"))?;
    std::fs::write(
        data.join("boolq/validation.jsonl"),
        "{\"question\": \"q\", \"passage\": \"p\", \"label\": 1}\n{oops\n",
    )?;
    std::fs::write(data.join("piqa/validation.jsonl"), "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n{\"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n")?;
    let out = tmp.path().join("out");
    for (task, needles) in [
        ("sciq", vec!["sciq", "cannot read the task folder"]),
        ("boolq", vec!["boolq/validation.jsonl", "line 2", "invalid JSON"]),
        ("piqa", vec!["piqa", "row 1", "missing field goal"]),
    ] {
        let o = eval(&[
            "--model",
            fx.join("model").to_str().unwrap(),
            "--tasks",
            &format!("arc_easy,{task}"),
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        assert!(!o.status.success());
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        for n in needles {
            assert!(err.contains(n), "{task}: {err:?} lacks {n:?}");
        }
        assert!(!out.join("results.json").exists(), "nothing is written on bad data");
    }
    Ok(())
}
