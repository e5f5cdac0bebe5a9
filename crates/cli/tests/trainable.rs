//! `[train] trainable`: a run that trains only the MLPs leaves every other tensor of its `--init`
//! checkpoint bit-equal and changes every MLP tensor; an unknown group is one error naming it.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{ok, prepare, tiny_config, train};
use inheritune_model::tch::Tensor;

fn tensors(dir: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join("model.safetensors"))
        .expect("model.safetensors")
        .into_iter()
        .collect()
}

#[test]
fn only_the_named_groups_train() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let keys =
        "micro_batch = 2\nseq_len = 16\nmax_steps = 2\nwarmup_steps = 0\nlr = 1e-2\neval_interval = 2\neval_iters = 1";
    let base = tiny_config(tmp.path(), "base.toml", &data, "", keys);
    ok(&train(&base, &tmp.path().join("base"), &[]));
    let init = tmp.path().join("base/final");
    let mlp = tiny_config(
        tmp.path(),
        "mlp.toml",
        &data,
        "",
        &format!("{keys}\ntrainable = [\"mlp\"]"),
    );
    let out = train(&mlp, &tmp.path().join("mlp"), &["--init", init.to_str().unwrap()]);
    ok(&out);
    let (before, after) = (tensors(&init), tensors(&tmp.path().join("mlp/final")));
    let mut changed = 0;
    for (name, t) in &before {
        // The paper's GPT-2 has no biases (saved as zeros, which no training touches).
        let is_mlp = name.contains(".mlp.") && name.ends_with("weight");
        if is_mlp {
            assert!(!t.equal(&after[name]), "{name} is in [\"mlp\"] but did not train");
            changed += 1;
        } else if !name.contains(".mlp.") {
            assert!(t.equal(&after[name]), "{name} is frozen but changed");
        }
    }
    assert_eq!(changed, 2 * 2, "c_fc and c_proj of both blocks");

    let bad = tiny_config(
        tmp.path(),
        "bad.toml",
        &data,
        "",
        &format!("{keys}\ntrainable = [\"mlps\"]"),
    );
    let out = train(&bad, &tmp.path().join("bad"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("train.trainable: unknown group \"mlps\""),
        "{err}"
    );
}
