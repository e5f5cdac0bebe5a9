//! Layer inheritance, growth and warm-start baselines (not implemented yet; see the project's open issues).
