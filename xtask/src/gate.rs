//! `cargo xtask test`: the gate CI runs (fmt, clippy, docs, packaging, tests).

use std::process::Command;

use anyhow::Result;

use crate::{run, setup::setup, workspace_root};

/// The library crates, each packageable on its own (`cargo package`).
pub const LIBRARIES: &[&str] = &[
    "inheritune-build",
    "inheritune-fs",
    "inheritune-model",
    "inheritune-data",
    "inheritune-analysis",
    "inheritune-surgery",
    "inheritune-train",
    "inheritune-eval",
    "inheritune-dist",
    "inheritune-recipe",
    "inheritune-hub",
];

/// The gate: formatting, clippy with warnings denied, docs with warnings denied, every library
/// crate packaged (no file outside its package), and every test of the workspace.
pub fn test() -> Result<()> {
    setup()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut package = vec!["package", "--no-verify", "--allow-dirty", "--quiet"];
    for lib in LIBRARIES {
        package.extend(["-p", lib]);
    }
    let steps: [(&str, &[&str]); 5] = [
        ("cargo fmt --check", &["fmt", "--all", "--", "--check"]),
        (
            "cargo clippy",
            &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        ),
        ("cargo doc (warnings denied)", &["doc", "--workspace", "--no-deps"]),
        ("cargo package (every library crate)", &package),
        ("cargo test", &["test", "--workspace"]),
    ];
    for (what, args) in steps {
        eprintln!("xtask: {what}");
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root).args(args);
        if args[0] == "doc" {
            cmd.env("RUSTDOCFLAGS", "-D warnings");
        }
        run(&mut cmd, what)?;
    }
    Ok(())
}
