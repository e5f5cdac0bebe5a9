//! Errors of the surgery crate.

/// Everything that can go wrong while building a model from another.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is impossible for these models (depth, indices, widths, families).
    #[error("invalid surgery: {0}")]
    Invalid(String),
    /// The model crate failed (building the target, bad config).
    #[error(transparent)]
    Model(#[from] inheritune_model::Error),
    /// libtorch reported an error.
    #[error("torch: {0}")]
    Torch(#[from] inheritune_model::tch::TchError),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}
