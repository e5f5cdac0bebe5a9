//! The Inheritune training loop: AdamW, schedule, checkpoints (not implemented yet; see the project's open issues).
