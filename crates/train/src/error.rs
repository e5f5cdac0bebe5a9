//! Errors of the train crate.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, running or resuming training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run config is invalid; every problem is listed.
    #[error("invalid run config{}: {}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default(), problems.join("; "))]
    Config {
        /// The config file, when there is one.
        path: Option<PathBuf>,
        /// One entry per problem, naming the key.
        problems: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The loss or the gradient norm became NaN or infinite; the update was not applied.
    #[error("loss is {loss} and gradient norm {grad_norm} at step {step}; stopped before the update (the last good checkpoint is kept)")]
    NonFinite {
        /// The step.
        step: u64,
        /// The loss value.
        loss: f64,
        /// The gradient norm before clipping.
        grad_norm: f64,
    },
    /// The weights became NaN or infinite; no checkpoint of them was written.
    #[error("the weights are not finite at step {step}; stopped without writing that checkpoint (the last good checkpoint is kept)")]
    NonFiniteWeights {
        /// The step.
        step: u64,
    },
    /// The caller stopped the run.
    #[error("interrupted")]
    Interrupted,
    /// The model crate failed.
    #[error(transparent)]
    Model(#[from] inheritune_model::Error),
    /// The data crate failed.
    #[error(transparent)]
    Data(#[from] inheritune_data::Error),
    /// A collective of a data-parallel run failed (a rank died or stalled), or the launch was bad.
    #[error(transparent)]
    Dist(#[from] inheritune_dist::Error),
    /// A resumed data-parallel run does not fit the saved one.
    #[error("{0}")]
    Resume(String),
    /// libtorch reported an error.
    #[error("torch: {0}")]
    Torch(#[from] inheritune_model::tch::TchError),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn file_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
