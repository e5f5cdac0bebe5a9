//! `inheritune recipe --dry-run` on the full-size recipes: the plan (insta snapshot for gpt2-xl)
//! carries METHOD.md §3.2's parameter counts, the paper's tokens per step and step budget.

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
        "openllama-3b-1b",
        "tiny-full",
        "smollm2",
        "smollm2-fineweb",
    ] {
        let plan = dry_run(recipe);
        assert!(
            plan.contains("| reference |") && plan.contains("| report |"),
            "{recipe}: {plan}"
        );
    }
    // Medium: 354.6M reference, 12-layer first round 203.6M (METHOD.md §3.2), 393,216 tokens/step.
    let medium = dry_run("gpt2-medium");
    assert!(
        medium.contains("354599936") && medium.contains("203580416") && medium.contains("393216 tokens/step"),
        "{medium}"
    );
}

/// `--nproc 8`: the global batch stays the paper's, and the wall clock is the GPU-hours spread
/// over 8 GPUs at the stated scaling efficiency (0.9 by default).
#[test]
fn plan_on_eight_gpus() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/recipes/gpt2-xl.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .args(["recipe", "--dry-run", "--nproc", "8", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan = String::from_utf8(out.stdout).unwrap();
    assert!(plan.contains("131072 tokens/step x 100000 steps"), "{plan}");
    let number_after = |key: &str| -> f64 {
        let rest = &plan[plan.find(key).unwrap_or_else(|| panic!("{key}: {plan}")) + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let gpu_hours = number_after("FLOPs,");
    let wall = number_after("wall clock on 8 x H100 SXM:");
    assert!(
        (wall - gpu_hours / (8.0 * 0.9)).abs() < 0.1,
        "{wall} vs {gpu_hours} / 7.2"
    );
    assert!(plan.contains("90% scaling efficiency assumed"), "{plan}");
}

/// Recipes take a reference of any family: a Gemma 2 checkpoint (the model crate's fixture,
/// alternating sliding layers, soft-caps) plans its inherited target and baselines at its own
/// shape, and so does a GGUF file (converted once into the cache).
#[test]
fn a_reference_of_another_family_plans() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (reference, family, target) in [
        ("crates/model/tests/fixtures/fam_gemma2", "gemma2", "inheritune-l2"),
        (
            "crates/model/tests/fixtures/gguf_fam/qwen3.gguf",
            "qwen3",
            "inheritune-l1",
        ),
    ] {
        let recipe = tmp.path().join("recipe.toml");
        std::fs::write(
            &recipe,
            format!(
                "name = \"family\"\ndescription = \"a reference of another family\"\n\
                 [data]\ninputs = [\"{}\"]\npreset = \"generic\"\nval_fraction = 0.05\n\
                 [reference]\ncheckpoint = \"{}\"\n\
                 [train]\nmicro_batch = 2\nseq_len = 16\nmax_steps = 4\nlr = 1e-3\nmin_lr = 1e-4\nwarmup_steps = 1\n\
                 eval_interval = 2\neval_iters = 1\n[inheritune]\ntolerance = 0.05\nmax_rounds = 1\n[baselines]\nscratch = true\n",
                root.join("datasets/sotu/sotu.parquet").display(),
                root.join(reference).display()
            ),
        )
        .expect("writing the recipe");
        let out = Command::new(env!("CARGO_BIN_EXE_inheritune"))
            .args(["recipe", "--dry-run", "--config"])
            .arg(&recipe)
            .env("INHERITUNE_CACHE", tmp.path().join("cache"))
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        assert!(plan.contains(&format!("reference {family} (")), "{reference}: {plan}");
        assert!(
            plan.contains(target) && plan.contains("scratch-"),
            "{reference}: {plan}"
        );
    }
}
