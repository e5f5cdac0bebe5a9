//! Parity with `transformers` 4.57 for every decoder family: logits within 1e-4 and attention
//! probabilities within 1e-5 of tiny random checkpoints made by `fixtures/make_families.py`
//! (Llama 3 with llama3/yarn/linear/dynamic RoPE, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3;
//! every sliding window shorter than the context).

mod common;

use common::{check_attention, check_logits, fixture, max_abs_diff, reference, FAMILIES};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::Tensor;
use inheritune_model::{DType, ModelConfig};

#[test]
fn every_family_loads_cleanly_and_matches_transformers_logits() -> anyhow::Result<()> {
    for (name, model_type) in FAMILIES {
        let model = check_logits(name)?;
        assert_eq!(model.config().model_type(), model_type, "{name}");
    }
    Ok(())
}

#[test]
fn every_family_matches_transformers_attention_probabilities() -> anyhow::Result<()> {
    for (name, _) in FAMILIES {
        check_attention(name)?;
    }
    Ok(())
}

/// A window shorter than the context really cuts: the last query of a sliding layer gives
/// exactly zero weight to keys at or beyond the window (Mistral 5, Qwen2 4 from layer 1,
/// Gemma 2 4 on even layers, Phi-3 6), and full layers do not.
#[test]
fn sliding_windows_cut_where_transformers_cuts() -> anyhow::Result<()> {
    for (name, layer, window) in [
        ("fam_mistral", 0, Some(5)),
        ("fam_qwen2", 0, None),
        ("fam_qwen2", 1, Some(4)),
        ("fam_gemma2", 0, Some(4)),
        ("fam_gemma2", 1, None),
        ("fam_gemma3", 1, None),
        ("fam_gemma3", 2, Some(4)),
        ("fam_phi3", 1, Some(6)),
    ] {
        let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
        let ModelConfig::Llama(c) = model.config() else {
            panic!("{name} is not a decoder of the LLaMA family")
        };
        assert_eq!(c.layer_window(layer), window, "{name} layer {layer}");
        let r = reference(name)?;
        let t = r["input_ids"].size()[1];
        let mut last = None;
        let mut visitor = |l: usize, probs: &Tensor| {
            if l as i64 == layer {
                last = Some(probs.select(2, t - 1).copy()); // (B, nh, T)
            }
        };
        let _ = model.forward_with_attention(&r["input_ids"], &mut visitor)?;
        let row = last.expect("layer visited");
        let seen = row
            .gt(0.0)
            .sum_dim_intlist(-1, false, inheritune_model::tch::Kind::Int64);
        let want = window.unwrap_or(t);
        assert_eq!(seen.min().int64_value(&[]), want, "{name} layer {layer}");
        assert_eq!(seen.max().int64_value(&[]), want, "{name} layer {layer}");
    }
    Ok(())
}

/// Saved and loaded again, every family keeps its config (with the keys `transformers` would
/// otherwise fill from its own defaults) and its logits.
#[test]
fn every_family_round_trips_through_a_folder() -> anyhow::Result<()> {
    for (name, _) in FAMILIES {
        let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
        let dir = tempfile::tempdir()?;
        hf::save(&model, dir.path())?;
        let (again, report) = hf::load(dir.path(), &LoadOptions::default())?;
        assert!(report.is_clean(), "{name}: {report}");
        assert_eq!(again.config(), model.config(), "{name}");
        let r = reference(name)?;
        let diff = max_abs_diff(&again.forward(&r["input_ids"])?, &r["logits"]);
        assert!(diff < 1e-4, "{name}: logits differ by {diff} after a round trip");
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json"))?)?;
        // Phi-3 and Qwen2 read `getattr(config, "head_dim", ...)`: never a null head_dim.
        assert!(
            !written.get("head_dim").is_some_and(serde_json::Value::is_null),
            "{name}"
        );
        if name == "fam_gemma2" {
            // Gemma's class default ties the head: written out, never left to a default.
            assert_eq!(written["tie_word_embeddings"], serde_json::json!(true));
            assert_eq!(written["architectures"][0], "Gemma2ForCausalLM");
        }
    }
    Ok(())
}

/// bf16 weights and compute follow the f32 logits closely for every family (a smoke check of
/// the dtype paths: norms and soft-caps in f32, tables cast to bf16).
#[test]
fn every_family_runs_in_bf16() -> anyhow::Result<()> {
    for (name, _) in FAMILIES {
        let options = LoadOptions {
            dtype: DType::Bf16,
            ..LoadOptions::default()
        };
        let (model, _) = hf::load(&fixture(name), &options)?;
        let r = reference(name)?;
        let logits = model.forward(&r["input_ids"])?;
        assert_eq!(logits.kind(), inheritune_model::tch::Kind::BFloat16, "{name}");
        let scale = r["logits"].abs().max().double_value(&[]);
        let diff = max_abs_diff(&logits, &r["logits"]);
        assert!(
            diff < 0.1 * scale.max(1.0),
            "{name}: bf16 logits differ by {diff} (scale {scale})"
        );
    }
    Ok(())
}

/// One training step against PyTorch for Qwen3 and Gemma 2: the mean next-token loss of
/// `input_ids[:, :-1]` against `input_ids[:, 1:]` and the gradient of every parameter
/// (`train.safetensors`, made by `make_families.py` with `loss.backward()`).
#[test]
fn one_training_step_matches_pytorch_for_qwen3_and_gemma2() -> anyhow::Result<()> {
    for name in ["fam_qwen3", "fam_gemma2"] {
        let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
        let r = reference(name)?;
        let t: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(fixture(name).join("train.safetensors"))?
                .into_iter()
                .collect();
        let ids = &r["input_ids"];
        let n = ids.size()[1];
        let loss = model.loss(&ids.narrow(1, 0, n - 1), &ids.narrow(1, 1, n - 1))?;
        let want = t["loss"].double_value(&[0]);
        let got = loss.double_value(&[]);
        assert!((got - want).abs() < 1e-5, "{name}: loss {got} vs PyTorch {want}");
        loss.backward();
        let params = model.named_parameters();
        let mut compared = 0;
        for (key, g) in &t {
            let Some(pname) = key.strip_prefix("grad.") else {
                continue;
            };
            let p = params
                .get(pname)
                .unwrap_or_else(|| panic!("{name}: PyTorch parameter {pname} is not ours"));
            let ours = p.grad();
            let scale = g.abs().max().double_value(&[]).max(1e-3);
            let diff = max_abs_diff(&ours, g);
            assert!(
                diff <= 1e-4 * scale,
                "{name}: grad of {pname} differs by {diff} (scale {scale})"
            );
            compared += 1;
        }
        assert_eq!(compared, params.len(), "{name}: every parameter's gradient compared");
    }
    Ok(())
}

/// A config that contradicts the weights' shapes is refused in one line that names the key
/// (here Qwen3's `head_dim`, 16 in the weights, set to 8), and an unknown `model_type` lists
/// the supported ones.
#[test]
fn contradicting_configs_name_the_key() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    for file in ["model.safetensors", "config.json"] {
        std::fs::copy(fixture("fam_qwen3").join(file), tmp.path().join(file))?;
    }
    let path = tmp.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    config["head_dim"] = serde_json::json!(8);
    std::fs::write(&path, config.to_string())?;
    let err = hf::load(tmp.path(), &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        err.contains("head_dim disagrees with the weights") && err.lines().count() == 1,
        "{err}"
    );
    config["model_type"] = serde_json::json!("mamba");
    std::fs::write(&path, config.to_string())?;
    let err = hf::load(tmp.path(), &LoadOptions::default()).unwrap_err().to_string();
    for t in [
        "\"mamba\"",
        "gpt2",
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma2",
        "gemma3_text",
        "phi3",
    ] {
        assert!(err.contains(t), "{t} not in: {err}");
    }
    config["model_type"] = serde_json::json!("llama");
    config["rope_scaling"] = serde_json::json!({"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]});
    std::fs::write(&path, config.to_string())?;
    let err = hf::load(tmp.path(), &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        err.contains("longrope") && err.contains("not implemented") && err.lines().count() == 1,
        "{err}"
    );
    Ok(())
}
