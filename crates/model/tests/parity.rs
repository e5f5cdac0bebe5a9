//! Parity with `transformers`: logits and attention probabilities of tiny random checkpoints.
//!
//! Fixtures and the script that made them live in `tests/fixtures/`. Tolerances: logits within
//! 1e-4 absolute (f32, CPU); attention probabilities within 1e-5; the fast and explicit attention
//! paths within 1e-5 of each other.

mod common;

use common::{fixture, max_abs_diff, reference, FIXTURES};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::Tensor;

#[test]
fn logits_match_transformers() -> anyhow::Result<()> {
    for name in FIXTURES {
        let (model, report) = hf::load(&fixture(name), &LoadOptions::default())?;
        assert!(report.is_clean(), "{name}: {report}");
        let r = reference(name)?;
        let logits = model.forward(&r["input_ids"])?;
        assert_eq!(logits.size(), r["logits"].size(), "{name}");
        let diff = max_abs_diff(&logits, &r["logits"]);
        assert!(diff < 1e-4, "{name}: logits differ by {diff}");
    }
    Ok(())
}

#[test]
fn attention_probabilities_match_transformers() -> anyhow::Result<()> {
    for name in FIXTURES {
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
    }
    Ok(())
}

#[test]
fn bias_free_fixture_has_no_bias_parameters() -> anyhow::Result<()> {
    let (model, report) = hf::load(&fixture("gpt2_nobias_bf16"), &LoadOptions::default())?;
    let params = model.named_parameters();
    assert!(params.keys().all(|k| !k.ends_with(".bias")));
    // 2 layers × 6 biases + ln_f.bias, all zero in the file and skipped by plan.
    let zero_biases = report
        .ignored
        .iter()
        .filter(|(_, why)| why.contains("zero bias"))
        .count();
    assert_eq!(zero_biases, 13);
    Ok(())
}
