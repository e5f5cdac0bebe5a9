//! Mean cross-entropy over a whole prepared split: consecutive windows of `seq + 1` tokens
//! overlapping by one (every token but the first predicted exactly once), token-weighted,
//! deterministic. This is the final validation loss of a training run and `inheritune eval loss`.

use std::path::Path;

use inheritune_data::loader::{full_pass_offsets, TokenStream};
use inheritune_model::tch::{self, Kind, Tensor};
use inheritune_model::{autocast, CausalLm, DType};

use crate::error::Result;

/// What `inheritune eval loss` prints: the loss of one split under one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossReport {
    /// The model folder.
    pub model: std::path::PathBuf,
    /// The prepared data folder.
    pub data: std::path::PathBuf,
    /// The split.
    pub split: String,
    /// Window length.
    pub seq_len: usize,
    /// Token-weighted mean cross-entropy in nats.
    pub loss: f64,
    /// Tokens scored.
    pub tokens: u64,
}

/// (mean cross-entropy in nats, tokens scored) of `split` in the prepared folder `data`.
///
/// # Errors
/// Unreadable shards, a window longer than the model's context, a model failure.
pub fn split_loss(
    model: &CausalLm,
    data: &Path,
    split: &str,
    seq: usize,
    batch: usize,
    dtype: DType,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(f64, u64)> {
    let (sum, count) = split_loss_shard(model, data, split, seq, batch, dtype, (0, 1), None, progress)?;
    Ok((if count > 0 { sum / count as f64 } else { f64::NAN }, count))
}

/// One rank's share of [`split_loss`]: batch i of the pass goes to rank i mod world; returns the
/// (summed cross-entropy in nats, tokens scored) of this rank's batches. Adding every rank's
/// pair and dividing gives the one-process mean (the same per-batch terms, summed in f64).
/// `limit` keeps only the first windows of the pass.
///
/// # Errors
/// As [`split_loss`].
#[allow(clippy::too_many_arguments)]
pub fn split_loss_shard(
    model: &CausalLm,
    data: &Path,
    split: &str,
    seq: usize,
    batch: usize,
    dtype: DType,
    (rank, world): (usize, usize),
    limit: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(f64, u64)> {
    let mut stream = TokenStream::open(data, split)?;
    let mut offsets = full_pass_offsets(stream.len(), seq);
    if let Some(n) = limit {
        offsets.truncate(n);
    }
    let (mut sum, mut count) = (0.0f64, 0u64);
    let device = model.device();
    let world = world.max(1);
    for (i, chunk) in offsets.chunks(batch.max(1)).enumerate() {
        if i % world != rank {
            continue;
        }
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for &o in chunk {
            let w = stream.read(o, seq + 1)?;
            xs.extend(w[..seq].iter().map(|&v| v as i64));
            ys.extend(w[1..].iter().map(|&v| v as i64));
        }
        let shape = [chunk.len() as i64, seq as i64];
        let x = Tensor::from_slice(&xs).view(shape).to_device(device);
        let y = Tensor::from_slice(&ys).view(shape).to_device(device);
        model.check_input(&x)?;
        let loss = tch::no_grad(|| autocast(device, dtype, || model.loss(&x, &y)))??;
        let n = (chunk.len() * seq) as u64;
        sum += loss.to_kind(Kind::Double).double_value(&[]) * n as f64;
        count += n;
        progress(i + 1, offsets.len().div_ceil(batch.max(1)));
    }
    Ok((sum, count))
}
