//! Tokenizers, token shards and the training loader.
//!
//! [`tokenizer`]: the built-in GPT-2 tokenizer and any `tokenizer.json`; [`source`]: raw-text
//! inputs (Parquet, JSONL, .txt); [`prepare()`]: text → Parquet token shards + manifest;
//! [`shards`]: the shard format; [`loader`]: deterministic batches for training and analysis.
//! This crate must not depend on the model or on libtorch.

pub mod error;
pub mod loader;
pub mod prepare;
pub mod rng;
pub mod shards;
pub mod source;
pub mod tokenizer;

pub use error::{Error, Result};
pub use prepare::{prepare, Manifest, PrepareConfig};
pub use tokenizer::Tokenizer;

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
