//! The project's one deterministic generator: SplitMix64 (Steele, Lea and Flood 2014; Vigna's
//! `splitmix64.c`), fully specified so a seed names the same batches, val documents and analysis
//! windows on every machine and in every language. Reference values from an independent
//! implementation: `tests/fixtures/rng/` (make_rng.py).
//!
//! (lm-evaluation-harness's bootstrap uses Python's Mersenne Twister; `inheritune-eval` keeps its
//! own copy of that, because the standard errors must equal lm-eval's.)

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer.
pub fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One SplitMix64 step from state `z` (its output when the state was `z`): a hash of `z`, which
/// chained (`mix(mix(seed) ^ step)`) derives independent streams from a few integers.
pub fn mix(z: u64) -> u64 {
    finalize(z.wrapping_add(GOLDEN))
}

/// Uniform in `0..n` from 64 random bits (multiply-shift, Lemire; `n > 0`).
pub fn below(bits: u64, n: u64) -> u64 {
    ((bits as u128 * n as u128) >> 64) as u64
}

/// Uniform in `[0, 1)` from the top 53 of 64 random bits.
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The SplitMix64 stream of a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        finalize(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        below(self.next_u64(), n)
    }
}
