//! `inheritune analyze` writes analysis.json (with per-window numbers equal to numpy's on
//! `transformers`' attention), the summary and the plots; bad window files are one-line errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn analyze(model: &Path, windows: &Path, out: &Path) -> std::io::Result<std::process::Output> {
    Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .args(["analyze", "--model"])
        .arg(model)
        .arg("--windows")
        .arg(windows)
        .arg("--out")
        .arg(out)
        .output()
}

#[test]
fn analyze_writes_json_summary_and_plots() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let model = fixture("gpt2_inverse_scale");
    // The fixture's input ids, whose k* numpy computed (reference.safetensors kstar.{l}).
    let r: std::collections::HashMap<String, tch::Tensor> =
        tch::Tensor::read_safetensors(model.join("reference.safetensors"))?
            .into_iter()
            .collect();
    let ids: Vec<Vec<i64>> = Vec::try_from(&r["input_ids"])?;
    let windows = tmp.path().join("windows.json");
    std::fs::write(&windows, serde_json::to_string(&ids)?)?;
    let out = tmp.path().join("analysis");
    let o = analyze(&model, &windows, &out)?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("suggested inheritance depth (paper, L/2): 1"));
    let a: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json"))?)?;
    assert_eq!(a["windows"], serde_json::to_value(&ids)?);
    for layer in 0..3 {
        let k: Vec<Vec<i64>> = Vec::try_from(&r[&format!("kstar.{layer}")])?;
        for (h, head) in a["layers"][layer]["heads"].as_array().into_iter().flatten().enumerate() {
            let got: Vec<i64> = serde_json::from_value(head["rank_per_window"].clone())?;
            let want: Vec<i64> = k.iter().map(|w| w[h]).collect();
            assert_eq!(got, want, "layer {layer} head {h}");
        }
    }
    for f in [
        "summary.txt",
        "max_rank.png",
        "max_rank.svg",
        "avg_mass.png",
        "avg_mass.svg",
        "rank_heatmap.png",
        "rank_heatmap.svg",
        "depth_criteria.png",
        "angular_distance.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }

    // A used --out is refused, and kept as it was.
    let o = analyze(&model, &windows, &out)?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--overwrite"), "{err}");
    assert!(out.join("analysis.json").exists());
    std::fs::write(&windows, "[[1, 2, 3], [4, 5]]")?;
    let out = tmp.path().join("analysis2");
    let o = analyze(&model, &windows, &out)?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("windows.json") && err.contains("window 1 has 2 tokens"),
        "{err}"
    );
    Ok(())
}
