//! Choosing the windows to analyse (METHOD.md §2.2): random offsets into a token stream with a logged
//! seed, consecutive windows of a text, or explicit lists of ids.

use std::path::Path;

use crate::error::{Error, Result};

/// SplitMix64 (the project's one generator, [`inheritune_data::rng`]): a seed names the same
/// windows everywhere.
pub use inheritune_data::rng::SplitMix64;

/// `n` offsets uniform in `[0, len − t)` (METHOD.md §2.2 DECISION, like nanoGPT's `get_batch`), from `seed`.
///
/// # Errors
/// A stream not longer than `t`, or `n` or `t` zero.
pub fn sample_offsets(len: u64, n: usize, t: usize, seed: u64) -> Result<Vec<u64>> {
    if n == 0 || t == 0 {
        return Err(Error::Invalid(format!(
            "need at least one window of at least one token (got {n} × {t})"
        )));
    }
    if len <= t as u64 {
        return Err(Error::Invalid(format!(
            "the token stream has {len} tokens; windows of {t} need more"
        )));
    }
    let mut rng = SplitMix64::new(seed);
    Ok((0..n).map(|_| rng.below(len - t as u64)).collect())
}

/// `n` windows of `t` tokens at [`sample_offsets`].
///
/// # Errors
/// As [`sample_offsets`].
pub fn sample_windows(tokens: &[u32], n: usize, t: usize, seed: u64) -> Result<Vec<Vec<i64>>> {
    let offsets = sample_offsets(tokens.len() as u64, n, t, seed)?;
    Ok(offsets
        .into_iter()
        .map(|o| tokens[o as usize..o as usize + t].iter().map(|&x| x as i64).collect())
        .collect())
}

/// The first `n` consecutive, non-overlapping windows of `t` tokens (fewer if the text is short).
///
/// # Errors
/// Fewer than `t` tokens.
pub fn consecutive_windows(tokens: &[u32], n: usize, t: usize) -> Result<Vec<Vec<i64>>> {
    if t == 0 || tokens.len() < t {
        return Err(Error::Invalid(format!(
            "the text has {} tokens; a window needs {t}",
            tokens.len()
        )));
    }
    Ok(tokens
        .chunks_exact(t)
        .take(n)
        .map(|w| w.iter().map(|&x| x as i64).collect())
        .collect())
}

/// Reads a JSON list of token-id lists, all of the same length.
///
/// # Errors
/// A missing or malformed file, an empty list, or windows of different lengths; the message names the file.
pub fn read_windows(path: &Path) -> Result<Vec<Vec<i64>>> {
    let file_err = |message: String| Error::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let windows: Vec<Vec<i64>> =
        serde_json::from_str(&text).map_err(|e| file_err(format!("expected a JSON list of token-id lists: {e}")))?;
    let Some(first) = windows.first() else {
        return Err(file_err("no windows".to_string()));
    };
    if let Some((i, w)) = windows
        .iter()
        .enumerate()
        .find(|(_, w)| w.len() != first.len() || w.is_empty())
    {
        return Err(file_err(format!(
            "window {i} has {} tokens, window 0 has {}",
            w.len(),
            first.len()
        )));
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_seeded_and_in_range() {
        let tokens: Vec<u32> = (0..1000).collect();
        let a = sample_windows(&tokens, 50, 100, 7).unwrap_or_default();
        assert_eq!(a, sample_windows(&tokens, 50, 100, 7).unwrap_or_default());
        assert_ne!(a, sample_windows(&tokens, 50, 100, 8).unwrap_or_default());
        for w in &a {
            assert_eq!(w.len(), 100);
            assert!(w[0] < 900 && w.windows(2).all(|p| p[1] == p[0] + 1));
        }
        assert!(sample_windows(&tokens[..100], 1, 100, 0).is_err());
    }
}
