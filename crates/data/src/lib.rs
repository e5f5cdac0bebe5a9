//! Tokenizers and token streams.
