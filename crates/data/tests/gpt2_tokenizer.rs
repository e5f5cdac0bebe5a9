//! The built-in GPT-2 tokenizer against tiktoken's `gpt2` `encode_ordinary` (fixture made by
//! `tests/fixtures/gpt2_tokens/make_fixture.py`).

use std::path::PathBuf;

use inheritune_data::Tokenizer;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gpt2_tokens")
        .join(name)
}

#[test]
fn tokens_equal_tiktoken() -> anyhow::Result<()> {
    let tok = Tokenizer::gpt2()?;
    let text = std::fs::read_to_string(fixture("text.txt"))?;
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture("tokens.json"))?)?;
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect()
    };
    let expected = ids(&reference["text_tokens"]);
    assert!(expected.len() > 500);
    assert_eq!(tok.encode(&text)?, expected);
    // The general tokenizers path (built from encoder.json + vocab.bpe) agrees with the fast path.
    assert_eq!(tok.encode_slow(&text)?, expected);
    for line in reference["lines"].as_array().into_iter().flatten() {
        let s = line["text"].as_str().unwrap_or_default();
        assert_eq!(tok.encode(s)?, ids(&line["tokens"]), "line {s:?}");
    }
    Ok(())
}

#[test]
fn literal_endoftext_is_text_and_decode_round_trips() -> anyhow::Result<()> {
    let tok = Tokenizer::gpt2()?;
    assert_eq!(tok.vocab_size(), 50257);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(50256));
    let text = "a <|endoftext|> b";
    let ids = tok.encode(text)?;
    assert!(!ids.contains(&50256));
    assert_eq!(tok.decode(&ids)?, text);
    Ok(())
}

#[test]
fn saved_tokenizer_json_encodes_the_same() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tok = Tokenizer::gpt2()?;
    let path = dir.path().join("tokenizer.json");
    tok.save(&path)?;
    let loaded = Tokenizer::from_file(&path)?;
    let text = std::fs::read_to_string(fixture("text.txt"))?.replace("<|endoftext|>", "");
    assert_eq!(loaded.encode(&text)?, tok.encode(&text)?);
    Ok(())
}

#[test]
fn bad_tokenizer_files_name_the_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nope.json");
    let err = Tokenizer::from_file(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("nope.json"), "{err}");
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, "{\"model\": 3")?;
    let err = Tokenizer::from_file(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("tokenizer.json") && err.contains("invalid tokenizer"),
        "{err}"
    );
    Ok(())
}
