//! `inheritune train-tokenizer`: a byte-level BPE (GPT-2 style) trained on a corpus, written as
//! `tokenizer.json` + `tokenizer_config.json` (`<|endoftext|>` as BOS/EOS), loadable by
//! `transformers` and usable by `inheritune prepare --tokenizer`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use inheritune_data::source::{discover, for_each_batch};
use inheritune_data::Tokenizer;

/// Arguments of `inheritune train-tokenizer`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(
    after_help = "Example:\n  inheritune train-tokenizer --text datasets/sotu --vocab-size 512 --out tokenizers/sotu-512"
)]
pub struct Args {
    /// Raw text: Parquet, JSONL or .txt files or folders (as for `prepare`).
    #[arg(long, alias = "input", required = true, num_args = 1..)]
    pub text: Vec<PathBuf>,
    /// Text column (Parquet) or field (JSONL).
    #[arg(long, default_value = "text")]
    pub column: String,
    /// Tokens in the vocabulary, `<|endoftext|>` included (id 0).
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    let sources = discover(&args.text)?;
    let mut texts = Vec::new();
    for_each_batch(&sources, &args.column, 1024, 0, &mut |_, batch| {
        texts.extend(batch);
        Ok(())
    })?;
    let documents = texts.len();
    if texts.iter().all(|t| t.is_empty()) {
        bail!("--input: no text to train on ({documents} documents, all empty or none)");
    }
    // Byte-level BPE starts from 256 bytes plus <|endoftext|>.
    if args.vocab_size < 257 {
        bail!(
            "--vocab-size {}: a byte-level BPE needs at least 257 tokens (256 bytes and <|endoftext|>)",
            args.vocab_size
        );
    }
    let tokenizer = Tokenizer::train_bpe(texts.into_iter(), args.vocab_size)?;
    if tokenizer.vocab_size() < args.vocab_size {
        bail!(
            "--vocab-size {}: the corpus only supports {} tokens ({} documents); give more text or a smaller vocabulary",
            args.vocab_size,
            tokenizer.vocab_size(),
            documents
        );
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    tokenizer.save(&args.out.join("tokenizer.json"))?;
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 1_000_000_000_000_000_019_884_624_838_656f64,
    });
    inheritune_fs::write_file(
        &args.out.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )?;
    println!(
        "{}",
        serde_json::json!({"documents": documents, "vocab_size": tokenizer.vocab_size(), "out": args.out.display().to_string()})
    );
    Ok(())
}

/// The tokenizer of a checkpoint folder: its `tokenizer.json`, or GPT-2's for a GPT-2 model
/// without one (as everywhere in this project); another family's is never guessed.
///
/// # Errors
/// A non-GPT-2 folder without `tokenizer.json`, or an unreadable one.
pub fn of_model(dir: &std::path::Path, config: &inheritune_model::ModelConfig) -> Result<Tokenizer> {
    let gpt2 = matches!(config, inheritune_model::ModelConfig::Gpt2(_));
    if !gpt2 && !dir.join(inheritune_data::tokenizer::TOKENIZER_FILE).exists() {
        bail!(
            "{}: no tokenizer.json, and a {} model's tokenizer cannot be guessed; copy the model's tokenizer files there, or give token ids (--windows, or --data prepared with its tokenizer)",
            dir.display(),
            config.model_type()
        );
    }
    Ok(Tokenizer::for_model_dir(dir)?)
}
