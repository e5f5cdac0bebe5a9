//! `cargo xtask bench <name>`: each benchmark beside its reference, in one run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::record::{record, Record, Side};
use crate::{cache_dir, output_of, run, setup::setup, workspace_root, TORCH_VERSION};

/// Builds the release binary and returns its path.
pub fn build_release() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    run(
        Command::new(&cargo)
            .current_dir(&root)
            .args(["build", "--release", "-p", "inheritune-cli"]),
        "cargo build --release",
    )?;
    Ok(root.join("target").join("release").join("inheritune"))
}

/// The cached venv's python with the given extra packages installed.
pub fn bench_python(packages: &[&str]) -> Result<PathBuf> {
    setup()?;
    let python = cache_dir()?
        .join(format!("torch-{TORCH_VERSION}"))
        .join("bin")
        .join("python");
    let imports = packages
        .iter()
        .map(|p| p.split("==").next().unwrap_or(p).replace('-', "_"))
        .collect::<Vec<_>>()
        .join(", ");
    if output_of(&python, &["-c", &format!("import {imports}")]).is_none() {
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .args(packages),
            "pip install (benchmark references)",
        )?;
    }
    Ok(python)
}

/// The median of the rounds' timings.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs a benchmark command; returns `key` of the JSON object on its last stdout line, and the line.
pub fn timed_json(cmd: &mut Command, what: &str, key: &str) -> Result<(f64, String)> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let line = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let value = json_field(&line, key).with_context(|| format!("{what} printed no {key}: {line}"))?;
    Ok((value, line))
}

/// The number `key` of the JSON object `line` (None when it is not JSON or has no such number).
pub fn json_field(line: &str, key: &str) -> Option<f64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?.get(key)?.as_f64()
}

/// `cargo xtask bench prepare`: the same ~50 MB of Parquet text through `inheritune prepare` and
/// through `xtask/bench/tiktoken_prepare.py`, with the same thread count, in one run.
pub fn bench_prepare() -> Result<()> {
    let root = workspace_root();
    let python = bench_python(&["tiktoken", "pyarrow", "numpy"])?;
    let bin = build_release()?;
    let dir = root.join("target").join("bench").join("prepare");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let input = dir.join("sotu-x5.parquet");
    if !input.exists() {
        let script = "import pyarrow as pa, pyarrow.parquet as pq, sys\n\
t = pq.read_table(sys.argv[1])\n\
pq.write_table(pa.concat_tables([t] * 5), sys.argv[2], compression='zstd', row_group_size=64)";
        let sotu = root.join("datasets").join("sotu").join("sotu.parquet");
        run(
            Command::new(&python).arg("-c").arg(script).arg(&sotu).arg(&input),
            "making the benchmark input",
        )?;
    }
    // tiktoken cannot download its tables here: write r50k_base ranks from the vendored GPT-2 files.
    let ranks = dir.join("r50k_base.tiktoken");
    if !ranks.exists() {
        let assets = root.join("crates").join("data").join("assets").join("gpt2");
        let script = "import base64, sys\n\
from tiktoken.load import data_gym_to_mergeable_bpe_ranks\n\
r = data_gym_to_mergeable_bpe_ranks(sys.argv[1], sys.argv[2])\n\
open(sys.argv[3], 'w').write(''.join(f'{base64.b64encode(k).decode()} {v}\\n' for k, v in sorted(r.items(), key=lambda kv: kv[1])))";
        run(
            Command::new(&python)
                .arg("-c")
                .arg(script)
                .arg(assets.join("vocab.bpe"))
                .arg(assets.join("encoder.json"))
                .arg(&ranks),
            "writing r50k_base.tiktoken",
        )?;
    }
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let rounds = rounds()?;
    let reference = root.join("xtask").join("bench").join("tiktoken_prepare.py");
    let stream = dir.join("tiktoken.bin");
    let shards = dir.join("shards");
    // (whole process, tokenization loop alone) tokens/s of tiktoken, whole process of ours.
    let (mut theirs_wall, mut theirs_loop, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = 0.0;
    // Alternating rounds on this shared, noisy machine: the medians and the spread are the result.
    for round in 0..rounds {
        let started = std::time::Instant::now();
        let out = Command::new(&python)
            .arg(&reference)
            .arg("--ranks")
            .arg(&ranks)
            .args(["--threads", &threads, "--out"])
            .arg(&stream)
            .arg(&input)
            .output()
            .context("running tiktoken_prepare.py")?;
        let their_wall = started.elapsed().as_secs_f64();
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let their_rate = json_field(&theirs, "tokens_per_s").with_context(|| {
            format!(
                "tiktoken_prepare.py printed {theirs:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        tokens = json_field(&theirs, "tokens").unwrap_or(0.0);
        if shards.exists() {
            std::fs::remove_dir_all(&shards).with_context(|| format!("removing {}", shards.display()))?;
        }
        let start = std::time::Instant::now();
        let status = Command::new(&bin)
            .arg("prepare")
            .arg("--text")
            .arg(&input)
            .arg("--out")
            .arg(&shards)
            .args(["--threads", &threads, "--eot", "append"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .status()
            .context("running inheritune prepare")?;
        let seconds = start.elapsed().as_secs_f64();
        if !status.success() {
            bail!("inheritune prepare failed ({status})");
        }
        // The same tokens on both sides: every split of ours together against tiktoken's stream.
        let ours_tokens = prepared_tokens(&shards)?;
        if ours_tokens != tokens {
            bail!("inheritune prepare wrote {ours_tokens} tokens but tiktoken {tokens}: not the same work");
        }
        println!(
            "round {}: tiktoken {their_wall:.2} s whole process ({:.2} s tokenizing), inheritune {seconds:.2} s, {tokens} tokens each",
            round + 1,
            tokens / their_rate
        );
        theirs_wall.push(tokens / their_wall);
        theirs_loop.push(their_rate);
        ours.push(tokens / seconds);
    }
    let spread = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        format!("{:.2}–{:.2} M", lo / 1e6, hi / 1e6)
    };
    let (spread_ours, spread_wall, spread_loop) = (spread(&ours), spread(&theirs_wall), spread(&theirs_loop));
    let (ours_m, wall_m, loop_m) = (median(&mut ours), median(&mut theirs_wall), median(&mut theirs_loop));
    println!("{rounds} rounds, {threads} threads, {tokens} tokens, medians (spread) in tokens/s:");
    println!(
        "  inheritune prepare, whole process:   {:.2} M ({spread_ours})",
        ours_m / 1e6
    );
    println!(
        "  tiktoken, whole process:             {:.2} M ({spread_wall})",
        wall_m / 1e6
    );
    println!(
        "  tiktoken, tokenization loop alone:   {:.2} M ({spread_loop})",
        loop_m / 1e6
    );
    println!("ratio, whole process vs whole process: {:.2}x", ours_m / wall_m);
    println!(
        "ratio, our whole process vs tiktoken's tokenization loop alone: {:.2}x",
        ours_m / loop_m
    );
    record(&Record {
        bench: "prepare",
        ours: Side {
            what: "inheritune prepare, whole process".into(),
            value: ours_m,
            unit: "tokens/s",
        },
        theirs: Side {
            what: "tiktoken (Python), whole process".into(),
            value: wall_m,
            unit: "tokens/s",
        },
        speedup: ours_m / wall_m,
        details: serde_json::json!({
            "rounds": rounds, "threads": threads, "tokens": tokens,
            "spread_tokens_per_s": {"ours": spread_ours, "tiktoken_whole": spread_wall, "tiktoken_loop": spread_loop},
            "tiktoken_loop_tokens_per_s": loop_m,
            "speedup_vs_tiktoken_loop": ours_m / loop_m,
        }),
    })
}

/// `BENCH_ROUNDS` (default 3): alternating rounds of a benchmark.
fn rounds() -> Result<usize> {
    let text = std::env::var("BENCH_ROUNDS").unwrap_or_else(|_| "3".into());
    text.parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .with_context(|| format!("BENCH_ROUNDS={text:?} is not a positive integer"))
}

/// Tokens of every split of a prepared folder (its manifest's totals).
fn prepared_tokens(dir: &Path) -> Result<f64> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let splits = manifest["splits"]
        .as_object()
        .with_context(|| format!("{}: no splits", path.display()))?;
    Ok(splits.values().filter_map(|s| s["tokens"].as_f64()).sum())
}

/// `cargo xtask bench analyze`: the per-window metrics of 6 layers × 12 heads × 100 windows of 100
/// tokens through the analysis crate and through a straightforward numpy implementation, same
/// tensors, same thread count, one run.
pub fn bench_analyze() -> Result<()> {
    let root = workspace_root();
    let python = bench_python(&["numpy", "safetensors"])?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let example = [
        "run",
        "--release",
        "-q",
        "-p",
        "inheritune-analysis",
        "--example",
        "bench_metrics",
        "--",
    ];
    let dir = root.join("target").join("bench").join("analyze");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("attn.safetensors");
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    if !file.exists() {
        run(
            Command::new(&cargo)
                .current_dir(&root)
                .args(example)
                .arg("make")
                .arg(&file)
                .args(["6", "12", "100", "100", "0"]),
            "making attention tensors",
        )?;
    }
    let ours = Command::new(&cargo)
        .current_dir(&root)
        .args(example)
        .arg("time")
        .arg(&file)
        .env("OMP_NUM_THREADS", &threads)
        .output()
        .context("running bench_metrics")?;
    let theirs = Command::new(&python)
        .arg(
            root.join("crates")
                .join("analysis")
                .join("bench")
                .join("numpy_metrics.py"),
        )
        .arg(&file)
        .env("OMP_NUM_THREADS", &threads)
        .env("OPENBLAS_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .output()
        .context("running numpy_metrics.py")?;
    let (ours, theirs) = (
        String::from_utf8_lossy(&ours.stdout).trim().to_string(),
        String::from_utf8_lossy(&theirs.stdout).trim().to_string(),
    );
    println!("{theirs}");
    println!("{ours}");
    let (a, b) = (json_field(&ours, "seconds"), json_field(&theirs, "seconds"));
    let (Some(a), Some(b)) = (a, b) else {
        bail!("a benchmark printed no timing: {ours:?} / {theirs:?}")
    };
    if json_field(&ours, "checksum") != json_field(&theirs, "checksum") {
        bail!("the two implementations disagree: {ours} vs {theirs}");
    }
    println!("speed-up inheritune / numpy: {:.2}x (same results)", b / a);
    record(&Record {
        bench: "analyze",
        ours: Side {
            what: "inheritune-analysis metrics (6 layers × 12 heads × 100 windows × 100 tokens)".into(),
            value: a,
            unit: "s",
        },
        theirs: Side {
            what: "numpy".into(),
            value: b,
            unit: "s",
        },
        speedup: b / a,
        details: serde_json::json!({"threads": threads, "checksum": json_field(&ours, "checksum")}),
    })
}

/// `cargo xtask bench train`: full training steps (forward, backward, clip, AdamW) of the same
/// GPT-2 shape through `inheritune bench train` and the PyTorch eager reference script, on the
/// CPU in f32 with the same thread count, alternating the two `rounds` times; the ratio of the
/// median step times is printed.
pub fn bench_train() -> Result<()> {
    let root = workspace_root();
    let python = bench_python(&["numpy"])?;
    let binary = build_release()?;
    let script = root.join("xtask").join("bench").join("torch_gpt_train.py");
    if !script.exists() {
        bail!(
            "{} not found (the reference script is part of the repository)",
            script.display()
        );
    }
    let shape = std::env::var("BENCH_SHAPE").unwrap_or_else(|_| "6,6,384,8,256".into());
    let dims: Vec<&str> = shape.split(',').collect();
    let [l, h, d, b, t] = dims[..] else {
        bail!("BENCH_SHAPE must be L,H,D,B,T, got {shape:?}");
    };
    let steps = std::env::var("BENCH_STEPS").unwrap_or_else(|_| "5".into());
    let rounds = rounds()?;
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let common = [
        "--n-layer",
        l,
        "--n-head",
        h,
        "--n-embd",
        d,
        "--batch",
        b,
        "--seq",
        t,
        "--steps",
        &steps,
        "--warmup",
        "1",
        "--threads",
        &threads,
    ];
    let time_of = |cmd: &mut Command, what: &str| timed_json(cmd, what, "ms_per_step");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, la) = time_of(
            Command::new(&binary)
                .args(["bench", "train"])
                .args(common)
                .env("OMP_NUM_THREADS", &threads),
            "inheritune bench train",
        )?;
        let (b, lb) = time_of(
            Command::new(&python)
                .arg(&script)
                .args(common)
                .args(["--device", "cpu", "--dtype", "f32"])
                .env("OMP_NUM_THREADS", &threads),
            "torch_gpt_train.py",
        )?;
        if round == 0 {
            println!("{lb}");
            println!("{la}");
        }
        println!(
            "round {}: inheritune {a:.0} ms/step, pytorch eager {b:.0} ms/step",
            round + 1
        );
        ours.push(a);
        theirs.push(b);
    }
    let (a, b) = (median(&mut ours), median(&mut theirs));
    println!(
        "speed-up inheritune / pytorch eager (CPU f32, {threads} threads, L,H,D,B,T = {shape}): {:.2}x",
        b / a
    );
    record(&Record {
        bench: "train",
        ours: Side {
            what: format!("inheritune bench train (CPU f32, L,H,D,B,T = {shape})"),
            value: a,
            unit: "ms/step",
        },
        theirs: Side {
            what: "PyTorch eager".into(),
            value: b,
            unit: "ms/step",
        },
        speedup: b / a,
        details: serde_json::json!({"rounds": rounds, "threads": threads}),
    })
}

/// `cargo xtask bench allreduce`: all-reduce (sum) of one f32 tensor across local Gloo ranks,
/// ours (`inheritune bench allreduce --nproc N`, c10d through the Rust shim) against Python
/// `torch.distributed` launched by torchrun, alternating, on the same machine; prints both
/// medians and the ratio (theirs / ours: above 1 means ours is faster).
pub fn bench_allreduce() -> Result<()> {
    let root = workspace_root();
    let python = bench_python(&["numpy"])?;
    let binary = build_release()?;
    let script = root
        .join("crates")
        .join("dist")
        .join("bench")
        .join("torch_allreduce.py");
    let numel = std::env::var("BENCH_NUMEL").unwrap_or_else(|_| "100000000".into());
    let ranks = std::env::var("BENCH_RANKS").unwrap_or_else(|_| "2".into());
    let rounds = rounds()?;
    let common = ["--numel", numel.as_str(), "--iters", "5", "--warmup", "1"];
    let time_of = |cmd: &mut Command, what: &str| timed_json(cmd, what, "median_s");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, la) = time_of(
            Command::new(&binary)
                .args(["bench", "allreduce", "--nproc", ranks.as_str()])
                .args(common)
                .env("RUST_LOG", "warn"),
            "inheritune bench allreduce",
        )?;
        let (b, lb) = time_of(
            Command::new(&python)
                .args([
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc-per-node",
                    ranks.as_str(),
                ])
                .arg(&script)
                .args(common),
            "torch_allreduce.py",
        )?;
        if round == 0 {
            println!("{lb}");
            println!("{la}");
        }
        println!(
            "round {}: inheritune {:.0} ms, torch.distributed {:.0} ms per all-reduce",
            round + 1,
            a * 1e3,
            b * 1e3
        );
        ours.push(a);
        theirs.push(b);
    }
    let (a, b) = (median(&mut ours), median(&mut theirs));
    println!(
        "all-reduce of {numel} f32 over {ranks} Gloo ranks: inheritune {:.0} ms, torch.distributed {:.0} ms, ratio torch / inheritune {:.2}x",
        a * 1e3,
        b * 1e3,
        b / a
    );
    record(&Record {
        bench: "allreduce",
        ours: Side {
            what: format!("inheritune all-reduce of {numel} f32 over {ranks} Gloo ranks"),
            value: a * 1e3,
            unit: "ms",
        },
        theirs: Side {
            what: "torch.distributed".into(),
            value: b * 1e3,
            unit: "ms",
        },
        speedup: b / a,
        details: serde_json::json!({"rounds": rounds}),
    })
}

/// `cargo xtask bench eval`: seven zero-shot tasks (the oracle kit's docs repeated, a 4-layer
/// random GPT-2 with context 128) through `lm_eval run --model hf` and `inheritune eval`, both as
/// whole processes with the same batch size and threads on the CPU; prints examples/s and the ratio.
pub fn bench_eval() -> Result<()> {
    let root = workspace_root();
    let python = bench_python(&["lm-eval==0.4.13", "datasets", "accelerate", "transformers"])?;
    let binary = build_release()?;
    let kit = root.join("crates").join("eval").join("lmeval-oracle");
    if !kit.exists() {
        bail!("{} not found (the oracle kit is part of the repository)", kit.display());
    }
    let dir = root.join("target").join("bench").join("eval");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let repeat = std::env::var("BENCH_REPEAT").unwrap_or_else(|_| "40".into());
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let batch = std::env::var("BENCH_BATCH").unwrap_or_else(|_| "16".into());
    let made = Command::new(&python)
        .arg(root.join("crates").join("eval").join("bench").join("make_bench.py"))
        .env("BENCH_DIR", &dir)
        .env("KIT", &kit)
        .env("REPEAT", &repeat)
        .output()
        .context("running make_bench.py")?;
    if !made.status.success() {
        bail!("make_bench.py failed: {}", String::from_utf8_lossy(&made.stderr));
    }
    let line = String::from_utf8_lossy(&made.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let docs = json_field(&line, "docs").context("make_bench.py printed no doc count")?;
    let tasks = [
        "arc_easy",
        "piqa",
        "sciq",
        "hellaswag",
        "lambada_openai",
        "winogrande",
        "boolq",
    ];
    let model = dir.join("model").join("bench-gpt2");
    let lm_eval = python.with_file_name("lm_eval");
    let timed = |cmd: &mut Command, what: &str| -> Result<f64> {
        let began = std::time::Instant::now();
        let out = cmd
            .env("OMP_NUM_THREADS", &threads)
            .env("HF_DATASETS_OFFLINE", "1")
            .env("HF_HUB_OFFLINE", "1")
            .env("TRANSFORMERS_OFFLINE", "1")
            .env("HF_HOME", dir.join("hf_home"))
            .output()
            .with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(began.elapsed().as_secs_f64())
    };
    let local: Vec<String> = tasks.iter().map(|t| format!("{t}_local")).collect();
    let rounds = rounds()?;
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    // Alternating rounds on this shared, noisy machine: the medians and the spread are the result.
    for round in 0..rounds {
        let _ = std::fs::remove_dir_all(dir.join("lm_eval_out"));
        theirs.push(timed(
            Command::new(&lm_eval)
                .args(["run", "--model", "hf", "--model_args"])
                .arg(format!("pretrained={},dtype=float32", model.display()))
                .args(["--device", "cpu", "--batch_size", &batch, "--include_path"])
                .arg(dir.join("tasks"))
                .args(["--tasks", &local.join(",")])
                .arg("--output_path")
                .arg(dir.join("lm_eval_out")),
            "lm_eval",
        )?);
        ours.push(timed(
            Command::new(&binary)
                .arg("eval")
                .arg("--model")
                .arg(&model)
                .args(["--tasks", &tasks.join(","), "--batch-size", &batch])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .arg("--out")
                .arg(dir.join("ours_out")),
            "inheritune eval",
        )?);
        println!(
            "round {}: lm-eval {:.2} s, inheritune {:.2} s",
            round + 1,
            theirs[round],
            ours[round]
        );
    }
    let spread = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        format!("{lo:.2}–{hi:.2} s")
    };
    let (spread_theirs, spread_ours) = (spread(&theirs), spread(&ours));
    let (theirs, ours) = (median(&mut theirs), median(&mut ours));
    println!("{docs} documents, 7 tasks, batch {batch}, {threads} threads, CPU, f32, whole processes, medians of {rounds} rounds (spread):");
    println!(
        "lm-eval 0.4.13 (hf): {theirs:.2} s ({spread_theirs}), {:.1} examples/s",
        docs / theirs
    );
    println!(
        "inheritune eval:     {ours:.2} s ({spread_ours}), {:.1} examples/s",
        docs / ours
    );
    println!("speed-up inheritune / lm-eval: {:.2}x", theirs / ours);
    record(&Record {
        bench: "eval",
        ours: Side {
            what: format!("inheritune eval, whole process ({docs} documents, 7 tasks, batch {batch})"),
            value: docs / ours,
            unit: "examples/s",
        },
        theirs: Side {
            what: "lm-eval 0.4.13 (hf), whole process".into(),
            value: docs / theirs,
            unit: "examples/s",
        },
        speedup: theirs / ours,
        details: serde_json::json!({"threads": threads, "rounds": rounds, "spread_ours": spread_ours, "spread_theirs": spread_theirs}),
    })?;
    Ok(())
}

/// Runs `cmd` to completion and returns its wall time and peak resident memory (the child's
/// `ru_maxrss` from `wait4`, so nothing is sampled and nothing is missed).
fn peak_rss(cmd: &mut Command, what: &str) -> Result<(f64, f64)> {
    let began = std::time::Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Drain stderr on a thread so a chatty child cannot block on a full pipe.
    let mut stderr = child.stderr.context("no stderr pipe")?;
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    // SAFETY: pid is our child, not yet reaped (std's Child is not waited on).
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("waiting for {what} failed");
    }
    let seconds = began.elapsed().as_secs_f64();
    let err = drain.join().unwrap_or_default();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{what} failed: {}", err.trim());
    }
    Ok((seconds, usage.ru_maxrss as f64 * 1024.0 / 1e9))
}

/// `inheritune analyze` of `model` on `n` synthetic windows of `t` token ids below `vocab`
/// (`target/bench/load/windows<tag>.json`), in `dtype`, whole process: seconds and peak RSS (GB).
fn analyze_synthetic(
    binary: &Path,
    model: &Path,
    (n, t, vocab): (u32, u32, u32),
    dtype: &str,
    threads: &str,
    tag: &str,
) -> Result<(f64, f64)> {
    let dir = workspace_root().join("target").join("bench").join("load");
    let windows = dir.join(format!("windows{tag}.json"));
    let ids: Vec<Vec<u32>> = (0..n)
        .map(|w| (0..t).map(|i| (w * 7919 + i * 104_729) % vocab).collect())
        .collect();
    std::fs::write(&windows, serde_json::to_string(&ids)?)?;
    let out = dir.join(format!("analysis{tag}"));
    let _ = std::fs::remove_dir_all(&out);
    peak_rss(
        Command::new(binary)
            .arg("analyze")
            .arg("--model")
            .arg(model)
            .arg("--windows")
            .arg(&windows)
            .arg("--out")
            .arg(&out)
            .args(["--dtype", dtype])
            .env("OMP_NUM_THREADS", threads),
        "inheritune analyze",
    )
}

/// `target/bench/load/<shape>`: a random bf16 checkpoint of a real model's shape
/// (`crates/model/examples/bench_load.rs`), written once.
fn random_checkpoint(shape: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let model = root.join("target").join("bench").join("load").join(shape);
    if !model.join("model.safetensors").exists() || !model.join("config.json").exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run(
            Command::new(&cargo)
                .current_dir(&root)
                .args([
                    "run",
                    "--release",
                    "-q",
                    "-p",
                    "inheritune-model",
                    "--example",
                    "bench_load",
                    "--",
                    "make",
                ])
                .arg(&model)
                .arg(shape),
            "writing the random checkpoint",
        )?;
    }
    Ok(model)
}

/// `cargo xtask bench load`: peak memory of `inheritune perplexity` and `analyze` in bf16 on a
/// random checkpoint of Llama-3.2-3B's shape (BENCH_SHAPE=llama-3.2-1b or tiny for smaller),
/// against the size of its bf16 weights; the ratio is what says how large a model fits.
pub fn bench_load() -> Result<()> {
    let root = workspace_root();
    let shape = std::env::var("BENCH_SHAPE").unwrap_or_else(|_| "llama-3.2-3b".into());
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let binary = build_release()?;
    let dir = root.join("target").join("bench").join("load");
    let model = random_checkpoint(&shape)?;
    let weights = model.join("model.safetensors");
    let size = std::fs::metadata(&weights)
        .with_context(|| format!("reading {}", weights.display()))?
        .len() as f64
        / 1e9;
    let text = dir.join("text.txt");
    std::fs::write(
        &text,
        "Madam Speaker, Madam Vice President, our First Lady and Second Gentleman, members of Congress and the Cabinet, \
         justices of the Supreme Court, my fellow Americans: last year COVID-19 kept us apart; this year we are finally together again.",
    )?;
    let (p_secs, p_rss) = peak_rss(
        Command::new(&binary)
            .arg("perplexity")
            .arg("--model")
            .arg(&model)
            .arg("--text")
            .arg(&text)
            .args(["--dtype", "bf16", "--context-length", "32"])
            .env("OMP_NUM_THREADS", &threads),
        "inheritune perplexity",
    )?;
    let (a_secs, a_rss) = analyze_synthetic(&binary, &model, (2, 32, 50_000), "bf16", &threads, "")?;
    println!("{shape}: {size:.2} GB of bf16 weights, {threads} threads, CPU");
    for (verb, secs, rss) in [("perplexity", p_secs, p_rss), ("analyze", a_secs, a_rss)] {
        println!(
            "{}",
            serde_json::json!({"verb": verb, "shape": shape, "seconds": (secs * 10.0).round() / 10.0,
                               "peak_rss_gb": (rss * 100.0).round() / 100.0, "weights_gb": (size * 100.0).round() / 100.0,
                               "peak_over_weights": (rss / size * 1000.0).round() / 1000.0})
        );
    }
    Ok(())
}

/// `cargo xtask bench analyze --xl`: `inheritune analyze` of a random checkpoint of GPT-2 XL's
/// shape (48 layers × 25 heads × 1600, bf16 on disk) on 100 windows of 100 tokens, in
/// `BENCH_DTYPE` (f32 by default), whole process: seconds and peak resident memory, recorded
/// against the goal of 60 s (there is no other implementation to run beside it).
pub fn bench_analyze_xl() -> Result<()> {
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let dtype = std::env::var("BENCH_DTYPE").unwrap_or_else(|_| "f32".into());
    let binary = build_release()?;
    let model = random_checkpoint("gpt2-xl")?;
    let (secs, rss) = analyze_synthetic(&binary, &model, (100, 100, 50_257), &dtype, &threads, "-xl")?;
    println!(
        "random GPT-2 XL (48 × 25 heads), 100 windows × 100 tokens, {dtype}, {threads} threads, CPU, whole process:"
    );
    println!("inheritune analyze: {secs:.1} s, peak RSS {rss:.2} GB (goal: under 60 s and 8 GB)");
    record(&Record {
        bench: "analyze --xl",
        ours: Side {
            what: format!(
                "inheritune analyze, whole process (random GPT-2 XL, 100 × 100 tokens, {dtype}, peak RSS {rss:.2} GB)"
            ),
            value: secs,
            unit: "s",
        },
        theirs: Side {
            what: "the goal of issue 27 (no reference implementation)".into(),
            value: 60.0,
            unit: "s",
        },
        speedup: 60.0 / secs,
        details: serde_json::json!({"threads": threads, "dtype": dtype, "peak_rss_gb": rss}),
    })
}

/// `cargo xtask bench analyze --model M`: `inheritune analyze` against transformers' eager
/// attention and numpy's metrics (crates/analysis/bench/transformers_numpy.py) on the same 100
/// windows of 100 tokens, whole process against whole process, f32, `BENCH_THREADS` threads
/// each; the two checksums (sums of every k* and m*) must agree.
pub fn bench_analyze_model(model: &Path) -> Result<()> {
    let root = workspace_root();
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let binary = build_release()?;
    let python = bench_python(&["numpy", "safetensors", "transformers==4.57.6", "accelerate", "pyarrow"])?;
    let dir = root.join("target").join("bench").join("analyze-model");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let folder = if model.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        let stem = model
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let folder = dir.join(stem);
        if !folder.join("config.json").exists() {
            run(
                Command::new(&binary)
                    .arg("convert")
                    .arg("--from")
                    .arg(model)
                    .arg("--out")
                    .arg(&folder),
                "inheritune convert",
            )?;
        }
        folder
    } else {
        model.to_path_buf()
    };
    let script = root
        .join("crates")
        .join("analysis")
        .join("bench")
        .join("transformers_numpy.py");
    let windows = dir.join("windows.json");
    run(
        Command::new(&python)
            .arg(&script)
            .arg("make-windows")
            .arg(&folder)
            .arg(&windows)
            .args(["100", "100"]),
        "making the windows",
    )?;
    let out = dir.join("analysis");
    let _ = std::fs::remove_dir_all(&out);
    let (ours_secs, ours_rss) = peak_rss(
        Command::new(&binary)
            .arg("analyze")
            .arg("--model")
            .arg(&folder)
            .arg("--windows")
            .arg(&windows)
            .arg("--out")
            .arg(&out)
            .env("OMP_NUM_THREADS", &threads),
        "inheritune analyze",
    )?;
    let analysis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).context("reading analysis.json")?)?;
    let mut ours_sum = 0i64;
    for layer in analysis["layers"].as_array().context("analysis.json has no layers")? {
        for head in layer["heads"].as_array().context("a layer has no heads")? {
            for key in ["rank_per_window", "mass_per_window"] {
                ours_sum += head[key]
                    .as_array()
                    .map_or(0, |v| v.iter().filter_map(|x| x.as_i64()).sum::<i64>());
            }
        }
    }
    let theirs = Command::new(&python)
        .arg(&script)
        .arg(&folder)
        .arg(&windows)
        .env("OMP_NUM_THREADS", &threads)
        .env("OPENBLAS_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .output()
        .context("running transformers_numpy.py")?;
    if !theirs.status.success() {
        bail!(
            "transformers_numpy.py failed: {}",
            String::from_utf8_lossy(&theirs.stderr).trim()
        );
    }
    let theirs = String::from_utf8_lossy(&theirs.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let their_secs = json_field(&theirs, "seconds").context("the reference printed no time")?;
    let their_sum = json_field(&theirs, "checksum").context("the reference printed no checksum")?;
    println!("{theirs}");
    println!(
        "{}",
        serde_json::json!({"impl": "inheritune analyze", "seconds": (ours_secs * 100.0).round() / 100.0,
                           "peak_rss_gb": (ours_rss * 100.0).round() / 100.0, "checksum": ours_sum})
    );
    if their_sum as i64 != ours_sum {
        bail!("the two disagree: checksum {ours_sum} vs {their_sum}");
    }
    println!(
        "{}: 100 windows x 100 tokens, f32, {threads} threads, whole processes: speed-up inheritune / transformers+numpy: {:.2}x (same k* and m*)",
        folder.display(),
        their_secs / ours_secs
    );
    record(&Record {
        bench: "analyze --model",
        ours: Side {
            what: format!(
                "inheritune analyze, whole process ({})",
                folder.file_name().unwrap_or_default().to_string_lossy()
            ),
            value: ours_secs,
            unit: "s",
        },
        theirs: Side {
            what: "transformers + numpy, whole process".into(),
            value: their_secs,
            unit: "s",
        },
        speedup: their_secs / ours_secs,
        details: serde_json::json!({"threads": threads, "peak_rss_gb": ours_rss, "checksum": ours_sum}),
    })
}
