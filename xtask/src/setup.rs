//! `cargo xtask setup`: torch==2.11.0 in a cached virtual environment, linked as `.libtorch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cache_dir, output_of, run, workspace_root, TORCH_VERSION};

/// The torch package folder inside a virtual environment, when torch imports with the pinned version.
pub fn torch_dir(venv: &Path) -> Option<PathBuf> {
    let python = venv.join("bin").join("python");
    let script = "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))";
    let out = output_of(&python, &["-c", script])?;
    let mut lines = out.lines();
    let version = lines.next()?;
    let dir = PathBuf::from(lines.next()?);
    (version.split('+').next() == Some(TORCH_VERSION) && dir.join("lib").join("libtorch.so").exists()).then_some(dir)
}

/// Installs `torch==2.11.0` into `<cache>/torch-2.11.0` (once) and links it as `<repo>/.libtorch`.
pub fn setup() -> Result<PathBuf> {
    let cache = cache_dir()?;
    let venv = cache.join(format!("torch-{TORCH_VERSION}"));
    let torch = match torch_dir(&venv) {
        Some(dir) => dir,
        None => install_torch(&cache, &venv)?,
    };
    fix_scripts(&venv)?;
    install_cuda_headers(&venv, &torch)?;
    let link = workspace_root().join(".libtorch");
    let current = std::fs::read_link(&link).ok();
    if current.as_deref() != Some(torch.as_path()) {
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("removing stale link {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&torch, &link)
            .with_context(|| format!("linking {} -> {}", link.display(), torch.display()))?;
        eprintln!("xtask: linked {} -> {}", link.display(), torch.display());
    }
    Ok(torch)
}

/// The venv is built under a temporary name and renamed, so the scripts pip wrote (`torchrun`, ...)
/// name the temporary folder in their `#!` line: point them at the venv's own python.
pub fn fix_scripts(venv: &Path) -> Result<()> {
    let partial = venv.with_extension("partial");
    let (old, new) = (
        partial.to_string_lossy().to_string(),
        venv.to_string_lossy().to_string(),
    );
    let bin = venv.join("bin");
    for entry in std::fs::read_dir(&bin).with_context(|| format!("reading {}", bin.display()))? {
        let path = entry?.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binaries and links
        };
        if std::fs::symlink_metadata(&path)?.file_type().is_symlink() || !text.contains(&old) {
            continue;
        }
        let fixed = text.replace(&old, &new);
        let tmp = path.with_extension("fixing");
        std::fs::write(&tmp, fixed).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::metadata(&path)?.permissions())?;
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    }
    Ok(())
}

/// The CUDA headers that ProcessGroupNCCL.hpp needs besides the wheel's own (`crt/host_config.h`,
/// `nv/target`), so inheritune-dist compiles NCCL in (see crates/dist/build.rs).
pub fn install_cuda_headers(venv: &Path, torch: &Path) -> Result<()> {
    let include = torch.join("..").join("nvidia").join("cu13").join("include");
    if include.join("crt").join("host_config.h").exists() && include.join("nv").join("target").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing the CUDA headers NCCL support compiles against (cuda-toolkit[crt,cccl])");
    run(
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
            ])
            .arg("cuda-toolkit[crt,cccl]==13.0.2"),
        "pip install cuda-toolkit[crt,cccl]",
    )
}

pub fn install_torch(cache: &Path, venv: &Path) -> Result<PathBuf> {
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| output_of(p, &["--version"]).is_some())
        .context("python3 was not found: install Python 3 with venv and pip (Debian: apt-get install python3 python3-venv python3-pip)")?;
    if output_of(python, &["-c", "import venv, ensurepip"]).is_none() {
        bail!("{python} cannot create virtual environments: install the venv module (Debian: apt-get install python3-venv)");
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating cache folder {}", cache.display()))?;
    // Build under a temporary name and rename at the end, so an interrupted install is never taken as complete.
    let partial = venv.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    eprintln!(
        "xtask: creating a virtual environment for torch=={TORCH_VERSION} in {} (about 4.6 GB, a few minutes)",
        venv.display()
    );
    run(
        Command::new(python).args(["-m", "venv"]).arg(&partial),
        "python3 -m venv",
    )?;
    let pip = partial.join("bin").join("python");
    if output_of(&pip, &["-m", "pip", "--version"]).is_none() {
        bail!("the new virtual environment has no pip: install pip for {python} (Debian: apt-get install python3-pip python3-venv)");
    }
    run(
        Command::new(&pip)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"])
            .arg(format!("torch=={TORCH_VERSION}")),
        "pip install torch",
    )?;
    if venv.exists() {
        std::fs::remove_dir_all(venv).with_context(|| format!("removing broken {}", venv.display()))?;
    }
    std::fs::rename(&partial, venv).with_context(|| format!("renaming {} to {}", partial.display(), venv.display()))?;
    torch_dir(venv).with_context(|| format!("torch {TORCH_VERSION} does not import from {}", venv.display()))
}
