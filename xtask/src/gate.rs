//! `cargo xtask test`: the gate CI runs (fmt, clippy, docs, tests).

use std::process::Command;

use anyhow::Result;

use crate::{run, setup::setup, workspace_root};

/// The gate: formatting, clippy with warnings denied, and every test of the workspace.
pub fn test() -> Result<()> {
    setup()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let steps: [(&str, &[&str]); 4] = [
        ("cargo fmt --check", &["fmt", "--all", "--", "--check"]),
        (
            "cargo clippy",
            &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        ),
        ("cargo doc (warnings denied)", &["doc", "--workspace", "--no-deps"]),
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
