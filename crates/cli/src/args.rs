//! Arguments shared by several verbs: dtype and counts (the device is
//! [`inheritune_model::DeviceSpec`], the same in every verb and in recipes).

use clap::ValueEnum;
use inheritune_model::DType;

/// Floating-point format of weights and compute.
#[derive(Debug, serde::Serialize, serde::Deserialize, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    F16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::Bf16 => DType::Bf16,
            DTypeArg::F16 => DType::F16,
        }
    }
}

/// A checkpoint argument: a local folder as it is, or a Hub id `org/name[@revision]` resolved to
/// its snapshot folder in the Hugging Face cache, downloading what loading needs (see
/// `inheritune_hub`). Resolved while the arguments are read, so a missing model stops the verb
/// before anything else starts.
///
/// A `.gguf` file is converted once into a cached Hugging Face folder (keyed by the file's
/// sha256), which is what the verb then reads.
pub fn checkpoint(s: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::Path::new(s);
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        if !path.is_file() {
            return Err(format!("no GGUF file {s}"));
        }
        return inheritune_model::gguf::convert::cached_folder(path).map_err(|e| e.to_string());
    }
    inheritune_hub::resolve_checkpoint(s).map_err(|e| e.to_string())
}

/// The value of `flag` as the user typed it (a `.gguf` path or Hub id, not the folder it
/// resolved to), for messages that suggest a next command; `fallback` when absent.
pub fn as_typed(flag: &str, fallback: &std::path::Path) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .enumerate()
        .find_map(|(i, a)| {
            if a == flag {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix(&format!("{flag}=")).map(String::from)
            }
        })
        .unwrap_or_else(|| fallback.display().to_string())
}

/// A count that must be at least 1 (`--batch-size`, `--seq-len`, `--steps`, ...).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1, got 0".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a positive whole number")),
    }
}

/// As [`positive`], for the `i64` arguments of the benchmarks.
pub fn positive_i64(s: &str) -> Result<i64, String> {
    positive(s).map(|n| n as i64)
}

/// Refuses an output folder that already holds something, unless `overwrite` (the verbs that
/// replace a folder then write the new one beside it and swap it in whole).
///
/// # Errors
/// `out` exists, is not empty and `overwrite` is false; or it is a file.
pub fn check_new_out(out: &std::path::Path, overwrite: bool) -> anyhow::Result<()> {
    if out.is_file() {
        anyhow::bail!("--out {}: is a file, not a folder", out.display());
    }
    let used = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if used && !overwrite {
        anyhow::bail!(
            "--out {}: already exists; pass --overwrite to replace it, or choose a new folder",
            out.display()
        );
    }
    Ok(())
}
