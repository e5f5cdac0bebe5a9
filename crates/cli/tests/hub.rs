//! Hub ids on the command line: `org/name[@commit]` resolved from a Hugging Face cache folder
//! written in Python `huggingface_hub`'s layout (blobs, refs/main, snapshots/<commit>/ with
//! relative links) with no network, and downloads from a stand-in Hub on 127.0.0.1
//! (`inheritune_hub::testing`). The numbers are those of the same checkpoint as a folder, and of
//! `transformers` (the fixture's perplexity.json).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use inheritune_hub::testing::{oid, sha256, FakeHub, FakeRepo};
use inheritune_hub::RepoKind;

const COMMIT: &str = "4f3e2d1c0b4f3e2d1c0b4f3e2d1c0b4f3e2d1c0b";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

/// Copies a checkpoint folder into `cache` as `huggingface_hub` would have downloaded it.
fn cache_model(cache: &Path, repo: &str, from: &Path) {
    let dir = cache.join(format!("models--{}", repo.replace('/', "--")));
    fs::create_dir_all(dir.join("blobs")).unwrap();
    fs::create_dir_all(dir.join("refs")).unwrap();
    fs::write(dir.join("refs/main"), COMMIT).unwrap();
    let snap = dir.join("snapshots").join(COMMIT);
    fs::create_dir_all(&snap).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let etag = if name.ends_with(".safetensors") {
            sha256(&bytes)
        } else {
            oid(&bytes)
        };
        fs::write(dir.join("blobs").join(&etag), &bytes).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{etag}"), snap.join(&name)).unwrap();
    }
}

fn inheritune(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inheritune"));
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env_remove("HF_TOKEN")
        .env_remove("HF_ENDPOINT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find('{').unwrap_or(0);
    serde_json::from_str(&text[start..]).unwrap_or(serde_json::Value::Null)
}

/// The error of a failed run: its last stderr line, the only one that is not a progress line.
fn one_line_error(out: &Output) -> String {
    let all = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "expected a failure: {out:?}");
    assert!(!all.contains("panicked"), "{all}");
    let err = all.lines().last().unwrap_or_default().to_string();
    let others: Vec<&str> = all
        .lines()
        .rev()
        .skip(1)
        .filter(|l| !l.starts_with("download "))
        .collect();
    assert!(others.is_empty(), "one line: {all}");
    err
}

#[test]
fn hub_ids_resolve_offline_for_perplexity_analyze_and_inherit() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    cache_model(&cache, "org/tiny-llama", &fixture("llama_gqa_tied"));
    cache_model(&cache, "org/tiny-gpt2", &fixture("gpt2_inverse_scale"));
    let c = cache.to_str().unwrap();
    let env = [("HF_HUB_CACHE", c), ("HF_HUB_OFFLINE", "1")];
    let text = fixture("llama_gqa_tied").join("text.txt");
    let text = text.to_str().unwrap();

    // perplexity: by branch and by commit, the numbers transformers gave.
    let want: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixture("llama_gqa_tied/perplexity.json")).unwrap()).unwrap();
    for id in ["org/tiny-llama".to_string(), format!("org/tiny-llama@{COMMIT}")] {
        let got = ok(&inheritune(&["perplexity", "--model", &id, "--text", text], &env));
        assert_eq!(got["tokens"], want["tokens"], "{id}");
        let (g, w) = (got["mean_nll"].as_f64().unwrap(), want["mean_nll"].as_f64().unwrap());
        assert!((g - w).abs() < 1e-4, "{id}: {g} vs transformers {w}");
    }

    // analyze: the same analysis as from the folder.
    let windows = tmp.path().join("windows.json");
    fs::write(&windows, "[[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]]").unwrap();
    let w = windows.to_str().unwrap();
    let (a, b) = (tmp.path().join("a-hub"), tmp.path().join("a-dir"));
    let folder = fixture("gpt2_inverse_scale");
    ok(&inheritune(
        &[
            "analyze",
            "--model",
            "org/tiny-gpt2",
            "--windows",
            w,
            "--out",
            a.to_str().unwrap(),
        ],
        &env,
    ));
    ok(&inheritune(
        &[
            "analyze",
            "--model",
            folder.to_str().unwrap(),
            "--windows",
            w,
            "--out",
            b.to_str().unwrap(),
        ],
        &env,
    ));
    let layers = |d: &Path| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&fs::read_to_string(d.join("analysis.json")).unwrap()).unwrap()
            ["layers"]
            .clone()
    };
    assert_eq!(layers(&a), layers(&b));
    assert!(layers(&a).as_array().is_some_and(|l| !l.is_empty()));

    // surgery inherit: the same tensors as from the folder.
    let (x, y) = (tmp.path().join("inh-hub"), tmp.path().join("inh-dir"));
    let args = |from: &str, out: &Path| {
        [
            "surgery",
            "inherit",
            "--from",
            from,
            "--layers",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
    };
    let run = |a: [String; 8]| inheritune(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    ok(&run(args(&format!("org/tiny-gpt2@{COMMIT}"), &x)));
    ok(&run(args(folder.to_str().unwrap(), &y)));
    assert_eq!(
        fs::read(x.join("model.safetensors")).unwrap(),
        fs::read(y.join("model.safetensors")).unwrap()
    );

    // An offline miss: one line naming the id, the revision and the cache folder.
    let e = one_line_error(&inheritune(
        &["perplexity", "--model", "org/absent", "--text", text],
        &env,
    ));
    assert!(
        e.contains("org/absent@main") && e.contains(c) && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    let e = one_line_error(&inheritune(
        &[
            "surgery",
            "inherit",
            "--from",
            "org/tiny-gpt2@v1",
            "--layers",
            "1",
            "--out",
            "x",
        ],
        &env,
    ));
    // `--from` is the hidden alias of `--model`; the error names the flag's one name.
    assert!(e.contains("org/tiny-gpt2@v1") && e.contains("--model"), "{e}");
}

#[test]
fn hub_ids_download_from_the_endpoint_and_datasets_check_their_rows() {
    let server = FakeHub::start();
    let mut repo = FakeRepo::new(RepoKind::Model, "org/served", COMMIT);
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
    ] {
        repo = repo.file(name, fs::read(fixture("llama_gqa_tied").join(name)).unwrap());
    }
    server.add(repo);
    let sotu = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sotu/sotu.parquet")).unwrap();
    server.add(
        FakeRepo::new(RepoKind::Dataset, "org/corpus", COMMIT)
            .file("plain_text/train-00000-of-00001.parquet", sotu.clone())
            .file("README.md", b"card".to_vec()),
    );
    server.add(
        FakeRepo::new(RepoKind::Dataset, "allenai/ai2_arc", COMMIT).file("ARC-Easy/test-00000-of-00001.parquet", sotu),
    );
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let env = [
        ("HF_HUB_CACHE", cache.to_str().unwrap()),
        ("HF_ENDPOINT", server.url.as_str()),
    ];
    let text = fixture("llama_gqa_tied").join("text.txt");
    let got = ok(&inheritune(
        &["perplexity", "--model", "org/served", "--text", text.to_str().unwrap()],
        &env,
    ));
    let want: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixture("llama_gqa_tied/perplexity.json")).unwrap()).unwrap();
    assert!((got["mean_nll"].as_f64().unwrap() - want["mean_nll"].as_f64().unwrap()).abs() < 1e-4);
    assert!(cache
        .join("models--org--served/snapshots")
        .join(COMMIT)
        .join("model.safetensors")
        .exists());

    // A manifest of our own, with the document count stated: checked after the download.
    let out = tmp.path().join("raw");
    let manifest = tmp.path().join("corpus.json");
    let write = |n: u64| {
        let m = serde_json::json!({"hub_repo": "org/corpus", "files": ["plain_text/train-*.parquet"],
            "local_dir": out, "expected": {"documents": n}});
        fs::write(&manifest, m.to_string()).unwrap();
    };
    write(233);
    let got = ok(&inheritune(
        &["download", "--manifest", manifest.to_str().unwrap()],
        &env,
    ));
    assert_eq!(got["documents"], 233);
    assert!(out.join("plain_text/train-00000-of-00001.parquet").exists() && !out.join("README.md").exists());
    write(234);
    let e = one_line_error(&inheritune(
        &["download", "--manifest", manifest.to_str().unwrap()],
        &env,
    ));
    assert!(e.contains("233 documents") && e.contains("234"), "{e}");
    // The eval tasks: arc_easy's rows are checked against datasets/eval.json (2376).
    let eval = tmp.path().join("eval");
    let e = one_line_error(&inheritune(
        &[
            "download",
            "eval",
            "--tasks",
            "arc_easy",
            "--out",
            eval.to_str().unwrap(),
        ],
        &env,
    ));
    assert!(e.contains("arc_easy has 233 test rows") && e.contains("2376"), "{e}");
    assert!(eval.join("arc_easy/ARC-Easy/test-00000-of-00001.parquet").exists());
    // 404 from the endpoint: one line.
    let e = one_line_error(&inheritune(
        &["download", "org/nothing", "--out", eval.to_str().unwrap()],
        &env,
    ));
    assert!(
        e.contains("dataset org/nothing@main") && e.contains("no such repository"),
        "{e}"
    );
}

#[test]
fn a_recipe_downloads_its_missing_inputs_before_preparing_them() {
    let server = FakeHub::start();
    let sotu = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/sotu/sotu.parquet")).unwrap();
    server
        .add(FakeRepo::new(RepoKind::Dataset, "org/speeches", COMMIT).file("text/train-00000-of-00001.parquet", sotu));
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let manifest = tmp.path().join("speeches.json");
    let m = serde_json::json!({"hub_repo": "org/speeches", "files": ["text/*.parquet"], "local_dir": raw,
        "expected": {"documents": 233}});
    fs::write(&manifest, m.to_string()).unwrap();
    let recipe = tmp.path().join("r.toml");
    fs::write(
        &recipe,
        format!(
            "name = \"dl\"\ndescription = \"download test\"\n[data]\ninputs = [\"{}\"]\ndownload = \"{}\"\nval_fraction = 0.05\n\
             [reference.model]\npreset = \"gpt2-tiny\"\n[train]\nmicro_batch = 2\nseq_len = 32\nmax_steps = 2\n",
            raw.join("text").display(),
            manifest.display()
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let env = [
        ("HF_HUB_CACHE", tmp.path().join("hub")),
        ("HF_ENDPOINT", server.url.clone().into()),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_inheritune"))
        .args([
            "recipe",
            "--config",
            recipe.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
            "--only",
            "data",
        ])
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(raw.join("text/train-00000-of-00001.parquet").exists());
    let log = fs::read_to_string(run.join("data/log.txt")).unwrap();
    assert!(
        log.contains("$ inheritune download") && log.contains("$ inheritune prepare"),
        "{log}"
    );
    assert!(run.join("data/DONE").exists() || run.join("data/facts.json").exists());
}
