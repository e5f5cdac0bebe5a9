//! One process per run folder: an exclusive lock on `<run>/.lock`, held for the run's lifetime
//! and released by the operating system when the process exits or crashes.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{file_err, Result};

/// The lock of a run folder; dropping it releases the folder.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (created if missing), or fails at once if another process holds it.
    ///
    /// # Errors
    /// The folder is in use by another process, or cannot be created.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| file_err(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(file_err(
                dir,
                "this run folder is in use by another process (it holds .lock); wait for it to finish or stop it",
            )),
            Err(TryLockError::Error(e)) => Err(file_err(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
