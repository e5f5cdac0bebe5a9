//! The Hub client: listing a revision, and fetching files into the cache with resume.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use hf_hub::repository::RepoTreeEntry;
use hf_hub::{HFClient, HFError, HFRepository, RepoType};
use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::id::{HubId, RepoKind};
use crate::{io_err, Error, Result};
use inheritune_fs::progress::Progress;

/// A file of a repository at a commit, as the Hub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path in the repository, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its git object id (for an LFS file, the id of its pointer).
    pub oid: String,
    /// Whether its contents are in LFS (its cache blob is then named by their sha256).
    pub lfs: bool,
}

/// Where the Hub is and what it is asked with; `None` fields come from the environment as
/// Python's `huggingface_hub` reads it (see the crate docs).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The Hub's address (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// The cache folder (`HF_HUB_CACHE`, `HF_HOME`/hub, …).
    pub cache_dir: Option<PathBuf>,
    /// The access token (`HF_TOKEN`, or the token file of `hf auth login`).
    pub token: Option<String>,
    /// Resolve from the cache only (`HF_HUB_OFFLINE`).
    pub offline: bool,
}

/// A connection to the Hub (or to `HF_ENDPOINT`) and the cache it fills.
pub struct Hub {
    client: HFClient,
    rt: tokio::runtime::Runtime,
    /// The cache folder.
    pub cache: Cache,
    /// `HF_HUB_OFFLINE`: resolve from the cache only.
    pub offline: bool,
}

impl Hub {
    /// The Hub the environment names (`HF_ENDPOINT`, `HF_TOKEN`, the cache variables,
    /// `HF_HUB_OFFLINE`).
    ///
    /// # Errors
    /// An endpoint that is not a URL.
    pub fn from_env() -> Result<Hub> {
        Hub::new(Settings {
            offline: crate::offline(),
            ..Settings::default()
        })
    }

    /// A Hub with these settings (their `None` fields from the environment).
    ///
    /// # Errors
    /// An endpoint that is not a URL.
    pub fn new(settings: Settings) -> Result<Hub> {
        let mut builder = HFClient::builder().retry_max_attempts(3);
        if let Some(e) = settings.endpoint {
            builder = builder.endpoint(e);
        }
        if let Some(c) = settings.cache_dir {
            builder = builder.cache_dir(c);
        }
        if let Some(t) = settings.token {
            builder = builder.token(t);
        }
        let client = builder.build().map_err(|e| Error::Msg(format!("HF_ENDPOINT: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Msg(format!("starting the download runtime: {e}")))?;
        Ok(Hub {
            cache: Cache {
                root: client.cache_dir().to_path_buf(),
            },
            client,
            rt,
            offline: settings.offline,
        })
    }

    /// The commit `id` names on the Hub, recorded as its ref in the cache.
    ///
    /// # Errors
    /// No such repository or revision, no access, or no network.
    pub fn commit(&self, kind: RepoKind, id: &HubId) -> Result<String, NetError> {
        if id.is_commit() {
            return Ok(id.revision.clone());
        }
        let (org, name) = id.parts();
        let sha = self.rt.block_on(async {
            match kind {
                RepoKind::Model => self
                    .client
                    .model(org, name)
                    .info()
                    .revision(id.revision.clone())
                    .send()
                    .await
                    .map(|i| i.sha),
                RepoKind::Dataset => self
                    .client
                    .dataset(org, name)
                    .info()
                    .revision(id.revision.clone())
                    .send()
                    .await
                    .map(|i| i.sha),
            }
        });
        let sha = sha.map_err(|e| NetError::new(kind, id, e))?;
        let sha = sha.ok_or_else(|| NetError::msg(format!("{} {id}: the Hub gave no commit for it", kind.name())))?;
        self.cache
            .write_ref(kind, id, &sha)
            .map_err(|e| NetError::msg(e.to_string()))?;
        Ok(sha)
    }

    /// Every file of `id` at `commit`.
    ///
    /// # Errors
    /// As [`Hub::commit`].
    pub fn list(&self, kind: RepoKind, id: &HubId, commit: &str) -> Result<Vec<Entry>, NetError> {
        let (org, name) = id.parts();
        let entries = self.rt.block_on(async {
            match kind {
                RepoKind::Model => list(&self.client.model(org, name), commit).await,
                RepoKind::Dataset => list(&self.client.dataset(org, name), commit).await,
            }
        });
        entries.map_err(|e| NetError::new(kind, id, e))
    }

    /// Fetches `entries` of `id` at `commit` into the cache (those already there are kept) and
    /// returns their snapshot paths. An interrupted download is kept and resumed by the next call.
    ///
    /// # Errors
    /// A failed or interrupted transfer, a size that differs from the listing, or an I/O error.
    pub fn fetch(&self, kind: RepoKind, id: &HubId, commit: &str, entries: &[Entry]) -> Result<Vec<PathBuf>> {
        let snapshot = self.cache.snapshot(kind, &id.repo, commit);
        let missing: Vec<&Entry> = entries
            .iter()
            .filter(|e| !fs::metadata(snapshot.join(&e.path)).is_ok_and(|m| m.len() == e.size))
            .collect();
        if !missing.is_empty() {
            let total = missing.iter().map(|e| e.size).sum();
            let mut meter = Progress::bytes(id.to_string(), total);
            let (org, name) = id.parts();
            for entry in missing {
                meter.set_message(format!("{id} {}", entry.path));
                self.rt.block_on(async {
                    match kind {
                        RepoKind::Model => {
                            self.fetch_one(&self.client.model(org, name), kind, id, commit, entry, &mut meter)
                                .await
                        }
                        RepoKind::Dataset => {
                            self.fetch_one(&self.client.dataset(org, name), kind, id, commit, entry, &mut meter)
                                .await
                        }
                    }
                })?;
            }
            meter.finish();
        }
        Ok(entries.iter().map(|e| snapshot.join(&e.path)).collect())
    }

    async fn fetch_one<T: RepoType>(
        &self,
        repo: &HFRepository<T>,
        kind: RepoKind,
        id: &HubId,
        commit: &str,
        entry: &Entry,
        meter: &mut Progress,
    ) -> Result<()> {
        let cache = &self.cache;
        let snap = cache.snapshot(kind, &id.repo, commit).join(&entry.path);
        let whole = |p: &Path| fs::metadata(p).is_ok_and(|m| m.len() == entry.size);
        if !entry.lfs && whole(&cache.blob(kind, &id.repo, &entry.oid)) {
            cache.link(kind, &id.repo, commit, &entry.path, &entry.oid)?;
            meter.inc(entry.size);
            return Ok(());
        }
        let _lock = cache.lock(kind, &id.repo, &entry.oid)?;
        if whole(&snap) {
            meter.inc(entry.size);
            return Ok(()); // another process finished it while this one waited
        }
        let blobs = cache.repo_dir(kind, &id.repo).join("blobs");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let part = blobs.join(format!("{}.incomplete", entry.oid));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .map_err(io_err(&part))?;
        let mut have = file.metadata().map_err(io_err(&part))?.len();
        if have > entry.size {
            have = 0;
        }
        let what = format!("{} {id}: {}", kind.name(), entry.path);
        if have < entry.size {
            let range = (have > 0).then_some(have..entry.size);
            let (length, mut stream) = repo
                .download_file_stream()
                .filename(entry.path.clone())
                .revision(commit.to_string())
                .maybe_range(range)
                .send()
                .await
                .map_err(|e| Error::Msg(format!("{what}: {e}")))?;
            if have > 0 && length == Some(entry.size) {
                tracing::warn!("{what}: the server ignored the range request; downloading it whole");
                have = 0;
            }
            file.set_len(have).map_err(io_err(&part))?;
            file.seek(SeekFrom::Start(have)).map_err(io_err(&part))?;
            if have > 0 {
                eprintln!("{what}: resuming at byte {have} of {}", entry.size);
            }
            meter.inc(have);
            let mut got = have;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = file.sync_all();
                        return Err(Error::Msg(format!(
                            "{what}: interrupted at byte {got} of {} ({e}); run again to resume",
                            entry.size
                        )));
                    }
                };
                if got + chunk.len() as u64 > entry.size {
                    return Err(Error::Msg(format!(
                        "{what}: the server sent more than the {} bytes the Hub lists",
                        entry.size
                    )));
                }
                file.write_all(&chunk).map_err(io_err(&part))?;
                got += chunk.len() as u64;
                meter.inc(chunk.len() as u64);
            }
            if got != entry.size {
                let _ = file.sync_all();
                return Err(Error::Msg(format!(
                    "{what}: the transfer ended at byte {got} of the {} the Hub lists; run again to resume",
                    entry.size
                )));
            }
        } else {
            meter.inc(entry.size);
        }
        file.sync_all().map_err(io_err(&part))?;
        let etag = if entry.lfs {
            sha256_of(&mut file, &part)?
        } else {
            entry.oid.clone()
        };
        drop(file);
        let blob = cache.blob(kind, &id.repo, &etag);
        if whole(&blob) {
            let _ = fs::remove_file(&part);
        } else {
            fs::rename(&part, &blob).map_err(io_err(&blob))?;
        }
        cache.link(kind, &id.repo, commit, &entry.path, &etag)?;
        Ok(())
    }
}

fn sha256_of(file: &mut File, path: &Path) -> Result<String> {
    file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

async fn list<T: RepoType>(repo: &HFRepository<T>, commit: &str) -> hf_hub::HFResult<Vec<Entry>> {
    let stream = repo.list_tree().revision(commit.to_string()).recursive(true).send()?;
    futures::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(entry) = stream.next().await {
        if let RepoTreeEntry::File {
            oid, size, path, lfs, ..
        } = entry?
        {
            out.push(Entry {
                path,
                size,
                oid,
                lfs: lfs.is_some(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A failed Hub request, told apart into "no network" (the cache may still serve) and the rest.
#[derive(Debug)]
pub struct NetError {
    /// The one-line message.
    pub message: String,
    /// Whether the Hub could not be reached at all (a connection error or timeout).
    pub unreachable: bool,
}

impl NetError {
    fn new(kind: RepoKind, id: &HubId, e: HFError) -> NetError {
        let unreachable = matches!(&e, HFError::Request { source, .. } if source.is_connect() || source.is_timeout());
        let message = match &e {
            HFError::RepoNotFound { .. } | HFError::RevisionNotFound { .. } => format!(
                "{} {id}: the Hub has no such repository or revision (a private or gated one needs HF_TOKEN)",
                kind.name()
            ),
            HFError::AuthRequired { .. } | HFError::Forbidden { .. } => {
                format!(
                    "{} {id}: the Hub refused access ({e}); a gated or private repository needs HF_TOKEN",
                    kind.name()
                )
            }
            _ => format!("{} {id}: {e}", kind.name()),
        };
        NetError { message, unreachable }
    }

    fn msg(message: String) -> NetError {
        NetError {
            message,
            unreachable: false,
        }
    }
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A failure after the Hub answered (a transfer, a file): not a reason to fall back to the cache.
impl From<Error> for NetError {
    fn from(e: Error) -> NetError {
        NetError::msg(e.to_string())
    }
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Error {
        Error::Msg(e.message)
    }
}
