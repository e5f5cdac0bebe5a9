//! Writes a file and a folder crash-safely: after a crash the target holds the old content or the
//! new one, never a part. `cargo run -p inheritune-fs --example atomic_write`

fn main() -> Result<(), inheritune_fs::Error> {
    let dir = std::env::temp_dir().join(format!("inheritune-fs-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("state.json");
    inheritune_fs::write_file(&file, b"{\"step\": 1}")?;
    inheritune_fs::write_file(&file, b"{\"step\": 2}")?; // replaced whole
    println!("{}: {}", file.display(), std::fs::read_to_string(&file).expect("read"));
    // A folder: fill it under its temporary name, then put it in place in one rename.
    let target = dir.join("checkpoint");
    let tmp = inheritune_fs::tmp_path(&target);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    std::fs::write(tmp.join("weights.bin"), [1u8, 2, 3]).expect("write");
    inheritune_fs::commit_dir(&tmp, &target)?;
    println!(
        "{} holds {:?}",
        target.display(),
        std::fs::read(target.join("weights.bin")).expect("read")
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
    Ok(())
}
