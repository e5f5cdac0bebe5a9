//! Errors of the data crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading tokenizers or reading and writing token data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A tokenizer file could not be parsed or used.
    #[error("{path}: invalid tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file (or `<built-in gpt2>`).
        path: PathBuf,
        /// What the tokenizers library reported.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
