//! Exclusive file locks (`flock(2)` on Unix, through the standard library's `File::lock`), the
//! one kind every inheritune crate takes: the training run folder's `.lock` (tried once: a second
//! process is refused) and the Hugging Face cache's `.locks/…/<etag>.lock` (waited for, as
//! Python's `huggingface_hub` does). The operating system releases a lock when its process exits
//! or crashes, so no stale lock outlives a run.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::{err, Error, Result};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock of `path` (the file is created if missing, never truncated), waiting for
    /// another holder to release it.
    ///
    /// # Errors
    /// The file cannot be opened or locked.
    pub fn acquire(path: &Path) -> Result<Lock> {
        let file = open(path)?;
        file.lock().map_err(err(path, "locking"))?;
        Ok(Lock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Takes the lock of `path` if no one holds it: `Ok(None)` when another process does.
    ///
    /// # Errors
    /// The file cannot be opened or locked.
    pub fn try_acquire(path: &Path) -> Result<Option<Lock>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error {
                path: path.to_path_buf(),
                op: "locking",
                source: e,
            }),
        }
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(err(path, "opening the lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let held = Lock::try_acquire(&path).unwrap().expect("free");
        assert!(Lock::try_acquire(&path).unwrap().is_none());
        drop(held);
        let again = Lock::acquire(&path).unwrap();
        assert_eq!(again.path(), path);
        let e = Lock::acquire(&dir.path().join("missing/x.lock"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing/x.lock") && e.contains("opening the lock"), "{e}");
    }
}
