//! Reading a task's rows as published on the Hub: Parquet or JSONL (`.jsonl`, `.json` lines),
//! found under `<data-dir>/<folder>/` by split name, with the Hub's column names.

use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use crate::error::{Error, Result};

fn data_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Whether a file names `split`: its stem split at `-` has `split` as a component
/// (`test-00000-of-00001.parquet`, `wikitext-2-raw-v1-test.parquet`, `validation_matched.jsonl`),
/// or it lies in a folder named `split` (the Hub's Parquet conversion, `logiqa/test/0000.parquet`).
fn names_split(path: &Path, split: &str) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    let folder = path.parent().and_then(|p| p.file_name()).is_some_and(|f| f == split);
    folder || stem.split('-').any(|c| c == split)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The files of `split` under `dir`, sorted.
///
/// # Errors
/// A missing folder, or no file for the split.
pub fn split_files(dir: &Path, split: &str) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    files_under(dir, &mut all).map_err(|e| data_err(dir, format!("cannot read the task folder: {e}")))?;
    let mut files: Vec<PathBuf> = all
        .into_iter()
        .filter(|p| names_split(p, split))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".parquet") || n.ends_with(".jsonl") || n.ends_with(".json")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(data_err(
            dir,
            format!("no {split} file (expected {split}*.parquet or {split}.jsonl, see datasets/eval.md)"),
        ));
    }
    Ok(files)
}

/// Every row of `split` as a JSON object, in file and row order.
///
/// # Errors
/// Missing or unreadable files, malformed JSON (naming the line).
pub fn read_split(dir: &Path, split: &str) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for file in split_files(dir, split)? {
        if file.extension().is_some_and(|e| e == "parquet") {
            let f = std::fs::File::open(&file).map_err(|e| data_err(&file, e))?;
            let reader = SerializedFileReader::new(f).map_err(|e| data_err(&file, e))?;
            let iter = reader.get_row_iter(None).map_err(|e| data_err(&file, e))?;
            for (i, row) in iter.enumerate() {
                let row = row.map_err(|e| data_err(&file, format!("row {i}: {e}")))?;
                rows.push(row.to_json_value());
            }
        } else {
            let text = std::fs::read_to_string(&file).map_err(|e| data_err(&file, e))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| data_err(&file, format!("line {}: invalid JSON: {e}", i + 1)))?;
                rows.push(v);
            }
        }
    }
    Ok(rows)
}

/// The number of rows in `files` (Parquet: from each footer, without reading the data; JSONL:
/// non-blank lines).
///
/// # Errors
/// An unreadable file or footer, naming the file.
pub fn count_rows(files: &[PathBuf]) -> Result<u64> {
    let mut n = 0u64;
    for file in files {
        if file.extension().is_some_and(|e| e == "parquet") {
            let f = std::fs::File::open(file).map_err(|e| data_err(file, e))?;
            let reader = SerializedFileReader::new(f).map_err(|e| data_err(file, e))?;
            n += u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        } else {
            let text = std::fs::read_to_string(file).map_err(|e| data_err(file, e))?;
            n += text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_files_are_found_by_name_or_by_folder() {
        for (path, split, yes) in [
            ("arc/ARC-Easy/test-00000-of-00001.parquet", "test", true),
            ("wikitext/wikitext-2-raw-v1-test.parquet", "test", true),
            (
                "mnli/validation_matched-00000-of-00001.parquet",
                "validation_matched",
                true,
            ),
            (
                "mnli/validation_mismatched-00000-of-00001.parquet",
                "validation_matched",
                false,
            ),
            ("logiqa/logiqa/test/0000.parquet", "test", true),
            ("logiqa/logiqa/validation/0000.parquet", "test", false),
            ("mmlu/anatomy/dev-00000-of-00001.parquet", "test", false),
        ] {
            assert_eq!(names_split(Path::new(path), split), yes, "{path} {split}");
        }
    }
}
