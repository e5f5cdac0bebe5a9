//! `inheritune`: the command-line tool of inheritune-rs.
//!
//! Verbs parse arguments, call the library crates, show progress and print results; they hold no
//! model or training logic of their own.

mod analyze;
mod args;
mod bench;
mod children;
mod convert;
mod download;
mod eval;
mod launch;
mod malloc;
mod perplexity;
mod prepare;
mod recipe;
mod stage;
mod supervise;
mod surgery;
mod tokenizer;
mod train;

use clap::{Parser, Subcommand};

/// Train smaller language models that match larger ones (Inheritune, arXiv 2404.08634).
#[derive(Debug, Parser)]
#[command(name = "inheritune", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole Inheritune recipe from a recipe file, resumable (see xtask/recipes/).
    Recipe(recipe::Args),
    /// Fetch a corpus of datasets/*.json, the evaluation tasks (`eval`) or a Hub dataset, through
    /// the Hugging Face cache.
    Download(download::Args),
    /// Tokenize raw text (Parquet, JSONL, .txt) into token shards and a manifest.
    Prepare(prepare::Args),
    /// Train a byte-level BPE tokenizer on a corpus (tokenizer.json + tokenizer_config.json).
    TrainTokenizer(tokenizer::Args),
    /// Train a model from a TOML run config (checkpoints, exact resume, metrics.jsonl).
    Train(train::Args),
    /// Plot the loss curves of one or more runs (loss.png, loss.svg).
    PlotLoss(train::PlotArgs),
    /// Downstream tasks (`eval tasks`) with lm-evaluation-harness semantics; `eval loss` for a
    /// prepared split.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Perplexity of a text file under a Hugging Face checkpoint folder.
    Perplexity(perplexity::Args),
    /// Convert a GGUF file (llama.cpp, Ollama) into a Hugging Face folder.
    Convert(convert::Args),
    /// Attention rank and column mass per layer and head: lazy layers and the inheritance depth.
    Analyze(analyze::Args),
    /// Model surgery: inherit, grow, and the baselines' initialisations.
    #[command(subcommand)]
    Surgery(SurgeryCommand),
    #[command(hide = true)]
    Inherit(surgery::InheritArgs),
    #[command(hide = true)]
    Grow(surgery::GrowArgs),
    #[command(hide = true)]
    Stack(surgery::StackArgs),
    #[command(hide = true)]
    HybridStack(surgery::HybridArgs),
    #[command(hide = true)]
    HalfWidth(surgery::HalfWidthArgs),
    #[command(hide = true)]
    DistillInit(surgery::DistillArgs),
    /// Benchmarks, printed as JSON lines comparable with the PyTorch reference scripts.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// One step of a recipe stage from its typed spec (run by `inheritune recipe`).
    #[command(hide = true)]
    Stage(stage::Args),
}

/// `inheritune surgery <op>` (the top-level `inheritune <op>` names stay as hidden aliases).
#[derive(Debug, serde::Serialize, serde::Deserialize, Subcommand)]
#[serde(tag = "op", content = "args", rename_all = "kebab-case")]
pub enum SurgeryCommand {
    /// Build a shallower model from the first (or chosen) blocks of a reference.
    Inherit(surgery::InheritArgs),
    /// Add blocks of the reference to a trained model (restart or warm-append).
    Grow(surgery::GrowArgs),
    /// Stacking baseline: duplicate a trained n-layer model into 2n layers.
    Stack(surgery::StackArgs),
    /// Hybrid stacking baseline: the reference's first l/2 blocks, placed twice.
    HybridStack(surgery::HybridArgs),
    /// Half-width baseline: half the heads, width and MLP of a GPT-2 reference.
    HalfWidth(surgery::HalfWidthArgs),
    /// DistilBERT-style student initialisation from alternate teacher blocks.
    DistillInit(surgery::DistillArgs),
}

impl SurgeryCommand {
    /// Runs the operation.
    pub fn run(&self) -> anyhow::Result<()> {
        match self {
            SurgeryCommand::Inherit(a) => surgery::inherit(a),
            SurgeryCommand::Grow(a) => surgery::grow(a),
            SurgeryCommand::Stack(a) => surgery::stack(a),
            SurgeryCommand::HybridStack(a) => surgery::hybrid_stack(a),
            SurgeryCommand::HalfWidth(a) => surgery::half_width(a),
            SurgeryCommand::DistillInit(a) => surgery::distill_init(a),
        }
    }
}

/// The command line, with `inheritune eval --model ...` (no subcommand) read as `eval tasks`.
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let flag = |a: Option<&std::ffi::OsString>| {
        a.and_then(|a| a.to_str())
            .is_some_and(|a| a.starts_with("--") && a != "--help")
    };
    if args.get(1).is_some_and(|a| a == "eval") && flag(args.get(2)) {
        args.insert(2, "tasks".into());
    }
    // `analyze --seed` was the window seed before `surgery inherit` took the same window flags.
    if args.get(1).is_some_and(|a| a == "analyze") {
        for a in args.iter_mut().skip(2) {
            if a == "--seed" {
                *a = "--window-seed".into();
            } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--seed=")) {
                *a = format!("--window-seed={v}").into();
            }
        }
    }
    args
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // hf-hub's retry log lines say nothing the one-line error does not.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,hf_hub=off".into()),
        )
        .init();
    let cli = match Cli::try_parse_from(args()) {
        Ok(cli) => cli,
        // A rejected value (a missing checkpoint, a bad count) is one line, as every other error.
        Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => {
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or_default());
            exit_now(2);
        }
        Err(e) => {
            // `--help`, `--version` and usage errors, as clap's own `exit` prints them.
            let _ = e.print();
            exit_now(e.exit_code());
        }
    };
    let result = match cli.command {
        Command::Download(args) => download::run(&args),
        Command::Prepare(args) => prepare::run(&args),
        Command::Recipe(args) => recipe::run(&args),
        Command::Perplexity(args) => perplexity::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Train(args) => train::run(&args),
        Command::TrainTokenizer(args) => tokenizer::run(&args),
        Command::PlotLoss(args) => train::plot(&args),
        Command::Eval(command) => eval::run(&command),
        Command::Surgery(command) => command.run(),
        Command::Analyze(args) => analyze::run(&args),
        Command::Inherit(args) => surgery::inherit(&args),
        Command::Grow(args) => surgery::grow(&args),
        Command::Stack(args) => surgery::stack(&args),
        Command::HybridStack(args) => surgery::hybrid_stack(&args),
        Command::HalfWidth(args) => surgery::half_width(&args),
        Command::DistillInit(args) => surgery::distill_init(&args),
        Command::Bench(command) => bench::run(&command),
        Command::Stage(args) => stage::run(&args),
    };
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    };
    exit_now(code);
}

/// Ends the process once the command has returned (every file it wrote is written and closed,
/// every value of ours dropped) without running the C++ static destructors: libtorch's deregister
/// each of its thousands of operators, about 40 ms of every command's wall time (a tenth of a
/// CPU `eval`). Standard output, Rust's only buffered stream, is flushed first.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; nothing of ours runs after it.
    unsafe { libc::_exit(code) }
}
