//! Parity with `transformers`: logits and attention probabilities of tiny random checkpoints.
//!
//! Fixtures and the script that made them live in `tests/fixtures/`. Tolerances: logits within
//! 1e-4 absolute (f32, CPU); attention probabilities within 1e-5; the fast and explicit attention
//! paths within 1e-5 of each other.

mod common;

use common::{check_attention, check_logits, fixture, FIXTURES};
use inheritune_model::hf::{self, LoadOptions};

#[test]
fn logits_match_transformers() -> anyhow::Result<()> {
    for name in FIXTURES {
        check_logits(name)?;
    }
    Ok(())
}

#[test]
fn attention_probabilities_match_transformers() -> anyhow::Result<()> {
    for name in FIXTURES {
        check_attention(name)?;
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
