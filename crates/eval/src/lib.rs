//! Validation loss, perplexity and the paper's downstream tasks with lm-evaluation-harness 0.4.13
//! semantics (`crates/eval/EVAL-TASKS.md`): prompts, `_encode_pair`, BOS rule, truncation,
//! full-vocabulary log-likelihoods, metrics and aggregation.
//!
//! This crate scores models; it must not train them or change their weights.

pub mod bootstrap;
pub mod data;
pub mod error;
pub mod harness;
pub mod perplexity;
pub mod pystr;
pub mod scorer;
pub mod tasks;
pub mod text;

pub use error::{Error, Result};
pub use harness::{evaluate, Evaluation, Sample, TaskResult};
pub use scorer::Scorer;
