//! `cargo xtask reproduce <recipe>`: set up, build the release binary, run `inheritune recipe`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

use crate::{bench::build_release, run, setup::setup, workspace_root};

/// `cargo xtask reproduce <recipe> [flags]`: setup, release build, then the recipe through the
/// binary (xtask itself links no libtorch). Flags are passed on to `inheritune recipe`.
pub fn reproduce(recipe: &str, args: &[String]) -> Result<()> {
    let root = workspace_root();
    let path = if Path::new(recipe).exists() {
        PathBuf::from(recipe)
    } else {
        root.join("xtask").join("recipes").join(format!("{recipe}.toml"))
    };
    if !path.exists() {
        let known: Vec<String> = std::fs::read_dir(root.join("xtask").join("recipes"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        bail!("unknown recipe {recipe:?} (known: {})", known.join(", "));
    }
    let dry = args.iter().any(|a| a == "--dry-run");
    if !dry {
        setup()?;
    }
    let binary = build_release()?;
    let mut cmd = Command::new(&binary);
    cmd.current_dir(&root)
        .arg("recipe")
        .arg("--config")
        .arg(&path)
        .args(args);
    if !args.iter().any(|a| a == "--run") && !dry {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        cmd.arg("--run").arg(root.join("runs").join(name));
    }
    run(&mut cmd, "inheritune recipe")
}
