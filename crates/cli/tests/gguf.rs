//! `inheritune convert` of a GGUF file with a SentencePiece (`llama`-type) vocabulary: the
//! `tokenizer.json` it writes gives the ids of the original SentencePiece model and of
//! transformers' GGUF tokenizer (which agree; `make_gguf_spm.py` in the model crate's fixtures),
//! BOS included; and an existing output folder is refused in one line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/gguf_spm")
        .join(name)
}

#[test]
fn sentencepiece_vocabularies_convert_to_the_published_ids() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("spm");
    let run = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_inheritune"))
            .args(["convert", "--from"])
            .arg(fixture("spm.gguf"))
            .arg("--out")
            .arg(out)
            .env("RUST_LOG", "warn")
            .output()
    };
    let o = run(&out)?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = inheritune_data::Tokenizer::from_file(&out.join("tokenizer.json"))?;
    let expected: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(fixture("expected.json"))?)?;
    assert!(expected.len() >= 5);
    for case in &expected {
        let text = case["text"].as_str().unwrap_or_default();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone())?;
        assert_eq!(tok.encode(text)?, want, "{text:?}");
        assert_eq!(tok.decode(&want[1..])?, text, "decoding {text:?}");
    }
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json"))?)?;
    assert_eq!(config["bos_token"], "<s>");
    assert_eq!(config["eos_token"], "</s>");
    // Never over an existing folder.
    let o = run(&out)?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("already exists") && err.trim().lines().count() == 1,
        "{err}"
    );
    Ok(())
}
