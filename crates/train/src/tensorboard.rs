//! TensorBoard event files: scalars as `Event` protocol buffers in TFRecord framing, the format
//! `tensorboard --logdir` reads. Written by hand (a few dozen lines) instead of pulling in a
//! protobuf stack; `tests/fixtures/tensorboard/make_golden.py` writes the same events with the
//! `tensorboard` package itself, and the test compares the bytes.
//!
//! TFRecord: `u64 length (LE) · u32 masked CRC32C of the length · data · u32 masked CRC32C of the
//! data`. Event: `wall_time` (1, double), `step` (2, int64), `file_version` (3, string) or
//! `summary` (5) with `value` (1) entries of `tag` (1, string) and `simple_value` (2, float).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC32C (Castagnoli), as TFRecord uses it.
fn crc32c(data: &[u8]) -> u32 {
    const POLY: u32 = 0x82F6_3B78; // reflected 0x1EDC6F41
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
        }
    }
    !crc
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// The bytes of one `Event` with a wall time, a step and either a file version or scalars.
pub fn event(wall_time: f64, step: i64, file_version: Option<&str>, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(0x09); // wall_time, fixed64
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        e.push(0x10); // step, varint
        varint(step as u64, &mut e);
    }
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut e);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut v);
            v.push(0x15); // simple_value, fixed32
            v.extend_from_slice(&value.to_le_bytes());
            bytes_field(1, &v, &mut summary);
        }
        bytes_field(5, &summary, &mut e);
    }
    e
}

/// One TFRecord around `data`.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut r = Vec::with_capacity(data.len() + 16);
    r.extend_from_slice(&len);
    r.extend_from_slice(&masked_crc(&len).to_le_bytes());
    r.extend_from_slice(data);
    r.extend_from_slice(&masked_crc(data).to_le_bytes());
    r
}

/// An event file in a run folder, one per process start (TensorBoard reads them all).
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<seconds>.<host>.inheritune` and writes its version record.
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let now = wall_time();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{}.{host}.inheritune", now as u64));
        let file = File::create(&path)?;
        let mut w = EventWriter { file, path };
        w.write(&event(now, 0, Some("brain.Event:2"), &[]))?;
        Ok(w)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &[u8]) -> std::io::Result<()> {
        self.file.write_all(&record(event))?;
        self.file.flush()
    }

    /// Scalars at `step`, stamped with the current time.
    ///
    /// # Errors
    /// A write failure.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f32)]) -> std::io::Result<()> {
        self.write(&event(wall_time(), step as i64, None, values))
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720, B.4).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
