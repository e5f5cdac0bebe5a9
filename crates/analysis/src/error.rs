//! Errors of the analysis crate.

use std::path::PathBuf;

/// Everything that can go wrong while analysing attention.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is impossible (no windows, a window too long, a bad threshold).
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// What plotters reported.
        message: String,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] inheritune_model::Error),
    /// libtorch reported an error.
    #[error("torch: {0}")]
    Torch(#[from] inheritune_model::tch::TchError),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
