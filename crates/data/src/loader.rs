//! Deterministic batches from token shards, for training and analysis.
//!
//! A split is one concatenated token stream over its shards, read row group by row group through a
//! small cache, so memory stays near a few row groups whatever the corpus size.
//!
//! A step of a data-parallel run consumes `accum × W` micro-batches; micro-step m on rank r of W
//! reads the step's micro-batch with global index g = m·W + r. Micro-batch g of step s:
//! - `Random` (nanoGPT `get_batch`): each of the B windows starts at an offset uniform in
//!   `[0, len − T)`, drawn from a generator seeded by (seed, s, g); x is the T tokens at the
//!   offset, y the T tokens one later. Windows may cross shard boundaries.
//! - `Sequential` (FineWeb `DataLoaderLite`, without its reset bug): the B·T + 1 tokens at offset
//!   `(s·accum·W + g)·B·T = ((s·accum + m)·W + r)·B·T` of the stream, wrapping around after
//!   `⌊(len − 1)/(B·T)⌋` chunks; x is all but the last token, y all but the first.
//!
//! Both are pure functions of (seed, step, global index): a resumed run sees exactly the batches it
//! would have seen, ranks read disjoint chunks (sequential) or independent draws (random), and a
//! step's set of micro-batches depends only on `accum × W`, not on how it is split across ranks,
//! so 2 ranks × accum A read what 1 process × 2A reads.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::prepare::Manifest;
use crate::shards::{read_tokens, row_groups};

const CACHE_GROUPS: usize = 16;

/// One split of a prepared folder as a random-access token stream.
pub struct TokenStream {
    shards: Vec<(PathBuf, u64)>,
    /// First stream offset of each shard.
    starts: Vec<u64>,
    total: u64,
    layouts: HashMap<usize, Vec<(u64, u64)>>,
    cache: HashMap<(usize, usize), Arc<Vec<u32>>>,
    order: VecDeque<(usize, usize)>,
}

impl TokenStream {
    /// Opens split `split` (`train` or `val`) of a prepared folder.
    ///
    /// # Errors
    /// A missing or malformed manifest, or a split with no tokens.
    pub fn open(dir: &Path, split: &str) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let hint = if split == "val" {
            " (prepare it with --val-fraction, --val-tokens or --val-docs)"
        } else {
            ""
        };
        if !manifest.splits.contains_key(split) {
            return Err(Error::Invalid(format!(
                "{}: there is no {split:?} split (it has {}){hint}",
                dir.display(),
                manifest
                    .splits
                    .keys()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let shards = manifest.split_shards(dir, split);
        if shards.iter().map(|s| s.1).sum::<u64>() == 0 {
            return Err(Error::Invalid(format!(
                "{}: the {split} split has no tokens{hint}",
                dir.display()
            )));
        }
        let mut stream = Self::from_shards(shards);
        // The manifest's counts address the stream: check them against the shards' own metadata.
        for (i, (path, claimed)) in stream.shards.iter().enumerate() {
            let layout = row_groups(path)?;
            let held: u64 = layout.iter().map(|g| g.1).sum();
            if held != *claimed {
                return Err(Error::Invalid(format!(
                    "{}: the manifest says {claimed} tokens but the shard holds {held}",
                    path.display()
                )));
            }
            stream.layouts.insert(i, layout);
        }
        Ok(stream)
    }

    /// A stream over these shards (path, token count), in order.
    pub fn from_shards(shards: Vec<(PathBuf, u64)>) -> Self {
        let mut starts = Vec::with_capacity(shards.len());
        let mut total = 0;
        for (_, n) in &shards {
            starts.push(total);
            total += n;
        }
        TokenStream {
            shards,
            starts,
            total,
            layouts: HashMap::new(),
            cache: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Tokens in the stream.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn group(&mut self, shard: usize, group: usize) -> Result<Arc<Vec<u32>>> {
        if let Some(g) = self.cache.get(&(shard, group)) {
            return Ok(g.clone());
        }
        let tokens = Arc::new(read_tokens(&self.shards[shard].0, Some(vec![group]))?);
        if self.order.len() >= CACHE_GROUPS {
            if let Some(old) = self.order.pop_front() {
                self.cache.remove(&old);
            }
        }
        self.order.push_back((shard, group));
        self.cache.insert((shard, group), tokens.clone());
        Ok(tokens)
    }

    /// The `len` tokens starting at stream offset `offset`.
    ///
    /// # Errors
    /// A range beyond the stream, or an unreadable shard.
    pub fn read(&mut self, offset: u64, len: usize) -> Result<Vec<u32>> {
        if offset + len as u64 > self.total {
            return Err(Error::Invalid(format!(
                "tokens {offset}..{} are beyond the stream of {}",
                offset + len as u64,
                self.total
            )));
        }
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while out.len() < len {
            let shard = self.starts.partition_point(|&s| s <= pos) - 1;
            let local = pos - self.starts[shard];
            if !self.layouts.contains_key(&shard) {
                let layout = row_groups(&self.shards[shard].0)?;
                self.layouts.insert(shard, layout);
            }
            let layout = &self.layouts[&shard];
            let group = layout.partition_point(|&(s, _)| s <= local) - 1;
            let (gstart, glen) = layout[group];
            let tokens = self.group(shard, group)?;
            let from = (local - gstart) as usize;
            let take = (glen as usize - from).min(len - out.len());
            out.extend_from_slice(&tokens[from..from + take]);
            pos += take as u64;
        }
        Ok(out)
    }
}

/// How training windows are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// nanoGPT `get_batch`.
    Random,
    /// `DataLoaderLite`, rank-strided over the concatenated stream.
    Sequential,
}

/// Inputs and targets of one micro-batch, row-major `(batch, seq)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Inputs.
    pub x: Vec<i64>,
    /// Targets (inputs shifted by one).
    pub y: Vec<i64>,
    /// Rows.
    pub batch: usize,
    /// Columns.
    pub seq: usize,
}

/// Deterministic micro-batches of one split.
pub struct Loader {
    stream: TokenStream,
    order: Order,
    batch: usize,
    seq: usize,
    seed: u64,
    rank: u64,
    world: u64,
}

impl Loader {
    /// A loader over `stream`.
    ///
    /// # Errors
    /// A zero batch or sequence length, a rank outside the world, or a stream too short for one window.
    pub fn new(
        stream: TokenStream,
        order: Order,
        batch: usize,
        seq: usize,
        seed: u64,
        rank: u64,
        world: u64,
    ) -> Result<Self> {
        if batch == 0 || seq == 0 || world == 0 || rank >= world {
            return Err(Error::Invalid(format!(
                "invalid loader: batch {batch}, seq {seq}, rank {rank} of {world}"
            )));
        }
        let need = match order {
            Order::Random => seq as u64 + 1,
            Order::Sequential => (batch * seq) as u64 + 1,
        };
        if stream.len() < need {
            return Err(Error::Invalid(format!(
                "the stream has {} tokens; a batch needs {need}",
                stream.len()
            )));
        }
        Ok(Loader {
            stream,
            order,
            batch,
            seq,
            seed,
            rank,
            world,
        })
    }

    /// This rank's micro-batch `micro` of `step` (with `accum` micro-batches per step on each
    /// rank): the step's global micro-batch `micro · world + rank` of `accum · world`.
    ///
    /// # Errors
    /// An unreadable shard.
    pub fn micro_batch(&mut self, step: u64, micro: u64, accum: u64) -> Result<Batch> {
        self.batch(step, micro * self.world + self.rank, accum * self.world)
    }

    /// Micro-batch `index` of the `per_step` micro-batches of `step`, the same on every rank
    /// (evaluation batches are shared out by index).
    ///
    /// # Errors
    /// An unreadable shard.
    pub fn batch(&mut self, step: u64, index: u64, per_step: u64) -> Result<Batch> {
        let (b, t) = (self.batch, self.seq);
        let mut x = Vec::with_capacity(b * t);
        let mut y = Vec::with_capacity(b * t);
        match self.order {
            Order::Random => {
                let mut state = crate::rng::mix(crate::rng::mix(crate::rng::mix(self.seed) ^ step) ^ index);
                let span = self.stream.len() - t as u64;
                for _ in 0..b {
                    state = crate::rng::mix(state);
                    let offset = crate::rng::below(state, span);
                    let w = self.stream.read(offset, t + 1)?;
                    x.extend(w[..t].iter().map(|&v| v as i64));
                    y.extend(w[1..].iter().map(|&v| v as i64));
                }
            }
            Order::Sequential => {
                let chunk = (b * t) as u64;
                let chunks = (self.stream.len() - 1) / chunk;
                let c = (step.wrapping_mul(per_step).wrapping_add(index)) % chunks;
                let w = self.stream.read(c * chunk, b * t + 1)?;
                x.extend(w[..b * t].iter().map(|&v| v as i64));
                y.extend(w[1..].iter().map(|&v| v as i64));
            }
        }
        Ok(Batch { x, y, batch: b, seq: t })
    }

    /// The underlying stream (e.g. for a full pass).
    pub fn stream_mut(&mut self) -> &mut TokenStream {
        &mut self.stream
    }
}

/// Offsets of a deterministic full pass: consecutive windows of `seq + 1` tokens overlapping by one
/// (every token but the first is predicted exactly once), `0, seq, 2·seq, …`.
pub fn full_pass_offsets(len: u64, seq: usize) -> Vec<u64> {
    let seq = seq as u64;
    if seq == 0 || len < seq + 1 {
        return Vec::new();
    }
    (0..=(len - seq - 1) / seq).map(|i| i * seq).collect()
}
