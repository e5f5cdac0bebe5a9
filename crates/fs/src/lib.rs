//! Crash-safe writes, the one primitive every inheritune crate uses to put a file or a folder in
//! place: the content is written under a temporary name beside the target (`<name>.tmp`), flushed
//! to disk (`fsync`), renamed over the target, and the parent folder is flushed too, so after a
//! crash or a SIGKILL at any moment the target holds either its old content or the new one,
//! never a part. A leftover `*.tmp` is the only trace of an interrupted write; callers remove
//! them when they next open the folder.
//!
//! Beside it, the other plumbing every crate shares: exclusive file locks ([`lock`]) and
//! progress in a terminal and a log file ([`progress`]).
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("inheritune-fs-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! inheritune_fs::write_file(&dir.join("state.json"), b"{\"step\": 3}").unwrap();
//! assert_eq!(std::fs::read(dir.join("state.json")).unwrap(), b"{\"step\": 3}");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

pub mod lock;
pub mod progress;

pub use lock::Lock;
pub use progress::Progress;

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A failed write, naming the file or folder and the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {op}: {source}", path.display())]
pub struct Error {
    /// The file or folder.
    pub path: PathBuf,
    /// What was being done (`writing`, `renaming`, ...).
    pub op: &'static str,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

fn err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// `<path>.tmp`, the temporary name of `path` (in the same folder, so the rename is atomic).
pub fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Flushes the folder holding `path`, so a rename into it survives a power loss.
fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(err(parent, "flushing the folder"))
}

/// Writes `bytes` to `path` crash-safely (see the crate docs). A failed write removes its
/// temporary file and leaves `path` as it was.
///
/// # Errors
/// Any I/O error (a full disk, a missing folder, permissions), naming the file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(err(&tmp, "writing"));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    commit_file(&tmp, path)
}

/// Puts a temporary file that a writer of its own finished (a Parquet shard, a plot, a
/// safetensors file) in place as `path`: flush, rename, flush the folder.
///
/// # Errors
/// Any I/O error, naming the file.
pub fn commit_file(tmp: &Path, path: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(err(tmp, "flushing"))?;
    std::fs::rename(tmp, path).map_err(err(path, "renaming the temporary file into place"))?;
    sync_parent(path)
}

/// Puts a folder assembled under a temporary name (`tmp`, with every file closed) in place as
/// `dir`: every file in it and the folder itself are flushed, then it is renamed. An existing
/// `dir` is first moved aside to `<dir>.old.tmp` and removed after the rename, so `dir` is at
/// every moment absent, the old folder or the new one, never a mixture.
///
/// # Errors
/// Any I/O error, naming the file or folder.
pub fn commit_dir(tmp: &Path, dir: &Path) -> Result<()> {
    sync_tree(tmp)?;
    let old = with_suffix(dir, ".old.tmp");
    let replacing = dir.exists();
    if replacing {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(err(&old, "removing"))?;
        }
        std::fs::rename(dir, &old).map_err(err(dir, "moving the old folder aside"))?;
    }
    std::fs::rename(tmp, dir).map_err(err(dir, "renaming the temporary folder into place"))?;
    sync_parent(dir)?;
    if replacing {
        std::fs::remove_dir_all(&old).map_err(err(&old, "removing the old folder"))?;
    }
    Ok(())
}

fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(err(dir, "reading"))? {
        let path = entry.map_err(err(dir, "reading"))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(err(&path, "flushing"))?;
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir, "flushing the folder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_leave_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("inheritune-fs-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.json");
        write_file(&f, b"one").unwrap();
        write_file(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert!(!tmp_path(&f).exists());
        // A folder replaced as a whole.
        let target = dir.join("step");
        for content in ["old", "new"] {
            let tmp = tmp_path(&target);
            std::fs::create_dir_all(tmp.join("sub")).unwrap();
            std::fs::write(tmp.join("sub/x"), content).unwrap();
            commit_dir(&tmp, &target).unwrap();
        }
        assert_eq!(std::fs::read_to_string(target.join("sub/x")).unwrap(), "new");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // Errors name the file and keep the old content.
        let missing = dir.join("no/such/folder/f");
        let e = write_file(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("no/such/folder/f.tmp: writing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
