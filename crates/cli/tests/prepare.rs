//! `inheritune prepare` maps its flags onto the presets and writes shards pyarrow-compatible
//! tokens equal to tiktoken's (fixture of the data crate, made by its kept script).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/tests/fixtures/prepare")
        .join(name)
}

fn prepare(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .arg("prepare")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?)
}

#[test]
fn presets_and_flags() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let input = fixture("owt.parquet");
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("expected.json"))?)?;
    let docs: Vec<Vec<u32>> = serde_json::from_value(expected["docs"].clone())?;
    let total: usize = docs.iter().map(|d| d.len() + 1).sum();

    let out = tmp.path().join("fw");
    let o = prepare(&[
        "--input",
        input.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
        "--preset",
        "fineweb-edu",
        "--shard-tokens",
        "150",
        "--threads",
        "1",
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;
    assert_eq!(m["config"]["eot"], "prepend");
    assert_eq!(m["splits"]["val"]["tokens"], 150);
    assert_eq!(m["splits"]["train"]["tokens"], (total - 150) as u64);
    assert!(out.join("val-000000.parquet").exists() && out.join("train-000000.parquet").exists());

    let val_docs = tmp.path().join("val.json");
    std::fs::write(&val_docs, "[0, 5]")?;
    let out = tmp.path().join("owt");
    let o = prepare(&[
        "--input",
        input.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
        "--preset",
        "openwebtext",
        "--val-docs",
        val_docs.to_str().unwrap_or_default(),
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;
    assert_eq!(m["splits"]["val"]["documents"], 2);
    assert_eq!(m["splits"]["val"]["tokens"], (docs[0].len() + docs[5].len() + 2) as u64);

    let o = prepare(&[
        "--input",
        tmp.path().join("missing.parquet").to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ])?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("missing.parquet") && err.trim().lines().count() == 1,
        "{err}"
    );
    Ok(())
}

/// With a LLaMA-style tokenizer and no flags, document boundaries follow the tokenizer's own
/// rule: its post-processor's BOS (`<s>`, id 1) starts each document, as transformers'
/// `tokenizer(text)` gives it, and the `eos_token` of the `tokenizer_config.json` beside it
/// (`</s>`, id 2) ends it. Before, this stopped with "no token <|endoftext|> to use as EOT".
#[test]
fn document_boundaries_default_to_the_tokenizers_rule() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/llama_mqa_untied_bin");
    let input = tmp.path().join("docs.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"the state of the union\"}\n{\"text\": \"is strong\"}\n",
    )?;
    let out = tmp.path().join("out");
    let o = prepare(&[
        "--input",
        input.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
        "--tokenizer",
        folder.join("tokenizer.json").to_str().unwrap_or_default(),
        "--threads",
        "1",
        "--val-tokens",
        "0",
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;
    assert_eq!(m["config"]["eot_token"], "</s>");
    assert_eq!(m["config"]["add_special_tokens"], true);
    let tokens = inheritune_data::shards::read_tokens(&out.join("train-000000.parquet"), None)?;
    let starts: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == 1)
        .map(|(i, _)| i)
        .collect();
    let ends: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == 2)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "{tokens:?}");
    assert_eq!(ends.len(), 2, "{tokens:?}");
    assert_eq!(starts[0], 0, "{tokens:?}");
    assert_eq!(ends[1], tokens.len() - 1, "{tokens:?}");
    assert_eq!(starts[1], ends[0] + 1, "{tokens:?}");
    // Either rule can still be set by hand.
    let out = tmp.path().join("plain");
    let o = prepare(&[
        "--input",
        input.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
        "--tokenizer",
        folder.join("tokenizer.json").to_str().unwrap_or_default(),
        "--add-special-tokens=false",
        "--eot",
        "none",
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;
    // No split flag: the first ~5% of the tokens, estimated at 4 bytes each from the input's size.
    let bytes = std::fs::metadata(&input)?.len();
    let want = (bytes / 4 / 20).clamp(1, 1_000_000);
    assert_eq!(m["splits"]["val"]["tokens"], want, "{m}");
    let mut tokens = inheritune_data::shards::read_tokens(&out.join("val-000000.parquet"), None)?;
    tokens.extend(inheritune_data::shards::read_tokens(
        &out.join("train-000000.parquet"),
        None,
    )?);
    assert!(!tokens.contains(&1) && !tokens.contains(&2), "{tokens:?}");
    // A rerun into the used folder with other settings is refused; --overwrite replaces it.
    let tok = folder.join("tokenizer.json");
    let again = |extra: &[&str]| {
        let mut a = vec![
            "--input",
            input.to_str().unwrap_or_default(),
            "--out",
            out.to_str().unwrap_or_default(),
        ];
        a.extend_from_slice(&["--tokenizer", tok.to_str().unwrap_or_default()]);
        a.extend_from_slice(&["--eot", "none", "--val-tokens", "0"]);
        a.extend_from_slice(extra);
        prepare(&a)
    };
    let o = again(&[])?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--overwrite"), "{err}");
    let o = again(&["--overwrite"])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;
    assert_eq!(m["splits"]["val"]["tokens"], 0, "{m}");
    assert!(!inheritune_fs::tmp_path(&out).exists());
    Ok(())
}
