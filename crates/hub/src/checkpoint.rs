//! Checkpoints by Hub id: only the files loading needs.
//!
//! `config.json`; the weights — `model.safetensors.index.json` and its shards, else
//! `model.safetensors`, else `pytorch_model.bin.index.json` and its shards, else
//! `pytorch_model.bin`; and those of the tokenizer and generation files the repository has.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::id::{HubId, RepoKind, Source};
use crate::net::{Entry, Hub};
use crate::{Error, Result};

/// Files fetched beside the weights when the repository has them.
pub const EXTRA_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
    "generation_config.json",
];

const WEIGHTS: [(&str, bool); 4] = [
    ("model.safetensors.index.json", true),
    ("model.safetensors", false),
    ("pytorch_model.bin.index.json", true),
    ("pytorch_model.bin", false),
];

/// A checkpoint argument as a folder: a local folder as it is, a Hub id as its snapshot folder
/// in the cache, with what it lacks downloaded first (see the crate docs).
///
/// # Errors
/// One line naming the id, the revision and what failed: offline and missing (with the cache
/// folder searched), no such repository or revision, no weights in it, or a failed download.
pub fn resolve_checkpoint(spec: &str) -> Result<PathBuf> {
    match Source::classify(spec) {
        Source::Local(p) if !p.exists() => Err(Error::Msg(format!("no folder {spec}"))),
        Source::Local(p) => Ok(p),
        Source::Hub(id) => Hub::from_env()?
            .checkpoint(&id)
            .map_err(|e| Error::Msg(format!("no folder {spec}, and no Hub id {spec}: {e}"))),
    }
}

/// The files of a checkpoint among `files` (a listing): the first stage — config, weights file or
/// index, tokenizer files — and the index, if the weights are sharded.
fn first_stage(files: &BTreeSet<&str>) -> std::result::Result<(Vec<String>, Option<String>), String> {
    if !files.contains("config.json") {
        return Err("it has no config.json".into());
    }
    let Some((weights, sharded)) = WEIGHTS.iter().find(|(w, _)| files.contains(w)) else {
        return Err("it has no model.safetensors, pytorch_model.bin or index of either".into());
    };
    let mut want = vec!["config.json".to_string(), weights.to_string()];
    want.extend(EXTRA_FILES.iter().filter(|f| files.contains(*f)).map(|f| f.to_string()));
    Ok((want, sharded.then(|| weights.to_string())))
}

/// The shard files an index names (its `weight_map` values), once each, in order.
fn shards(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::Msg(format!("{}: {e}", index.display())))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Msg(format!("{}: {e}", index.display())))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::Msg(format!("{}: no weight_map object", index.display())))?;
    let mut out: Vec<String> = Vec::new();
    for v in map.values() {
        let f = v
            .as_str()
            .ok_or_else(|| Error::Msg(format!("{}: a weight_map value is not a file name", index.display())))?;
        if !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    }
    out.sort();
    Ok(out)
}

impl Hub {
    /// The snapshot folder of checkpoint `id`, with the files loading needs fetched (see the
    /// module docs). Offline (`HF_HUB_OFFLINE`), or when the Hub cannot be reached, the cache
    /// alone serves.
    ///
    /// # Errors
    /// As [`resolve_checkpoint`].
    pub fn checkpoint(&self, id: &HubId) -> Result<PathBuf> {
        let kind = RepoKind::Model;
        if self.offline {
            return self.cached_checkpoint(id).map_err(|why| {
                Error::Msg(format!(
                    "model {id} is not in the Hugging Face cache {} ({why}) and HF_HUB_OFFLINE is set",
                    self.cache.root.display()
                ))
            });
        }
        let online = || -> Result<PathBuf, crate::net::NetError> {
            let commit = self.commit(kind, id)?;
            let listing = self.list(kind, id, &commit)?;
            Ok(self.fetch_checkpoint(id, &commit, &listing)?)
        };
        match online() {
            Ok(p) => Ok(p),
            Err(e) if e.unreachable => self.cached_checkpoint(id).map_err(|why| {
                tracing::debug!("{id}: the Hub could not be reached: {}", e.message);
                Error::Msg(format!(
                    "model {id} is not in the Hugging Face cache {} ({why}) and the Hub cannot be reached (offline)",
                    self.cache.root.display()
                ))
            }),
            Err(e) => Err(e.into()),
        }
    }

    fn fetch_checkpoint(&self, id: &HubId, commit: &str, listing: &[Entry]) -> Result<PathBuf> {
        let kind = RepoKind::Model;
        let names: BTreeSet<&str> = listing.iter().map(|e| e.path.as_str()).collect();
        let (want, index) = first_stage(&names).map_err(|why| Error::Msg(format!("model {id}: {why}")))?;
        let pick =
            |want: &[String]| -> Vec<Entry> { listing.iter().filter(|e| want.contains(&e.path)).cloned().collect() };
        self.fetch(kind, id, commit, &pick(&want))?;
        let snapshot = self.cache.snapshot(kind, &id.repo, commit);
        if let Some(index) = index {
            let shards = shards(&snapshot.join(&index))?;
            if let Some(missing) = shards.iter().find(|s| !names.contains(s.as_str())) {
                return Err(Error::Msg(format!(
                    "model {id}: {index} names {missing}, which the repository lacks"
                )));
            }
            self.fetch(kind, id, commit, &pick(&shards))?;
        }
        Ok(snapshot)
    }

    /// The snapshot folder of `id` when the cache holds every file loading needs; otherwise why not.
    fn cached_checkpoint(&self, id: &HubId) -> std::result::Result<PathBuf, String> {
        let kind = RepoKind::Model;
        let repo_dir = self.cache.repo_dir(kind, &id.repo);
        let commit = self.cache.commit(kind, id).ok_or_else(|| {
            if id.is_commit() {
                format!("searched {}", repo_dir.display())
            } else {
                format!("no {}", repo_dir.join("refs").join(&id.revision).display())
            }
        })?;
        let snapshot = self.cache.snapshot(kind, &id.repo, &commit);
        let files = self.cache.files(&snapshot);
        if files.is_empty() {
            return Err(format!("no {}", snapshot.display()));
        }
        let names: BTreeSet<&str> = files.iter().map(String::as_str).collect();
        let (_, index) = first_stage(&names).map_err(|why| format!("{}: {why}", snapshot.display()))?;
        if let Some(index) = index {
            let shards = shards(&snapshot.join(&index)).map_err(|e| e.to_string())?;
            if let Some(missing) = shards.iter().find(|s| !names.contains(s.as_str())) {
                return Err(format!("{} lacks the shard {missing}", snapshot.display()));
            }
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_chosen_in_transformers_order() {
        let set = |v: &[&'static str]| v.iter().copied().collect::<BTreeSet<&str>>();
        let (want, index) = first_stage(&set(&[
            "config.json",
            "model.safetensors",
            "pytorch_model.bin",
            "vocab.json",
            "README.md",
        ]))
        .unwrap();
        assert_eq!(want, ["config.json", "model.safetensors", "vocab.json"]);
        assert_eq!(index, None);
        let (want, index) = first_stage(&set(&["config.json", "pytorch_model.bin.index.json", "x.bin"])).unwrap();
        assert_eq!(want, ["config.json", "pytorch_model.bin.index.json"]);
        assert_eq!(index.as_deref(), Some("pytorch_model.bin.index.json"));
        assert!(first_stage(&set(&["model.safetensors"]))
            .unwrap_err()
            .contains("config.json"));
        assert!(first_stage(&set(&["config.json", "flax_model.msgpack"]))
            .unwrap_err()
            .contains("no model.safetensors"));
    }
}
