//! Layer inheritance, growth and the paper's warm-start baselines (arXiv 2404.08634, METHOD.md §1.4–1.7, §5).
//!
//! Every model the recipe or a baseline starts from is made here, as a [`Plan`] that names the
//! source of every target tensor (a reference tensor, possibly sliced; a fresh seeded
//! initialisation; or zeros) and doubles as the `surgery.json` report. This crate must not train
//! or read data.

pub mod error;
pub mod ops;
pub mod plan;

pub use error::{Error, Result};
pub use ops::{distill_init, grow, half_width, hybrid_stack, inherit, select_blocks, stack, truncate};
pub use ops::{Group, GrowMode, InheritMap, MapKind, Selection};
pub use plan::{DimSlice, Entry, Plan, Source};
