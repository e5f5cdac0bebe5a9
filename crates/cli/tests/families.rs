//! Every verb on every decoder family, through the binary: `prepare` with a word-level
//! tokenizer, `train` a few steps from each family's fixture (`--init`), `eval loss`,
//! knowledge distillation from the fixture into an inherited student,
//! `surgery inherit` with a non-prefix selection, `grow`, `stack`, `hybrid-stack` and
//! `distill-init`; `half-width` refuses in one line. The numbers themselves are checked against
//! transformers and PyTorch in the model and surgery crates; here every verb must run and
//! produce a folder that loads with the family and layer count it should have.

mod common;

use std::path::{Path, PathBuf};

use common::{bin, metrics, ok, workspace};
use inheritune_model::hf::{self, LoadOptions};

const FAMILIES: [&str; 7] = [
    "fam_llama3",
    "fam_mistral",
    "fam_qwen2",
    "fam_qwen3",
    "fam_gemma2",
    "fam_gemma3",
    "fam_phi3",
];

fn fixture(name: &str) -> PathBuf {
    workspace().join("crates/model/tests/fixtures").join(name)
}

/// A word-level tokenizer of 70 tokens (`w0`..`w68`, `<|endoftext|>` = 69): within every
/// fixture's vocabulary.
fn word_tokenizer(dir: &Path) -> PathBuf {
    let vocab: serde_json::Map<String, serde_json::Value> = (0..69)
        .map(|i| (format!("w{i}"), serde_json::json!(i)))
        .chain([("<|endoftext|>".to_string(), serde_json::json!(69))])
        .collect();
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 69, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, tok.to_string()).expect("writing the tokenizer");
    path
}

fn run(args: &[&str]) -> std::process::Output {
    bin()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("inheritune runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn layers_of(dir: &Path) -> (String, i64) {
    let (m, report) = hf::load(dir, &LoadOptions::default()).expect("the output folder loads");
    assert!(report.is_clean(), "{}: {report}", dir.display());
    (m.config().model_type().to_string(), m.config().n_layer())
}

#[test]
fn every_verb_runs_on_every_family() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tok = word_tokenizer(tmp.path());
    let docs = tmp.path().join("docs.jsonl");
    let mut state = 12345u64;
    let lines: Vec<String> = (0..60)
        .map(|_| {
            let words: Vec<String> = (0..40)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("w{}", (state >> 33) % 23)
                })
                .collect();
            serde_json::json!({ "text": words.join(" ") }).to_string()
        })
        .collect();
    std::fs::write(&docs, lines.join("\n")).expect("writing the corpus");
    let data = tmp.path().join("data");
    ok(&run(&[
        "prepare",
        "--input",
        s(&docs),
        "--out",
        s(&data),
        "--tokenizer",
        s(&tok),
        "--val-tokens",
        "200",
        "--threads",
        "1",
    ]));
    for name in FAMILIES {
        let fx = fixture(name);
        let (family, n) = layers_of(&fx);
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        // train: three steps from the fixture's weights; no [model], since --init fixes it.
        let config = dir.join("run.toml");
        std::fs::write(
            &config,
            format!(
                "[data]\ndir = \"{}\"\n[train]\nmicro_batch = 2\nseq_len = 16\nmax_steps = 3\n\
                 lr = 1e-3\nmin_lr = 1e-4\nwarmup_steps = 1\neval_interval = 100\neval_iters = 1\n",
                data.display()
            ),
        )
        .expect("writing the run config");
        let run_dir = dir.join("run");
        ok(&run(&[
            "train",
            "--config",
            s(&config),
            "--run",
            s(&run_dir),
            "--init",
            s(&fx),
        ]));
        let last = metrics(&run_dir).pop().expect("metrics");
        assert_eq!(last["kind"], "final", "{name}: {last}");
        assert!(last["val_loss"].as_f64().is_some_and(f64::is_finite), "{name}: {last}");
        assert_eq!(layers_of(&run_dir.join("final")), (family.clone(), n), "{name}");
        // eval loss of the trained model on the prepared val split.
        let o = run(&[
            "eval",
            "loss",
            "--model",
            s(&run_dir.join("final")),
            "--data",
            s(&data),
            "--seq-len",
            "16",
        ]);
        ok(&o);
        // inherit the last block alone (not a prefix), then grow, stack, hybrid-stack, distill-init.
        let small = dir.join("inherit");
        let last_block = (n - 1).to_string();
        ok(&run(&[
            "surgery",
            "inherit",
            "--from",
            s(&fx),
            "--layers",
            "1",
            "--select",
            &last_block,
            "--out",
            s(&small),
        ]));
        assert_eq!(layers_of(&small), (family.clone(), 1), "{name}");
        // knowledge distillation: the inherited block as student, the fixture as teacher.
        let kd = dir.join("kd.toml");
        std::fs::write(
            &kd,
            format!(
                "[model]\nconfig = \"{}\"\n[data]\ndir = \"{}\"\n[train]\nmicro_batch = 2\nseq_len = 16\nmax_steps = 2\n\
                 lr = 1e-3\nmin_lr = 1e-4\nwarmup_steps = 1\neval_interval = 100\neval_iters = 1\n\
                 [distill]\nteacher = \"{}\"\nalpha = 0.5\ntemperature = 2.0\n",
                small.join("config.json").display(),
                data.display(),
                fx.display()
            ),
        )
        .expect("writing the KD config");
        let kd_run = dir.join("kd");
        ok(&run(&[
            "train",
            "--config",
            s(&kd),
            "--run",
            s(&kd_run),
            "--init",
            s(&small),
        ]));
        assert!(
            metrics(&kd_run).iter().any(|l| l["kind"] == "final"),
            "{name}: KD run did not finish"
        );
        let grown = dir.join("grow");
        ok(&run(&[
            "surgery",
            "grow",
            "--from",
            s(&small),
            "--reference",
            s(&fx),
            "--add",
            "1",
            "--out",
            s(&grown),
        ]));
        assert_eq!(layers_of(&grown), (family.clone(), 2), "{name}");
        let stacked = dir.join("stack");
        ok(&run(&["surgery", "stack", "--from", s(&small), "--out", s(&stacked)]));
        assert_eq!(layers_of(&stacked), (family.clone(), 2), "{name}");
        let hybrid = dir.join("hybrid");
        ok(&run(&[
            "surgery",
            "hybrid-stack",
            "--from",
            s(&fx),
            "--layers",
            "2",
            "--out",
            s(&hybrid),
        ]));
        assert_eq!(layers_of(&hybrid), (family.clone(), 2), "{name}");
        let student = dir.join("distill");
        ok(&run(&[
            "surgery",
            "distill-init",
            "--from",
            s(&fx),
            "--layers",
            "1",
            "--out",
            s(&student),
        ]));
        assert_eq!(layers_of(&student), (family.clone(), 1), "{name}");
        // half-width is GPT-2's baseline: refused in one line, naming why.
        let o = run(&["surgery", "half-width", "--from", s(&fx), "--out", s(&dir.join("half"))]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("GPT-2") && err.trim().lines().count() == 1,
            "{name}: {err}"
        );
    }
}
