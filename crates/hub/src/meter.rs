//! Byte progress of downloads: an indicatif bar on a terminal, log lines on stderr without one.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Meter {
    bar: Option<ProgressBar>,
    what: String,
    total: u64,
    done: u64,
    last: Instant,
    every: Duration,
    began: Instant,
}

impl Meter {
    pub(crate) fn new(what: String, total: u64) -> Meter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style =
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(total).with_style(style).with_message(what.clone())
        });
        let every = std::env::var("INHERITUNE_LOG_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(10.0);
        Meter {
            bar,
            what,
            total,
            done: 0,
            last: Instant::now(),
            every: Duration::from_secs_f64(every),
            began: Instant::now(),
        }
    }

    pub(crate) fn file(&mut self, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} {name}", self.what));
        }
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.set_position(self.done),
            None if self.last.elapsed() >= self.every => {
                self.last = Instant::now();
                self.line();
            }
            None => {}
        }
    }

    fn line(&self) {
        let secs = self.began.elapsed().as_secs_f64().max(1e-9);
        let pct = if self.total > 0 {
            100.0 * self.done as f64 / self.total as f64
        } else {
            100.0
        };
        eprintln!(
            "download {}: {:.1}% ({} of {} bytes, {:.1} MB/s)",
            self.what,
            pct,
            self.done,
            self.total,
            self.done as f64 / secs / 1e6
        );
    }

    pub(crate) fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish(),
            None => self.line(),
        }
    }
}
