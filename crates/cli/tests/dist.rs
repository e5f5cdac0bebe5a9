//! Data-parallel training on c10d (Gloo, CPU), through `inheritune train --nproc N` and through
//! `python -m torch.distributed.run --no-python`:
//! - 2 ranks × accumulation A equal 1 process × 2A (`mean`, sequential data): every logged loss
//!   and gradient norm within 1e-5 relative, the final weights within 1e-5, with the bucketed
//!   all-reduce and with the overlapped Reducer;
//! - `sum` equals an independent PyTorch DDP run of 2 ranks (torchrun semantics of the released
//!   code, `crates/train/tests/fixtures/parity/make_ddp.py`) within 1e-4;
//! - a rank killed with SIGKILL stops the job at once with a non-zero exit, and `--resume` on 2
//!   ranks ends bit-identical to the uninterrupted run; on 1 rank it continues the same data
//!   order (within 1e-5), and a `sum` run refuses to change its world size;
//! - bad launch environments fail within the timeout with one line naming the problem.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inheritune_model::tch::Tensor;

mod common;
use common::{bin, metrics as lines, ok, prepare, spawn_train, tiny_config, train, workspace};

/// The python of the torch venv that `cargo xtask setup` links as `.libtorch`.
fn python() -> PathBuf {
    let torch = workspace()
        .join(".libtorch")
        .canonicalize()
        .expect(".libtorch: run `cargo xtask setup`");
    // <venv>/lib/python3.X/site-packages/torch
    let venv = torch.ancestors().nth(4).expect("venv above site-packages");
    venv.join("bin").join("python")
}

fn write(dir: &Path, name: &str, data: &Path, train: &str) -> PathBuf {
    let base = "micro_batch = 2\nseq_len = 16\nlr = 3e-3\nmin_lr = 3e-4\nwarmup_steps = 4\neval_interval = 5\neval_iters = 3\nkeep_last = 1\nseed = 11";
    tiny_config(dir, name, data, "order = \"sequential\"", &format!("{base}\n{train}"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-6)
}

/// Every metrics line of `a` and `b` agrees: kinds, steps and tokens exactly, losses, gradient
/// norms and learning rates within `rel`.
fn same_metrics(a: &Path, b: &Path, rel: f64) {
    let (a, b) = (lines(a), lines(b));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for key in ["kind", "step", "tokens"] {
            assert_eq!(x[key], y[key], "{key}: {x} vs {y}");
        }
        for key in ["loss", "val_loss", "grad_norm", "lr"] {
            match (x[key].as_f64(), y[key].as_f64()) {
                (Some(p), Some(q)) => assert!(close(p, q, rel), "{key}: {x} vs {y}"),
                (None, None) => {}
                _ => panic!("{key}: {x} vs {y}"),
            }
        }
    }
}

fn max_weight_diff(a: &Path, b: &Path) -> f64 {
    let read = |p: &Path| -> std::collections::BTreeMap<String, Tensor> {
        Tensor::read_safetensors(p.join("final/model.safetensors"))
            .unwrap()
            .into_iter()
            .collect()
    };
    let (a, b) = (read(a), read(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn two_ranks_equal_one_process_with_twice_the_accumulation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let solo_cfg = write(tmp.path(), "solo.toml", &data, "max_steps = 12\ngrad_accum = 4");
    let duo_cfg = write(tmp.path(), "duo.toml", &data, "max_steps = 12\ngrad_accum = 2");
    let overlap_cfg = write(
        tmp.path(),
        "overlap.toml",
        &data,
        "max_steps = 12\ngrad_accum = 2\noverlap = true",
    );
    let (solo, duo, overlap) = (
        tmp.path().join("solo"),
        tmp.path().join("duo"),
        tmp.path().join("overlap"),
    );
    ok(&train(&solo_cfg, &solo, &[]));
    ok(&train(&duo_cfg, &duo, &["--nproc", "2"]));
    ok(&train(&overlap_cfg, &overlap, &["--nproc", "2"]));
    for run in [&duo, &overlap] {
        same_metrics(run, &solo, 1e-5);
        let diff = max_weight_diff(run, &solo);
        assert!(diff < 1e-5, "{}: final weights differ by {diff}", run.display());
        // Tokens per step count every rank.
        assert_eq!(lines(run)[1]["tokens"], 2 * 16 * 4);
    }
}

#[test]
fn sum_mode_under_torchrun_equals_pytorch_ddp() {
    let fixture = workspace().join("crates/train/tests/fixtures/parity");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("ddp_expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("ddp.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nconfig = \"{init}/config.json\"\n[data]\ndir = \"{data}\"\norder = \"sequential\"\n[train]\n\
             micro_batch = 2\nseq_len = 16\ngrad_accum = 2\ngrad_accum_mode = \"sum\"\nmax_steps = 8\nlr = 1e-2\nmin_lr = 1e-3\n\
             warmup_steps = 2\ndecay_steps = 8\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\nweight_decay = 0.1\ngrad_clip = 1.0\n\
             eval_interval = 100\neval_iters = 1\n",
            init = fixture.join("init").display(),
            data = fixture.join("data").display()
        ),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let out = Command::new(python())
        .args([
            "-m",
            "torch.distributed.run",
            "--no-python",
            "--nproc-per-node",
            "2",
            "--standalone",
        ])
        .arg(env!("CARGO_BIN_EXE_inheritune"))
        .arg("train")
        .arg("--config")
        .arg(&config)
        .arg("--run-dir")
        .arg(&run)
        .arg("--init")
        .arg(fixture.join("init"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    ok(&out);
    let train: Vec<serde_json::Value> = lines(&run).into_iter().filter(|l| l["kind"] == "train").collect();
    assert_eq!(train.len(), 8);
    for (s, line) in train.iter().enumerate() {
        for key in ["loss", "grad_norm", "lr"] {
            let (ours, want) = (line[key].as_f64().unwrap(), expected[key][s].as_f64().unwrap());
            assert!(close(ours, want, 1e-4), "step {s} {key}: {ours} vs DDP {want}");
        }
    }
    let last = lines(&run).pop().unwrap();
    let want = expected["final_val_loss"].as_f64().unwrap();
    assert!(
        close(last["val_loss"].as_f64().unwrap(), want, 1e-4),
        "final {last} vs {want}"
    );
    assert_eq!(last["kind"], "final");
}

#[test]
fn killed_rank_stops_the_job_and_resume_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let mean = write(tmp.path(), "mean.toml", &data, "max_steps = 60\ntokens_per_step = 128");
    let sum = write(
        tmp.path(),
        "sum.toml",
        &data,
        "max_steps = 60\ntokens_per_step = 128\ngrad_accum_mode = \"sum\"",
    );
    let full = tmp.path().join("full");
    ok(&train(&mean, &full, &["--nproc", "2"]));

    let killed = |config: &Path, name: &str| -> PathBuf {
        let run = tmp.path().join(name);
        let launcher = spawn_train(config, &run, &["--nproc", "2", "--dist-timeout", "20"], Stdio::piped());
        // Wait for a checkpoint after step 0, then kill rank 1 (the launcher's second child).
        let began = Instant::now();
        while !run.join("step-00000005/DONE").exists() {
            assert!(began.elapsed() < Duration::from_secs(60), "no checkpoint appeared");
            std::thread::sleep(Duration::from_millis(5));
        }
        let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", launcher.id())).unwrap();
        let rank1: i32 = kids.split_whitespace().nth(1).unwrap().parse().unwrap();
        let killed_at = Instant::now();
        Command::new("kill").args(["-9", &rank1.to_string()]).status().unwrap();
        let out = launcher.wait_with_output().unwrap();
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "the job took {:?} to stop",
            killed_at.elapsed()
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("of 2 failed (signal 9"), "{err}");
        assert!(
            lines(&run).len() < lines(&full).len(),
            "the run finished before the kill"
        );
        run
    };
    let part = killed(&mean, "part");
    let copy = tmp.path().join("part-1");
    assert!(Command::new("cp")
        .arg("-r")
        .arg(&part)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    ok(&train(&mean, &part, &["--nproc", "2", "--resume"]));
    same_metrics(&part, &full, 0.0);
    let weights = |run: &Path| std::fs::read(run.join("final/model.safetensors")).unwrap();
    assert_eq!(weights(&part), weights(&full), "final weights differ");

    // One process with the same global batch continues the same data order.
    ok(&train(&mean, &copy, &["--resume"]));
    same_metrics(&copy, &full, 1e-5);

    // `sum` scales the gradient by the per-rank accumulation: a new world size is refused.
    let part = killed(&sum, "sum-part");
    let out = train(&sum, &part, &["--resume"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("world size 2") && err.contains("world size 1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn bad_launch_environments_fail_fast_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = prepare(tmp.path());
    let config = write(tmp.path(), "run.toml", &data, "max_steps = 2");
    let port = |p: u16| p.to_string();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("WORLD_SIZE", "2".into()), ("RANK", "0".into())],
            "MASTER_ADDR is not set",
        ),
        (
            vec![
                ("WORLD_SIZE", "2".into()),
                ("RANK", "2".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
            ],
            "RANK=2 is not below WORLD_SIZE=2",
        ),
        (
            vec![
                ("WORLD_SIZE", "2".into()),
                ("RANK", "0".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
                ("MASTER_PORT", port(busy_port)),
            ],
            "EADDRINUSE",
        ),
        // Rank 1 never arrives.
        (
            vec![
                ("WORLD_SIZE", "2".into()),
                ("RANK", "0".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
                ("MASTER_PORT", port(free_port)),
            ],
            "1/2 clients joined",
        ),
        // Rank 0 never serves the store.
        (
            vec![
                ("SLURM_NTASKS", "2".into()),
                ("SLURM_PROCID", "1".into()),
                ("MASTER_ADDR", "127.0.0.1".into()),
                ("MASTER_PORT", port(free_port)),
            ],
            "timed out",
        ),
    ];
    for (vars, want) in cases {
        let began = Instant::now();
        let out = bin()
            .arg("train")
            .arg("--config")
            .arg(&config)
            .arg("--run")
            .arg(tmp.path().join("run"))
            .args(["--dist-timeout", "2"])
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        assert!(
            began.elapsed() < Duration::from_secs(12),
            "{vars:?} took {:?}",
            began.elapsed()
        );
        assert!(!out.status.success(), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{vars:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{vars:?}: {err}");
    }
    drop(busy);
    // --nproc inside a launched job is refused.
    let out = bin()
        .arg("train")
        .arg("--config")
        .arg(&config)
        .arg("--run")
        .arg(tmp.path().join("nested"))
        .args(["--nproc", "2"])
        .envs([("WORLD_SIZE", "1"), ("RANK", "0")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a rank"));
}
