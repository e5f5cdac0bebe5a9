//! Tokenizers: any Hugging Face `tokenizer.json`, and a built-in GPT-2 tokenizer.
//!
//! The built-in one is a byte-level BPE built from OpenAI's original `encoder.json` and
//! `vocab.bpe` (vendored under `assets/gpt2/`, see the provenance note there). For speed it
//! encodes with the `bpe` crate (linear-time BPE over the same ranks) behind a regex pre-tokenizer
//! equal to GPT-2's; its `encode` equals tiktoken's `gpt2` `encode_ordinary` (tests check both
//! this and the general `tokenizers` path against tiktoken): a literal `<|endoftext|>` stays text.
//! This module must not read corpora; it turns strings into ids and back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{Error, Result};

const GPT2_ENCODER: &str = include_str!("../assets/gpt2/encoder.json");
const GPT2_MERGES: &str = include_str!("../assets/gpt2/vocab.bpe");
/// The file name of a Hugging Face tokenizer inside a checkpoint folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// GPT-2's end-of-text token.
pub const GPT2_EOT: &str = "<|endoftext|>";
/// GPT-2's end-of-text id.
pub const GPT2_EOT_ID: u32 = 50256;

/// GPT-2's byte-to-unicode table: the printable character standing for each byte in `encoder.json`.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut bytes: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = bytes.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    bytes
        .into_iter()
        .zip(chars)
        .filter_map(|(b, c)| Some((char::from_u32(c)?, b as u8)))
        .collect()
}

/// The fast GPT-2 encoder, built once per process (about 0.25 s) from the vendored `encoder.json`.
static FAST_GPT2: std::sync::LazyLock<std::result::Result<bpe_openai::Tokenizer, String>> =
    std::sync::LazyLock::new(build_fast_gpt2);

fn build_fast_gpt2() -> std::result::Result<bpe_openai::Tokenizer, String> {
    let vocab: HashMap<String, u32> = serde_json::from_str(GPT2_ENCODER).map_err(|e| e.to_string())?;
    let table = unicode_to_byte();
    let mut ranked: Vec<(u32, Vec<u8>)> = vocab
        .into_iter()
        .filter(|(k, _)| k != GPT2_EOT)
        .map(|(k, v)| {
            k.chars()
                .map(|c| table.get(&c).copied().ok_or(format!("bad character {c:?}")))
                .collect::<std::result::Result<Vec<u8>, String>>()
                .map(|b| (v, b))
        })
        .collect::<std::result::Result<_, _>>()?;
    ranked.sort();
    if ranked.iter().enumerate().any(|(i, (r, _))| *r as usize != i) {
        return Err("encoder.json ranks are not 0..50256".into());
    }
    // The hash factor is the one bpe-openai uses for its own vocabularies; it is collision-free
    // for these ranks too (from_dictionary asserts that, and the tests build it).
    let bpe = bpe_openai::byte_pair_encoding::BytePairEncoding::from_dictionary(
        ranked.into_iter().map(|(_, b)| b),
        Some(17_846_336_922_010_275_747),
    );
    // GPT-2's pattern with `\s+(?!\S)` rewritten as bpe-openai does for cl100k: a look-ahead
    // pattern `\s+\s` whose last character is dropped, plus `\s+$` for the end of the text.
    let words = "'(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+$";
    bpe_openai::Tokenizer::new_lookahead(bpe, &[(words, false), ("\\s+\\s", true), ("\\s+", false)], false)
        .map_err(|e| e.to_string())
}

/// A tokenizer with a name for manifests and messages.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    name: String,
    /// The fast exact GPT-2 encoder of the built-in tokenizer.
    fast_gpt2: Option<&'static bpe_openai::Tokenizer>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("name", &self.name)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn builtin_err(message: impl ToString) -> Error {
    Error::Tokenizer {
        path: PathBuf::from("<built-in gpt2>"),
        message: message.to_string(),
    }
}

impl Tokenizer {
    /// The built-in GPT-2 tokenizer (50257 tokens, `<|endoftext|>` = 50256).
    ///
    /// # Errors
    /// Only if the vendored assets were corrupted at build time.
    pub fn gpt2() -> Result<Self> {
        let vocab: HashMap<String, u32> = serde_json::from_str(GPT2_ENCODER).map_err(builtin_err)?;
        let merges: Vec<(String, String)> = GPT2_MERGES
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .map(|l| {
                let mut parts = l.split(' ');
                match (parts.next(), parts.next()) {
                    (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                    _ => Err(builtin_err(format!("bad merge line {l:?}"))),
                }
            })
            .collect::<Result<_>>()?;
        let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(builtin_err)?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        inner.add_special_tokens(&[AddedToken::from(GPT2_EOT, true)]);
        // tiktoken's encode_ordinary: special-token text in the input is encoded as plain text.
        inner.set_encode_special_tokens(true);
        let fast = FAST_GPT2.as_ref().map_err(builtin_err)?;
        Ok(Tokenizer {
            inner,
            name: "gpt2 (built-in)".to_string(),
            fast_gpt2: Some(fast),
        })
    }

    /// Loads a Hugging Face `tokenizer.json`.
    ///
    /// # Errors
    /// A missing or malformed file, named in the message.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                err: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Tokenizer {
            inner,
            name: path.display().to_string(),
            fast_gpt2: None,
        })
    }

    /// The tokenizer of a checkpoint folder: its `tokenizer.json`, or the built-in GPT-2 one when it has none.
    ///
    /// # Errors
    /// A malformed `tokenizer.json`.
    pub fn for_model_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(TOKENIZER_FILE);
        if path.exists() {
            Self::from_file(&path)
        } else {
            Self::gpt2()
        }
    }

    /// Whether the tokenizer's own rule adds special tokens to a document (its post-processor,
    /// e.g. LLaMA's or Llama 3's BOS), as `transformers`' `tokenizer(text)` applies it by default.
    ///
    /// # Errors
    /// The tokenizer fails to encode a probe text.
    pub fn adds_special_tokens(&self) -> Result<bool> {
        let probe = "Hello world";
        Ok(self.encode_with(probe, true)? != self.encode_with(probe, false)?)
    }

    /// The end-of-text token that separates documents by the family's rule: `<|endoftext|>`
    /// (GPT-2, Qwen, SmolLM2, Phi-3), else `<|end_of_text|>` (Llama 3), else the `eos_token` of a
    /// `tokenizer_config.json` beside `tokenizer.json` (LLaMA 1/2 and Mistral `</s>`, Gemma
    /// `<eos>`); `None` when the tokenizer has none of these.
    pub fn default_eot(&self, tokenizer_file: Option<&Path>) -> Option<String> {
        for token in [GPT2_EOT, "<|end_of_text|>"] {
            if self.token_to_id(token).is_some() {
                return Some(token.to_string());
            }
        }
        let config = tokenizer_file?.parent()?.join("tokenizer_config.json");
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(config).ok()?).ok()?;
        let eos = value.get("eos_token")?;
        let token = eos.as_str().or_else(|| eos.get("content").and_then(|c| c.as_str()))?;
        self.token_to_id(token).map(|_| token.to_string())
    }

    /// Trains a byte-level BPE tokenizer like GPT-2's (same pre-tokenizer and decoder, no
    /// prefix space) with `vocab_size` tokens, `<|endoftext|>` first (id 0).
    /// Deterministic for the same texts in the same order.
    ///
    /// # Errors
    /// A vocabulary too small for the byte alphabet, or a training failure.
    pub fn train_bpe(texts: impl Iterator<Item = String> + Send, vocab_size: usize) -> Result<Self> {
        use tokenizers::models::bpe::BpeTrainerBuilder;
        use tokenizers::models::TrainerWrapper;
        let err = |m: String| Error::Tokenizer {
            path: PathBuf::from("<bpe training>"),
            message: m,
        };
        if vocab_size < 257 {
            return Err(err(format!(
                "vocab_size {vocab_size} is below the 256 bytes + <|endoftext|>"
            )));
        }
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(GPT2_EOT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        let mut inner = tokenizers::Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        inner.train(&mut trainer, texts).map_err(|e| err(e.to_string()))?;
        inner.add_special_tokens(&[AddedToken::from(GPT2_EOT, true)]);
        Ok(Tokenizer {
            inner,
            name: format!("byte-level BPE ({vocab_size})"),
            fast_gpt2: None,
        })
    }

    /// A name for logs and manifests.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the built-in GPT-2 tokenizer.
    pub fn is_builtin_gpt2(&self) -> bool {
        self.fast_gpt2.is_some()
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if it exists.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Encodes `text` as `transformers`' `tokenizer(text)` would: the file's special-token rules
    /// (e.g. LLaMA's BOS) apply. For the built-in GPT-2 tokenizer this is tiktoken's `encode_ordinary`.
    ///
    /// # Errors
    /// A tokenizer failure.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Encodes `text` without adding special tokens (no BOS/EOS from the post-processor).
    ///
    /// # Errors
    /// A tokenizer failure.
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, false)
    }

    fn encode_with(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        if let Some(fast) = &self.fast_gpt2 {
            return Ok(fast.encode(text));
        }
        let enc = self
            .inner
            .encode_fast(text, add_special)
            .map_err(|e| Error::Tokenizer {
                path: PathBuf::from(&self.name),
                message: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes with the general `tokenizers` path even for the built-in GPT-2 tokenizer (for
    /// cross-checking the fast path).
    ///
    /// # Errors
    /// A tokenizer failure.
    pub fn encode_slow(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| Error::Tokenizer {
            path: PathBuf::from(&self.name),
            message: e.to_string(),
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// A stable identity: sha256 of the vocabulary files (built-in) or of the tokenizer.json serialisation.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        if self.fast_gpt2.is_some() {
            h.update(GPT2_ENCODER.as_bytes());
            h.update(GPT2_MERGES.as_bytes());
        } else {
            h.update(self.inner.to_string(false).unwrap_or_default().as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Decodes ids back to text.
    ///
    /// # Errors
    /// A tokenizer failure (e.g. an id outside the vocabulary).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| Error::Tokenizer {
            path: PathBuf::from(&self.name),
            message: e.to_string(),
        })
    }

    /// Writes the tokenizer as a `tokenizer.json` that `transformers` (`PreTrainedTokenizerFast`) loads.
    ///
    /// # Errors
    /// An I/O error naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        // Serialising cannot fail for a loaded tokenizer: an error past it is the disk's.
        let json = self.inner.to_string(false).map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        inheritune_fs::write_file(path, json.as_bytes()).map_err(|e| Error::Io {
            path: e.path,
            err: e.source,
        })
    }
}
