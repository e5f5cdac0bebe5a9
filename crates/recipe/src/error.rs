//! The recipe layer's errors.

use std::path::PathBuf;

/// What can go wrong planning or running a recipe.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipe file is unreadable or invalid (unknown keys, wrong types, impossible values).
    #[error("{}: {message}", path.display())]
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A request that cannot be carried out (an unknown stage, too few devices, ...).
    #[error("{0}")]
    Invalid(String),
    /// A stage failed.
    #[error("stage {stage}")]
    Stage {
        /// The stage.
        stage: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A child `inheritune` process failed.
    #[error("inheritune {verb} failed ({status}); its output is in {}", log.display())]
    Child {
        /// The verb.
        verb: String,
        /// Its exit status.
        status: String,
        /// The stage's log file.
        log: PathBuf,
    },
    /// A file could not be read, parsed or written.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The run was stopped (another stage failed, or a signal).
    #[error("stopped")]
    Stopped,
    /// The model crate failed.
    #[error(transparent)]
    Model(#[from] inheritune_model::Error),
    /// The train crate failed.
    #[error(transparent)]
    Train(#[from] inheritune_train::Error),
    /// The eval crate failed.
    #[error(transparent)]
    Eval(#[from] inheritune_eval::Error),
    /// The analysis crate failed (figures).
    #[error(transparent)]
    Analysis(#[from] inheritune_analysis::Error),
    /// A crash-safe write failed.
    #[error(transparent)]
    Write(#[from] inheritune_fs::Error),
}

impl Error {
    /// A file error from anything displayable.
    pub fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
