//! Benchmarks as records: each `cargo xtask bench` run writes its result (both sides, the ratio,
//! the machine, the commit) to `target/bench/records/<bench>-<unix seconds>.json` and appends a
//! row to the records table of `docs/benchmarks.md`, so a regression shows the next time anyone
//! runs it.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{output_of, workspace_root};

/// One side of a comparison.
pub struct Side {
    /// What ran (`inheritune prepare, whole process`).
    pub what: String,
    /// Its measure (the median of the rounds where there are several).
    pub value: f64,
    /// The measure's unit (`tokens/s`, `s`, `ms/step`).
    pub unit: &'static str,
}

/// A benchmark's result.
pub struct Record {
    /// `prepare`, `analyze`, ...
    pub bench: &'static str,
    /// Ours.
    pub ours: Side,
    /// The reference.
    pub theirs: Side,
    /// How much faster ours is (above 1: ours is faster).
    pub speedup: f64,
    /// Anything else worth keeping (rounds, spreads, shapes, checks).
    pub details: serde_json::Value,
}

/// The machine, in words: cores, CPU model, memory, OS.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("? GiB".into(), |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
    format!("{cores} cores ({model}), {gib}, {}", std::env::consts::OS)
}

/// The commit benchmarked (`-dirty` when the tree has changes).
fn commit(root: &Path) -> String {
    let root = root.display().to_string();
    let head = output_of("git", &["-C", &root, "rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = output_of("git", &["-C", &root, "status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.trim().is_empty());
    format!("{}{}", head.trim(), if dirty { "-dirty" } else { "" })
}

/// `YYYY-MM-DD` (UTC) of `unix` seconds.
fn date(unix: u64) -> String {
    // Howard Hinnant's civil-from-days.
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A measure with four significant digits (`7.669 M`, `4.780`, `356.9`).
fn number(v: f64) -> String {
    let (v, suffix) = if v.abs() >= 1e6 {
        (v / 1e6, " M")
    } else if v.abs() >= 1e4 {
        (v / 1e3, " k")
    } else {
        (v, "")
    };
    let digits = if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 10.0 {
        2
    } else {
        3
    };
    format!("{v:.digits$}{suffix}")
}

const TABLE: &str = "## Records (appended by `cargo xtask bench`)";

/// Writes the record's JSON file and appends its row to `docs/benchmarks.md`; prints where.
pub fn record(r: &Record) -> Result<()> {
    let root = workspace_root();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (machine, commit, date) = (machine(), commit(&root), date(unix));
    let json = serde_json::json!({
        "bench": r.bench,
        "date": date,
        "unix_seconds": unix,
        "commit": commit,
        "machine": machine,
        "ours": {"what": r.ours.what, "value": r.ours.value, "unit": r.ours.unit},
        "reference": {"what": r.theirs.what, "value": r.theirs.value, "unit": r.theirs.unit},
        "speedup": r.speedup,
        "details": r.details,
    });
    let dir = root.join("target").join("bench").join("records");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{}-{unix}.json", r.bench.replace(" --", "-").replace(' ', "-")));
    inheritune_fs::write_file(&file, (serde_json::to_string_pretty(&json)? + "\n").as_bytes())?;
    let doc = root.join("docs").join("benchmarks.md");
    let mut text = std::fs::read_to_string(&doc).with_context(|| format!("reading {}", doc.display()))?;
    if !text.contains(TABLE) {
        text += &format!(
            "\n{TABLE}\n\n| date | bench | ours | reference | speed-up (ours) | machine | commit |\n| --- | --- | --- | --- | --- | --- | --- |\n"
        );
    }
    let side = |s: &Side| format!("{}: {} {}", s.what, number(s.value), s.unit);
    text += &format!(
        "| {date} | `bench {}` | {} | {} | {:.2}× | {machine} | {commit} |\n",
        r.bench,
        side(&r.ours),
        side(&r.theirs),
        r.speedup
    );
    // Crash-safe: the page is either as it was or has the new row.
    inheritune_fs::write_file(&doc, text.as_bytes())?;
    println!("recorded: {} and a row of {}", file.display(), doc.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(951_782_400), "2000-02-29");
        assert_eq!(super::date(1_796_601_600), "2026-12-07");
        assert_eq!(super::number(7_668_754.9), "7.669 M");
        assert_eq!(super::number(4.7812), "4.781");
        assert_eq!(super::number(356.94), "356.9");
        assert_eq!(super::number(25_100.0), "25.10 k");
    }
}
