//! The seam for data parallelism: which rank this process is, how many there are, and the one
//! collective the loop needs, called once per step between the last backward and clipping.
//!
//! The loader already strides by (rank, world), so ranks read disjoint data; only rank 0 writes
//! metrics and checkpoints. An MPI (CPU) or NCCL (GPU) engine implements [`Collective`] in a later
//! crate; [`SingleProcess`] is the default and does nothing.

use std::fmt;
use std::sync::Arc;

use inheritune_model::tch::Tensor;

use crate::error::Result;

/// Averages gradients across the processes of a data-parallel run.
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
}

/// One process: rank 0 of 1, averaging is the identity.
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
