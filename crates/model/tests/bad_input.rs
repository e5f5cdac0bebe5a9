//! Bad checkpoints and inputs give one-line errors naming the file and key; sharded checkpoints load.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{fixture, max_abs_diff, reference};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::{Kind, Tensor};

fn copy_fixture(name: &str, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(fixture(name))? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

fn load_err(dir: &Path, strict: bool) -> String {
    match hf::load(
        dir,
        &LoadOptions {
            strict,
            ..LoadOptions::default()
        },
    ) {
        Ok(_) => String::from("<loaded>"),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) -> anyhow::Result<()> {
    let path = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    f(&mut v);
    std::fs::write(path, serde_json::to_string(&v)?)?;
    Ok(())
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path)?;
    Ok(())
}

#[test]
fn missing_files_are_named() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let err = load_err(tmp.path(), true);
    assert!(err.contains("config.json") && !err.contains('\n'), "{err}");
    std::fs::copy(fixture("gpt2_bias").join("config.json"), tmp.path().join("config.json"))?;
    let err = load_err(tmp.path(), true);
    assert!(
        err.contains("model.safetensors") && err.contains("model.safetensors.index.json"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_configs_are_named() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("gpt2_bias", tmp.path())?;
    edit_config(tmp.path(), |v| v["model_type"] = "bert".into())?;
    let err = load_err(tmp.path(), true);
    assert!(
        err.contains("config.json") && err.contains("unknown architecture") && err.contains("bert"),
        "{err}"
    );

    edit_config(tmp.path(), |v| {
        v["model_type"] = "gpt2".into();
        v["n_embd"] = "wide".into();
    })?;
    let err = load_err(tmp.path(), true);
    assert!(err.contains("config.json") && err.contains("invalid JSON"), "{err}");

    std::fs::write(tmp.path().join("config.json"), "{\"model_type\": \"gpt2\", ")?;
    let err = load_err(tmp.path(), true);
    assert!(err.contains("config.json") && err.contains("EOF"), "{err}");
    Ok(())
}

#[test]
fn truncated_safetensors_is_named() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("llama_gqa_tied", tmp.path())?;
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path)?;
    for cut in [4usize, 100, bytes.len() - 7] {
        std::fs::write(&path, &bytes[..cut])?;
        let err = load_err(tmp.path(), true);
        assert!(
            err.contains("model.safetensors") && err.contains("invalid safetensors"),
            "cut {cut}: {err}"
        );
    }
    Ok(())
}

#[test]
fn wrong_shapes_name_the_key() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("gpt2_bias", tmp.path())?;
    // The file says 2 layers of width 32; the config now says width 16.
    edit_config(tmp.path(), |v| {
        v["n_embd"] = 16.into();
        v["n_head"] = 2.into();
    })?;
    let err = load_err(tmp.path(), true);
    assert!(
        err.contains("transformer.h.0.attn.c_attn.weight") && err.contains("[16, 48]") && err.contains("[32, 96]"),
        "{err}"
    );
    assert!(!err.contains('\n'));
    // Non-strict loading reports instead.
    let (_, report) = hf::load(
        tmp.path(),
        &LoadOptions {
            strict: false,
            ..LoadOptions::default()
        },
    )?;
    assert!(report.mismatched.iter().any(|m| m.name == "transformer.wte.weight"));
    Ok(())
}

#[test]
fn missing_and_unexpected_keys_fail_strict_loading() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("llama_mqa_untied", tmp.path())?;
    let path = tmp.path().join("model.safetensors");
    let mut tensors = Tensor::read_safetensors(&path)?;
    tensors.retain(|(n, _)| n != "model.layers.1.mlp.up_proj.weight");
    tensors.push((
        "model.layers.9.extra.weight".to_string(),
        Tensor::zeros([2], (Kind::Float, inheritune_model::tch::Device::Cpu)),
    ));
    write_tensors(&path, &tensors)?;
    let err = load_err(tmp.path(), true);
    assert!(
        err.contains("missing: model.layers.1.mlp.up_proj.weight")
            && err.contains("unexpected: model.layers.9.extra.weight"),
        "{err}"
    );
    let (_, report) = hf::load(
        tmp.path(),
        &LoadOptions {
            strict: false,
            ..LoadOptions::default()
        },
    )?;
    assert_eq!(report.missing, vec!["model.layers.1.mlp.up_proj.weight".to_string()]);
    assert_eq!(report.unexpected, vec!["model.layers.9.extra.weight".to_string()]);
    Ok(())
}

#[test]
fn nonzero_bias_in_a_bias_free_config_is_an_error() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("gpt2_bias", tmp.path())?;
    edit_config(tmp.path(), |v| v["bias"] = false.into())?;
    let err = load_err(tmp.path(), true);
    assert!(
        err.contains("model.safetensors") && err.contains(".bias") && err.contains("non-zero"),
        "{err}"
    );
    Ok(())
}

#[test]
fn unsupported_dtype_is_named() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("gpt2_bias", tmp.path())?;
    let path = tmp.path().join("model.safetensors");
    let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&path)?
        .into_iter()
        .map(|(n, t)| {
            if n == "transformer.wpe.weight" {
                (n, t.to_kind(Kind::Int))
            } else {
                (n, t)
            }
        })
        .collect();
    write_tensors(&path, &tensors)?;
    let err = load_err(tmp.path(), true);
    assert!(
        err.contains("transformer.wpe.weight") && err.contains("unsupported dtype"),
        "{err}"
    );
    Ok(())
}

#[test]
fn sharded_checkpoints_load() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    copy_fixture("llama_gqa_tied", tmp.path())?;
    let single = tmp.path().join("model.safetensors");
    let tensors = Tensor::read_safetensors(&single)?;
    std::fs::remove_file(&single)?;
    let (a, b): (Vec<_>, Vec<_>) = tensors
        .into_iter()
        .partition(|(n, _)| n.contains("layers.0") || n.contains("embed"));
    let mut map = HashMap::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &a),
        ("model-00002-of-00002.safetensors", &b),
    ] {
        write_tensors(&tmp.path().join(file), part)?;
        for (n, _) in part.iter() {
            map.insert(n.clone(), file);
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(tmp.path().join("model.safetensors.index.json"), index.to_string())?;
    let (model, report) = hf::load(tmp.path(), &LoadOptions::default())?;
    assert!(report.is_clean(), "{report}");
    let r = reference("llama_gqa_tied")?;
    assert!(max_abs_diff(&model.forward(&r["input_ids"])?, &r["logits"]) < 1e-4);

    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors"))?;
    let err = load_err(tmp.path(), true);
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    Ok(())
}

#[test]
fn bad_model_inputs_are_errors() -> anyhow::Result<()> {
    let (model, _) = hf::load(&fixture("gpt2_bias"), &LoadOptions::default())?;
    let cpu = inheritune_model::tch::Device::Cpu;
    let too_long = Tensor::zeros([1, 33], (Kind::Int64, cpu));
    assert!(model
        .forward(&too_long)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("exceeds the context length 32"));
    let out_of_vocab = Tensor::from_slice(&[1i64, 96]).view([1, 2]);
    assert!(model
        .forward(&out_of_vocab)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("token id 96"));
    let one_d = Tensor::from_slice(&[1i64, 2]);
    assert!(model
        .forward(&one_d)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("2-d integer tensor"));
    let floats = Tensor::zeros([1, 2], (Kind::Float, cpu));
    assert!(model.forward(&floats).is_err());
    Ok(())
}
