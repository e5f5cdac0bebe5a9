//! `prepare`: raw text → token shards + `manifest.json` (METHOD.md §4.4).
//!
//! Documents are tokenized in parallel batches (rayon) and written in input order, so the output
//! is identical for any thread count. Each split is a flat token stream cut into shards of a fixed
//! size (documents may cross shard boundaries). After every completed shard a resume state is
//! written; a rerun skips completed shards and the documents they hold. Presets:
//! `openwebtext` (EOT appended, a seeded 0.0005 document-level val split or an explicit list),
//! `fineweb-edu` (EOT prepended, the first shard's worth of tokens is val), and `generic`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::shards::{ShardWriter, TokenDtype};
use crate::source::{count_documents, for_each_batch, SourceFile};
use crate::tokenizer::Tokenizer;

/// The manifest file of a prepared folder.
pub const MANIFEST_FILE: &str = "manifest.json";
const STATE_FILE: &str = "prepare-state.json";

/// Where the end-of-text token goes: after each document (OpenWebText, nanoGPT), before each
/// (FineWeb-Edu, build_fineweb), or nowhere. The one definition the prepare flags, the run
/// configs and the recipes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum EotPlacement {
    /// After each document.
    Append,
    /// Before each document.
    Prepend,
    /// Not added.
    None,
}

/// The data-preparation presets ([`PrepareConfig::openwebtext`], [`PrepareConfig::fineweb_edu`],
/// [`PrepareConfig::generic`]), as `prepare --preset` and a recipe's `[data] preset` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// EOT appended; a seeded 0.0005 document-level val split (or --val-docs).
    Openwebtext,
    /// EOT prepended; the first shard's worth of tokens is val.
    FinewebEdu,
    /// EOT appended; val split from the flags, else the first ~5% of tokens (at most 1M).
    #[default]
    Generic,
}

/// How documents are assigned to the val split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SplitRule {
    /// Each document is val with probability `fraction`, decided by a hash of (seed, index).
    DocFraction {
        /// The val share of documents.
        fraction: f64,
        /// The seed.
        seed: u64,
    },
    /// Exactly these document indices (0-based, input order) are val.
    DocList {
        /// The indices.
        docs: BTreeSet<u64>,
    },
    /// The first `tokens` tokens of the stream are val, the rest train.
    FirstTokens {
        /// Val tokens.
        tokens: u64,
    },
    /// Everything is train.
    None,
}

/// Settings of one preparation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareConfig {
    /// The preset's name (for the manifest).
    pub preset: String,
    /// The text column (Parquet) or field (JSONL).
    pub column: String,
    /// EOT placement.
    pub eot: EotPlacement,
    /// The token used as EOT (`<|endoftext|>` for GPT-2).
    pub eot_token: String,
    /// Whether the tokenizer's own special-token rules (e.g. LLaMA's BOS) apply.
    pub add_special_tokens: bool,
    /// The val split.
    pub split: SplitRule,
    /// Tokens per shard.
    pub shard_tokens: u64,
    /// Documents per tokenization batch.
    pub batch_docs: usize,
}

impl PrepareConfig {
    /// OpenWebText as nanoGPT prepares it: EOT appended; val = a seeded 0.0005 of the documents.
    pub fn openwebtext() -> Self {
        PrepareConfig {
            preset: "openwebtext".into(),
            column: "text".into(),
            eot: EotPlacement::Append,
            eot_token: "<|endoftext|>".into(),
            add_special_tokens: false,
            split: SplitRule::DocFraction {
                fraction: 0.0005,
                seed: 2357,
            },
            shard_tokens: 100_000_000,
            batch_docs: 1024,
        }
    }

    /// FineWeb-Edu as build_fineweb prepares it: EOT prepended; the first shard's worth of tokens is val.
    pub fn fineweb_edu() -> Self {
        PrepareConfig {
            preset: "fineweb-edu".into(),
            eot: EotPlacement::Prepend,
            split: SplitRule::FirstTokens { tokens: 100_000_000 },
            ..Self::openwebtext()
        }
    }

    /// No val split, EOT appended; every field is meant to be set by flags.
    pub fn generic() -> Self {
        PrepareConfig {
            preset: "generic".into(),
            split: SplitRule::None,
            ..Self::openwebtext()
        }
    }

    /// Checks the settings, listing every problem.
    ///
    /// # Errors
    /// [`Error::Invalid`].
    pub fn validate(&self) -> Result<()> {
        let mut p = Vec::new();
        if self.shard_tokens == 0 {
            p.push("shard_tokens must be positive".to_string());
        }
        if self.batch_docs == 0 {
            p.push("batch_docs must be positive".to_string());
        }
        if let SplitRule::DocFraction { fraction, .. } = self.split {
            if !(0.0..1.0).contains(&fraction) {
                p.push(format!("val fraction must be in [0, 1), got {fraction}"));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!("invalid prepare settings: {}", p.join("; "))))
        }
    }
}

/// One written shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the output folder.
    pub file: String,
    /// `train` or `val`.
    pub split: String,
    /// Tokens in it.
    pub tokens: u64,
}

/// Totals of one split.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitTotals {
    /// Tokens.
    pub tokens: u64,
    /// Documents whose first token is in this split.
    pub documents: u64,
    /// Shards.
    pub shards: usize,
}

/// The tokenizer as recorded in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// Its name.
    pub name: String,
    /// sha256 of its definition.
    pub hash: String,
    /// Vocabulary size.
    pub vocab_size: usize,
}

/// `manifest.json` of a prepared folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format tag.
    pub format: String,
    /// The settings.
    pub config: PrepareConfig,
    /// The tokenizer.
    pub tokenizer: TokenizerInfo,
    /// The EOT id, if placed.
    pub eot_id: Option<u32>,
    /// Stored token type.
    pub token_dtype: TokenDtype,
    /// Input files with sizes.
    pub sources: Vec<SourceFile>,
    /// Documents read.
    pub documents: u64,
    /// Every shard, in stream order per split.
    pub shards: Vec<ShardInfo>,
    /// Per-split totals.
    pub splits: BTreeMap<String, SplitTotals>,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    ///
    /// # Errors
    /// A missing or malformed file, named in the message.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::input(&path, "", format!("invalid manifest: {e}")))
    }

    /// The shards of a split, in order, with their paths under `dir`.
    pub fn split_shards(&self, dir: &Path, split: &str) -> Vec<(PathBuf, u64)> {
        self.shards
            .iter()
            .filter(|s| s.split == split)
            .map(|s| (dir.join(&s.file), s.tokens))
            .collect()
    }
}

/// Progress of a preparation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Documents processed (including resumed ones).
    pub documents: u64,
    /// Documents in all inputs, when known (Parquet metadata).
    pub total_documents: Option<u64>,
    /// Tokens written in this run.
    pub tokens: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SplitState {
    shards: Vec<ShardInfo>,
    /// The first document not wholly inside completed shards, and the tokens of it already written.
    resume_doc: u64,
    resume_skip: u64,
    documents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    fingerprint: String,
    splits: BTreeMap<String, SplitState>,
}

struct SplitWriter {
    name: String,
    dir: PathBuf,
    dtype: TokenDtype,
    shard_tokens: u64,
    state: SplitState,
    current: Option<ShardWriter>,
    /// The document being written and the tokens of it written so far (for the resume point).
    doc: u64,
    doc_written: u64,
}

impl SplitWriter {
    fn new(name: &str, dir: &Path, dtype: TokenDtype, shard_tokens: u64, state: SplitState) -> Self {
        SplitWriter {
            name: name.into(),
            dir: dir.into(),
            dtype,
            shard_tokens,
            state,
            current: None,
            doc: 0,
            doc_written: 0,
        }
    }

    fn file_name(&self) -> String {
        format!("{}-{:06}.parquet", self.name, self.state.shards.len())
    }

    /// Writes this split's part of document `doc`; returns true when a shard was completed.
    fn push(&mut self, doc: u64, tokens: &[u32], starts_doc: bool) -> Result<bool> {
        let tokens = if doc < self.state.resume_doc {
            return Ok(false);
        } else if doc == self.state.resume_doc && self.state.resume_skip > 0 {
            let skip = (self.state.resume_skip as usize).min(tokens.len());
            self.doc_written = skip as u64;
            &tokens[skip..]
        } else {
            if starts_doc && !tokens.is_empty() {
                self.state.documents += 1;
            }
            self.doc_written = 0;
            tokens
        };
        self.doc = doc;
        let mut completed = false;
        let mut rest = tokens;
        while !rest.is_empty() {
            if self.current.is_none() {
                self.current = Some(ShardWriter::create(&self.dir.join(self.file_name()), self.dtype)?);
            }
            let Some(w) = self.current.as_mut() else { break };
            let take = ((self.shard_tokens - w.tokens()) as usize).min(rest.len());
            w.push(&rest[..take])?;
            rest = &rest[take..];
            self.doc_written += take as u64;
            if w.tokens() == self.shard_tokens {
                self.close_shard()?;
                completed = true;
            }
        }
        Ok(completed)
    }

    fn close_shard(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let file = self.file_name();
            let tokens = w.finish()?;
            self.state.shards.push(ShardInfo {
                file,
                split: self.name.clone(),
                tokens,
            });
            // Everything of documents before `doc`, and `doc_written` tokens of `doc`, are now stored.
            self.state.resume_doc = self.doc;
            self.state.resume_skip = self.doc_written;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SplitState> {
        self.close_shard()?;
        Ok(self.state)
    }
}

/// Deterministic [0, 1) value of (seed, document index).
fn doc_hash(seed: u64, doc: u64) -> f64 {
    crate::rng::unit(crate::rng::finalize(seed ^ doc.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))? + "\n";
    inheritune_fs::write_file(path, text.as_bytes()).map_err(|e| Error::io(e.path, e.source))
}

/// Prepares `sources` into `out`; `progress` is called after each batch and may stop the run
/// (completed shards stay, and a rerun resumes after them). A finished folder with the same settings is returned as is; a
/// folder interrupted with the same settings is resumed; a folder with other settings is an error.
///
/// # Errors
/// Invalid settings, unreadable or malformed inputs (named with row group or line), an EOT token
/// missing from the vocabulary, an empty input, or a write failure.
pub fn prepare(
    sources: &[SourceFile],
    tokenizer: &Tokenizer,
    config: &PrepareConfig,
    out: &Path,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Manifest> {
    let result = prepare_inner(sources, tokenizer, config, out, progress);
    if result.is_err() {
        remove_partial_shards(out);
    }
    result
}

/// Deletes `*.parquet.tmp` files: shards an interrupted or failed run did not finish.
fn remove_partial_shards(out: &Path) {
    if let Ok(entries) = std::fs::read_dir(out) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".parquet.tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn prepare_inner(
    sources: &[SourceFile],
    tokenizer: &Tokenizer,
    config: &PrepareConfig,
    out: &Path,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Manifest> {
    config.validate()?;
    if sources.is_empty() {
        return Err(Error::Invalid("no input files".into()));
    }
    let eot_id = eot_id(tokenizer, config)?;
    let tok_info = TokenizerInfo {
        name: tokenizer.name().to_string(),
        hash: tokenizer.hash(),
        vocab_size: tokenizer.vocab_size(),
    };
    let dtype = TokenDtype::for_vocab(tok_info.vocab_size);
    let fingerprint =
        serde_json::to_string(&(config, &tok_info, sources)).map_err(|e| Error::Invalid(e.to_string()))?;
    let state = match open_folder(out, config, &fingerprint)? {
        Opened::Finished(manifest) => return Ok(*manifest),
        Opened::Continue(state) => state,
    };
    let mut router = Router::new(config, out, dtype, &state);
    let skip = router.resume_doc();
    let mut report = Progress {
        documents: skip,
        total_documents: count_documents(sources),
        tokens: 0,
    };
    if let Some(total) = report.total_documents {
        past_corpus(config, total)?;
    }
    let state_path = out.join(STATE_FILE);
    let mut process = |first: u64, texts: Vec<String>| -> Result<()> {
        let mut shard_done = false;
        for (k, tokens) in tokenize(tokenizer, config, eot_id, &texts).into_iter().enumerate() {
            let tokens = tokens?;
            report.tokens += tokens.len() as u64;
            shard_done |= router.route(first + k as u64, &tokens)?;
        }
        // Each finished shard is recorded, so an interrupted run resumes after it.
        if shard_done {
            write_json_atomic(&state_path, &router.state(&fingerprint))?;
        }
        report.documents = first + texts.len() as u64;
        match progress(report) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(Error::Interrupted),
        }
    };
    let documents = read_and_process(sources, config, skip, &mut process)?;
    if documents == 0 {
        return Err(Error::Invalid("the inputs hold no documents".into()));
    }
    past_corpus(config, documents)?;
    let (shards, splits) = router.finish()?;
    let manifest = Manifest {
        format: "inheritune-tokens-v1".into(),
        config: config.clone(),
        tokenizer: tok_info,
        eot_id,
        token_dtype: dtype,
        sources: sources.to_vec(),
        documents,
        shards,
        splits,
    };
    write_json_atomic(&out.join(MANIFEST_FILE), &manifest)?;
    let _ = std::fs::remove_file(&state_path);
    Ok(manifest)
}

/// The id of the EOT token the config places (none for `EotPlacement::None`).
fn eot_id(tokenizer: &Tokenizer, config: &PrepareConfig) -> Result<Option<u32>> {
    if config.eot == EotPlacement::None {
        return Ok(None);
    }
    let id = tokenizer.token_to_id(&config.eot_token).ok_or_else(|| {
        Error::Invalid(format!(
            "the tokenizer {} has no token {:?} to use as EOT",
            tokenizer.name(),
            config.eot_token
        ))
    })?;
    Ok(Some(id))
}

/// What an output folder holds for a preparation with this `fingerprint`.
enum Opened {
    /// A finished preparation with the same settings: returned as it is.
    Finished(Box<Manifest>),
    /// Nothing, or an interrupted preparation with the same settings to continue.
    Continue(State),
}

/// Opens `out` (created if missing): a finished preparation with the same settings, an
/// interrupted one to continue (its half-written shards discarded), or a fresh start; a folder
/// holding other settings is refused.
fn open_folder(out: &Path, config: &PrepareConfig, fingerprint: &str) -> Result<Opened> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    if let Ok(existing) = Manifest::read(out) {
        let same = serde_json::to_string(&(&existing.config, &existing.tokenizer, &existing.sources)).ok()
            == Some(fingerprint.to_string());
        if same {
            return Ok(Opened::Finished(Box::new(existing)));
        }
        return Err(Error::Invalid(format!(
            "{}: holds a preparation with other settings or inputs; choose a new output folder (or replace it: prepare --overwrite)",
            out.display()
        )));
    }
    let state_path = out.join(STATE_FILE);
    let fresh = || State {
        fingerprint: fingerprint.to_string(),
        splits: BTreeMap::new(),
    };
    let state: State = match std::fs::read_to_string(&state_path) {
        Ok(text) => {
            let s: State = serde_json::from_str(&text).map_err(|e| Error::input(&state_path, "", e))?;
            if s.fingerprint != fingerprint {
                return Err(Error::Invalid(format!(
                    "{}: an interrupted preparation with other settings is here; choose a new output folder (or replace it: prepare --overwrite)",
                    out.display()
                )));
            }
            s
        }
        Err(_) => fresh(),
    };
    // Half-written shards of an interrupted run are discarded.
    remove_partial_shards(out);
    // A FirstTokens split can resume only once its val part is complete (train follows val).
    let val_done = match config.split {
        SplitRule::FirstTokens { tokens } => {
            state
                .splits
                .get("val")
                .map_or(0, |v| v.shards.iter().map(|x| x.tokens).sum::<u64>())
                >= tokens
        }
        _ => true,
    };
    Ok(Opened::Continue(if val_done { state } else { fresh() }))
}

/// A val document list must name documents of the corpus.
fn past_corpus(config: &PrepareConfig, documents: u64) -> Result<()> {
    if let SplitRule::DocList { docs } = &config.split {
        if let Some(&last) = docs.iter().max().filter(|&&d| d >= documents) {
            return Err(Error::Invalid(format!(
                "val document index {last} is past the corpus, which has {documents} documents (indices are 0-based)"
            )));
        }
    }
    Ok(())
}

/// The documents' tokens (on the thread pool, in order), EOT placed.
fn tokenize(
    tokenizer: &Tokenizer,
    config: &PrepareConfig,
    eot_id: Option<u32>,
    texts: &[String],
) -> Vec<Result<Vec<u32>>> {
    texts
        .par_iter()
        .map(|t| {
            let mut tokens = if config.add_special_tokens {
                tokenizer.encode(t)?
            } else {
                tokenizer.encode_ordinary(t)?
            };
            match (config.eot, eot_id) {
                (EotPlacement::Append, Some(id)) => tokens.push(id),
                (EotPlacement::Prepend, Some(id)) => tokens.insert(0, id),
                _ => {}
            }
            Ok(tokens)
        })
        .collect()
}

/// Sends each document's tokens to its split's writer by the config's split rule.
struct Router<'c> {
    rule: &'c SplitRule,
    writers: BTreeMap<&'static str, SplitWriter>,
    /// Tokens of the stream so far (`FirstTokens`; past any bound when resumed, since a resumed
    /// `FirstTokens` preparation has its val part complete).
    stream_tokens: u64,
    resumed: bool,
}

impl<'c> Router<'c> {
    fn new(config: &'c PrepareConfig, out: &Path, dtype: TokenDtype, state: &State) -> Self {
        let writers = ["train", "val"]
            .into_iter()
            .map(|s| {
                let split = state.splits.get(s).cloned().unwrap_or_default();
                (s, SplitWriter::new(s, out, dtype, config.shard_tokens, split))
            })
            .collect();
        let resumed = !state.splits.is_empty();
        Router {
            rule: &config.split,
            writers,
            stream_tokens: if resumed { u64::MAX / 2 } else { 0 },
            resumed,
        }
    }

    /// The first document not yet written (0 for a fresh start).
    fn resume_doc(&self) -> u64 {
        if !self.resumed {
            return 0;
        }
        self.writers.values().map(|w| w.state.resume_doc).min().unwrap_or(0)
    }

    /// Writes document `doc`; whether a shard was completed.
    fn route(&mut self, doc: u64, tokens: &[u32]) -> Result<bool> {
        let mut shard_done = false;
        let mut push = |split: &str, part: &[u32], starts: bool| -> Result<()> {
            if let Some(w) = self.writers.get_mut(split) {
                shard_done |= w.push(doc, part, starts)?;
            }
            Ok(())
        };
        match self.rule {
            SplitRule::DocFraction { fraction, seed } => push(
                if doc_hash(*seed, doc) < *fraction {
                    "val"
                } else {
                    "train"
                },
                tokens,
                true,
            )?,
            SplitRule::DocList { docs } => push(if docs.contains(&doc) { "val" } else { "train" }, tokens, true)?,
            SplitRule::None => push("train", tokens, true)?,
            SplitRule::FirstTokens { tokens: n } => {
                let to_val = n.saturating_sub(self.stream_tokens).min(tokens.len() as u64) as usize;
                if to_val > 0 {
                    push("val", &tokens[..to_val], true)?;
                }
                if to_val < tokens.len() {
                    push("train", &tokens[to_val..], to_val == 0)?;
                }
                self.stream_tokens += tokens.len() as u64;
            }
        }
        Ok(shard_done)
    }

    /// The resume state of the shards written so far.
    fn state(&self, fingerprint: &str) -> State {
        State {
            fingerprint: fingerprint.to_string(),
            splits: self
                .writers
                .iter()
                .map(|(k, w)| (k.to_string(), w.state.clone()))
                .collect(),
        }
    }

    /// Closes every split: all the shards, and each split's totals.
    fn finish(self) -> Result<(Vec<ShardInfo>, BTreeMap<String, SplitTotals>)> {
        let mut shards = Vec::new();
        let mut splits = BTreeMap::new();
        for (name, w) in self.writers {
            let s = w.finish()?;
            let totals = SplitTotals {
                tokens: s.shards.iter().map(|x| x.tokens).sum(),
                documents: s.documents,
                shards: s.shards.len(),
            };
            shards.extend(s.shards);
            splits.insert(name.to_string(), totals);
        }
        Ok((shards, splits))
    }
}

/// A reader thread decodes the inputs (from document `skip` on) in batches while `process`
/// handles the previous batch; output order is the input order either way. Returns the documents
/// read.
fn read_and_process(
    sources: &[SourceFile],
    config: &PrepareConfig,
    skip: u64,
    process: &mut dyn FnMut(u64, Vec<String>) -> Result<()>,
) -> Result<u64> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<String>)>(2);
    std::thread::scope(|scope| -> Result<u64> {
        let reader = scope.spawn(move || {
            for_each_batch(sources, &config.column, config.batch_docs, skip, &mut |first, texts| {
                tx.send((first, texts)).map_err(|_| Error::Interrupted)
            })
        });
        let mut outcome = Ok(());
        for (first, texts) in rx.iter() {
            outcome = process(first, texts);
            if outcome.is_err() {
                break;
            }
        }
        // Dropping the receiver stops a reader still sending after a failure.
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| Error::Invalid("the input reader panicked".into()))?;
        outcome?;
        read
    })
}
