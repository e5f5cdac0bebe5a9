//! Which job this process belongs to, read from the launcher's environment.
//!
//! Recognised launchers, first match wins for each value:
//! - torchrun / `python -m torch.distributed.run` (and any `env://` launcher): `RANK`,
//!   `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`; torchrun's agent
//!   hosts the store itself when `TORCHELASTIC_USE_AGENT_STORE=True`, and
//!   `TORCHELASTIC_RESTART_COUNT` separates the keys of one elastic attempt from the next.
//! - Open MPI (`OMPI_COMM_WORLD_RANK`, `_SIZE`, `_LOCAL_RANK`, `_LOCAL_SIZE`), PMI / MPICH / Intel
//!   MPI (`PMI_RANK`, `PMI_SIZE`, `MPI_LOCALRANKID`, `MPI_LOCALNRANKS`), and Slurm
//!   (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`), with `MASTER_ADDR`
//!   and `MASTER_PORT` exported by the job script.
//!
//! A process is part of a job when any rank or world variable is set; then the set must be
//! complete and consistent, or [`LaunchEnv::from_vars`] names the variable that is wrong.

use crate::error::{Error, Result};

/// torchrun's default port, used when `MASTER_PORT` is unset.
pub const DEFAULT_PORT: u16 = 29500;

const RANK: &[&str] = &["RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"];
const WORLD: &[&str] = &["WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"];
const LOCAL_RANK: &[&str] = &[
    "LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "SLURM_LOCALID",
];
const LOCAL_WORLD: &[&str] = &[
    "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_NTASKS_PER_NODE",
];

/// A process's place in a data-parallel job and where to meet the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// Global rank in `0..world`.
    pub rank: usize,
    /// Number of processes in the job.
    pub world: usize,
    /// Rank on this node (picks the GPU).
    pub local_rank: usize,
    /// Processes on this node (divides the CPU cores).
    pub local_world: usize,
    /// Host of the store (rank 0's node).
    pub master_addr: String,
    /// Port of the store.
    pub master_port: u16,
    /// Whether this process hosts the store: rank 0, unless a launcher's agent already does.
    pub serve_store: bool,
    /// Prefix of every store key (one per elastic attempt).
    pub store_prefix: String,
}

fn first(get: &dyn Fn(&str) -> Option<String>, names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|&n| {
        get(n)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n, v.trim().to_string()))
    })
}

fn number(get: &dyn Fn(&str) -> Option<String>, names: &[&'static str]) -> Result<Option<(&'static str, usize)>> {
    match first(get, names) {
        None => Ok(None),
        Some((name, v)) => v
            .parse::<usize>()
            .map(|n| Some((name, n)))
            .map_err(|_| Error::Env(format!("{name}={v:?} is not a non-negative integer"))),
    }
}

impl LaunchEnv {
    /// Reads this process's environment; `None` when no launcher variable is set (one process).
    ///
    /// # Errors
    /// An incomplete or inconsistent set of variables, named.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), from any variable lookup (for tests and launchers).
    ///
    /// # Errors
    /// An incomplete or inconsistent set of variables, named.
    pub fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let rank = number(get, RANK)?;
        let world = number(get, WORLD)?;
        let (rank, world) = match (rank, world) {
            (None, None) => return Ok(None),
            (Some((r, _)), None) => {
                return Err(Error::Env(format!(
                    "{r} is set but WORLD_SIZE (or its launcher's equivalent) is not"
                )))
            }
            (None, Some((w, _))) => {
                return Err(Error::Env(format!(
                    "{w} is set but RANK (or its launcher's equivalent) is not"
                )))
            }
            (Some(r), Some(w)) => (r, w),
        };
        if world.1 == 0 {
            return Err(Error::Env(format!("{}=0: a job needs at least one process", world.0)));
        }
        if rank.1 >= world.1 {
            return Err(Error::Env(format!(
                "{}={} is not below {}={}",
                rank.0, rank.1, world.0, world.1
            )));
        }
        let local_rank = number(get, LOCAL_RANK)?.map(|(_, n)| n).unwrap_or(rank.1);
        // Slurm writes e.g. `8(x2)` for 8 tasks on each of 2 nodes: the leading count is ours.
        let local_world = first(get, LOCAL_WORLD)
            .and_then(|(_, v)| v.split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok())
            .filter(|&n| n > local_rank)
            .unwrap_or(world.1.max(local_rank + 1));
        let master_addr = match first(get, &["MASTER_ADDR"]) {
            Some((_, a)) => a,
            None if world.1 == 1 => "127.0.0.1".to_string(),
            None => {
                return Err(Error::Env(format!(
                    "{}={} but MASTER_ADDR is not set (export the host of rank 0, and MASTER_PORT)",
                    world.0, world.1
                )))
            }
        };
        let master_port = match first(get, &["MASTER_PORT"]) {
            None => DEFAULT_PORT,
            Some((_, p)) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(Error::Env(format!("MASTER_PORT={p:?} is not a port number (1-65535)"))),
            },
        };
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let attempt = get("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into());
        Ok(Some(LaunchEnv {
            rank: rank.1,
            world: world.1,
            local_rank,
            local_world,
            master_addr,
            master_port,
            serve_store: rank.1 == 0 && !agent_store,
            store_prefix: format!("inheritune/{attempt}/"),
        }))
    }

    /// The variables a launcher sets for `rank` of `world` ranks on this machine (torchrun's
    /// names), meeting at `127.0.0.1:port`.
    pub fn local_vars(rank: usize, world: usize, port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", world.to_string()),
            ("LOCAL_RANK", rank.to_string()),
            ("LOCAL_WORLD_SIZE", world.to_string()),
            ("GROUP_RANK", "0".into()),
            ("MASTER_ADDR", "127.0.0.1".into()),
            ("MASTER_PORT", port.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Option<LaunchEnv>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LaunchEnv::from_vars(&|k| map.get(k).cloned())
    }

    #[test]
    fn no_variables_is_one_process() {
        assert_eq!(env(&[]).unwrap(), None);
    }

    #[test]
    fn torchrun_variables() {
        let e = env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "1234"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world, e.local_rank, e.local_world), (3, 8, 1, 2));
        assert_eq!((e.master_addr.as_str(), e.master_port), ("node0", 1234));
        assert!(!e.serve_store);
        assert_eq!(e.store_prefix, "inheritune/2/");
    }

    #[test]
    fn agent_store_means_rank_zero_is_a_client_too() {
        let vars = [
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ];
        assert!(!env(&vars).unwrap().unwrap().serve_store);
        assert!(env(&vars[..3]).unwrap().unwrap().serve_store);
    }

    #[test]
    fn slurm_and_mpi_variables() {
        let e = env(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "5"),
            ("SLURM_NTASKS_PER_NODE", "8"),
            ("MASTER_ADDR", "n1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rank, e.world, e.local_rank, e.local_world, e.master_port),
            (5, 16, 5, 8, 29500)
        );
        let e = env(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("MASTER_ADDR", "n1"),
            ("MASTER_PORT", "29999"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world, e.local_rank, e.master_port), (1, 2, 1, 29999));
        let e = env(&[("PMI_RANK", "0"), ("PMI_SIZE", "1")]).unwrap().unwrap();
        assert_eq!((e.rank, e.world, e.master_addr.as_str()), (0, 1, "127.0.0.1"));
    }

    #[test]
    fn bad_environments_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("WORLD_SIZE", "2"), ("RANK", "0")], "MASTER_ADDR is not set"),
            (
                &[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "h")],
                "RANK=2 is not below WORLD_SIZE=2",
            ),
            (&[("WORLD_SIZE", "2")], "WORLD_SIZE is set but RANK"),
            (&[("RANK", "1")], "RANK is set but WORLD_SIZE"),
            (&[("WORLD_SIZE", "two"), ("RANK", "0")], "WORLD_SIZE=\"two\""),
            (&[("WORLD_SIZE", "0"), ("RANK", "0")], "WORLD_SIZE=0"),
            (
                &[
                    ("WORLD_SIZE", "2"),
                    ("RANK", "0"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "70000"),
                ],
                "MASTER_PORT=\"70000\"",
            ),
        ];
        for (vars, want) in cases {
            let err = env(vars).unwrap_err().to_string();
            assert!(err.contains(want), "{vars:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }
}
