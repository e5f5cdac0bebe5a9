//! GGUF files (llama.cpp, Ollama, LM Studio): the reader ([`GgufFile`]), dequantization
//! ([`quants`]) and the conversion into a Hugging Face folder ([`convert`]).
//!
//! Layout (ggml `docs/gguf.md`): magic `GGUF`, version (2 or 3), tensor and metadata counts,
//! metadata (typed key/value pairs), tensor infos (name, ggml-order dims, type, offset), then
//! the data section aligned to `general.alignment` (default 32). Every read is bounds-checked:
//! a truncated or corrupt file is a one-line error naming the file and what was being read.

pub mod convert;
pub mod quants;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use quants::GgmlType;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any integer type (u8 … i64), widened.
    Int(i64),
    /// u64 values above `i64::MAX` do not occur in model metadata; they are kept here.
    UInt(u64),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// A UTF-8 string (invalid bytes replaced).
    Str(String),
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    /// The value as an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The value as a float (integers widen).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's description.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// The shape in row-major order (ggml's dims reversed).
    pub shape: Vec<i64>,
    /// The ggml type id.
    pub type_id: u32,
    /// Offset of its data from the start of the file.
    pub offset: usize,
    /// Bytes of data.
    pub bytes: usize,
}

/// A parsed GGUF file, its data memory-mapped.
pub struct GgufFile {
    path: PathBuf,
    /// The format version (2 or 3).
    pub version: u32,
    /// Every metadata key and value.
    pub metadata: BTreeMap<String, Value>,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorInfo>,
    map: memmap2::Mmap,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    path: &'a Path,
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bad(&self, what: &str) -> Error {
        Error::Gguf {
            path: self.path.to_path_buf(),
            message: format!("truncated or corrupt at byte {} while reading {what}", self.at),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| self.bad(what))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| self.bad(what))?;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }

    fn value(&mut self, ty: u32, what: &str) -> Result<Value> {
        let mut fixed = |n: usize| -> Result<[u8; 8]> {
            let s = self.take(n, what)?;
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(s);
            Ok(a)
        };
        Ok(match ty {
            0 => Value::Int(fixed(1)?[0] as i64),
            1 => Value::Int(fixed(1)?[0] as i8 as i64),
            2 => {
                let a = fixed(2)?;
                Value::Int(u16::from_le_bytes([a[0], a[1]]) as i64)
            }
            3 => {
                let a = fixed(2)?;
                Value::Int(i16::from_le_bytes([a[0], a[1]]) as i64)
            }
            4 => {
                let a = fixed(4)?;
                Value::Int(u32::from_le_bytes([a[0], a[1], a[2], a[3]]) as i64)
            }
            5 => {
                let a = fixed(4)?;
                Value::Int(i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as i64)
            }
            6 => {
                let a = fixed(4)?;
                Value::Float(f32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f64)
            }
            7 => Value::Bool(fixed(1)?[0] != 0),
            8 => Value::Str(self.string(what)?),
            9 => {
                let elem = self.u32(what)?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: a count beyond the file is corrupt.
                if n > (self.b.len() - self.at) as u64 {
                    return Err(self.bad(what));
                }
                let mut out = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    out.push(self.value(elem, what)?);
                }
                Value::Array(out)
            }
            10 => Value::UInt(u64::from_le_bytes(fixed(8)?)),
            11 => Value::Int(i64::from_le_bytes(fixed(8)?)),
            12 => Value::Float(f64::from_le_bytes(fixed(8)?)),
            other => {
                return Err(Error::Gguf {
                    path: self.path.to_path_buf(),
                    message: format!("{what}: unknown metadata value type {other}"),
                })
            }
        })
    }
}

impl GgufFile {
    /// Opens and parses a GGUF file (the data stays mapped until it is read).
    ///
    /// # Errors
    /// A missing file, a bad magic or version, a truncated or corrupt header, a tensor whose
    /// data lies outside the file; each one line naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: a read-only mapping; a file truncated by another process meanwhile is outside
        // what this reader supports.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mut c = Cursor { path, b: &map, at: 0 };
        let bad = |message: String| Error::Gguf {
            path: path.to_path_buf(),
            message,
        };
        if c.take(4, "the magic").ok() != Some(b"GGUF".as_slice()) {
            return Err(bad("not a GGUF file (no GGUF magic)".into()));
        }
        let version = c.u32("the version")?;
        if !(version == 2 || version == 3) {
            return Err(bad(format!("GGUF version {version} is not supported (2, 3)")));
        }
        let n_tensors = c.u64("the tensor count")?;
        let n_kv = c.u64("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key {i}"))?;
            let ty = c.u32(&format!("the type of {key}"))?;
            let value = c.value(ty, &key)?;
            metadata.insert(key, value);
        }
        let mut infos = Vec::new();
        for i in 0..n_tensors {
            let name = c.string(&format!("tensor name {i}"))?;
            let n_dims = c.u32(&format!("the dims of {name}"))?;
            if n_dims > 8 {
                return Err(bad(format!("tensor {name}: {n_dims} dimensions")));
            }
            let mut dims = Vec::new();
            for _ in 0..n_dims {
                dims.push(c.u64(&format!("the dims of {name}"))?);
            }
            let type_id = c.u32(&format!("the type of {name}"))?;
            let offset = c.u64(&format!("the offset of {name}"))?;
            infos.push((name, dims, type_id, offset));
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_i64)
            .unwrap_or(32)
            .max(1) as usize;
        let data_start = c.at.div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, type_id, offset) in infos {
            let numel = dims
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d))
                .ok_or_else(|| bad(format!("tensor {name}: its dimensions {dims:?} overflow")))?;
            let bytes = match GgmlType::from_id(type_id) {
                Some(kind) => {
                    let (n, size) = kind.block();
                    if dims.first().copied().unwrap_or(1) % n as u64 != 0 {
                        return Err(bad(format!(
                            "tensor {name}: its rows of {} values are not whole {} blocks",
                            dims.first().copied().unwrap_or(0),
                            kind.name()
                        )));
                    }
                    numel / n as u64 * size as u64
                }
                None => 0, // refused by name when read
            };
            let start = (data_start as u64).checked_add(offset);
            let end = start.and_then(|s| s.checked_add(bytes));
            if end.is_none_or(|e| e > map.len() as u64) {
                return Err(bad(format!("tensor {name}: its data lies outside the file")));
            }
            tensors.push(TensorInfo {
                name,
                shape: dims.iter().rev().map(|&d| d as i64).collect(),
                type_id,
                offset: start.unwrap_or(0) as usize,
                bytes: bytes as usize,
            });
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            map,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A tensor's description.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor dequantized to f32, row-major in its [`TensorInfo::shape`].
    ///
    /// # Errors
    /// A type this crate does not read, named.
    pub fn dequantize(&self, info: &TensorInfo) -> Result<Vec<f32>> {
        let kind = GgmlType::from_id(info.type_id).ok_or_else(|| Error::Gguf {
            path: self.path.clone(),
            message: format!(
                "tensor {}: ggml type {} is not supported (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K)",
                info.name,
                quants::type_name(info.type_id)
            ),
        })?;
        let mut out = Vec::new();
        quants::dequantize(kind, &self.map[info.offset..info.offset + info.bytes], &mut out);
        Ok(out)
    }
}
