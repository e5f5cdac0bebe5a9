//! Errors of the eval crate.

use std::path::PathBuf;

/// Everything that can go wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model rejected the input or failed.
    #[error(transparent)]
    Model(#[from] inheritune_model::Error),
    /// The tokenizer or token data failed.
    #[error(transparent)]
    Tokens(#[from] inheritune_data::Error),
    /// libtorch reported an error.
    #[error("torch: {0}")]
    Torch(#[from] inheritune_model::tch::TchError),
    /// A request that cannot be evaluated.
    #[error("{0}")]
    Invalid(String),
    /// A task's data file is missing or malformed.
    #[error("{path}: {message}")]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong (with the row or line).
        message: String,
    },
    /// A row lacks a field or has the wrong type.
    #[error("{task}: {path} row {row}: {message}")]
    Row {
        /// The task.
        task: String,
        /// The split's folder.
        path: PathBuf,
        /// 0-based row.
        row: usize,
        /// What is wrong.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
