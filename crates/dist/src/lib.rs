//! Data-parallel collectives for `tch` tensors on PyTorch's own distributed engine, c10d: the
//! engine behind `torch.distributed` and DDP, inside the libtorch that `tch` links.
//!
//! - Rendezvous as `init_process_group("env://")` does: a `TCPStore` at MASTER_ADDR:MASTER_PORT,
//!   hosted by rank 0 or by torchrun's agent ([`LaunchEnv`] reads torchrun, Slurm, Open MPI and
//!   PMI variables).
//! - `ProcessGroupGloo` for CPU tensors, `ProcessGroupNCCL` for CUDA tensors (when the build found
//!   the CUDA headers, see [`nccl_compiled`]).
//! - Gradient averaging in flat buckets, sums, broadcast, barrier, and DDP's C++ `Reducer`, which
//!   overlaps the all-reduce with backward.
//!
//! Every collective is bounded by the group's timeout: a peer that died fails the next
//! collective at once, one that stalls fails it after the timeout. A group that failed is
//! unusable: exit non-zero and let the launcher (or a rerun with `--resume`) restart.
//!
//! ```no_run
//! use std::time::Duration;
//! use inheritune_dist::{LaunchEnv, ProcessGroup};
//! use tch::Tensor;
//! # fn main() -> inheritune_dist::Result<()> {
//! if let Some(env) = LaunchEnv::from_env()? {
//!     let pg = ProcessGroup::join(&env, Duration::from_secs(60), false)?;
//!     let t = Tensor::from_slice(&[pg.rank() as f32]);
//!     pg.all_reduce_sum(&t)?; // 0 + 1 + ... + (world - 1) on every rank
//! }
//! # Ok(())
//! # }
//! ```

mod error;
pub mod launch;
mod shim;

use std::ffi::{c_int, c_void, CString};
use std::sync::Mutex;
use std::time::Duration;

use tch::Tensor;

pub use error::{Error, Result};
pub use launch::LaunchEnv;

/// DDP's default bucket size: 25 MiB.
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Whether this build compiled ProcessGroupNCCL in (CUDA tensors across ranks).
pub fn nccl_compiled() -> bool {
    shim::has_nccl()
}

/// This process's membership of a job's default group: Gloo for CPU tensors, and NCCL for CUDA
/// tensors when joined with `nccl`. Calls are serialized (c10d needs every rank to issue the
/// same collectives in the same order).
pub struct ProcessGroup {
    handle: Mutex<shim::Handle>,
    rank: usize,
    world: usize,
    local_rank: usize,
    local_world: usize,
}

// SAFETY: the handle is only used under the mutex, and c10d's backends are thread-safe.
unsafe impl Send for ProcessGroup {}
// SAFETY: as above.
unsafe impl Sync for ProcessGroup {}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", self.rank, self.world)
    }
}

fn ptr(t: &Tensor) -> *mut c_void {
    // tch's C_tensor is an at::Tensor*; collectives write the storage, never the handle.
    t.as_ptr() as *mut c_void
}

impl ProcessGroup {
    /// Rendezvous with the other ranks of `env`. `timeout` bounds the rendezvous and every later
    /// collective; `nccl` also creates a NCCL group on GPU `env.local_rank`.
    ///
    /// # Errors
    /// A store that cannot be served (port in use) or reached, a rank that does not arrive within
    /// `timeout`, NCCL asked of a build or machine without it.
    pub fn join(env: &LaunchEnv, timeout: Duration, nccl: bool) -> Result<Self> {
        let join_err = |message: String| Error::Join {
            rank: env.rank,
            world: env.world,
            addr: env.master_addr.clone(),
            port: env.master_port,
            message,
        };
        let addr =
            CString::new(env.master_addr.as_str()).map_err(|_| join_err("MASTER_ADDR contains a NUL byte".into()))?;
        let prefix = CString::new(env.store_prefix.as_str()).map_err(|_| join_err("bad store prefix".into()))?;
        let handle = shim::init(
            env.rank as c_int,
            env.world as c_int,
            &addr,
            env.master_port as c_int,
            env.serve_store,
            &prefix,
            timeout.as_millis().min(i64::MAX as u128) as i64,
            nccl,
            env.local_rank as c_int,
        )
        .map_err(join_err)?;
        Ok(ProcessGroup {
            handle: Mutex::new(handle),
            rank: env.rank,
            world: env.world,
            local_rank: env.local_rank,
            local_world: env.local_world,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// The number of ranks.
    pub fn world(&self) -> usize {
        self.world
    }
    /// The rank on this node.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }
    /// The ranks on this node.
    pub fn local_world(&self) -> usize {
        self.local_world
    }

    fn call<R>(&self, op: &'static str, f: impl FnOnce(*mut c_void) -> std::result::Result<R, String>) -> Result<R> {
        let guard = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        f(guard.0).map_err(|message| Error::Collective {
            rank: self.rank,
            world: self.world,
            op,
            message,
        })
    }

    /// In place: `t` (contiguous) becomes the sum over ranks.
    ///
    /// # Errors
    /// A failed or timed-out collective.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        self.call("all-reduce", |h| shim::all_reduce_sum(h, ptr(t)))
    }

    /// In place: every tensor becomes its mean over ranks; consecutive tensors of one dtype and
    /// device travel together in flat buckets of at most `bucket_bytes`.
    ///
    /// # Errors
    /// A failed or timed-out collective.
    pub fn all_reduce_mean(&self, ts: &[Tensor], bucket_bytes: usize) -> Result<()> {
        let ps: Vec<*mut c_void> = ts.iter().map(ptr).collect();
        let world = self.world as f64;
        self.call("gradient all-reduce", |h| {
            shim::all_reduce_buckets(h, &ps, bucket_bytes, world)
        })
    }

    /// In place: every rank's `t` (contiguous) becomes `root`'s.
    ///
    /// # Errors
    /// A failed or timed-out collective.
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        self.call("broadcast", |h| shim::broadcast(h, ptr(t), root as c_int))
    }

    /// Waits until every rank has arrived.
    ///
    /// # Errors
    /// A failed or timed-out barrier.
    pub fn barrier(&self) -> Result<()> {
        self.call("barrier", shim::barrier)
    }

    /// DDP's Reducer over `params` (leaf tensors that require grad, in a fixed order on every
    /// rank): after [`Reducer::prepare`] with the forward's outputs, the next backward averages
    /// their gradients across ranks bucket by bucket while backward still runs. Every parameter
    /// must receive a gradient in that backward.
    ///
    /// # Errors
    /// Parameters c10d refuses (mixed devices, sparse).
    pub fn reducer(&self, params: &[Tensor], bucket_bytes: usize) -> Result<Reducer> {
        let ps: Vec<*mut c_void> = params.iter().map(ptr).collect();
        let raw = self.call("creating the DDP reducer", |h| shim::reducer_new(h, &ps, bucket_bytes))?;
        Ok(Reducer {
            raw,
            rank: self.rank,
            world: self.world,
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let handle = self.handle.get_mut().unwrap_or_else(|e| e.into_inner());
        shim::free(handle.0);
    }
}

/// DDP's bucketed, backward-overlapped gradient averaging (see [`ProcessGroup::reducer`]).
pub struct Reducer {
    raw: shim::Handle,
    rank: usize,
    world: usize,
}

// SAFETY: the Reducer is only driven from the thread that runs backward, one call at a time.
unsafe impl Send for Reducer {}
// SAFETY: as above.
unsafe impl Sync for Reducer {}

impl Reducer {
    /// Arms the next backward (from `outputs`) to average gradients across ranks. A backward
    /// without it accumulates locally, like DDP's `no_sync`. A communication failure surfaces as
    /// an error of that backward (use tch's fallible `f_backward`).
    ///
    /// # Errors
    /// c10d refused (e.g. the previous reduction did not finish).
    pub fn prepare(&self, outputs: &[&Tensor]) -> Result<()> {
        let ps: Vec<*mut c_void> = outputs.iter().map(|t| ptr(t)).collect();
        shim::reducer_prepare(self.raw.0, &ps).map_err(|message| Error::Collective {
            rank: self.rank,
            world: self.world,
            op: "DDP reducer",
            message,
        })
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        shim::reducer_free(self.raw.0);
    }
}
