//! Raw-text inputs: Parquet as published on the Hugging Face hub, JSONL (optionally .gz or .zst),
//! and folders of .txt files (one document per file).
//!
//! Documents are streamed in batches in a fixed order (files sorted by path, rows in order), so a
//! document's global index is stable across runs. Errors name the file and the row group, row or
//! line. This module must not tokenize.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::Array;
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Apache Parquet with a string column.
    Parquet,
    /// One JSON object per line (plain, .gz or .zst).
    Jsonl,
    /// A whole .txt file is one document.
    Text,
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// Its format.
    pub kind: SourceKind,
    /// Its size in bytes.
    pub bytes: u64,
}

fn kind_of(path: &Path) -> Option<SourceKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".parquet") {
        Some(SourceKind::Parquet)
    } else if [".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        Some(SourceKind::Jsonl)
    } else if name.ends_with(".txt") {
        Some(SourceKind::Text)
    } else {
        None
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if kind_of(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands the inputs (files, or folders searched recursively) into a sorted list of source files.
///
/// # Errors
/// A missing path, a file of unknown format, or no input files at all.
pub fn discover(inputs: &[PathBuf]) -> Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found)?;
            found.sort();
            if found.is_empty() {
                return Err(Error::input(
                    input,
                    "",
                    "no .parquet, .jsonl[.gz|.zst] or .txt files in this folder",
                ));
            }
            files.extend(found);
        } else if kind_of(input).is_some() {
            files.push(input.clone());
        } else {
            return Err(Error::input(
                input,
                "",
                "unknown input format (expected .parquet, .jsonl[.gz|.zst] or .txt)",
            ));
        }
    }
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
            let kind = kind_of(&path).unwrap_or(SourceKind::Text);
            Ok(SourceFile { path, kind, bytes })
        })
        .collect()
}

/// Total documents across Parquet sources (from metadata), or `None` when any source is not Parquet.
pub fn count_documents(sources: &[SourceFile]) -> Option<u64> {
    let mut total = 0;
    for s in sources {
        if s.kind != SourceKind::Parquet {
            return None;
        }
        let file = File::open(&s.path).ok()?;
        let meta = ArrowReaderMetadata::load(&file, Default::default()).ok()?;
        total += meta.metadata().file_metadata().num_rows() as u64;
    }
    Some(total)
}

/// Streams every document in order, `batch` at a time: `f(first_index, texts)`. Documents with a
/// global index below `skip` are read (to keep indices) but not passed on; Parquet row groups that
/// lie wholly before `skip` are not even decoded. Returns the number of documents.
///
/// # Errors
/// A malformed file, a missing or non-string column, a null or non-UTF-8 document, or an error of `f`.
pub fn for_each_batch(
    sources: &[SourceFile],
    column: &str,
    batch: usize,
    skip: u64,
    f: &mut dyn FnMut(u64, Vec<String>) -> Result<()>,
) -> Result<u64> {
    let mut next = 0u64;
    let mut pending: Vec<String> = Vec::new();
    let mut pending_start = 0u64;
    let batch = batch.max(1);
    let mut emit = |index: u64, text: String, pending: &mut Vec<String>, pending_start: &mut u64| -> Result<()> {
        if index < skip {
            return Ok(());
        }
        if pending.is_empty() {
            *pending_start = index;
        }
        pending.push(text);
        if pending.len() >= batch {
            f(*pending_start, std::mem::take(pending))?;
        }
        Ok(())
    };
    for source in sources {
        match source.kind {
            SourceKind::Parquet => read_parquet(&source.path, column, &mut next, skip, &mut |i, t| {
                emit(i, t, &mut pending, &mut pending_start)
            })?,
            SourceKind::Jsonl => read_jsonl(&source.path, column, &mut next, &mut |i, t| {
                emit(i, t, &mut pending, &mut pending_start)
            })?,
            SourceKind::Text => {
                let bytes = std::fs::read(&source.path).map_err(|e| Error::io(&source.path, e))?;
                let text = String::from_utf8(bytes)
                    .map_err(|e| Error::input(&source.path, "", format!("invalid UTF-8: {e}")))?;
                emit(next, text, &mut pending, &mut pending_start)?;
                next += 1;
            }
        }
    }
    if !pending.is_empty() {
        f(pending_start, pending)?;
    }
    Ok(next)
}

fn read_parquet(
    path: &Path,
    column: &str,
    next: &mut u64,
    skip: u64,
    emit: &mut dyn FnMut(u64, String) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| Error::input(path, "", format!("not a readable Parquet file: {e}")))?;
    let schema = meta.schema().clone();
    let Some((idx, field)) = schema.column_with_name(column) else {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(Error::input(
            path,
            "",
            format!("no column {column:?} (columns: {})", names.join(", ")),
        ));
    };
    if !matches!(
        field.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(Error::input(
            path,
            "",
            format!("column {column:?} has type {}, expected a string", field.data_type()),
        ));
    }
    let row_groups = meta.metadata().num_row_groups();
    for rg in 0..row_groups {
        let rows = meta.metadata().row_group(rg).num_rows() as u64;
        if *next + rows <= skip {
            *next += rows;
            continue;
        }
        let at = format!("row group {rg}: ");
        let file = file.try_clone().map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone());
        let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
        let reader = builder
            .with_projection(mask)
            .with_row_groups(vec![rg])
            .with_batch_size(1024)
            .build()
            .map_err(|e| Error::input(path, at.clone(), e))?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::input(path, at.clone(), e))?;
            let col = batch.column(0);
            let mut push = |i: usize, value: Option<&str>| -> Result<()> {
                let text =
                    value.ok_or_else(|| Error::input(path, at.clone(), format!("document {} is null", *next)))?;
                let r = emit(*next, text.to_string());
                let _ = i;
                *next += 1;
                r
            };
            match col.data_type() {
                DataType::Utf8 => {
                    let a = col.as_string::<i32>();
                    for i in 0..a.len() {
                        push(i, a.is_valid(i).then(|| a.value(i)))?;
                    }
                }
                DataType::LargeUtf8 => {
                    let a = col.as_string::<i64>();
                    for i in 0..a.len() {
                        push(i, a.is_valid(i).then(|| a.value(i)))?;
                    }
                }
                _ => {
                    let a = col.as_string_view();
                    for i in 0..a.len() {
                        push(i, a.is_valid(i).then(|| a.value(i)))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn read_jsonl(
    path: &Path,
    column: &str,
    next: &mut u64,
    emit: &mut dyn FnMut(u64, String) -> Result<()>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let name = path.to_string_lossy().to_ascii_lowercase();
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(file).map_err(|e| Error::io(path, e))?)
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::input(path, format!("line {}: ", number + 1), e))?;
        if n == 0 {
            break;
        }
        number += 1;
        let at = format!("line {number}: ");
        let text =
            std::str::from_utf8(&line).map_err(|e| Error::input(path, at.clone(), format!("invalid UTF-8: {e}")))?;
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::input(path, at.clone(), format!("invalid JSON: {e}")))?;
        let doc = value
            .get(column)
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::input(path, at.clone(), format!("no string field {column:?}")))?;
        emit(*next, doc.to_string())?;
        *next += 1;
    }
    Ok(())
}
