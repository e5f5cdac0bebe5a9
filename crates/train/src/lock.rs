//! One process per run folder: an exclusive lock on `<run>/.lock`, held for the run's lifetime
//! and released by the operating system when the process exits or crashes.

use std::path::Path;

use crate::error::{file_err, Result};

/// The lock of a run folder; dropping it releases the folder.
#[derive(Debug)]
pub struct RunLock(inheritune_fs::Lock);

impl RunLock {
    /// Takes the lock of `dir` (created if missing), or fails at once if another process holds it.
    ///
    /// # Errors
    /// The folder is in use by another process, or cannot be created.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        match inheritune_fs::Lock::try_acquire(&dir.join(".lock")) {
            Ok(Some(lock)) => Ok(RunLock(lock)),
            Ok(None) => Err(file_err(
                dir,
                "this run folder is in use by another process (it holds .lock); wait for it to finish or stop it",
            )),
            Err(e) => Err(file_err(&e.path, format!("{}: {}", e.op, e.source))),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}
