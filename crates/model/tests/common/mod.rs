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

/// Every decoder-family fixture (`fixtures/make_families.py`) with the `model_type` its config
/// must parse to.
pub const FAMILIES: [(&str, &str); 10] = [
    ("fam_llama3", "llama"),
    ("fam_llama_yarn", "llama"),
    ("fam_llama_linear", "llama"),
    ("fam_llama_dynamic", "llama"),
    ("fam_mistral", "mistral"),
    ("fam_qwen2", "qwen2"),
    ("fam_qwen3", "qwen3"),
    ("fam_gemma2", "gemma2"),
    ("fam_gemma3", "gemma3_text"),
    ("fam_phi3", "phi3"),
];

/// Loads fixture `name` (the load report must be clean) and checks its logits against
/// transformers' within 1e-4; returns the model.
pub fn check_logits(name: &str) -> anyhow::Result<inheritune_model::CausalLm> {
    use inheritune_model::hf::{self, LoadOptions};
    let (model, report) = hf::load(&fixture(name), &LoadOptions::default())?;
    assert!(report.is_clean(), "{name}: {report}");
    let r = reference(name)?;
    let logits = model.forward(&r["input_ids"])?;
    assert_eq!(logits.size(), r["logits"].size(), "{name}");
    let diff = max_abs_diff(&logits, &r["logits"]);
    assert!(diff < 1e-4, "{name}: logits differ by {diff}");
    Ok(model)
}

/// Checks fixture `name`'s attention probabilities, layer by layer, against transformers'
/// within 1e-5, and the fast path's logits against the explicit path's within 1e-5.
pub fn check_attention(name: &str) -> anyhow::Result<()> {
    use inheritune_model::hf::{self, LoadOptions};
    let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
    let r = reference(name)?;
    let mut layers = Vec::new();
    let mut visitor = |layer: usize, probs: &Tensor| layers.push((layer, probs.copy()));
    let explicit = model.forward_with_attention(&r["input_ids"], &mut visitor)?;
    assert_eq!(layers.len() as i64, model.config().n_layer(), "{name}");
    for (layer, probs) in &layers {
        let diff = max_abs_diff(probs, &r[&format!("attn.{layer}")]);
        assert!(diff < 1e-5, "{name} layer {layer}: attention differs by {diff}");
    }
    let fast = model.forward(&r["input_ids"])?;
    let diff = max_abs_diff(&fast, &explicit);
    assert!(diff < 1e-5, "{name}: fast and explicit paths differ by {diff}");
    Ok(())
}
