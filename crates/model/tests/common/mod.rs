//! Helpers shared by the model crate's integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use inheritune_model::tch::Tensor;

/// The folder of a fixture made by `tests/fixtures/make_fixtures.py`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The tensors of a fixture's `reference.safetensors`.
pub fn reference(name: &str) -> anyhow::Result<HashMap<String, Tensor>> {
    let path = fixture(name).join("reference.safetensors");
    Ok(Tensor::read_safetensors(&path)?.into_iter().collect())
}

/// Largest absolute difference between two tensors (compared in f64).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(inheritune_model::tch::Kind::Double) - b.to_kind(inheritune_model::tch::Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// Every fixture with its family.
pub const FIXTURES: [&str; 5] = [
    "gpt2_bias",
    "gpt2_inverse_scale",
    "gpt2_nobias_bf16",
    "llama_gqa_tied",
    "llama_mqa_untied",
];
