//! Data parallelism: which rank this process is, how many there are, and the collectives the
//! loop needs. [`SingleProcess`] (the default) makes every collective the identity;
//! `inheritune_dist::ProcessGroup` (PyTorch's c10d: Gloo on CPU, NCCL on CUDA) implements the
//! trait for real jobs.
//!
//! What the loop does with it (spec of the semantics in the README):
//! - gradients are averaged once per optimizer step, after the last micro-step's backward
//!   ([`Collective::average_gradients`]), or during it with [`Collective::overlapped`];
//! - the logged loss and every evaluation are sums over ranks ([`Collective::sum`]);
//! - the initial parameters are broadcast from rank 0, and only rank 0 writes; the others wait
//!   at a [`Collective::barrier`] so no rank reads a half-written checkpoint.

use std::fmt;
use std::sync::Arc;

use inheritune_model::tch::Tensor;

use crate::error::Result;

/// The collectives of a data-parallel run. Every rank must make the same calls in the same order.
pub trait Collective: Send + Sync {
    /// This process's rank in `0..world()`.
    fn rank(&self) -> u64;
    /// The number of processes.
    fn world(&self) -> u64;
    /// Replaces every gradient with its mean over ranks (all-reduce sum / world), in place.
    ///
    /// # Errors
    /// A failed collective.
    fn average_gradients(&self, grads: &[Tensor]) -> Result<()>;
    /// Replaces `t` (contiguous) with its sum over ranks, in place.
    ///
    /// # Errors
    /// A failed collective.
    fn sum(&self, t: &Tensor) -> Result<()>;
    /// Replaces `t` (contiguous) with rank `root`'s, in place.
    ///
    /// # Errors
    /// A failed collective.
    fn broadcast(&self, t: &Tensor, root: u64) -> Result<()>;
    /// Waits for every rank.
    ///
    /// # Errors
    /// A failed collective (a rank died or stalled past the timeout).
    fn barrier(&self) -> Result<()>;
    /// An engine that averages the gradients of `params` during backward (DDP's Reducer), if
    /// this collective has one; `None` means use [`average_gradients`](Self::average_gradients).
    ///
    /// # Errors
    /// The engine refused the parameters.
    fn overlapped(&self, _params: &[Tensor]) -> Result<Option<Box<dyn OverlappedReduce>>> {
        Ok(None)
    }
}

/// Gradient averaging overlapped with backward: [`arm`](Self::arm) before the backward whose
/// gradients must be averaged (the last micro-step); backwards without it accumulate locally.
pub trait OverlappedReduce {
    /// Arms the next backward of `loss`.
    ///
    /// # Errors
    /// The engine refused.
    fn arm(&self, loss: &Tensor) -> Result<()>;
}

/// One process: rank 0 of 1, every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> u64 {
        0
    }
    fn world(&self) -> u64 {
        1
    }
    fn average_gradients(&self, _grads: &[Tensor]) -> Result<()> {
        Ok(())
    }
    fn sum(&self, _t: &Tensor) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _t: &Tensor, _root: u64) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

impl Collective for inheritune_dist::ProcessGroup {
    fn rank(&self) -> u64 {
        inheritune_dist::ProcessGroup::rank(self) as u64
    }
    fn world(&self) -> u64 {
        inheritune_dist::ProcessGroup::world(self) as u64
    }
    fn average_gradients(&self, grads: &[Tensor]) -> Result<()> {
        Ok(self.all_reduce_mean(grads, inheritune_dist::DEFAULT_BUCKET_BYTES)?)
    }
    fn sum(&self, t: &Tensor) -> Result<()> {
        Ok(self.all_reduce_sum(t)?)
    }
    fn broadcast(&self, t: &Tensor, root: u64) -> Result<()> {
        Ok(inheritune_dist::ProcessGroup::broadcast(self, t, root as usize)?)
    }
    fn barrier(&self) -> Result<()> {
        Ok(inheritune_dist::ProcessGroup::barrier(self)?)
    }
    fn overlapped(&self, params: &[Tensor]) -> Result<Option<Box<dyn OverlappedReduce>>> {
        let reducer = self.reducer(params, inheritune_dist::DEFAULT_BUCKET_BYTES)?;
        Ok(Some(Box::new(reducer)))
    }
}

impl OverlappedReduce for inheritune_dist::Reducer {
    fn arm(&self, loss: &Tensor) -> Result<()> {
        Ok(self.prepare(&[loss])?)
    }
}

/// A shared handle on the collective of a run.
#[derive(Clone)]
pub struct Dist(pub Arc<dyn Collective>);

impl Default for Dist {
    fn default() -> Self {
        Dist(Arc::new(SingleProcess))
    }
}

impl fmt::Debug for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dist(rank {} of {})", self.0.rank(), self.0.world())
    }
}
