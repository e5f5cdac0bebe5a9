//! `inheritune recipe --dry-run` on the full-size recipes: the plan (insta snapshot for gpt2-xl)
//! carries spec §3.2's parameter counts, the paper's tokens per step and step budget.

use std::path::Path;
use std::process::Command;

fn dry_run(recipe: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../xtask/recipes/{recipe}.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .args(["recipe", "--dry-run", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn gpt2_xl_plan() {
    let plan = dry_run("gpt2-xl");
    // Spec §3.2: XL 1556.8M, its 24-layer variant 819.5M; §4.1: 131,072 tokens/step, 100K steps.
    assert!(
        plan.contains("| reference | 48 layers x 1600 | 1556840000 | 1.311e10 |"),
        "{plan}"
    );
    assert!(
        plan.contains("| inheritune-l24 (round 1) | 24 layers x 1600 | 819483200 |"),
        "{plan}"
    );
    assert!(plan.contains("131072 tokens/step x 100000 steps"), "{plan}");
    insta::assert_snapshot!(plan);
}

#[test]
fn every_recipe_plans() {
    for recipe in [
        "tiny",
        "gpt2-medium",
        "gpt2-large",
        "gpt2-large-fineweb",
        "gpt2-medium-fineweb",
    ] {
        let plan = dry_run(recipe);
        assert!(
            plan.contains("| reference |") && plan.contains("| report |"),
            "{recipe}: {plan}"
        );
    }
    // Medium: 354.6M reference, 12-layer first round 203.6M (spec §3.2), 393,216 tokens/step.
    let medium = dry_run("gpt2-medium");
    assert!(
        medium.contains("354599936") && medium.contains("203580416") && medium.contains("393216 tokens/step"),
        "{medium}"
    );
}
