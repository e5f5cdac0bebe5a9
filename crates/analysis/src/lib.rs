//! Attention rank and column mass of any GPT-2 or LLaMA checkpoint (arXiv 2404.08634, METHOD.md §2).
//!
//! [`metrics`] computes k*(τ), m*(η) and dom(A) in f64 on batches of post-softmax causal
//! attention matrices; [`analyze()`] runs a model one layer at a time over windows and aggregates
//! per head and layer (MaxRank, AvgMass, lazy flags, the alternative aggregations and a τ sweep);
//! [`depth`] computes the field's depth criteria from the residual stream (Block Influence,
//! angular distance, leave-one-out NLL) and the rules that keep blocks by them;
//! [`plot`] draws the paper's figures and the criteria's. This crate must not train or modify models.

pub mod analyze;
pub mod depth;
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
