//! `cargo xtask`: sets up libtorch, runs the test gate, and (later) drives reproductions.
//!
//! xtask links nothing that pulls in `tch`, so it builds and runs before libtorch exists.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The PyTorch release whose libtorch `tch` 0.24.0 is built against.
const TORCH_VERSION: &str = "2.11.0";

const USAGE: &str = "usage: cargo xtask <command>

commands:
  setup   install torch==2.11.0 into a cached virtual environment and link it as .libtorch
  test    setup, then cargo fmt --check, clippy -D warnings, and the workspace's tests
  ci      the same as test";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup().map(|_| ()),
        Some("test") | Some("ci") => test(),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command '{other}'\n\n{USAGE}"),
        None => {
            println!("{USAGE}");
            Ok(())
        }
    }
}

/// The workspace root (the parent of this crate's manifest directory).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The per-user cache folder that holds the PyTorch virtual environment, shared by every clone.
fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("INHERITUNE_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("inheritune"));
    }
    let home = std::env::var_os("HOME").context("neither INHERITUNE_CACHE, XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("inheritune"))
}

/// Runs a command and returns its trimmed stdout, or `None` when it fails to start or exits non-zero.
fn output_of(program: impl AsRef<OsStr>, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("could not start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The torch package folder inside a virtual environment, when torch imports with the pinned version.
fn torch_dir(venv: &Path) -> Option<PathBuf> {
    let python = venv.join("bin").join("python");
    let script = "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))";
    let out = output_of(&python, &["-c", script])?;
    let mut lines = out.lines();
    let version = lines.next()?;
    let dir = PathBuf::from(lines.next()?);
    (version.split('+').next() == Some(TORCH_VERSION) && dir.join("lib").join("libtorch.so").exists()).then_some(dir)
}

/// Installs `torch==2.11.0` into `<cache>/torch-2.11.0` (once) and links it as `<repo>/.libtorch`.
fn setup() -> Result<PathBuf> {
    let cache = cache_dir()?;
    let venv = cache.join(format!("torch-{TORCH_VERSION}"));
    let torch = match torch_dir(&venv) {
        Some(dir) => dir,
        None => install_torch(&cache, &venv)?,
    };
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

fn install_torch(cache: &Path, venv: &Path) -> Result<PathBuf> {
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

/// The gate: formatting, clippy with warnings denied, and every test of the workspace.
fn test() -> Result<()> {
    setup()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let steps: [(&str, &[&str]); 3] = [
        ("cargo fmt --check", &["fmt", "--all", "--", "--check"]),
        (
            "cargo clippy",
            &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
        ),
        ("cargo test", &["test", "--workspace"]),
    ];
    for (what, args) in steps {
        eprintln!("xtask: {what}");
        run(Command::new(&cargo).current_dir(&root).args(args), what)?;
    }
    Ok(())
}
