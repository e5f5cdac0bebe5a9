//! Data-parallel jobs from the command line: joining one (torchrun, Slurm, MPI, or our own
//! `--nproc` launcher set the variables) and launching one on this machine (`--nproc N`, like
//! torchrun's standalone mode).

use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use inheritune_dist::{LaunchEnv, ProcessGroup};
use inheritune_model::tch::{self, Device};
use inheritune_train::Dist;

use crate::supervise;

use inheritune_model::DeviceSpec;

/// How long a rank waits for the others (rendezvous and every collective) before failing.
pub const DEFAULT_TIMEOUT_S: u64 = 600;

impl Default for DistArgs {
    fn default() -> Self {
        DistArgs {
            nproc: None,
            dist_timeout: DEFAULT_TIMEOUT_S,
        }
    }
}

/// Arguments shared by the verbs that can run on several ranks.
#[derive(Debug, serde::Serialize, serde::Deserialize, Clone, clap::Args)]
pub struct DistArgs {
    /// Start N local ranks (data parallel, like `torchrun --standalone --nproc-per-node N`).
    /// Not needed under torchrun, srun or mpirun: their variables are read.
    #[arg(long, value_name = "N")]
    pub nproc: Option<usize>,
    /// Seconds a rank waits for the others (rendezvous and each collective) before it fails.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_S)]
    pub dist_timeout: u64,
}

/// The device and collective of this process: one process when no launcher variables are set,
/// else rank RANK of WORLD_SIZE, on GPU LOCAL_RANK (CUDA) or with cores / local ranks threads (CPU).
pub fn join(device: DeviceSpec, timeout_s: u64) -> Result<(Device, Dist)> {
    let Some(env) = LaunchEnv::from_env()? else {
        if !device.is_cuda() {
            tch::set_num_threads(cpu_threads(1)? as i32);
        }
        return Ok((device.checked()?, Dist::default()));
    };
    if timeout_s == 0 {
        bail!("--dist-timeout must be positive");
    }
    let dev = match device {
        DeviceSpec::Cpu => {
            tch::set_num_threads(cpu_threads(env.local_world)? as i32);
            Device::Cpu
        }
        DeviceSpec::Cuda(_) => Device::Cuda(env.local_rank),
    };
    inheritune_model::check_device(dev).with_context(|| {
        format!(
            "rank {} of {}: device for LOCAL_RANK {}",
            env.rank, env.world, env.local_rank
        )
    })?;
    let pg = ProcessGroup::join(&env, Duration::from_secs(timeout_s), matches!(dev, Device::Cuda(_)))?;
    Ok((dev, Dist(Arc::new(pg))))
}

/// Threads of a CPU process: `INHERITUNE_THREADS`, else the cores shared by `local_ranks`.
fn cpu_threads(local_ranks: usize) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("INHERITUNE_THREADS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("INHERITUNE_THREADS={v:?} is not a positive integer")),
        Err(_) => Ok((cores / local_ranks.max(1)).max(1)),
    }
}

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Runs this program again as `nproc` local ranks with `args` (the verb's arguments without
/// `--nproc`), meeting on a free port of 127.0.0.1. SIGINT and SIGTERM are forwarded; as soon as
/// one rank fails every other rank is stopped and the launcher fails, naming the rank.
pub fn launch_local(nproc: usize, args: &[String]) -> Result<()> {
    if nproc == 0 {
        bail!("--nproc must be at least 1");
    }
    if LaunchEnv::from_env()?.is_some() {
        bail!("--nproc starts its own ranks, but this process is already a rank of a launched job (RANK/WORLD_SIZE are set): drop --nproc");
    }
    let exe = std::env::current_exe().context("locating the inheritune executable")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free port on 127.0.0.1")?
        .port();
    // SAFETY: installing an async-signal-safe handler (one atomic store).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    eprintln!("[launch] {nproc} ranks on 127.0.0.1:{port}");
    let mut children = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut cmd = Command::new(&exe);
        cmd.args(args).envs(LaunchEnv::local_vars(rank, nproc, port));
        match cmd.spawn() {
            Ok(child) => children.push((rank, child)),
            Err(e) => {
                supervise::stop_all(&mut children);
                return Err(e).with_context(|| format!("starting rank {rank} ({})", exe.display()));
            }
        }
    }
    loop {
        let sig = SIGNAL.swap(0, Ordering::SeqCst);
        if sig != 0 {
            eprintln!("[launch] signal {sig}: forwarding it to every rank");
            supervise::signal_all(&mut children, sig);
            supervise::stop_all(&mut children);
            bail!("interrupted by signal {sig}");
        }
        let mut failed = None;
        let mut running = 0;
        for (rank, child) in children.iter_mut() {
            match child.try_wait().with_context(|| format!("waiting for rank {rank}"))? {
                None => running += 1,
                Some(status) if !status.success() => failed = Some((*rank, status)),
                Some(_) => {}
            }
        }
        if let Some((rank, status)) = failed {
            eprintln!(
                "[launch] rank {rank} of {nproc} failed ({}); stopping the other ranks",
                supervise::describe(status)
            );
            supervise::stop_all(&mut children);
            bail!("rank {rank} of {nproc} failed ({})", supervise::describe(status));
        }
        if running == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// This process's arguments with `--nproc N` (or `--nproc=N`) removed, for the ranks.
pub fn args_without_nproc() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--nproc" {
            args.next();
        } else if !a.starts_with("--nproc=") {
            out.push(a);
        }
    }
    out
}
