//! Inherits the blocks named in each family fixture's `inherit.json` and writes the result with
//! our logits, for `transformers` to load back.
//!
//! `cargo run -p inheritune-surgery --example export_inherited -- OUT_DIR`, then
//! `python crates/model/tests/fixtures/check_transformers_loads.py OUT_DIR/*`: every folder must
//! load in `transformers` (its own class, its `layer_types`) with no missing or unexpected keys
//! and give our logits within 1e-4.

use std::path::PathBuf;

use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::Tensor;
use inheritune_surgery::{inherit, InheritMap, Selection};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: export_inherited OUT_DIR"))?,
    );
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("fam_"))
        .collect();
    names.sort();
    for name in names {
        let dir = fixtures.join(&name);
        let (reference, _) = hf::load(&dir, &LoadOptions::default())?;
        let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("inherit.json"))?)?;
        let blocks: Vec<i64> = serde_json::from_value(spec["blocks"].clone())?;
        let (target, _) = inherit(
            &reference,
            blocks.len() as i64,
            &InheritMap::Paper,
            &Selection::Indices(blocks),
            0,
        )?;
        let dest = out.join(&name);
        hf::save(&target, &dest)?;
        let r: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(dir.join("reference.safetensors"))?
            .into_iter()
            .collect();
        let ids = &r["input_ids"];
        let logits = target.forward(ids)?;
        Tensor::write_safetensors(
            &[("input_ids", ids), ("logits", &logits)],
            dest.join("ours.safetensors"),
        )?;
        println!("{}", dest.display());
    }
    Ok(())
}
