//! `inheritune perplexity` against `transformers` (references made by the model crate's
//! `tests/fixtures/make_fixtures.py`), and its one-line errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn perplexity(model: &Path, text: &Path, extra: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .arg("perplexity")
        .arg("--model")
        .arg(model)
        .arg("--text")
        .arg(text)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()?)
}

fn stderr_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "expected failure, got {:?}", out);
    assert_eq!(err.lines().count(), 1, "error must be one line: {err}");
    err
}

#[test]
fn mean_nll_matches_transformers() -> anyhow::Result<()> {
    // gpt2_nobias_bf16 has no tokenizer.json (built-in GPT-2 = tiktoken ids);
    // llama_gqa_tied has its own tokenizer.json that adds a BOS token.
    for (name, batch) in [
        ("gpt2_nobias_bf16", "3"),
        ("llama_gqa_tied", "1"),
        ("llama_gqa_tied", "8"),
    ] {
        let dir = fixture(name);
        let out = perplexity(&dir, &dir.join("text.txt"), &["--batch-size", batch])?;
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("perplexity.json"))?)?;
        assert_eq!(got["tokens"], want["tokens"], "{name}");
        assert_eq!(got["tokens_scored"], want["tokens_scored"], "{name}");
        let (g, w) = (
            got["mean_nll"].as_f64().unwrap_or(f64::NAN),
            want["mean_nll"].as_f64().unwrap_or(0.0),
        );
        assert!((g - w).abs() < 1e-4, "{name}: mean_nll {g} vs transformers {w}");
        let ppl = got["perplexity"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (ppl - g.exp()).abs() <= 1e-9 * ppl,
            "{name}: perplexity is exp(mean_nll)"
        );
    }
    Ok(())
}

#[test]
fn bf16_is_close_to_f32() -> anyhow::Result<()> {
    let dir = fixture("llama_gqa_tied");
    let out = perplexity(&dir, &dir.join("text.txt"), &["--dtype", "bf16"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("perplexity.json"))?)?;
    let (g, w) = (
        got["mean_nll"].as_f64().unwrap_or(f64::NAN),
        want["mean_nll"].as_f64().unwrap_or(0.0),
    );
    assert!((g - w).abs() < 0.05, "bf16 mean_nll {g} vs f32 {w}");
    Ok(())
}

#[test]
fn bad_inputs_give_one_line_errors_naming_the_file() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let text = fixture("llama_gqa_tied").join("text.txt");

    let missing = tmp.path().join("no-such-model");
    let err = stderr_line(&perplexity(&missing, &text, &[])?);
    assert!(err.contains("no folder") && err.contains("no-such-model"), "{err}");
    // A folder without config.json names the file.
    let empty = tmp.path().join("empty-model");
    std::fs::create_dir(&empty)?;
    let err = stderr_line(&perplexity(&empty, &text, &[])?);
    assert!(err.contains("config.json"), "{err}");

    let missing_text = tmp.path().join("missing.txt");
    let err = stderr_line(&perplexity(&fixture("llama_gqa_tied"), &missing_text, &[])?);
    assert!(err.contains("missing.txt"), "{err}");

    let bad_utf8 = tmp.path().join("latin1.txt");
    std::fs::write(&bad_utf8, b"caf\xe9 au lait")?;
    let err = stderr_line(&perplexity(&fixture("llama_gqa_tied"), &bad_utf8, &[])?);
    assert!(err.contains("latin1.txt") && err.contains("UTF-8"), "{err}");

    // A LLaMA folder without its tokenizer.json: GPT-2's is not guessed for it.
    let no_tok = tmp.path().join("no-tokenizer");
    std::fs::create_dir(&no_tok)?;
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("llama_gqa_tied").join(f), no_tok.join(f))?;
    }
    let err = stderr_line(&perplexity(&no_tok, &text, &[])?);
    assert!(
        err.contains("no tokenizer.json") && err.contains("no-tokenizer"),
        "{err}"
    );

    let err = stderr_line(&perplexity(
        &fixture("llama_gqa_tied"),
        &text,
        &["--context-length", "4096"],
    )?);
    assert!(err.contains("context length"), "{err}");
    Ok(())
}
