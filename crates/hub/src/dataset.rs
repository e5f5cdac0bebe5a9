//! Datasets by Hub id: the files matching include patterns, linked into a folder.

use std::fs;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::id::{HubId, RepoKind};
use crate::net::{Entry, Hub};
use crate::{io_err, Error, Result};

/// Compiles include patterns; `*` also matches `/`, as `hf download --include` (fnmatch) does.
/// No patterns means every file.
///
/// # Errors
/// A malformed pattern, named.
pub fn patterns(include: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    let all = ["*".to_string()];
    for p in if include.is_empty() { &all[..] } else { include } {
        b.add(Glob::new(p).map_err(|e| Error::Msg(format!("include pattern {p:?}: {e}")))?);
    }
    b.build().map_err(|e| Error::Msg(format!("include patterns: {e}")))
}

struct Filter {
    include: GlobSet,
    exclude: Option<GlobSet>,
}

impl Filter {
    fn is_match(&self, path: &str) -> bool {
        self.include.is_match(path) && !self.exclude.as_ref().is_some_and(|x| x.is_match(path))
    }
}

impl Hub {
    /// Fetches the files of dataset `id` matching `include` and none of `exclude` into the cache, checks each one's
    /// size against the Hub's listing, and (with `out`) links each under `out/<path in repo>`.
    /// Returns the files' paths (under `out`, or in the snapshot). Offline, or when the Hub cannot
    /// be reached, the cached snapshot alone serves.
    ///
    /// # Errors
    /// No file matches; offline and not cached; a failed download; or a different file already
    /// at a link's place under `out` (never overwritten).
    pub fn dataset(
        &self,
        id: &HubId,
        include: &[String],
        exclude: &[String],
        out: Option<&Path>,
    ) -> Result<Vec<PathBuf>> {
        let kind = RepoKind::Dataset;
        let set = Filter {
            include: patterns(include)?,
            exclude: (!exclude.is_empty()).then(|| patterns(exclude)).transpose()?,
        };
        let no_match = |what: &str| {
            Error::Msg(format!(
                "dataset {id}: no file {what} matches the include patterns {include:?}"
            ))
        };
        let files = if self.offline {
            self.cached_dataset(id, &set).map_err(|why| {
                Error::Msg(format!(
                    "dataset {id} is not in the Hugging Face cache {} ({why}) and HF_HUB_OFFLINE is set",
                    self.cache.root.display()
                ))
            })?
        } else {
            let online = || -> Result<Vec<PathBuf>, crate::net::NetError> {
                let commit = self.commit(kind, id)?;
                let listing: Vec<Entry> = self
                    .list(kind, id, &commit)?
                    .into_iter()
                    .filter(|e| set.is_match(&e.path))
                    .collect();
                if listing.is_empty() {
                    return Err(no_match("of the repository").into());
                }
                Ok(self.fetch(kind, id, &commit, &listing)?)
            };
            match online() {
                Ok(f) => f,
                Err(e) if e.unreachable => self.cached_dataset(id, &set).map_err(|why| {
                    Error::Msg(format!(
                        "{}; and dataset {id} is not in the Hugging Face cache {} ({why})",
                        e.message,
                        self.cache.root.display()
                    ))
                })?,
                Err(e) => return Err(e.into()),
            }
        };
        let Some(out) = out else { return Ok(files) };
        let commit = self.cache.commit(kind, id).unwrap_or_default();
        let snapshot = self.cache.snapshot(kind, &id.repo, &commit);
        files.iter().map(|f| place(f, &snapshot, out)).collect()
    }

    fn cached_dataset(&self, id: &HubId, set: &Filter) -> std::result::Result<Vec<PathBuf>, String> {
        let kind = RepoKind::Dataset;
        let repo_dir = self.cache.repo_dir(kind, &id.repo);
        let commit = self
            .cache
            .commit(kind, id)
            .ok_or_else(|| format!("no {}", repo_dir.join("refs").join(&id.revision).display()))?;
        let snapshot = self.cache.snapshot(kind, &id.repo, &commit);
        let files: Vec<PathBuf> = self
            .cache
            .files(&snapshot)
            .iter()
            .filter(|f| set.is_match(f))
            .map(|f| snapshot.join(f))
            .collect();
        if files.is_empty() {
            return Err(format!("{} has no matching file", snapshot.display()));
        }
        Ok(files)
    }
}

/// Links `out/<rel>` to the snapshot file `file` (`rel` its path in the snapshot). A link
/// already pointing there, or a file of the same size (a copy), is kept; anything else refuses.
fn place(file: &Path, snapshot: &Path, out: &Path) -> Result<PathBuf> {
    let rel = file.strip_prefix(snapshot).unwrap_or(file);
    let dest = out.join(rel);
    let target = fs::canonicalize(file).map_err(io_err(file))?;
    if let Ok(meta) = fs::symlink_metadata(&dest) {
        let same_link = meta.file_type().is_symlink() && fs::canonicalize(&dest).is_ok_and(|t| t == target);
        let same_size =
            fs::metadata(&dest).is_ok_and(|m| m.len() == fs::metadata(&target).map(|t| t.len()).unwrap_or(u64::MAX));
        if same_link || (!meta.file_type().is_symlink() && same_size) {
            return Ok(dest);
        }
        return Err(Error::Msg(format!(
            "{}: a different file is already there; move it away (it is never overwritten)",
            dest.display()
        )));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = inheritune_fs::tmp_path(&dest);
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, &tmp).map_err(io_err(&tmp))?;
    #[cfg(not(unix))]
    fs::copy(&target, &tmp).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    Ok(dest)
}
