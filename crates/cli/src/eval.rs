//! `inheritune eval`: the paper's downstream tasks with lm-evaluation-harness semantics, and
//! `inheritune eval loss`: mean cross-entropy over a whole prepared split.

use std::path::PathBuf;

use anyhow::{Context, Result};
use inheritune_eval::{evaluate, Scorer};
use inheritune_model::{hf, DType, LoadOptions};
use serde_json::json;

use crate::args::DTypeArg;
use inheritune_model::DeviceSpec;

/// `inheritune eval tasks` and `inheritune eval loss`.
#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Downstream tasks with lm-evaluation-harness semantics (`inheritune eval --model ...`
    /// without `tasks` means this too).
    Tasks(TasksArgs),
    /// Mean cross-entropy over every window of a prepared split (deterministic).
    Loss(LossArgs),
}

/// Arguments of `inheritune eval tasks`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Example:
  inheritune download eval --tasks arc_easy,piqa
  inheritune eval tasks --model runs/a/final --tasks arc_easy,piqa --data-dir data/eval --out runs/a/eval")]
pub struct TasksArgs {
    /// Checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long, value_parser = crate::args::checkpoint)]
    pub model: PathBuf,
    /// Comma-separated tasks: arc_easy, piqa, sciq, hellaswag, lambada_openai, winogrande, boolq,
    /// wsc, wnli, qnli, mnli, logiqa, truthfulqa_mc1, truthfulqa_mc2, mmlu (or `mmlu_<subject>`), wikitext.
    #[arg(long, required = true, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Folder with one subfolder per task holding the hub's files (see datasets/eval.md).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Evaluate only the first N documents of each task.
    #[arg(long, value_parser = crate::args::positive)]
    pub limit: Option<usize>,
    /// Few-shot examples for MMLU (default 5; the other tasks are zero-shot).
    #[arg(long)]
    pub num_fewshot: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16, value_parser = crate::args::positive)]
    pub batch_size: usize,
    /// Device.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: DeviceSpec,
    /// Forward-pass precision (f32 for parity; bf16 autocast is faster on GPUs).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Output folder: results.json, results.md, and samples.jsonl with --log-samples.
    #[arg(long)]
    pub out: PathBuf,
    /// Write every request (context, continuation, loglikelihood, is_greedy) to samples.jsonl.
    #[arg(long)]
    pub log_samples: bool,
}

/// Arguments of `inheritune eval loss`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Example:\n  inheritune eval loss --model runs/a/final --data data/sotu --split val")]
pub struct LossArgs {
    /// Checkpoint: a Hugging Face folder, a Hub id `org/name[@revision]`, or a .gguf file.
    #[arg(long, value_parser = crate::args::checkpoint)]
    pub model: PathBuf,
    /// A folder written by `inheritune prepare`.
    #[arg(long)]
    pub data: PathBuf,
    /// Split.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Window length (default: the model's context length).
    #[arg(long, value_parser = crate::args::positive)]
    pub seq_len: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8, value_parser = crate::args::positive)]
    pub batch_size: usize,
    /// Device.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda|cuda:N")]
    pub device: DeviceSpec,
    /// Forward-pass precision.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
}

/// Runs the verb.
pub fn run(command: &EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Tasks(a) => tasks(a),
        EvalCommand::Loss(a) => loss(a),
    }
}

pub fn tasks(args: &TasksArgs) -> Result<()> {
    let (model, data_dir, out) = (&args.model, &args.data_dir, &args.out);
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = args.tasks.iter().find(|t| !seen.insert(t.trim())) {
        anyhow::bail!("--tasks lists {twice:?} twice (it would count twice in the average)");
    }
    let device = args.device.checked()?;
    let dtype = DType::from(args.dtype);
    crate::malloc::keep_freed_memory();
    let scorer = Scorer::load(model, device, dtype, args.batch_size)?;
    let bar = inheritune_fs::Progress::new("{msg:>24} {bar:40} {pos}/{len} requests eta {eta}", "requests");
    let began = std::time::Instant::now();
    let eval = evaluate(
        &scorer,
        &args.tasks,
        data_dir,
        args.limit,
        args.num_fewshot,
        &mut |task, done, total| {
            bar.set_message(task.to_string());
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish();
    let seconds = began.elapsed().as_secs_f64();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let config = json!({
        "model": model.display().to_string(),
        "tasks": args.tasks,
        "limit": args.limit,
        // Only MMLU is few-shot (5 by default); every other task is zero-shot.
        "num_fewshot": if args.tasks.iter().any(|t| t.starts_with("mmlu")) { args.num_fewshot.unwrap_or(5) } else { 0 },
        "batch_size": args.batch_size,
        "device": match device {
            inheritune_model::tch::Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".to_string(),
        },
        "dtype": dtype.hf_name(),
        "max_length": scorer.max_length,
        "seconds": seconds,
        "harness_semantics": "lm-evaluation-harness 0.4.13",
    });
    let results = eval.results_json(config);
    inheritune_fs::write_file(
        &out.join("results.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let table = eval.markdown_table(&name);
    inheritune_fs::write_file(&out.join("results.md"), table.as_bytes())?;
    if args.log_samples {
        let lines: Vec<String> = eval
            .samples
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        inheritune_fs::write_file(&out.join("samples.jsonl"), (lines.join("\n") + "\n").as_bytes())?;
    }
    print!("{table}");
    eprintln!(
        "{} requests in {seconds:.1} s; results in {}",
        eval.samples.len(),
        out.join("results.json").display()
    );
    Ok(())
}

fn loss(a: &LossArgs) -> Result<()> {
    let report = loss_report(a)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// `eval loss`: the mean cross-entropy over every window of the split.
pub fn loss_report(a: &LossArgs) -> Result<inheritune_train::val::LossReport> {
    let device = a.device.checked()?;
    let (model, _) = hf::load(
        &a.model,
        &LoadOptions {
            device,
            dtype: DType::F32,
            strict: true,
        },
    )?;
    let seq = a.seq_len.unwrap_or(model.config().context_length() as usize);
    let (mean, tokens) = inheritune_train::val::split_loss(
        &model,
        &a.data,
        &a.split,
        seq,
        a.batch_size,
        DType::from(a.dtype),
        &mut |_, _| {},
    )?;
    if tokens == 0 {
        anyhow::bail!(
            "{}: the {} split has fewer than {} tokens, so no window of --seq-len {seq} can be scored",
            a.data.display(),
            a.split,
            seq + 1
        );
    }
    if !mean.is_finite() {
        anyhow::bail!(
            "{}: the loss is {mean} (the model's weights or outputs are not finite)",
            a.model.display()
        );
    }
    let report = inheritune_train::val::LossReport {
        model: a.model.clone(),
        data: a.data.clone(),
        split: a.split.clone(),
        seq_len: seq,
        loss: mean,
        tokens,
    };
    Ok(report)
}
