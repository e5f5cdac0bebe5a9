//! Algorithm 1's growth loop (METHOD.md §1.2, §1.6) as a pure function of the rounds' final
//! validation losses: start at l0, train, compare with the reference, and grow by Δ while the
//! target is worse by more than the tolerance, up to `max_rounds` and the reference's depth.

use serde::Serialize;

/// The loop's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Depth of round 1.
    pub start: i64,
    /// Layers added per round (Δ).
    pub grow_by: i64,
    /// Match when target ≤ reference + tolerance.
    pub tolerance: f64,
    /// Rounds at most.
    pub max_rounds: usize,
    /// The reference's depth (the target never grows past it).
    pub reference_layers: i64,
}

/// Why the loop ended without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// `max_rounds` rounds ran.
    MaxRounds,
    /// Growing once more would pass the reference's depth.
    ReferenceDepth,
}

/// What comes after the rounds so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Train this round at this depth.
    Train {
        /// 1-based round.
        round: usize,
        /// Its depth.
        layers: i64,
    },
    /// The last round matched the reference: its depth is the target's.
    Matched {
        /// The target's depth.
        layers: i64,
    },
    /// No round matched and no further round is allowed; the last round is the target.
    Unmatched {
        /// The target's depth.
        layers: i64,
        /// Why the loop stopped.
        stop: Stop,
    },
}

impl Next {
    /// The target's depth once the loop has ended.
    pub fn final_layers(self) -> Option<i64> {
        match self {
            Next::Train { .. } => None,
            Next::Matched { layers } | Next::Unmatched { layers, .. } => Some(layers),
        }
    }
}

/// One finished round as the report states it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// 1-based round.
    pub round: usize,
    /// Its depth.
    pub layers: i64,
    /// Its final validation loss.
    pub final_val_loss: f64,
    /// Whether it matched (≤ reference + tolerance).
    pub matched: bool,
}

impl Rule {
    /// Depth of 1-based round `round`.
    pub fn depth(&self, round: usize) -> i64 {
        self.start + (round as i64 - 1) * self.grow_by
    }

    /// Whether a target of final loss `loss` matches a reference of `reference`.
    pub fn matches(&self, loss: f64, reference: f64) -> bool {
        loss <= reference + self.tolerance
    }

    /// The step after rounds 1..=k with final losses `losses` (k = `losses.len()`).
    pub fn next(&self, reference: f64, losses: &[f64]) -> Next {
        let Some(&last) = losses.last() else {
            return Next::Train {
                round: 1,
                layers: self.start,
            };
        };
        let k = losses.len();
        let layers = self.depth(k);
        if self.matches(last, reference) {
            Next::Matched { layers }
        } else if k >= self.max_rounds {
            Next::Unmatched {
                layers,
                stop: Stop::MaxRounds,
            }
        } else if layers + self.grow_by > self.reference_layers {
            Next::Unmatched {
                layers,
                stop: Stop::ReferenceDepth,
            }
        } else {
            Next::Train {
                round: k + 1,
                layers: layers + self.grow_by,
            }
        }
    }

    /// Each finished round's verdict.
    pub fn verdicts(&self, reference: f64, losses: &[f64]) -> Vec<Verdict> {
        losses
            .iter()
            .enumerate()
            .map(|(i, &loss)| Verdict {
                round: i + 1,
                layers: self.depth(i + 1),
                final_val_loss: loss,
                matched: self.matches(loss, reference),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2 medium's shape: 24 layers, l0 = 12, Δ = 2, three rounds, tolerance 0.005.
    const MEDIUM: Rule = Rule {
        start: 12,
        grow_by: 2,
        tolerance: 0.005,
        max_rounds: 3,
        reference_layers: 24,
    };

    /// Drives the loop as the runner does: train what it asks for, feed the loss back.
    fn drive(rule: &Rule, reference: f64, loss_at: impl Fn(i64) -> f64) -> (Vec<i64>, Next) {
        let (mut depths, mut losses) = (Vec::new(), Vec::new());
        loop {
            match rule.next(reference, &losses) {
                Next::Train { round, layers } => {
                    assert_eq!(round, losses.len() + 1);
                    depths.push(layers);
                    losses.push(loss_at(layers));
                }
                end => return (depths, end),
            }
        }
    }

    #[test]
    fn matched_in_round_one() {
        let (depths, end) = drive(&MEDIUM, 2.81, |_| 2.812);
        assert_eq!(depths, [12]);
        assert_eq!(end, Next::Matched { layers: 12 });
    }

    #[test]
    fn matched_in_round_two_and_three() {
        // The paper's medium rounds (METHOD.md §6.1): 12L 2.87, 14L 2.84, 16L 2.81 against 2.81.
        let paper = |l: i64| match l {
            12 => 2.87,
            14 => 2.84,
            _ => 2.81,
        };
        let (depths, end) = drive(&MEDIUM, 2.81, paper);
        assert_eq!(depths, [12, 14, 16]);
        assert_eq!(end, Next::Matched { layers: 16 });
        let (depths, end) = drive(&MEDIUM, 2.845, paper);
        assert_eq!(depths, [12, 14]);
        assert_eq!(end, Next::Matched { layers: 14 });
        let v = MEDIUM.verdicts(2.81, &[2.87, 2.84, 2.81]);
        assert_eq!(v.iter().map(|v| v.matched).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(v[1].layers, 14);
    }

    #[test]
    fn never_matched_stops_at_max_rounds() {
        let (depths, end) = drive(&MEDIUM, 2.0, |_| 3.0);
        assert_eq!(depths, [12, 14, 16]);
        assert_eq!(
            end,
            Next::Unmatched {
                layers: 16,
                stop: Stop::MaxRounds
            }
        );
        let one = Rule {
            max_rounds: 1,
            ..MEDIUM
        };
        assert_eq!(drive(&one, 2.0, |_| 3.0).0, [12]);
    }

    #[test]
    fn never_grows_past_the_reference() {
        let rule = Rule {
            start: 2,
            max_rounds: 10,
            reference_layers: 4,
            ..MEDIUM
        };
        let (depths, end) = drive(&rule, 2.0, |_| 3.0);
        assert_eq!(depths, [2, 4]);
        assert_eq!(
            end,
            Next::Unmatched {
                layers: 4,
                stop: Stop::ReferenceDepth
            }
        );
    }

    #[test]
    fn tolerance_bounds_the_match() {
        assert!(MEDIUM.matches(2.814, 2.81));
        assert!(!MEDIUM.matches(2.816, 2.81));
        let forced = Rule {
            tolerance: -100.0,
            ..MEDIUM
        };
        assert!(!forced.matches(0.0, 2.81));
    }
}
