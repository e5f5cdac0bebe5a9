//! Validation loss, perplexity and (later) lm-evaluation-harness tasks.
//!
//! This crate scores models; it must not train them or change their weights.

pub mod error;
pub mod perplexity;

pub use error::{Error, Result};
