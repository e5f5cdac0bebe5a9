//! Hugging Face Hub ids and cache for inheritune-rs.
//!
//! Everywhere a checkpoint is read, the argument may be a local folder or a Hub id
//! `org/name[@revision]` ([`Source::classify`]). A Hub id resolves to a snapshot folder of the
//! Hugging Face cache ([`cache`]), in the layout Python's `huggingface_hub` writes, so both share
//! downloads. Files the cache lacks are downloaded through the `hf-hub` crate (Hugging Face's own
//! client): only what loading needs ([`checkpoint`]), or the files of a dataset matching include
//! patterns ([`Hub::dataset`]).
//!
//! The environment is Python's:
//! - `HF_HUB_CACHE` / `HF_HOME` / `XDG_CACHE_HOME`: where the cache is;
//! - `HF_ENDPOINT`: the Hub's address (a mirror, or a local server in tests);
//! - `HF_TOKEN` (or the token file `hf auth login` writes): gated and private repositories;
//! - `HF_HUB_OFFLINE=1`: no network at all; a file the cache lacks is an error naming the id,
//!   the revision and the cache folder searched.
//!
//! Downloads go to `blobs/<key>.incomplete` and are renamed into place when whole; an interrupted
//! one resumes from where it stopped (an HTTP `Range` request). Progress is a bar on a terminal
//! and, without one, a log line every `INHERITUNE_LOG_SECONDS` (default 10) seconds.
//!
//! ```no_run
//! let folder = inheritune_hub::resolve_checkpoint("openai-community/gpt2")?;
//! assert!(folder.join("config.json").exists());
//! # Ok::<(), inheritune_hub::Error>(())
//! ```

pub mod cache;
pub mod checkpoint;
pub mod dataset;
pub mod id;
mod net;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};

pub use cache::Cache;
pub use checkpoint::resolve_checkpoint;
pub use id::{HubId, RepoKind, Source};
pub use net::{Entry, Hub, NetError, Settings};

/// Every failure of this crate: one line naming the id, the file or the folder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A message already naming what failed.
    #[error("{0}")]
    Msg(String),
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Msg(format!("{}: {e}", path.display()))
}

/// Whether `HF_HUB_OFFLINE` is set to a true value (`1`, `true`, `yes`, `on`, in any case), as
/// Python's `huggingface_hub` reads it.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Resolves a dataset argument: a local folder as it is, or a Hub dataset id's files matching
/// `include` (glob patterns; `*` also matches `/`, as `hf download --include` does), fetched
/// into the cache and linked under `out` with their paths in the repository.
/// ([`Hub::dataset`] also takes exclude patterns.)
///
/// # Errors
/// As [`Hub::dataset`].
pub fn resolve_dataset(spec: &str, include: &[String], out: &Path) -> Result<Vec<PathBuf>> {
    match Source::classify(spec) {
        Source::Local(p) => Ok(vec![p]),
        Source::Hub(id) => Hub::from_env()?.dataset(&id, include, &[], Some(out)),
    }
}

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
