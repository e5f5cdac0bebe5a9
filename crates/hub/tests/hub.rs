//! The Hub client against a cache folder written in Python `huggingface_hub`'s layout, and
//! against a stand-in Hub on 127.0.0.1 (`inheritune_hub::testing`): complete, interrupted and
//! resumed downloads, 404s, gated repositories, sharded checkpoints and dataset include patterns.

use std::fs;
use std::path::Path;

use inheritune_hub::testing::{oid, sha256, FakeHub, FakeRepo};
use inheritune_hub::{Hub, HubId, RepoKind, Settings};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u64 * 2654435761 % 251) as u8 ^ seed).collect()
}

fn id(s: &str) -> HubId {
    HubId::parse(s).unwrap()
}

fn hub(endpoint: &str, cache: &Path, offline: bool) -> Hub {
    Hub::new(Settings {
        endpoint: Some(endpoint.into()),
        cache_dir: Some(cache.into()),
        token: None,
        offline,
    })
    .unwrap()
}

/// Writes one file into a cache the way `huggingface_hub` does: the blob, and a relative link.
fn put(cache: &Path, repo: &str, path: &str, contents: &[u8], etag: &str) {
    let dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    fs::create_dir_all(dir.join("blobs")).unwrap();
    fs::write(dir.join("blobs").join(etag), contents).unwrap();
    let link = dir.join("snapshots").join(COMMIT).join(path);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    let up = "../".repeat(path.split('/').count() + 1);
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("{up}blobs/{etag}"), link).unwrap();
    fs::create_dir_all(dir.join("refs")).unwrap();
    fs::write(dir.join("refs/main"), COMMIT).unwrap();
}

#[test]
fn a_python_layout_cache_serves_offline_by_branch_and_by_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let weights = bytes(5000, 1);
    put(&cache, "org/tiny", "config.json", b"{}", &oid(b"{}"));
    put(&cache, "org/tiny", "model.safetensors", &weights, &sha256(&weights));
    put(&cache, "org/tiny", "tokenizer.json", b"{\"t\":1}", &oid(b"{\"t\":1}"));
    // Nothing listens on port 9: any request would fail.
    let h = hub("http://127.0.0.1:9", &cache, true);
    let snapshot = cache.join("models--org--tiny/snapshots").join(COMMIT);
    assert_eq!(h.checkpoint(&id("org/tiny")).unwrap(), snapshot);
    assert_eq!(h.checkpoint(&id(&format!("org/tiny@{COMMIT}"))).unwrap(), snapshot);
    assert_eq!(fs::read(snapshot.join("model.safetensors")).unwrap(), weights);

    let e = h.checkpoint(&id("org/other")).unwrap_err().to_string();
    assert!(
        e.contains("model org/other@main") && e.contains(&cache.display().to_string()),
        "{e}"
    );
    assert!(e.contains("HF_HUB_OFFLINE") && !e.contains('\n'), "{e}");
    let e = h.checkpoint(&id("org/tiny@v2")).unwrap_err().to_string();
    assert!(e.contains("org/tiny@v2") && e.contains("refs/v2"), "{e}");
    // A snapshot whose weights blob is gone is not served.
    fs::remove_file(cache.join("models--org--tiny/blobs").join(sha256(&weights))).unwrap();
    let e = h.checkpoint(&id("org/tiny")).unwrap_err().to_string();
    assert!(e.contains("no model.safetensors"), "{e}");
    // Online but unreachable: the cache still serves what it has.
    let h = hub("http://127.0.0.1:9", &cache, false);
    let e = h.checkpoint(&id("org/tiny")).unwrap_err().to_string();
    assert!(
        e.contains("org/tiny@main") && e.contains("not in the Hugging Face cache"),
        "{e}"
    );
    put(&cache, "org/tiny", "model.safetensors", &weights, &sha256(&weights));
    assert_eq!(h.checkpoint(&id("org/tiny")).unwrap(), snapshot);
}

#[test]
fn downloads_fill_the_cache_resume_after_a_cut_and_skip_what_is_there() {
    let server = FakeHub::start();
    let weights = bytes(300_000, 7);
    server.add(
        FakeRepo::new(RepoKind::Model, "org/net", COMMIT)
            .file("config.json", b"{\"n_layer\": 2}".to_vec())
            .file("model.safetensors", weights.clone())
            .file("tokenizer.json", b"{}".to_vec())
            .file("README.md", b"not needed".to_vec())
            .file("pytorch_model.bin", b"not needed either".to_vec()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let h = hub(&server.url, &cache, false);
    server.cut("model.safetensors", 100_000);
    let e = h.checkpoint(&id("org/net")).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("run again to resume"),
        "{e}"
    );
    let repo = cache.join("models--org--net");
    let part = repo.join("blobs").join(format!("{}.incomplete", oid(&weights)));
    assert_eq!(fs::metadata(&part).unwrap().len(), 100_000);

    let snapshot = h.checkpoint(&id("org/net")).unwrap();
    assert_eq!(snapshot, repo.join("snapshots").join(COMMIT));
    assert!(server
        .requests()
        .iter()
        .any(|r| r.contains("model.safetensors bytes=100000-299999")));
    assert!(!part.exists());
    // The Python layout: refs/main, the blob under its sha256, a relative link.
    assert_eq!(fs::read_to_string(repo.join("refs/main")).unwrap(), COMMIT);
    assert_eq!(fs::read(repo.join("blobs").join(sha256(&weights))).unwrap(), weights);
    let link = fs::read_link(snapshot.join("model.safetensors")).unwrap();
    assert_eq!(link, Path::new("../../blobs").join(sha256(&weights)));
    assert_eq!(
        fs::read_link(snapshot.join("config.json")).unwrap(),
        Path::new("../../blobs").join(oid(b"{\"n_layer\": 2}"))
    );
    assert!(!snapshot.join("README.md").exists() && !snapshot.join("pytorch_model.bin").exists());

    let before = server.requests().len();
    h.checkpoint(&id("org/net")).unwrap();
    let again: Vec<String> = server.requests()[before..].to_vec();
    assert!(again.iter().all(|r| !r.contains("/resolve/")), "{again:?}");
    // Offline now, by commit and by branch.
    let off = hub(&server.url, &cache, true);
    assert_eq!(off.checkpoint(&id("org/net")).unwrap(), snapshot);
}

#[test]
fn missing_repositories_files_and_tokens_are_one_line_errors() {
    let server = FakeHub::start();
    let mut gated = FakeRepo::new(RepoKind::Model, "org/gated", COMMIT)
        .file("config.json", b"{}".to_vec())
        .file("model.safetensors", bytes(2000, 3));
    gated.token = Some("hf_secret".into());
    server.add(gated);
    server.add(
        FakeRepo::new(RepoKind::Model, "org/broken", COMMIT)
            .file("config.json", b"{}".to_vec())
            .file(
                "model.safetensors.index.json",
                br#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#.to_vec(),
            )
            .file("model-00001-of-00002.safetensors", bytes(3000, 4)),
    );
    server.add(FakeRepo::new(RepoKind::Model, "org/empty", COMMIT).file("config.json", b"{}".to_vec()));
    let tmp = tempfile::tempdir().unwrap();
    let h = hub(&server.url, &tmp.path().join("hub"), false);
    for (spec, want) in [
        ("org/missing", "no such repository or revision"),
        ("org/empty@v9", "no such repository or revision"),
        ("org/gated", "HF_TOKEN"),
        (
            "org/broken",
            "names model-00002-of-00002.safetensors, which the repository lacks",
        ),
        ("org/empty", "no model.safetensors"),
    ] {
        let e = h.checkpoint(&id(spec)).unwrap_err().to_string();
        assert!(
            e.contains(spec.split('@').next().unwrap()) && e.contains(want) && !e.contains('\n'),
            "{spec}: {e}"
        );
    }
    let with_token = Hub::new(Settings {
        endpoint: Some(server.url.clone()),
        cache_dir: Some(tmp.path().join("hub")),
        token: Some("hf_secret".into()),
        offline: false,
    })
    .unwrap();
    let snap = with_token.checkpoint(&id("org/gated")).unwrap();
    assert_eq!(fs::metadata(snap.join("model.safetensors")).unwrap().len(), 2000);
}

#[test]
fn sharded_checkpoints_fetch_the_shards_their_index_names() {
    let server = FakeHub::start();
    let (a, b) = (bytes(4000, 5), bytes(6000, 6));
    server.add(
        FakeRepo::new(RepoKind::Model, "org/sharded", COMMIT)
            .file("config.json", b"{}".to_vec())
            .file(
                "pytorch_model.bin.index.json",
                br#"{"metadata": {}, "weight_map": {"x": "pytorch_model-00002-of-00002.bin", "y": "pytorch_model-00001-of-00002.bin", "z": "pytorch_model-00001-of-00002.bin"}}"#.to_vec(),
            )
            .file("pytorch_model-00001-of-00002.bin", a.clone())
            .file("pytorch_model-00002-of-00002.bin", b.clone())
            .file("tokenizer.model", b"sp".to_vec()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let h = hub(&server.url, &tmp.path().join("hub"), false);
    let snap = h.checkpoint(&id(&format!("org/sharded@{COMMIT}"))).unwrap();
    assert_eq!(fs::read(snap.join("pytorch_model-00001-of-00002.bin")).unwrap(), a);
    assert_eq!(fs::read(snap.join("pytorch_model-00002-of-00002.bin")).unwrap(), b);
    assert!(snap.join("tokenizer.model").exists());
    // A commit revision writes no ref.
    assert!(!tmp.path().join("hub/models--org--sharded/refs").exists());
    let off = hub(&server.url, &tmp.path().join("hub"), true);
    assert_eq!(off.checkpoint(&id(&format!("org/sharded@{COMMIT}"))).unwrap(), snap);
}

#[test]
fn datasets_follow_include_patterns_and_link_into_a_folder() {
    let server = FakeHub::start();
    let (t0, t1) = (bytes(3000, 8), bytes(2500, 9));
    server.add(
        FakeRepo::new(RepoKind::Dataset, "org/corpus", COMMIT)
            .file("plain_text/train-00000-of-00002.parquet", t0.clone())
            .file("plain_text/train-00001-of-00002.parquet", t1.clone())
            .file("plain_text/test-00000-of-00001.parquet", bytes(100, 1))
            .file("README.md", b"card".to_vec()),
    );
    let tmp = tempfile::tempdir().unwrap();
    let h = hub(&server.url, &tmp.path().join("hub"), false);
    let out = tmp.path().join("raw/corpus");
    let include = vec!["plain_text/train-*.parquet".to_string()];
    let files = h.dataset(&id("org/corpus"), &include, &[], Some(&out)).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        fs::read(out.join("plain_text/train-00001-of-00002.parquet")).unwrap(),
        t1
    );
    assert!(!out.join("plain_text/test-00000-of-00001.parquet").exists() && !out.join("README.md").exists());
    assert!(tmp.path().join("hub/datasets--org--corpus/refs/main").exists());
    // Again: kept as it is; offline: from the cache.
    h.dataset(&id("org/corpus"), &include, &[], Some(&out)).unwrap();
    let off = hub(&server.url, &tmp.path().join("hub"), true);
    assert_eq!(
        off.dataset(&id("org/corpus"), &include, &[], Some(&out)).unwrap().len(),
        2
    );
    // A user's different file at a link's place is never overwritten.
    let mine = out.join("plain_text/train-00000-of-00002.parquet");
    fs::remove_file(&mine).unwrap();
    fs::write(&mine, b"my own").unwrap();
    let e = h
        .dataset(&id("org/corpus"), &include, &[], Some(&out))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-00000-of-00002.parquet") && e.contains("never overwritten"),
        "{e}"
    );
    assert_eq!(fs::read(&mine).unwrap(), b"my own");
    let e = h
        .dataset(&id("org/corpus"), &["nothing/*".to_string()], &[], None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no file") && e.contains("nothing/*"), "{e}");
    // Exclude patterns drop files the include patterns take.
    let files = h
        .dataset(
            &id("org/corpus"),
            &["plain_text/*".to_string()],
            &["*/test-*".to_string()],
            None,
        )
        .unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(fs::read(&files[0]).unwrap(), t0);
}
