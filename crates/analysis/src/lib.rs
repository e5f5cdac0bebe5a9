//! Attention rank and column mass of any GPT-2 or LLaMA checkpoint (arXiv 2404.08634, METHOD.md §2).
//!
//! [`metrics`] computes k*(τ), m*(η) and dom(A) in f64 on batches of post-softmax causal
//! attention matrices; [`analyze()`] runs a model one layer at a time over windows and aggregates
//! per head and layer (MaxRank, AvgMass, lazy flags, the alternative aggregations and a τ sweep);
//! [`plot`] draws the paper's figures. This crate must not train or modify models.

pub mod analyze;
pub mod error;
pub mod metrics;
pub mod plot;
pub mod windows;

pub use analyze::{analyze, analyze_layer, Analysis, HeadResult, LayerResult, MassOrder, Settings};
pub use error::{Error, Result};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
