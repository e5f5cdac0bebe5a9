//! The depth criteria (Block Influence, angular distance, leave-one-out NLL) against numpy over
//! transformers' residual stream (forward hooks, x_N before the final norm), from
//! `tests/fixtures/depth/make_depth.py`, on random checkpoints of four families.

use std::path::PathBuf;

use inheritune_analysis::depth::Rule;
use inheritune_analysis::{analyze, Settings};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::Tensor;

fn path(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir).join(name)
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: {got} vs reference {want}");
}

#[test]
fn criteria_equal_numpy_over_transformers_hidden_states() -> anyhow::Result<()> {
    for name in ["gpt2_bias", "llama_gqa_tied", "fam_gemma2", "fam_qwen3"] {
        let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path(
            "tests/fixtures/depth",
            &format!("{name}.json"),
        ))?)?;
        let (model, _) = hf::load(&path("../model/tests/fixtures", name), &LoadOptions::default())?;
        let windows: Vec<Vec<i64>> = serde_json::from_value(want["windows"].clone())?;
        let (n, t) = (windows.len() as i64, windows[0].len() as i64);
        let ids = Tensor::from_slice(&windows.concat()).view([n, t]);
        let settings = Settings {
            loo: true,
            batch_size: 3, // chunks that do not divide the windows
            ..Settings::default()
        };
        let a = analyze(&model, name, &ids, "fixture", &settings, &mut |_, _| {})?;
        for (l, layer) in a.layers.iter().enumerate() {
            let bi = want["block_influence"][l].as_f64().unwrap();
            close(
                layer.block_influence.unwrap(),
                bi,
                1e-6,
                &format!("{name} block {l} BI"),
            );
            let loo = want["loo_nll_increase"][l].as_f64().unwrap();
            close(
                layer.loo_nll_increase.unwrap(),
                loo,
                1e-4,
                &format!("{name} block {l} LOO"),
            );
        }
        close(
            a.nll.unwrap(),
            want["nll"].as_f64().unwrap(),
            1e-4,
            &format!("{name} NLL"),
        );
        let angular = want["angular_distance"].as_object().unwrap();
        assert_eq!(a.angular_distance.len(), angular.len(), "{name}: block sizes");
        for (size, row) in angular {
            let got = &a.angular_distance[size];
            let row = row.as_array().unwrap();
            assert_eq!(got.len(), row.len(), "{name} n={size}");
            for (l, v) in row.iter().enumerate() {
                close(
                    got[l],
                    v.as_f64().unwrap(),
                    1e-5,
                    &format!("{name} angular n={size} l={l}"),
                );
            }
        }
        // Every rule's choice at the suggested depth is recorded, and is what select gives.
        for rule in Rule::ALL {
            assert_eq!(
                a.kept_by_rule[rule.name()],
                a.select(rule, a.suggested_depth)?,
                "{name} {rule:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn an_analysis_without_criteria_says_which_is_missing() -> anyhow::Result<()> {
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path(
        "tests/fixtures/depth",
        "gpt2_bias.json",
    ))?)?;
    let (model, _) = hf::load(&path("../model/tests/fixtures", "gpt2_bias"), &LoadOptions::default())?;
    let windows: Vec<Vec<i64>> = serde_json::from_value(want["windows"].clone())?;
    let ids = Tensor::from_slice(&windows.concat()).view([windows.len() as i64, windows[0].len() as i64]);
    let a = analyze(&model, "m", &ids, "fixture", &Settings::default(), &mut |_, _| {})?;
    assert!(a.nll.is_none() && a.layers.iter().all(|l| l.loo_nll_increase.is_none()));
    let err = a.select(Rule::Loo, 1).unwrap_err().to_string();
    assert!(err.contains("loo"), "{err}");
    assert!(a.select(Rule::BlockInfluence, 1).is_ok());
    Ok(())
}
