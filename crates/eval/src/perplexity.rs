//! Perplexity of a token stream in non-overlapping windows of the context length.
//!
//! The stream is cut into consecutive windows of `context_length` tokens (the last one may be
//! shorter); within each window every token but the first is predicted from the ones before it.
//! So `tokens_scored = Σ (len(window) − 1)`, `mean_nll` is the summed negative log-likelihood
//! (natural log, full-vocabulary softmax in f32, summed in f64) over `tokens_scored`, and
//! `perplexity = exp(mean_nll)`. This is what `transformers` gives for the same windows.

use inheritune_model::tch::{self, Kind, Tensor};
use inheritune_model::CausalLm;
use serde::Serialize;

use crate::error::{Error, Result};

/// The result of [`score_windows`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Perplexity {
    /// Tokens in the stream.
    pub tokens: usize,
    /// Windows the stream was cut into.
    pub windows: usize,
    /// Tokens whose likelihood was scored.
    pub tokens_scored: usize,
    /// Mean negative log-likelihood per scored token (nats).
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub perplexity: f64,
}

/// Summed NLL (f64) of `targets` under `logits` `(B, T, V)`; both already aligned.
fn summed_nll(logits: &Tensor, targets: &Tensor) -> Result<f64> {
    let logp = logits.f_to_kind(Kind::Float)?.f_log_softmax(-1, Kind::Float)?; // (B, T, V)
    let picked = logp.f_gather(-1, &targets.f_unsqueeze(-1)?, false)?; // (B, T, 1)
    Ok(-picked
        .f_to_kind(Kind::Double)?
        .f_sum(Kind::Double)?
        .f_double_value(&[])?)
}

/// Scores `tokens` in windows of `context_length` (at most the model's), `batch_size` windows per
/// forward pass; `progress(done, total)` is called after each batch.
///
/// # Errors
/// Fewer than two tokens, a window longer than the model's context, ids outside the vocabulary,
/// or a torch failure.
pub fn score_windows(
    model: &CausalLm,
    tokens: &[u32],
    context_length: usize,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    if context_length < 2 {
        return Err(Error::Invalid(format!(
            "context length must be at least 2, got {context_length}"
        )));
    }
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    let windows: Vec<&[i64]> = ids.chunks(context_length).filter(|w| w.len() >= 2).collect();
    if windows.is_empty() {
        return Err(Error::Invalid(format!(
            "the text has {} token(s); at least 2 are needed",
            tokens.len()
        )));
    }
    let device = model.device();
    let (mut total, mut scored) = (0.0f64, 0usize);
    let batch_size = batch_size.max(1);
    let mut done = 0;
    // Full-length windows go in batches; a shorter last window runs alone.
    let mut i = 0;
    while i < windows.len() {
        let len = windows[i].len();
        let mut j = i;
        while j < windows.len() && j - i < batch_size && windows[j].len() == len {
            j += 1;
        }
        let flat: Vec<i64> = windows[i..j].iter().flat_map(|w| w.iter().copied()).collect();
        let batch = Tensor::from_slice(&flat)
            .view([(j - i) as i64, len as i64])
            .to_device(device); // (B, T)
        let nll = tch::no_grad(|| -> Result<f64> {
            let logits = model.forward(&batch)?; // (B, T, V)
            let t = len as i64;
            summed_nll(&logits.narrow(1, 0, t - 1), &batch.narrow(1, 1, t - 1))
        })?;
        total += nll;
        scored += (j - i) * (len - 1);
        done += j - i;
        progress(done, windows.len());
        i = j;
    }
    let mean_nll = total / scored as f64;
    Ok(Perplexity {
        tokens: tokens.len(),
        windows: windows.len(),
        tokens_scored: scored,
        mean_nll,
        perplexity: mean_nll.exp(),
    })
}
