//! lm-evaluation-harness's bootstrap standard error (`bootstrap_stderr`), bit for bit: CPython's
//! Mersenne Twister seeded as `random.Random(i)` for chunk i of 1000 resamples, each resample
//! drawn as `random.choices(xs, k=len(xs))`, the statistic of each, then the sample standard
//! deviation of all of them (EVAL-TASKS.md §2). lm-eval bootstraps `perplexity` (lambada's), with
//! 100,000 resamples by default.

/// CPython's `random.Random`: MT19937 with `init_by_array` seeding and 53-bit `random()`.
pub struct PyRandom {
    mt: [u32; 624],
    /// The tempered outputs of the current `mt`.
    out: [u32; 624],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed (its 32-bit words, least
    /// significant first, as CPython's `random_seed` passes them to `init_by_array`).
    pub fn new(seed: u64) -> Self {
        let mut key = Vec::new();
        let mut s = seed;
        loop {
            key.push(s as u32);
            s >>= 32;
            if s == 0 {
                break;
            }
        }
        let mut r = PyRandom {
            mt: [0; 624],
            out: [0; 624],
            index: 624,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..624 {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = 624;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= 624 {
                self.mt[0] = self.mt[623];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                self.mt[0] = self.mt[623];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    /// MT19937's regeneration of all 624 words (the reference loop, split where `k + 1` and
    /// `k + 397` wrap, so no index needs a modulo).
    fn twist(&mut self) {
        let mt = &mut self.mt;
        let mix = |a: u32, b: u32, far: u32| {
            let y = (a & 0x8000_0000) | (b & 0x7fff_ffff);
            far ^ (y >> 1) ^ if y & 1 != 0 { 0x9908_b0df } else { 0 }
        };
        for k in 0..227 {
            mt[k] = mix(mt[k], mt[k + 1], mt[k + 397]);
        }
        for k in 227..623 {
            mt[k] = mix(mt[k], mt[k + 1], mt[k - 227]);
        }
        mt[623] = mix(mt[623], mt[0], mt[396]);
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
            // Tempered all at once (the same function of each word, in a loop the compiler vectorises).
            for (out, &y) in self.out.iter_mut().zip(&self.mt) {
                let y = y ^ (y >> 11);
                let y = y ^ ((y << 7) & 0x9d2c_5680);
                let y = y ^ ((y << 15) & 0xefc6_0000);
                *out = y ^ (y >> 18);
            }
        }
        let y = self.out[self.index];
        self.index += 1;
        y
    }

    /// `random.random()`: a float in [0, 1) from two 32-bit draws.
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// The bootstrap standard error of lm-eval's `perplexity` (exp(−mean) of the resample, its sum
/// left to right) over `lls` with `iters` resamples (chunks of min(1000, iters), chunk i seeded
/// with i); None with fewer than two resamples. The chunks run on the available cores, their
/// statistics kept in chunk order, so the result is the same on any number of them.
pub fn perplexity_stderr(lls: &[f64], iters: usize) -> Option<f64> {
    if lls.is_empty() {
        return None;
    }
    let chunk = iters.min(1000);
    let chunks = iters / chunk.max(1);
    let n = lls.len() as f64;
    let run = |i: usize| -> Vec<f64> {
        let mut rnd = PyRandom::new(i as u64);
        (0..chunk)
            .map(|_| {
                // `xs[floor(random() * n)]`; the product is non-negative, so `as` truncation is floor.
                let sum = (0..lls.len()).fold(0.0, |acc, _| acc + lls[(rnd.random() * n) as usize]);
                (-(sum / n)).exp()
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(chunks.max(1));
    let per = chunks.div_ceil(threads.max(1)).max(1);
    let res: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..chunks)
            .step_by(per)
            .map(|first| s.spawn(move || (first..(first + per).min(chunks)).flat_map(run).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    if res.len() < 2 {
        return None;
    }
    let mean = res.iter().sum::<f64>() / res.len() as f64;
    let var = res.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (res.len() - 1) as f64;
    Some(var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bootstrap/expected.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn draws_equal_cpython() {
        let e = expected();
        for (seed, draws) in e["random"].as_object().unwrap() {
            let mut r = PyRandom::new(seed.parse().unwrap());
            for want in draws.as_array().unwrap() {
                // serde_json's default float parsing can be one ulp off the printed value.
                let (got, want) = (r.random(), want.as_f64().unwrap());
                assert!((got - want).abs() <= 2.0 * f64::EPSILON, "seed {seed}: {got} vs {want}");
            }
        }
    }

    /// Against lm-eval 0.4.13's own `bootstrap_stderr(perplexity, ...)`
    /// (tests/fixtures/bootstrap/make_bootstrap.py).
    #[test]
    fn perplexity_stderr_equals_lm_eval() {
        for case in expected()["cases"].as_array().unwrap() {
            let lls: Vec<f64> = case["loglikelihoods"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let iters = case["iters"].as_u64().unwrap() as usize;
            let (got, want) = (
                perplexity_stderr(&lls, iters).unwrap(),
                case["stderr"].as_f64().unwrap(),
            );
            assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs lm-eval {want}");
        }
    }
}
