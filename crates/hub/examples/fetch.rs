//! Resolves a checkpoint id through a stand-in Hub on 127.0.0.1 into a fresh cache folder, then
//! again with HF_HUB_OFFLINE semantics from the cache alone. Runs anywhere, without network:
//! `cargo run -p inheritune-hub --example fetch`.

use inheritune_hub::testing::{FakeHub, FakeRepo};
use inheritune_hub::{Hub, HubId, RepoKind, Settings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = FakeHub::start();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    server.add(
        FakeRepo::new(RepoKind::Model, "org/tiny", commit)
            .file("config.json", br#"{"model_type": "gpt2"}"#.to_vec())
            .file("model.safetensors", vec![0u8; 4096])
            .file("README.md", b"not fetched".to_vec()),
    );
    let cache = std::env::temp_dir().join(format!("inheritune-hub-example-{}", std::process::id()));
    let settings = |offline| Settings {
        endpoint: Some(server.url.clone()),
        cache_dir: Some(cache.clone()),
        token: None,
        offline,
    };
    let id = HubId::parse("org/tiny").ok_or("bad id")?;
    let online = Hub::new(settings(false))?.checkpoint(&id)?;
    println!("downloaded: {}", online.display());
    let offline = Hub::new(settings(true))?.checkpoint(&id)?;
    println!("from the cache alone: {}", offline.display());
    assert_eq!(online, offline);
    std::fs::remove_dir_all(&cache)?;
    Ok(())
}
