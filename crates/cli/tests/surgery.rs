//! The surgery verbs write Hugging Face folders whose tensors follow the map, plus surgery.json.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tch::Tensor;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?)
}

fn tensors(dir: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(dir.join("model.safetensors"))?
        .into_iter()
        .collect())
}

#[test]
fn inherit_follows_the_map_in_file_layout() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let reference = fixture("gpt2_inverse_scale"); // 3 layers, biases
    let out = tmp.path().join("student");
    let o = run(&[
        "inherit",
        "--from",
        reference.to_str().unwrap_or_default(),
        "--layers",
        "2",
        "--map",
        "released-code",
        "--out",
        out.to_str().unwrap_or_default(),
        "--seed",
        "5",
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (r, s) = (tensors(&reference)?, tensors(&out)?);
    for (name, t) in &s {
        let same = r.get(name).is_some_and(|x| x.equal(t));
        let fresh = name.starts_with("transformer.wpe") || name.starts_with("transformer.ln_f");
        assert_eq!(same, !fresh, "{name}");
        assert!(!name.starts_with("transformer.h.2."), "{name}");
    }
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json"))?)?;
    assert_eq!(config["n_layer"], 2);
    assert_eq!(config["scale_attn_by_inverse_layer_idx"], true);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("surgery.json"))?)?;
    assert_eq!(report["operation"], "inherit");
    assert_eq!(report["settings"]["map"], "released-code");
    assert!(out.join("tokenizer.json").exists());

    // The output folder is never overwritten.
    let again = run(&[
        "inherit",
        "--from",
        reference.to_str().unwrap_or_default(),
        "--layers",
        "2",
        "--out",
        out.to_str().unwrap_or_default(),
    ])?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    Ok(())
}

#[test]
fn grow_and_select_work_on_llama() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let reference = fixture("llama_mqa_untied"); // 3 layers, untied
    let r = reference.to_str().unwrap_or_default();
    let small = tmp.path().join("small");
    let o = run(&[
        "inherit",
        "--from",
        r,
        "--layers",
        "1",
        "--select",
        "2",
        "--out",
        small.to_str().unwrap_or_default(),
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rt, st) = (tensors(&reference)?, tensors(&small)?);
    assert!(st["model.layers.0.self_attn.q_proj.weight"].equal(&rt["model.layers.2.self_attn.q_proj.weight"]));
    assert!(st["lm_head.weight"].equal(&rt["lm_head.weight"]));

    let grown = tmp.path().join("grown");
    let o = run(&[
        "grow",
        "--from",
        small.to_str().unwrap_or_default(),
        "--reference",
        r,
        "--add",
        "2",
        "--mode",
        "warm-append",
        "--out",
        grown.to_str().unwrap_or_default(),
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let gt = tensors(&grown)?;
    assert!(gt["model.layers.0.self_attn.q_proj.weight"].equal(&rt["model.layers.2.self_attn.q_proj.weight"]));
    assert!(gt["model.layers.1.mlp.up_proj.weight"].equal(&rt["model.layers.1.mlp.up_proj.weight"]));
    assert!(gt["model.layers.2.mlp.up_proj.weight"].equal(&rt["model.layers.2.mlp.up_proj.weight"]));

    let bad = run(&[
        "inherit",
        "--from",
        r,
        "--layers",
        "2",
        "--select",
        "1,1",
        "--out",
        tmp.path().join("x").to_str().unwrap_or_default(),
    ])?;
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("repeated") && err.trim().lines().count() == 1,
        "{err}"
    );
    Ok(())
}

/// The baselines' verbs under `inheritune surgery <op>`, each checked tensor by tensor against
/// the reference: stacking duplicates the blocks, hybrid stacking places the reference's first
/// l/2 blocks twice, distill-init takes alternate blocks, half-width keeps ⌊H/2⌋ heads (odd H
/// only with --floor-heads) and slices every tensor from its start.
#[test]
fn baseline_verbs_build_what_the_method_says() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let reference = fixture("gpt2_inverse_scale"); // 3 layers, 3 heads of 8, MLP 40, biases
    let r = reference.to_str().unwrap_or_default();
    let out = |name: &str| tmp.path().join(name).display().to_string();
    let ok = |args: &[&str]| -> anyhow::Result<()> {
        let o = run(args)?;
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        Ok(())
    };
    let rt = tensors(&reference)?;
    let key = |i: usize, rest: &str| format!("transformer.h.{i}.{rest}");

    ok(&[
        "surgery",
        "hybrid-stack",
        "--from",
        r,
        "--layers",
        "2",
        "--out",
        &out("hybrid"),
    ])?;
    let h = tensors(Path::new(&out("hybrid")))?;
    for (target, source) in [(0, 0), (1, 0)] {
        assert!(h[&key(target, "attn.c_attn.weight")].equal(&rt[&key(source, "attn.c_attn.weight")]));
    }

    ok(&["surgery", "stack", "--from", &out("hybrid"), "--out", &out("stacked")])?;
    let s = tensors(Path::new(&out("stacked")))?;
    for (target, source) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
        assert!(
            s[&key(target, "mlp.c_fc.weight")].equal(&h[&key(source, "mlp.c_fc.weight")]),
            "stack block {target}"
        );
    }

    ok(&[
        "surgery",
        "distill-init",
        "--from",
        r,
        "--layers",
        "2",
        "--out",
        &out("distill"),
    ])?;
    let d = tensors(Path::new(&out("distill")))?;
    // ⌊3/2⌋ = 1 alternate block (0), then from 3·3/4 = 2 on: blocks 0 and 2.
    assert!(d[&key(0, "ln_1.weight")].equal(&rt[&key(0, "ln_1.weight")]));
    assert!(d[&key(1, "ln_1.weight")].equal(&rt[&key(2, "ln_1.weight")]));

    let odd = run(&["surgery", "half-width", "--from", r, "--out", &out("refused")])?;
    let err = String::from_utf8_lossy(&odd.stderr);
    assert!(!odd.status.success() && err.contains("--floor-heads"), "{err}");
    // The old top-level name stays an alias.
    ok(&["half-width", "--from", r, "--floor-heads", "--out", &out("half")])?;
    let hw = tensors(Path::new(&out("half")))?;
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("half/config.json"))?)?;
    assert_eq!(
        (
            config["n_head"].as_i64(),
            config["n_embd"].as_i64(),
            config["n_inner"].as_i64()
        ),
        (Some(1), Some(8), Some(20))
    );
    let qkv = &rt[&key(1, "attn.c_attn.weight")]; // Conv1D layout in the file: (d, 3d)
    let want = Tensor::cat(&[qkv.narrow(1, 0, 8), qkv.narrow(1, 24, 8), qkv.narrow(1, 48, 8)], 1).narrow(0, 0, 8);
    assert!(
        hw[&key(1, "attn.c_attn.weight")].equal(&want),
        "half-width q, k, v of head 0"
    );
    assert!(hw["transformer.wte.weight"].equal(&rt["transformer.wte.weight"].narrow(1, 0, 8)));
    Ok(())
}

/// Surgery keeps every tokenizer file of its source (BOS/EOS rules, special tokens), byte for
/// byte, and guesses none for a non-GPT-2 model whose source has none.
#[test]
fn tokenizer_files_travel_with_the_blocks() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let reference = fixture("llama_mqa_untied_bin");
    let out = tmp.path().join("student");
    let o = run(&[
        "inherit",
        "--from",
        reference.to_str().unwrap_or_default(),
        "--layers",
        "1",
        "--out",
        out.to_str().unwrap_or_default(),
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
        assert_eq!(
            std::fs::read(reference.join(name))?,
            std::fs::read(out.join(name))?,
            "{name}"
        );
    }
    let bare = tmp.path().join("bare");
    let o = run(&[
        "inherit",
        "--from",
        fixture("fam_qwen3").to_str().unwrap_or_default(),
        "--layers",
        "1",
        "--out",
        bare.to_str().unwrap_or_default(),
    ])?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!bare.join("tokenizer.json").exists());
    Ok(())
}
