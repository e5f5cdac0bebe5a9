//! Attention rank and column mass of GPT-2 and LLaMA checkpoints (not implemented yet; see the project's open issues).
