//! Tokenizers and token streams: the built-in GPT-2 tokenizer and any Hugging Face `tokenizer.json`.
//!
//! Parquet token shards and the training loader come with the data issue; this crate must not
//! depend on the model or on libtorch.

pub mod error;
pub mod tokenizer;

pub use error::{Error, Result};
pub use tokenizer::Tokenizer;
