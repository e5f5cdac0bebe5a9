//! Progress in a terminal and in a log file, the one home of it in the workspace: an indicatif
//! bar when stderr is a terminal; without one (nohup, Slurm, CI, a recipe stage's log) a plain
//! line on stderr at most every `INHERITUNE_LOG_SECONDS` (default 10) seconds and at the end, so
//! a log file shows the work moving. Lines a caller prints through [`Progress::println`] go above
//! the bar, or to stderr.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// What the log lines count.
#[derive(Debug, Clone)]
enum Unit {
    /// `progress: 3/10 <unit> <msg>, 12 s, eta 28 s`.
    Count(&'static str),
    /// `download <what>: 42.0% (… of … bytes, … MB/s)`.
    Bytes(String),
}

/// A progress display (see the module docs).
pub struct Progress {
    bar: ProgressBar,
    unit: Unit,
    /// Without a terminal: the last log line and the interval (`None`: the caller logs its own
    /// lines); `None` on a terminal too.
    lines: Option<(Cell<Instant>, Duration)>,
    on_terminal: bool,
    began: Instant,
}

/// `INHERITUNE_LOG_SECONDS`, else 10.
fn log_interval() -> Duration {
    let every = std::env::var("INHERITUNE_LOG_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0);
    Duration::from_secs_f64(every)
}

impl Progress {
    /// A counting display: `template` is indicatif's; `unit` names what `pos`/`len` count in log lines.
    pub fn new(template: &str, unit: &'static str) -> Self {
        Self::with(template, Unit::Count(unit), 0)
    }

    /// A download of `total` bytes of `what`.
    pub fn bytes(what: String, total: u64) -> Self {
        let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
        let p = Self::with(template, Unit::Bytes(what.clone()), total);
        p.bar.set_message(what);
        p
    }

    fn with(template: &str, unit: Unit, len: u64) -> Self {
        let on_terminal = std::io::stderr().is_terminal();
        let bar = if on_terminal {
            ProgressBar::new(len)
        } else {
            ProgressBar::hidden()
        };
        bar.set_length(len);
        let bar =
            bar.with_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        Progress {
            bar,
            unit,
            lines: (!on_terminal).then(|| (Cell::new(Instant::now()), log_interval())),
            on_terminal,
            began: Instant::now(),
        }
    }

    /// A counting bar whose log lines the caller writes itself ([`Progress::println`]), as the
    /// trainer does with its per-step lines.
    pub fn own_lines(template: &str) -> Self {
        let mut p = Self::new(template, "");
        p.lines = None;
        p
    }

    /// Whether stderr is a terminal (the bar shows) or not (log lines instead).
    pub fn on_terminal(&self) -> bool {
        self.on_terminal
    }

    /// Sets the total.
    pub fn set_length(&self, len: u64) {
        self.bar.set_length(len);
    }

    /// Sets the message shown beside the bar (and in log lines).
    pub fn set_message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Sets the position; without a terminal, logs a line when the interval has passed.
    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        if let Some((last, every)) = &self.lines {
            if last.get().elapsed() >= *every {
                last.set(Instant::now());
                self.log();
            }
        }
    }

    /// Advances the position by `n`.
    pub fn inc(&self, n: u64) {
        self.set_position(self.bar.position() + n);
    }

    /// A line of the caller's: above the bar on a terminal, on stderr without one.
    pub fn println(&self, line: impl AsRef<str>) {
        if !self.on_terminal {
            eprintln!("{}", line.as_ref());
        } else {
            self.bar.println(line.as_ref());
        }
    }

    fn log(&self) {
        if self.lines.is_none() {
            return;
        }
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let elapsed = self.began.elapsed().as_secs_f64();
        match &self.unit {
            Unit::Count(unit) => {
                let eta = if pos > 0 && len >= pos {
                    format!(", eta {:.0} s", elapsed / pos as f64 * (len - pos) as f64)
                } else {
                    String::new()
                };
                let msg = self.bar.message();
                let msg = if msg.is_empty() {
                    String::new()
                } else {
                    format!(" {msg}")
                };
                eprintln!("progress: {pos}/{len} {unit}{msg}, {elapsed:.0} s{eta}");
            }
            Unit::Bytes(what) => {
                let pct = if len > 0 {
                    100.0 * pos as f64 / len as f64
                } else {
                    100.0
                };
                let rate = pos as f64 / elapsed.max(1e-9) / 1e6;
                eprintln!("download {what}: {pct:.1}% ({pos} of {len} bytes, {rate:.1} MB/s)");
            }
        }
    }

    /// Clears a counting bar (a download's stays, complete); without a terminal, logs the final
    /// count.
    pub fn finish(&self) {
        match self.unit {
            Unit::Count(_) => self.bar.finish_and_clear(),
            Unit::Bytes(_) => self.bar.finish(),
        }
        self.log();
    }
}
