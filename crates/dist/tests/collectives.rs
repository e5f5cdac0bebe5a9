//! c10d collectives on 2 Gloo ranks: the test re-runs its own executable as rank 0 and rank 1
//! (torchrun's variables), each rank checks the results against values derived by hand, and the
//! parent asserts both exited cleanly. Also: a dead peer fails the survivor's next collective at
//! once, a stalled one fails it after the timeout, and NCCL asked for where there is no GPU is a
//! one-line error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inheritune_dist::{LaunchEnv, ProcessGroup};
use tch::{Device, Kind, Tensor};

const ROLE: &str = "INHERITUNE_DIST_TEST_ROLE";

/// Runs `test` (this file's test of that name) as 2 ranks; returns their exit statuses.
fn two_ranks(test: &str, role: &str) -> Vec<std::process::ExitStatus> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new(&exe)
                .args(["--exact", test, "--nocapture", "--test-threads", "1"])
                .envs(LaunchEnv::local_vars(rank, 2, port))
                .env(ROLE, role)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    children.into_iter().map(|mut c| c.wait().unwrap()).collect()
}

fn join() -> ProcessGroup {
    let env = LaunchEnv::from_env().unwrap().expect("rank variables");
    ProcessGroup::join(&env, Duration::from_secs(30), false).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

#[test]
fn collectives_on_two_ranks() {
    if std::env::var(ROLE).as_deref() != Ok("collectives") {
        let statuses = two_ranks("collectives_on_two_ranks", "collectives");
        assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
        return;
    }
    let pg = join();
    let (r, w) = (pg.rank() as f64, pg.world());
    assert_eq!((w, pg.local_world()), (2, 2));
    // Sum of dtypes: rank r holds r + 1 → 1 + 2 = 3 everywhere.
    for kind in [Kind::Float, Kind::BFloat16, Kind::Half, Kind::Double, Kind::Int64] {
        let t = Tensor::full([5], r + 1.0, (kind, Device::Cpu));
        pg.all_reduce_sum(&t).unwrap();
        assert_eq!(values(&t), vec![3.0; 5], "{kind:?}");
    }
    // Mean over ranks of mixed shapes, a non-contiguous view and a tensor larger than a bucket,
    // with 64-byte buckets: rank r holds (r + 1) · (i + 1) in tensor i → 1.5 · (i + 1).
    let base = Tensor::full([4, 6], 2.0 * (r + 1.0), (Kind::Float, Device::Cpu));
    let tensors = vec![
        Tensor::full([3], r + 1.0, (Kind::Float, Device::Cpu)),
        base.transpose(0, 1), // non-contiguous, 24 values of 2 (r + 1)
        Tensor::full([2, 2], 3.0 * (r + 1.0), (Kind::Float, Device::Cpu)),
        Tensor::full([40], 4.0 * (r + 1.0), (Kind::Float, Device::Cpu)), // 160 bytes > 64
        Tensor::full([1], 5.0 * (r + 1.0), (Kind::Double, Device::Cpu)), // another dtype
    ];
    pg.all_reduce_mean(&tensors, 64).unwrap();
    for (i, t) in tensors.iter().enumerate() {
        let want = 1.5 * (i + 1) as f64;
        assert!(
            values(t).iter().all(|&v| v == want),
            "tensor {i}: {:?} vs {want}",
            values(t)
        );
    }
    assert!(
        values(&base).iter().all(|&v| v == 3.0),
        "the view wrote through to its base"
    );
    // Broadcast from rank 1.
    let t = Tensor::full([3], r * 10.0 + 7.0, (Kind::Float, Device::Cpu));
    pg.broadcast(&t, 1).unwrap();
    assert_eq!(values(&t), vec![17.0; 3]);
    pg.barrier().unwrap();

    // DDP's Reducer: after prepare + backward, the gradient of y = sum(x · c_r) is the mean of
    // c_0 = 1 and c_1 = 3, i.e. 2; a backward without prepare stays local (no_sync).
    let x = Tensor::ones([10], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let reducer = pg.reducer(&[x.shallow_clone()], 1 << 20).unwrap();
    let c = 2.0 * r + 1.0;
    let local = (&x * c).sum(Kind::Float);
    local.backward();
    assert_eq!(values(&x.grad()), vec![c; 10], "no_sync backward stayed local");
    let y = (&x * c).sum(Kind::Float);
    reducer.prepare(&[&y]).unwrap();
    y.f_backward().unwrap();
    // Accumulated: (c + c) on each rank, averaged → (2 + 6) / 2 = 4.
    assert_eq!(values(&x.grad()), vec![4.0; 10]);
    pg.barrier().unwrap();
}

#[test]
fn a_dead_peer_fails_the_next_collective_at_once() {
    match std::env::var(ROLE).as_deref() {
        Ok("dead-peer") => {}
        _ => {
            let began = Instant::now();
            let statuses = two_ranks("a_dead_peer_fails_the_next_collective_at_once", "dead-peer");
            assert!(began.elapsed() < Duration::from_secs(20), "took {:?}", began.elapsed());
            // Rank 1 exits abruptly; rank 0 checks that its collective failed, and exits 0.
            assert!(statuses[0].success(), "{statuses:?}");
            assert_eq!(statuses[1].code(), Some(3));
            return;
        }
    }
    let pg = join();
    pg.barrier().unwrap();
    if pg.rank() == 1 {
        std::process::exit(3);
    }
    let t = Tensor::ones([1000], (Kind::Float, Device::Cpu));
    let began = Instant::now();
    let err = pg.all_reduce_sum(&t).unwrap_err().to_string();
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(err.starts_with("rank 0 of 2: all-reduce failed: "), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_stalled_peer_fails_the_collective_after_the_timeout() {
    match std::env::var(ROLE).as_deref() {
        Ok("stall") => {}
        _ => {
            let began = Instant::now();
            let statuses = two_ranks("a_stalled_peer_fails_the_collective_after_the_timeout", "stall");
            assert!(began.elapsed() < Duration::from_secs(25), "took {:?}", began.elapsed());
            assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
            return;
        }
    }
    let env = LaunchEnv::from_env().unwrap().expect("rank variables");
    let pg = ProcessGroup::join(&env, Duration::from_secs(2), false).unwrap();
    pg.barrier().unwrap();
    if pg.rank() == 1 {
        // Alive but absent from the collective: rank 0 must give up on its own.
        std::thread::sleep(Duration::from_secs(6));
        return;
    }
    let t = Tensor::ones([10], (Kind::Float, Device::Cpu));
    let began = Instant::now();
    let err = pg.all_reduce_sum(&t).unwrap_err().to_string();
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(
        err.starts_with("rank 0 of 2: all-reduce failed: ") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn nccl_without_a_gpu_is_a_clean_error() {
    if tch::Cuda::is_available() {
        return; // this check is about machines without a GPU
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vars: std::collections::HashMap<&str, String> = LaunchEnv::local_vars(0, 1, port).into_iter().collect();
    let env = LaunchEnv::from_vars(&|k| vars.get(k).cloned()).unwrap().unwrap();
    let err = ProcessGroup::join(&env, Duration::from_secs(10), true)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("rank 0 of 1: joining the job"), "{err}");
    if inheritune_dist::nccl_compiled() {
        assert!(err.to_lowercase().contains("cuda"), "{err}");
    } else {
        assert!(err.contains("no NCCL"), "{err}");
    }
    // Gloo alone still works in a NCCL-enabled build.
    let pg = ProcessGroup::join(&env, Duration::from_secs(10), false).unwrap();
    let t = Tensor::full([2], 4.0, (Kind::Float, Device::Cpu));
    pg.all_reduce_sum(&t).unwrap();
    assert_eq!(values(&t), vec![4.0, 4.0]);
}
