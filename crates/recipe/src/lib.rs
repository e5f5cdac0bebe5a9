//! The Inheritune recipe (METHOD.md Algorithm 1, §1.2–§1.6) as a library: the typed recipe
//! ([`Recipe`]), its stages as a graph over the finished stages' facts ([`stages`]), Algorithm
//! 1's growth loop as a pure function ([`growth::Rule`]), a runner that skips finished stages,
//! honours `--from` / `--only` and runs independent stages at once on disjoint devices
//! ([`Graph`]), the stages as child `inheritune` processes ([`Children`]), the dry-run plan
//! ([`plan()`]) and the report ([`report::write`]).
//!
//! tokenizer (optional BPE) → data → reference (trained, or a given checkpoint scored on val) →
//! analyze the reference → Inheritune rounds (inherit l0 = L/2 blocks, train the same budget,
//! compare the final full-val loss with the reference's within `tolerance`, grow by Δ while
//! worse) → baselines (same-size scratch for 1× and 2× the steps; optionally hybrid stacking,
//! half-width, DistilBERT-style init, stacking) → analyze the target → downstream eval when eval
//! data is present → report.
//!
//! Every stage writes `<run>/<stage>/facts.json`, then `DONE`, last; a rerun skips finished
//! stages, and an interrupted training stage resumes from its last checkpoint.
//!
//! ```
//! use inheritune_recipe::{growth::Next, stages, Facts, Recipe};
//! let recipe = Recipe::parse(r#"
//! name = "demo"
//! [data]
//! inputs = ["corpus.txt"]
//! [reference.model]
//! preset = "gpt2-tiny"
//! [reference.model.overrides]
//! n_layer = 8
//! [train]
//! max_steps = 100
//! "#).unwrap();
//! let first = stages::stages(&recipe, 8, &Facts::default(), false);
//! assert_eq!(first.last().unwrap().name, "inheritune-l4");
//! assert_eq!(stages::rule(&recipe, 8).next(3.0, &[2.9]), Next::Matched { layers: 4 });
//! ```

pub mod config;
pub mod error;
pub mod exec;
pub mod facts;
pub mod graph;
pub mod growth;
pub mod plan;
pub mod report;
pub mod stages;

pub use config::Recipe;
pub use error::{Error, Result};
pub use exec::Children;
pub use facts::{Facts, StageFacts};
pub use graph::{Executor, Graph, Outcome, Selection};
pub use plan::plan;
