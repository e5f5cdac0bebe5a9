//! `cargo xtask`: sets up libtorch, runs the test gate, and (later) drives reproductions.
//!
//! xtask links nothing that pulls in `tch`, so it builds and runs before libtorch exists.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

/// The PyTorch release whose libtorch `tch` 0.24.0 is built against.
pub(crate) const TORCH_VERSION: &str = "2.11.0";

const USAGE: &str = "details:
  reproduce <recipe> [--dry-run] [--from STAGE] [--only STAGE] [--device cpu|cuda] [--nproc N] [--run DIR]
          the whole Inheritune recipe (xtask/recipes/<recipe>.toml, or a path): sets up libtorch,
          builds the release binary and runs `inheritune recipe` (resumable; runs/<recipe>/)
  setup   install torch==2.11.0 into a cached virtual environment and link it as .libtorch
  test    setup, then cargo fmt --check, clippy -D warnings, cargo doc with warnings denied, and the workspace's tests
  ci      the same as test
  bench prepare   inheritune prepare vs Python tiktoken on ~50 MB of text, same threads
  bench analyze   attention metrics (k*, m*, dom) vs numpy on the same attention tensors;
                  with --model DIR|FILE.gguf: inheritune analyze vs transformers (eager) + numpy on
                  100 windows of 100 tokens, whole processes, seconds and peak memory;
                  with --xl: inheritune analyze of a random GPT-2 XL (48 × 25 heads, written once
                  under target/bench/load) on 100 windows of 100 tokens against the 60 s goal
  bench eval      inheritune eval vs lm-evaluation-harness 0.4.13 (hf backend), same model, docs,
                  device (CPU), batch size and threads, in BENCH_ROUNDS (3) alternating rounds;
                  prints the medians and spreads (examples/s) and the ratio
  bench train     training steps: inheritune bench train vs xtask/bench/torch_gpt_train.py
                  (CPU, f32, same shapes and threads, alternating runs; BENCH_SHAPE=L,H,D,B,T,
                  BENCH_STEPS, BENCH_ROUNDS, BENCH_THREADS override)
  bench allreduce all-reduce of 100M f32 over 2 Gloo ranks: inheritune bench allreduce --nproc 2
                  vs Python torch.distributed (crates/dist/bench/torch_allreduce.py under torchrun),
                  alternating runs; BENCH_NUMEL, BENCH_RANKS, BENCH_ROUNDS override
  bench load      peak resident memory of inheritune perplexity and analyze in bf16 on a random
                  checkpoint of Llama-3.2-3B's shape (6.4 GB, written once under target/bench/load),
                  against its weights; BENCH_SHAPE=llama-3.2-1b|tiny, BENCH_THREADS override";

mod bench;
mod gate;
mod record;
mod reproduce;
mod setup;

/// The workspace's tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Set-up, test gate, benchmarks and reproductions of inheritune-rs", after_help = USAGE)]
enum Task {
    /// The whole Inheritune recipe (`xtask/recipes/NAME.toml`, or a path); the arguments
    /// after it go to `inheritune recipe` (--dry-run, --from, --only, --device, --devices,
    /// --nproc, --run).
    Reproduce {
        /// Recipe name or path.
        recipe: String,
        /// Arguments of `inheritune recipe`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install torch==2.11.0 into a cached virtual environment and link it as .libtorch.
    Setup,
    /// Setup, then fmt --check, clippy -D warnings, docs with warnings denied, and the tests.
    #[command(alias = "ci")]
    Test,
    /// A benchmark beside its reference.
    Bench {
        /// Which one.
        #[arg(value_enum)]
        which: Bench,
        /// `bench analyze` on a real checkpoint (a folder or a `.gguf`) against transformers' eager
        /// attention and numpy, on 100 windows of 100 tokens of the bundled State of the Union text.
        #[arg(long, conflicts_with = "xl")]
        model: Option<PathBuf>,
        /// `bench analyze` of a random GPT-2 XL (48 layers × 25 heads) on 100 windows of 100
        /// tokens: seconds and peak memory of the whole process against the 60 s goal
        /// (BENCH_DTYPE=f32|bf16, f32 by default).
        #[arg(long)]
        xl: bool,
    },
}

/// The benchmarks.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Bench {
    /// inheritune prepare vs tiktoken.
    Prepare,
    /// Attention metrics vs numpy.
    Analyze,
    /// inheritune eval vs lm-evaluation-harness.
    Eval,
    /// Training steps vs PyTorch.
    Train,
    /// All-reduce vs torch.distributed.
    Allreduce,
    /// Peak memory of perplexity and analyze in bf16 on a Llama-3.2-3B-shaped checkpoint.
    Load,
}

fn main() -> Result<()> {
    match Task::parse() {
        Task::Setup => setup::setup().map(|_| ()),
        Task::Reproduce { recipe, args } => reproduce::reproduce(&recipe, &args),
        Task::Test => gate::test(),
        Task::Bench { which, model, xl } => match which {
            Bench::Prepare => bench::bench_prepare(),
            Bench::Analyze if xl => bench::bench_analyze_xl(),
            Bench::Analyze => match model {
                Some(model) => bench::bench_analyze_model(&model),
                None => bench::bench_analyze(),
            },
            Bench::Train => bench::bench_train(),
            Bench::Eval => bench::bench_eval(),
            Bench::Allreduce => bench::bench_allreduce(),
            Bench::Load => bench::bench_load(),
        },
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The per-user cache folder that holds the PyTorch virtual environment, shared by every clone.
pub(crate) fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("INHERITUNE_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("inheritune"));
    }
    let home = std::env::var_os("HOME").context("neither INHERITUNE_CACHE, XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("inheritune"))
}

/// Runs a command and returns its trimmed stdout, or `None` when it fails to start or exits non-zero.
pub(crate) fn output_of(program: impl AsRef<OsStr>, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("could not start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
