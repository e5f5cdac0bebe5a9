//! SIGKILL at random moments of repeated crash-safe writes: the target always holds one complete
//! version (never a part, never empty), for a file and for a folder. The test re-runs its own
//! executable as the writer and kills it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const ROLE: &str = "INHERITUNE_FS_WRITER";
const SIZE: usize = 4 << 20; // 4 MiB: a write takes long enough to be interrupted

fn content(version: u8) -> Vec<u8> {
    vec![version; SIZE]
}

/// The writer: rewrites `dir/file` and `dir/folder/{a,b}` with versions 1, 2, 3, ... forever.
fn writer(dir: &Path) {
    for v in (1..=250u8).cycle() {
        inheritune_fs::write_file(&dir.join("file"), &content(v)).unwrap();
        let tmp = inheritune_fs::tmp_path(&dir.join("folder"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("a"), content(v)).unwrap();
        std::fs::write(tmp.join("b"), [v]).unwrap();
        inheritune_fs::commit_dir(&tmp, &dir.join("folder")).unwrap();
    }
}

/// Checks the invariant; returns the file's version.
fn check(dir: &Path) -> u8 {
    let file = std::fs::read(dir.join("file")).unwrap();
    assert_eq!(file.len(), SIZE, "a partial file");
    assert!(file.iter().all(|&b| b == file[0]), "a mixed file");
    let folder = dir.join("folder");
    if folder.exists() {
        let a = std::fs::read(folder.join("a")).unwrap();
        let b = std::fs::read(folder.join("b")).unwrap();
        assert_eq!(a.len(), SIZE, "a partial file in the folder");
        assert!(a.iter().all(|&x| x == b[0]), "the folder mixes two versions");
    } else {
        // Only between moving the old folder aside and renaming the new one into place.
        assert!(dir.join("folder.old.tmp").exists() || dir.join("folder.tmp").exists());
    }
    file[0]
}

#[test]
fn sigkill_never_leaves_a_partial_file_or_folder() {
    if let Ok(dir) = std::env::var(ROLE) {
        writer(Path::new(&dir));
        return;
    }
    let tmp = std::env::temp_dir().join(format!("inheritune-fs-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    inheritune_fs::write_file(&tmp.join("file"), &content(0)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut versions = std::collections::BTreeSet::new();
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_never_leaves_a_partial_file_or_folder",
                "--nocapture",
            ])
            .env(ROLE, &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + (round * 37) % 160));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        versions.insert(check(&tmp));
    }
    assert!(versions.len() > 2, "the writer barely ran: {versions:?}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
