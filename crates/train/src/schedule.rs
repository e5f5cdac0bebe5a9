//! The learning-rate schedule of METHOD.md §4.1: linear warmup from 0, cosine decay to `min_lr` at
//! `decay_steps`, `min_lr` after; or constant after warmup (the low-data code, METHOD.md §4.5).

use serde::{Deserialize, Serialize};

/// Schedule shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Warmup, then cosine to `min_lr`.
    Cosine,
    /// Warmup, then the peak rate.
    Constant,
}

/// The learning rate at step `it`.
///
/// `it < warmup`: `peak · it / warmup` (so lr(0) = 0); `it > decay`: `min_lr`; otherwise
/// `min_lr + ½(1 + cos(π (it − warmup)/(decay − warmup)))(peak − min_lr)`.
pub fn lr_at(schedule: Schedule, it: u64, peak: f64, min_lr: f64, warmup: u64, decay: u64) -> f64 {
    if it < warmup {
        return peak * it as f64 / warmup as f64;
    }
    match schedule {
        Schedule::Constant => peak,
        Schedule::Cosine => {
            if it > decay {
                return min_lr;
            }
            let ratio = (it - warmup) as f64 / (decay - warmup).max(1) as f64;
            min_lr + 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()) * (peak - min_lr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_8_1_values() {
        let lr = |it| lr_at(Schedule::Cosine, it, 3e-4, 1e-5, 2000, 100_000);
        assert_eq!(lr(0), 0.0);
        assert_eq!(lr(1000), 1.5e-4);
        assert_eq!(lr(2000), 3e-4);
        assert!((lr(100_000) - 1e-5).abs() < 1e-18);
        assert_eq!(lr(150_000), 1e-5);
        assert!((lr(51_000) - (1e-5 + 0.5 * (3e-4 - 1e-5))).abs() < 1e-15);
        assert_eq!(lr_at(Schedule::Constant, 90_000, 3e-4, 1e-5, 1000, 100_000), 3e-4);
    }
}
