//! The Hugging Face cache folder, in the layout of Python's `huggingface_hub`, so both share
//! downloads:
//!
//! ```text
//! <cache>/models--org--name/refs/main                     the commit `main` pointed to
//! <cache>/models--org--name/blobs/<etag>                  file contents (etag: sha256 for LFS files, git oid otherwise)
//! <cache>/models--org--name/snapshots/<commit>/<path>     relative links to ../../blobs/<etag>
//! <cache>/.locks/models--org--name/<etag>.lock            held while a blob is written
//! ```
//!
//! The cache folder is `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (hf-hub's own resolution,
//! the same as Python's).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::id::{is_commit, HubId, RepoKind};
use crate::{io_err, Result};

/// A Hugging Face cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Its root (holding `models--…` and `datasets--…`).
    pub root: PathBuf,
}

impl Cache {
    /// The cache the environment names (see the module docs).
    pub fn from_env() -> Cache {
        Cache {
            root: hf_hub::resolve_cache_dir(),
        }
    }

    /// `<root>/models--org--name` (or `datasets--…`).
    pub fn repo_dir(&self, kind: RepoKind, repo: &str) -> PathBuf {
        self.root
            .join(format!("{}--{}", kind.plural(), repo.replace('/', "--")))
    }

    /// The commit `id`'s revision names in this cache: the revision itself when it is a commit,
    /// else what `refs/<revision>` holds. `None` when the cache has no such ref.
    pub fn commit(&self, kind: RepoKind, id: &HubId) -> Option<String> {
        if id.is_commit() {
            return Some(id.revision.clone());
        }
        let text = fs::read_to_string(self.repo_dir(kind, &id.repo).join("refs").join(&id.revision)).ok()?;
        let commit = text.trim().to_string();
        is_commit(&commit).then_some(commit)
    }

    /// `snapshots/<commit>` of a repository.
    pub fn snapshot(&self, kind: RepoKind, repo: &str, commit: &str) -> PathBuf {
        self.repo_dir(kind, repo).join("snapshots").join(commit)
    }

    /// `blobs/<etag>` of a repository.
    pub fn blob(&self, kind: RepoKind, repo: &str, etag: &str) -> PathBuf {
        self.repo_dir(kind, repo).join("blobs").join(etag)
    }

    /// The files of a snapshot whose contents are there (links to present blobs, or plain files),
    /// as `/`-separated paths relative to it, sorted.
    pub fn files(&self, snapshot: &Path) -> Vec<String> {
        let mut out = Vec::new();
        walk(snapshot, "", &mut out);
        out.sort();
        out
    }

    /// Records that `revision` points at `commit` (`refs/<revision>`), atomically. Nothing is
    /// written for a revision that is itself a commit.
    ///
    /// # Errors
    /// An I/O error, naming the file.
    pub fn write_ref(&self, kind: RepoKind, id: &HubId, commit: &str) -> Result<()> {
        if id.is_commit() {
            return Ok(());
        }
        let path = self.repo_dir(kind, &id.repo).join("refs").join(&id.revision);
        if fs::read_to_string(&path).is_ok_and(|t| t.trim() == commit) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        inheritune_fs::write_file(&path, commit.as_bytes()).map_err(|e| crate::Error::Msg(e.to_string()))
    }

    /// Makes `snapshots/<commit>/<path>` a relative link to `blobs/<etag>`, replacing an older
    /// link atomically (a new link under a temporary name, then a rename).
    ///
    /// # Errors
    /// An I/O error, naming the link.
    pub fn link(&self, kind: RepoKind, repo: &str, commit: &str, path: &str, etag: &str) -> Result<PathBuf> {
        let link = self.snapshot(kind, repo, commit).join(path);
        let parent = link.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        let depth = path.split('/').count() + 1; // snapshots/<commit>/<path…>
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        if fs::read_link(&link).is_ok_and(|t| t == target) {
            return Ok(link);
        }
        let tmp = inheritune_fs::tmp_path(&link);
        let _ = fs::remove_file(&tmp);
        symlink(&target, &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &link).map_err(io_err(&link))?;
        Ok(link)
    }

    /// Takes `.locks/<repo folder>/<etag>.lock` (an exclusive `flock`, waited for), held until the
    /// returned lock is dropped, so two processes never write one blob at once.
    ///
    /// # Errors
    /// An I/O error, naming the lock file.
    pub fn lock(&self, kind: RepoKind, repo: &str, etag: &str) -> Result<inheritune_fs::Lock> {
        let dir = self
            .root
            .join(".locks")
            .join(format!("{}--{}", kind.plural(), repo.replace('/', "--")));
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{etag}.lock"));
        inheritune_fs::Lock::acquire(&path).map_err(|e| crate::Error::Msg(e.to_string()))
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, &rel, out),
            Ok(_) => out.push(rel),
            Err(_) => {} // a link to a blob that is not there
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the Hub cache needs symbolic links",
    ))
}
