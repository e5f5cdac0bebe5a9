//! Validation loss, perplexity and lm-evaluation-harness tasks (not implemented yet; see the project's open issues).
