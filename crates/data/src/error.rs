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
    /// An input or shard file is malformed; `at` says where (row group, row or line).
    #[error("{path}: {at}{message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// `row group 3: `, `line 17: `, or empty.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// The caller stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// The request is impossible (bad settings, empty input, mismatched output folder).
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io { path: path.into(), err }
    }

    pub(crate) fn input(path: impl Into<PathBuf>, at: impl Into<String>, message: impl ToString) -> Self {
        Error::Input {
            path: path.into(),
            at: at.into(),
            message: message.to_string(),
        }
    }
}
