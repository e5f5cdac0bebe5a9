//! Inheritance on every decoder family, against `transformers`: the blocks of
//! `inherit.json` (not a prefix where the family has per-layer settings) are inherited, saved
//! and loaded again, and the logits equal those of the same truncated model built and run by
//! `transformers` with the chosen blocks' `layer_types` (`make_families.py` in the model
//! crate's fixtures).

use std::path::PathBuf;

use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::{Kind, Tensor};
use inheritune_model::ModelConfig;
use inheritune_surgery::{inherit, InheritMap, Selection};

const FAMILIES: [&str; 10] = [
    "fam_llama3",
    "fam_llama_yarn",
    "fam_llama_linear",
    "fam_llama_dynamic",
    "fam_mistral",
    "fam_qwen2",
    "fam_qwen3",
    "fam_gemma2",
    "fam_gemma3",
    "fam_phi3",
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

#[test]
fn inherited_blocks_of_every_family_compute_what_transformers_computes() -> anyhow::Result<()> {
    for name in FAMILIES {
        let dir = fixture(name);
        let (reference, _) = hf::load(&dir, &LoadOptions::default())?;
        let blocks: Vec<i64> = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("inherit.json"))?)?["blocks"]
                .clone(),
        )?;
        let r: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("reference.safetensors"))?
            .into_iter()
            .collect();
        let (target, plan) = inherit(
            &reference,
            blocks.len() as i64,
            &InheritMap::Paper,
            &Selection::Indices(blocks.clone()),
            0,
        )?;
        // Every per-layer setting follows its block.
        if let (ModelConfig::Llama(t), ModelConfig::Llama(c)) = (target.config(), reference.config()) {
            for (j, &b) in blocks.iter().enumerate() {
                assert_eq!(t.layer_window(j as i64), c.layer_window(b), "{name}: block {b} at {j}");
                assert_eq!(t.is_sliding(j as i64), c.is_sliding(b), "{name}: block {b} at {j}");
            }
        }
        let out = tempfile::tempdir()?;
        hf::save(&target, out.path())?;
        let (again, report) = hf::load(out.path(), &LoadOptions::default())?;
        assert!(report.is_clean(), "{name}: {report}");
        // Bit-equal blocks.
        let (tp, rp) = (again.named_parameters(), reference.named_parameters());
        for e in &plan.entries {
            if let inheritune_surgery::Source::Copy { from, .. } = &e.source {
                assert!(tp[&e.target].equal(&rp[from]), "{name}: {} != {from}", e.target);
            }
        }
        let logits = again.forward(&r["input_ids"])?;
        let diff = max_abs_diff(&logits, &r["inherit.logits"]);
        assert!(
            diff < 1e-4,
            "{name}: inherited logits differ from transformers' by {diff}"
        );
    }
    Ok(())
}
