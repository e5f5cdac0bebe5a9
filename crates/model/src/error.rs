//! Errors of the model crate: configuration, checkpoint I/O and tensor operations.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading, running or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde reported, with line and column.
        message: String,
    },
    /// `config.json` names an architecture this crate does not implement.
    #[error("{path}: unknown architecture: model_type {model_type:?} (supported: {})", crate::config::supported_model_types().join(", "))]
    UnknownArchitecture {
        /// The config file.
        path: PathBuf,
        /// The `model_type` found, if any.
        model_type: Option<String>,
    },
    /// A configuration is impossible; every problem is listed.
    #[error("invalid {model} config: {}", problems.join("; "))]
    InvalidConfig {
        /// The model family.
        model: &'static str,
        /// One entry per problem, each naming the field.
        problems: Vec<String>,
    },
    /// A config file holds a valid model but an invalid field for it.
    #[error("{path}: {err}")]
    ConfigFile {
        /// The config file.
        path: PathBuf,
        /// The validation error.
        err: Box<Error>,
    },
    /// A `pytorch_model.bin` that libtorch's unpickler cannot read as a state dict.
    #[error("{path}: invalid PyTorch weights file: {message}")]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What libtorch's unpickler reported (its first line).
        message: String,
    },
    /// A GGUF file is malformed, or holds what this crate does not read.
    #[error("{path}: {message}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key, tensor or type.
        message: String,
    },
    /// A safetensors file is truncated or malformed.
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// A checkpoint tensor has a shape other than the configuration implies.
    #[error("{path}: tensor {name}: expected shape {expected:?}, found {actual:?}")]
    ShapeMismatch {
        /// The file holding the tensor.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
        /// The shape the config implies.
        expected: Vec<i64>,
        /// The shape in the file.
        actual: Vec<i64>,
    },
    /// A checkpoint tensor uses a dtype that cannot be loaded.
    #[error("{path}: tensor {name}: unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file holding the tensor.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// Strict loading found keys it did not plan for.
    #[error("{dir}: checkpoint does not match the config: {}", summary)]
    StrictLoad {
        /// The checkpoint folder.
        dir: PathBuf,
        /// Missing, unexpected and mis-shaped keys, summarised.
        summary: String,
    },
    /// A bias tensor is non-zero while the config says the model has no biases.
    #[error("{path}: tensor {name} is non-zero but the config sets \"bias\": false")]
    NonZeroBias {
        /// The file holding the tensor.
        path: PathBuf,
        /// The checkpoint key.
        name: String,
    },
    /// The input is longer than the model's context.
    #[error("sequence of {len} tokens exceeds the context length {max}")]
    SequenceTooLong {
        /// Tokens in the input.
        len: i64,
        /// The model's context length.
        max: i64,
    },
    /// The input is not a (batch, time) tensor of token ids.
    #[error("input ids must be a 2-d integer tensor (batch, time), got shape {shape:?} of {kind}")]
    BadInput {
        /// The input's shape.
        shape: Vec<i64>,
        /// The input's dtype.
        kind: String,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The offending id.
        id: i64,
        /// The model's vocabulary size.
        vocab_size: i64,
    },
    /// A device or dtype request cannot be served here.
    #[error("{0}")]
    Unavailable(String),
    /// A [`crate::Packing`] that does not fit its ids (shapes, kinds, device, positions).
    #[error("packing: {0}")]
    BadPacking(String),
    /// libtorch reported an error.
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }
}
