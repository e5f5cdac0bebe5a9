//! What a checkpoint or dataset argument names: a local folder, or a Hub id `org/name[@revision]`.

use std::fmt;
use std::path::{Path, PathBuf};

/// The kind of a Hub repository, which decides its cache folder prefix and URL prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// A model repository (`models--org--name`, `https://huggingface.co/org/name`).
    Model,
    /// A dataset repository (`datasets--org--name`, `https://huggingface.co/datasets/org/name`).
    Dataset,
}

impl RepoKind {
    /// The cache folder prefix, as Python's `huggingface_hub` writes it (`models`, `datasets`).
    pub fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// `model` or `dataset`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }
}

/// A Hub repository at a revision: `org/name` (branch `main`) or `org/name@revision` (a branch,
/// a tag or a 40-hex commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `org/name`.
    pub repo: String,
    /// The revision; `main` when none was given.
    pub revision: String,
}

impl HubId {
    /// Parses `org/name[@revision]`. `None` when `s` is not of that form: exactly one `/`,
    /// both parts made of letters, digits, `-`, `_` and `.`, neither starting with `-` or `.`,
    /// no `--` or `..`, and a revision (when given) that is not empty and has no blanks.
    pub fn parse(s: &str) -> Option<HubId> {
        let (repo, revision) = match s.split_once('@') {
            Some((r, rev)) => (r, Some(rev)),
            None => (s, None),
        };
        let (org, name) = repo.split_once('/')?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 96
                && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !p.starts_with(['-', '.'])
                && !p.contains("--")
                && !p.contains("..")
        };
        if !part_ok(org) || !part_ok(name) {
            return None;
        }
        let revision = match revision {
            None => "main".to_string(),
            Some(r) if !r.is_empty() && !r.chars().any(char::is_whitespace) && !r.contains("..") => r.to_string(),
            Some(_) => return None,
        };
        Some(HubId {
            repo: repo.to_string(),
            revision,
        })
    }

    /// Whether the revision is a full commit hash (40 lowercase hex digits).
    pub fn is_commit(&self) -> bool {
        is_commit(&self.revision)
    }

    /// `org` and `name`.
    pub fn parts(&self) -> (&str, &str) {
        self.repo.split_once('/').unwrap_or((&self.repo, ""))
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

/// Whether `s` is a full commit hash.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What an argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder on this machine.
    Local(PathBuf),
    /// A Hub repository.
    Hub(HubId),
}

impl Source {
    /// A path that exists, or one written as a path (starting with `/`, `.` or `~`, or with more
    /// than one `/`), is local; otherwise a well-formed `org/name[@revision]` is a Hub id; anything
    /// else is a local path (that the loader will report missing).
    pub fn classify(s: &str) -> Source {
        let path = Path::new(s);
        if path.exists() || s.starts_with(['/', '.', '~']) || s.contains('\\') {
            return Source::Local(path.to_path_buf());
        }
        match HubId::parse(s) {
            Some(id) => Source::Hub(id),
            None => Source::Local(path.to_path_buf()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths_are_told_apart() {
        let id = HubId::parse("openai-community/gpt2").unwrap();
        assert_eq!(
            (id.repo.as_str(), id.revision.as_str()),
            ("openai-community/gpt2", "main")
        );
        let id = HubId::parse("EleutherAI/pythia-70m@step1000").unwrap();
        assert_eq!(id.revision, "step1000");
        let c = "0123456789abcdef0123456789abcdef01234567";
        assert!(HubId::parse(&format!("a/b@{c}")).unwrap().is_commit());
        for bad in [
            "gpt2", "a/b/c", "/a/b", "a/", "/b", "a/b@", "-a/b", "a/.b", "a--x/b", "a/b c", "a/b@x y",
        ] {
            assert_eq!(HubId::parse(bad), None, "{bad}");
        }
        assert_eq!(Source::classify("runs/x/final"), Source::Local("runs/x/final".into()));
        assert_eq!(Source::classify("./org/name"), Source::Local("./org/name".into()));
        assert!(matches!(Source::classify("org/name@v1"), Source::Hub(_)));
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("org/name");
        std::fs::create_dir_all(&here).unwrap();
        let s = here.to_str().unwrap();
        assert_eq!(Source::classify(s), Source::Local(here.clone()));
    }
}
