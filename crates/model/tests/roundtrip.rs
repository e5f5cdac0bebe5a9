//! Save → load is exact, in f32 and bf16, for every fixture and for fresh models of both families.

mod common;

use common::{fixture, max_abs_diff, reference, FIXTURES};
use inheritune_model::hf::{self, LoadOptions};
use inheritune_model::tch::{self, Device, Tensor};
use inheritune_model::{CausalLm, DType, Gpt2Config, LlamaConfig, ModelConfig};

fn assert_same_parameters(a: &CausalLm, b: &CausalLm, what: &str) {
    let (pa, pb) = (a.named_parameters(), b.named_parameters());
    assert_eq!(pa.keys().collect::<Vec<_>>(), pb.keys().collect::<Vec<_>>(), "{what}");
    for (name, t) in &pa {
        assert_eq!(t.kind(), pb[name].kind(), "{what}: {name}");
        assert!(t.equal(&pb[name]), "{what}: {name} differs after the round trip");
    }
}

#[test]
fn fixtures_round_trip_exactly() -> anyhow::Result<()> {
    for name in FIXTURES {
        let (model, _) = hf::load(&fixture(name), &LoadOptions::default())?;
        let dir = tempfile::tempdir()?;
        hf::save(&model, dir.path())?;
        let (again, report) = hf::load(dir.path(), &LoadOptions::default())?;
        assert!(report.is_clean(), "{name}: {report}");
        assert_eq!(again.config(), model.config(), "{name}");
        assert_same_parameters(&model, &again, name);
        let ids = &reference(name)?["input_ids"];
        assert_eq!(max_abs_diff(&model.forward(ids)?, &again.forward(ids)?), 0.0, "{name}");
    }
    Ok(())
}

#[test]
fn fresh_models_round_trip_in_f32_and_bf16() -> anyhow::Result<()> {
    tch::manual_seed(7);
    let configs = [
        ModelConfig::Gpt2(Gpt2Config::tiny()),
        ModelConfig::Gpt2(Gpt2Config {
            bias: true,
            tie_word_embeddings: false,
            ..Gpt2Config::tiny()
        }),
        ModelConfig::Llama(LlamaConfig::tiny()),
        ModelConfig::Llama(LlamaConfig {
            tie_word_embeddings: false,
            attention_bias: true,
            mlp_bias: true,
            ..LlamaConfig::tiny()
        }),
    ];
    for config in &configs {
        for dtype in [DType::F32, DType::Bf16] {
            let model = CausalLm::new(config, Device::Cpu, dtype)?;
            let dir = tempfile::tempdir()?;
            hf::save(&model, dir.path())?;
            let (again, report) = hf::load(
                dir.path(),
                &LoadOptions {
                    dtype,
                    ..LoadOptions::default()
                },
            )?;
            assert!(report.is_clean(), "{config:?}: {report}");
            assert_same_parameters(&model, &again, &format!("{} {dtype:?}", config.model_type()));
        }
    }
    Ok(())
}

#[test]
fn saved_files_use_the_hugging_face_layout() -> anyhow::Result<()> {
    let config = Gpt2Config::tiny(); // bias-free, tied
    let model = CausalLm::new(&ModelConfig::Gpt2(config.clone()), Device::Cpu, DType::F32)?;
    let dir = tempfile::tempdir()?;
    hf::save(&model, dir.path())?;
    let tensors: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.path().join("model.safetensors"))?
            .into_iter()
            .collect();
    // Conv1D weights are stored (in, out).
    let d = config.n_embd;
    assert_eq!(tensors["transformer.h.0.attn.c_attn.weight"].size(), vec![d, 3 * d]);
    assert_eq!(tensors["transformer.h.1.mlp.c_fc.weight"].size(), vec![d, 4 * d]);
    let ours = model.named_parameters();
    assert!(tensors["transformer.h.1.mlp.c_fc.weight"].equal(&ours["transformer.h.1.mlp.c_fc.weight"].tr()));
    // Zero biases are written so GPT2LMHeadModel finds every key; the tied head is not written.
    assert_eq!(
        tensors["transformer.h.0.ln_1.bias"]
            .abs()
            .sum(tch::Kind::Float)
            .double_value(&[]),
        0.0
    );
    assert!(tensors.contains_key("transformer.ln_f.bias"));
    assert!(!tensors.contains_key("lm_head.weight"));
    assert_eq!(tensors.len(), 2 + 2 * 12 + 2);
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json"))?)?;
    assert_eq!(cfg["model_type"], "gpt2");
    assert_eq!(cfg["architectures"][0], "GPT2LMHeadModel");
    assert_eq!(cfg["bias"], false);
    assert_eq!(cfg["vocab_size"], 256);
    Ok(())
}

/// `pytorch_model.bin` (torch.save's zip of pickles) and its sharded index, written by
/// transformers (`tests/fixtures/make_bin_fixtures.py`), load with a clean report and the
/// same tensors as the safetensors folder they came from; so does the `OrderedDict` with
/// `_metadata` that `torch.save(model.state_dict())` writes (`llama_mqa_untied_bin_ordered`).
#[test]
fn pytorch_bin_checkpoints_load_like_safetensors() -> anyhow::Result<()> {
    use inheritune_model::hf::{self, LoadOptions};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let options = LoadOptions {
        strict: true,
        ..LoadOptions::default()
    };
    let (want, _) = hf::load(&fixtures.join("llama_mqa_untied"), &options)?;
    let want = want.named_parameters();
    for name in [
        "llama_mqa_untied_bin",
        "llama_mqa_untied_bin_sharded",
        "llama_mqa_untied_bin_ordered",
    ] {
        let (model, report) = hf::load(&fixtures.join(name), &options)?;
        assert!(report.is_clean(), "{name}: {report}");
        let got = model.named_parameters();
        assert_eq!(got.len(), want.len(), "{name}");
        for (key, t) in &want {
            assert!(got[key].equal(t), "{name}: {key}");
        }
    }
    // Not a state dict: one line naming the file.
    let tmp = tempfile::tempdir()?;
    std::fs::copy(
        fixtures.join("llama_mqa_untied/config.json"),
        tmp.path().join("config.json"),
    )?;
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"not a zip")?;
    let err = hf::load(tmp.path(), &options).unwrap_err().to_string();
    assert!(err.contains("pytorch_model.bin") && err.lines().count() == 1, "{err}");
    Ok(())
}
