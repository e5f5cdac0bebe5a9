//! The Inheritune training loop (METHOD.md §4): AdamW with owned moments and nanoGPT's parameter groups,
//! warmup + cosine schedule, gradient accumulation (mean or the paper's sum), global-norm clipping,
//! evaluation and checkpoints at fixed intervals, exact resume, and metrics as JSONL.
//! This crate must not prepare data or modify architectures.

pub mod adamw;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod dist;
pub mod error;
pub mod lock;
pub mod peak;
pub mod run_dir;
pub mod schedule;
mod setup;
mod sink;
pub mod tensorboard;
pub mod trainer;
pub mod val;

pub use config::RunConfig;
pub use dist::{Collective, Dist, OverlappedReduce, SingleProcess};
pub use error::{Error, Result};
pub use run_dir::RunDir;
pub use trainer::{train, MetricKind, Metrics, Options, Summary};
