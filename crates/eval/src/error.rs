//! Errors of the eval crate.

/// Everything that can go wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model rejected the input or failed.
    #[error(transparent)]
    Model(#[from] inheritune_model::Error),
    /// libtorch reported an error.
    #[error("torch: {0}")]
    Torch(#[from] inheritune_model::tch::TchError),
    /// A request that cannot be evaluated.
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
