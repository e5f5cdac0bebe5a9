//! A crate outside the workspace depending on one library crate by path, as a user's project
//! would: `inheritune-model` (libtorch through tch) with `inheritune-build` as its build script's
//! helper and `LIBTORCH` pointing at the venv `cargo xtask setup` made. It builds, and its
//! program (the model crate's own example) runs: a forward pass, a save and a clean reload.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn an_outside_crate_builds_and_runs_against_the_model_crate() -> anyhow::Result<()> {
    let root = root().canonicalize()?;
    let libtorch = root.join(".libtorch").canonicalize()?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("user-project");
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "user-project"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
inheritune-model = {{ path = "{model}" }}

[build-dependencies]
inheritune-build = {{ path = "{build}" }}

[workspace]
"#,
            model = root.join("crates/model").display(),
            build = root.join("crates/build").display()
        ),
    )?;
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    inheritune_build::link_torch();\n}\n",
    )?;
    std::fs::copy(
        root.join("crates/model/examples/tiny_forward.rs"),
        dir.join("src/main.rs"),
    )?;
    // The workspace's lock file pins the same versions, so nothing is resolved anew.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&dir)
        .args(["run", "--offline", "--quiet"])
        .env("LIBTORCH", &libtorch)
        .env("CARGO_TARGET_DIR", root.join("target/outside"))
        .env_remove("RUSTFLAGS")
        .output()?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("missing: none; unexpected: none"), "{stdout}\n{stderr}");
    Ok(())
}
