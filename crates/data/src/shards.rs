//! Token shards: Parquet files holding one flat, non-null integer column `tokens`.
//!
//! A shard is written under `<name>.tmp` and renamed when complete, so a file with the final name
//! is always whole. pyarrow, polars and duckdb read them as they are.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt16Type, UInt32Type};
use arrow_array::{ArrayRef, RecordBatch, UInt16Array, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The column name of a shard.
pub const TOKEN_COLUMN: &str = "tokens";
/// Tokens per Parquet row group.
pub const ROW_GROUP_TOKENS: usize = 1 << 20;

/// The integer type of stored tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDtype {
    /// Vocabularies up to 65536.
    Uint16,
    /// Larger vocabularies.
    Uint32,
}

impl TokenDtype {
    /// The narrowest type for a vocabulary.
    pub fn for_vocab(vocab_size: usize) -> Self {
        if vocab_size <= 1 << 16 {
            TokenDtype::Uint16
        } else {
            TokenDtype::Uint32
        }
    }

    fn arrow(self) -> DataType {
        match self {
            TokenDtype::Uint16 => DataType::UInt16,
            TokenDtype::Uint32 => DataType::UInt32,
        }
    }
}

/// Writes one shard file, row group by row group.
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    dtype: TokenDtype,
    writer: ArrowWriter<File>,
    buf: Vec<u32>,
    tokens: u64,
}

impl ShardWriter {
    /// Starts `path` (written as `path.tmp` until [`ShardWriter::finish`]).
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, dtype: TokenDtype) -> Result<Self> {
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let schema = Arc::new(Schema::new(vec![Field::new(TOKEN_COLUMN, dtype.arrow(), false)]));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_TOKENS))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::input(&tmp, "", e))?;
        Ok(ShardWriter {
            path: path.to_path_buf(),
            tmp,
            dtype,
            writer,
            buf: Vec::with_capacity(ROW_GROUP_TOKENS),
            tokens: 0,
        })
    }

    /// Appends tokens.
    ///
    /// # Errors
    /// A write failure.
    pub fn push(&mut self, tokens: &[u32]) -> Result<()> {
        let mut rest = tokens;
        while !rest.is_empty() {
            let take = (ROW_GROUP_TOKENS - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == ROW_GROUP_TOKENS {
                self.flush()?;
            }
        }
        self.tokens += tokens.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let array: ArrayRef = match self.dtype {
            TokenDtype::Uint16 => Arc::new(UInt16Array::from_iter_values(self.buf.iter().map(|&t| t as u16))),
            TokenDtype::Uint32 => Arc::new(UInt32Array::from_iter_values(self.buf.iter().copied())),
        };
        let batch = RecordBatch::try_from_iter([(TOKEN_COLUMN, array)]).map_err(|e| Error::input(&self.tmp, "", e))?;
        self.writer.write(&batch).map_err(|e| Error::input(&self.tmp, "", e))?;
        self.writer.flush().map_err(|e| Error::input(&self.tmp, "", e))?;
        self.buf.clear();
        Ok(())
    }

    /// Tokens written so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Closes the file and renames it to its final name; returns the token count.
    ///
    /// # Errors
    /// A write or rename failure.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        self.writer.close().map_err(|e| Error::input(&self.tmp, "", e))?;
        inheritune_fs::commit_file(&self.tmp, &self.path).map_err(|e| Error::io(e.path, e.source))?;
        Ok(self.tokens)
    }
}

/// `<path>.tmp` (the crash-safe write's temporary name).
pub use inheritune_fs::tmp_path;

/// Row-group layout of a shard: `(first token, tokens)` per row group.
pub fn row_groups(path: &Path) -> Result<Vec<(u64, u64)>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = ArrowReaderMetadata::load(&file, Default::default())
        .map_err(|e| Error::input(path, "", format!("not a readable shard: {e}")))?;
    let mut start = 0;
    Ok(meta
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| {
            let n = rg.num_rows() as u64;
            let r = (start, n);
            start += n;
            r
        })
        .collect())
}

/// Reads the tokens of the given row groups of a shard (all of them when `groups` is `None`).
///
/// # Errors
/// A missing or corrupt file, or a shard without an integer `tokens` column.
pub fn read_tokens(path: &Path, groups: Option<Vec<usize>>) -> Result<Vec<u32>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::input(path, "", format!("not a readable shard: {e}")))?;
    if builder.schema().column_with_name(TOKEN_COLUMN).is_none() {
        return Err(Error::input(path, "", format!("no column {TOKEN_COLUMN:?}")));
    }
    let builder = match groups {
        Some(g) => builder.with_row_groups(g),
        None => builder,
    };
    let reader = builder
        .with_batch_size(ROW_GROUP_TOKENS)
        .build()
        .map_err(|e| Error::input(path, "", e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::input(path, "", e))?;
        let col = batch
            .column_by_name(TOKEN_COLUMN)
            .ok_or_else(|| Error::input(path, "", format!("no column {TOKEN_COLUMN:?}")))?;
        match col.data_type() {
            DataType::UInt16 => out.extend(col.as_primitive::<UInt16Type>().values().iter().map(|&t| t as u32)),
            DataType::UInt32 => out.extend(col.as_primitive::<UInt32Type>().values().iter().copied()),
            DataType::Int32 => out.extend(col.as_primitive::<Int32Type>().values().iter().map(|&t| t as u32)),
            DataType::Int64 => out.extend(col.as_primitive::<Int64Type>().values().iter().map(|&t| t as u32)),
            other => {
                return Err(Error::input(
                    path,
                    "",
                    format!("column {TOKEN_COLUMN:?} has type {other}, expected integers"),
                ))
            }
        }
    }
    Ok(out)
}
