//! Progress for long verbs: an indicatif bar on a terminal, and without one (nohup, Slurm, CI)
//! a plain log line on stderr at most every `INHERITUNE_LOG_SECONDS` (default 10) seconds and at
//! the end, so a log file shows the run moving.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress display (see the module docs).
pub struct Progress {
    bar: ProgressBar,
    /// `Some` when stderr is not a terminal: (what is counted, last log line, interval).
    lines: Option<(&'static str, Cell<Instant>, Duration)>,
    began: Instant,
}

impl Progress {
    /// `template` is indicatif's; `unit` names what `pos`/`len` count in log lines.
    pub fn new(template: &str, unit: &'static str) -> Self {
        let bar = ProgressBar::new(0)
            .with_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        let lines = (!std::io::stderr().is_terminal()).then(|| {
            let every = std::env::var("INHERITUNE_LOG_SECONDS")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| *s >= 0.0)
                .unwrap_or(10.0);
            (unit, Cell::new(Instant::now()), Duration::from_secs_f64(every))
        });
        Progress {
            bar,
            lines,
            began: Instant::now(),
        }
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
        if let Some((_, last, every)) = &self.lines {
            if last.get().elapsed() >= *every {
                last.set(Instant::now());
                self.log();
            }
        }
    }

    fn log(&self) {
        let Some((unit, ..)) = &self.lines else {
            return;
        };
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let elapsed = self.began.elapsed().as_secs_f64();
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

    /// Clears the bar; without a terminal, logs the final count.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        self.log();
    }
}
