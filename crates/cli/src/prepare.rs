//! `inheritune prepare`: raw text (Parquet, JSONL, .txt folders) → token shards + manifest.json.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use inheritune_data::prepare::{EotPlacement, PrepareConfig, Preset, SplitRule};
use inheritune_data::source::discover;
use inheritune_data::Tokenizer;

/// Arguments of `inheritune prepare`.
#[derive(Debug, serde::Serialize, serde::Deserialize, clap::Args)]
#[command(after_help = "Examples:
  inheritune prepare --text datasets/sotu --tokenizer models/smollm2/tokenizer.json --out data/sotu-smollm2
  inheritune prepare --text owt/ --preset openwebtext --out data/owt")]
pub struct Args {
    /// Raw text: files or folders (searched recursively) of .parquet, .jsonl[.gz|.zst], .txt (one document per file).
    #[arg(long, alias = "input", required = true, num_args = 1..)]
    pub text: Vec<PathBuf>,
    /// Output folder for train-NNNNNN.parquet, val-NNNNNN.parquet and manifest.json (rerun on the same
    /// folder with the same settings: resumes or does nothing).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a preparation the --out folder already holds (written beside it, swapped in when complete).
    #[arg(long)]
    pub overwrite: bool,
    /// Preset.
    #[arg(long, value_enum, default_value_t = Preset::Generic)]
    pub preset: Preset,
    /// tokenizer.json to use, e.g. the model's own (default: the built-in GPT-2 tokenizer, tiktoken-exact).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Text column (Parquet) or field (JSONL).
    #[arg(long, default_value = "text")]
    pub column: String,
    /// Tokens per shard.
    #[arg(long, default_value_t = 100_000_000)]
    pub shard_tokens: u64,
    /// Override the EOT placement of the preset.
    #[arg(long, value_enum)]
    pub eot: Option<EotPlacement>,
    /// The token used as EOT (default: the tokenizer's end-of-text token: `<|endoftext|>`, else
    /// `<|end_of_text|>`, else the `eos_token` of a tokenizer_config.json beside tokenizer.json).
    #[arg(long)]
    pub eot_token: Option<String>,
    /// Apply the tokenizer's own special-token rules (e.g. LLaMA's BOS) to every document
    /// (default: as the tokenizer's post-processor does, like transformers' `tokenizer(text)`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "true|false")]
    pub add_special_tokens: Option<bool>,
    /// JSON list of 0-based document indices that form the val split (e.g. nanoGPT's exact split).
    #[arg(long, conflicts_with_all = ["val_fraction", "val_tokens"])]
    pub val_docs: Option<PathBuf>,
    /// Val share of documents, chosen by a seeded hash of the document index.
    #[arg(long, conflicts_with = "val_tokens", allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    /// The first N tokens of the stream are val (the generic preset's default: ~5% of the input, at most 1M).
    #[arg(long)]
    pub val_tokens: Option<u64>,
    /// Seed of the document-level val split.
    #[arg(long, default_value_t = 2357)]
    pub split_seed: u64,
    /// Worker threads for tokenization (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The most tokens of the generic preset's default val split.
const DEFAULT_VAL_TOKENS: u64 = 1_000_000;

/// Runs the verb and prints the manifest's totals.
pub fn run(args: &Args) -> Result<()> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting the thread count")?;
    }
    let mut config = match args.preset {
        Preset::Openwebtext => PrepareConfig::openwebtext(),
        Preset::FinewebEdu => PrepareConfig {
            split: SplitRule::FirstTokens {
                tokens: args.shard_tokens,
            },
            ..PrepareConfig::fineweb_edu()
        },
        Preset::Generic => PrepareConfig::generic(),
    };
    config.column = args.column.clone();
    config.shard_tokens = args.shard_tokens;
    if let Some(e) = args.eot {
        config.eot = e;
    }
    if let Some(path) = &args.val_docs {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let docs: BTreeSet<u64> = serde_json::from_str(&text)
            .with_context(|| format!("{}: expected a JSON list of document indices", path.display()))?;
        config.split = SplitRule::DocList { docs };
    } else if let Some(fraction) = args.val_fraction {
        config.split = SplitRule::DocFraction {
            fraction,
            seed: args.split_seed,
        };
    } else if let Some(tokens) = args.val_tokens {
        config.split = SplitRule::FirstTokens { tokens };
    } else if let SplitRule::DocFraction { fraction, .. } = config.split {
        config.split = SplitRule::DocFraction {
            fraction,
            seed: args.split_seed,
        };
    }
    let tokenizer = match &args.tokenizer {
        Some(path) => Tokenizer::from_file(path)?,
        None => Tokenizer::gpt2()?,
    };
    // Document boundaries follow the tokenizer's own rule unless a flag says otherwise.
    config.add_special_tokens = match args.add_special_tokens {
        Some(v) => v,
        None => tokenizer.adds_special_tokens()?,
    };
    if config.eot != EotPlacement::None {
        config.eot_token = match (&args.eot_token, tokenizer.default_eot(args.tokenizer.as_deref())) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t,
            (None, None) => anyhow::bail!(
                "the tokenizer {} has no end-of-text token (<|endoftext|>, <|end_of_text|>, or an eos_token in a tokenizer_config.json beside it): name one with --eot-token, or pass --eot none",
                tokenizer.name()
            ),
        };
    }
    let sources = discover(&args.text)?;
    if sources.iter().all(|s| s.bytes == 0) {
        let names: Vec<String> = sources.iter().take(3).map(|s| s.path.display().to_string()).collect();
        anyhow::bail!("--text: every input file is empty ({})", names.join(", "));
    }
    if args.preset == Preset::Generic && matches!(config.split, SplitRule::None) {
        // A small val split by default: about 5% of the tokens (estimated at 4 bytes each from the
        // input's size), at most a million; the first tokens of the stream, as FineWeb-Edu's preset.
        let bytes: u64 = sources.iter().map(|s| s.bytes).sum();
        let tokens = (bytes / 4 / 20).clamp(1, DEFAULT_VAL_TOKENS);
        config.split = SplitRule::FirstTokens { tokens };
        tracing::info!(
            "val split: the first {tokens} tokens (~5% of the input, at most {DEFAULT_VAL_TOKENS}); \
             --val-tokens, --val-fraction or --val-docs choose another"
        );
    }
    tracing::info!(
        "documents: {}{}",
        if config.add_special_tokens {
            "the tokenizer's special tokens (e.g. BOS) added, "
        } else {
            ""
        },
        match config.eot {
            EotPlacement::None => "no end-of-text token".to_string(),
            EotPlacement::Append => format!("{} appended", config.eot_token),
            EotPlacement::Prepend => format!("{} prepended", config.eot_token),
        }
    );
    let bar = inheritune_fs::Progress::new("{bar:40} {pos}/{len} docs {msg} eta {eta}", "documents");
    let start = std::time::Instant::now();
    // --overwrite on a used folder prepares beside it and swaps the new folder in when complete.
    let replace = args.overwrite && args.out.exists();
    let dir = if replace {
        let tmp = inheritune_fs::tmp_path(&args.out);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
        }
        tmp
    } else {
        args.out.clone()
    };
    let existed = dir.exists();
    let prepared = inheritune_data::prepare(&sources, &tokenizer, &config, &dir, &mut |p| {
        if let Some(total) = p.total_documents {
            bar.set_length(total);
        }
        bar.set_position(p.documents);
        let rate = p.tokens as f64 / start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{:.2} Mtok/s", rate / 1e6));
        ControlFlow::Continue(())
    });
    let manifest = match prepared {
        Ok(m) => m,
        Err(e) => {
            // A folder this run created and that holds no shard yet is not left behind (one with
            // shards keeps its resume state: rerun to continue).
            let has_shards = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".parquet"));
            if !existed && !has_shards {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e).with_context(|| format!("preparing {}", dir.display()));
        }
    };
    bar.finish();
    // The tokenizer travels with the tokens, so trained checkpoints become complete HF folders.
    tokenizer.save(&dir.join("tokenizer.json"))?;
    let beside = args
        .tokenizer
        .as_ref()
        .and_then(|t| t.parent())
        .map(|d| d.join("tokenizer_config.json"));
    let tokenizer_config = match beside.filter(|p| p.exists()) {
        Some(path) => std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut c = serde_json::json!({"tokenizer_class": "PreTrainedTokenizerFast"});
            if tokenizer.token_to_id(&manifest.config.eot_token).is_some() {
                for key in ["bos_token", "eos_token", "unk_token"] {
                    c[key] = manifest.config.eot_token.clone().into();
                }
            }
            serde_json::to_vec_pretty(&c)?
        }
    };
    inheritune_fs::write_file(&dir.join("tokenizer_config.json"), &tokenizer_config)?;
    if replace {
        inheritune_fs::commit_dir(&dir, &args.out)?;
    }
    let val = manifest.splits.get("val").map_or(0, |s| s.tokens);
    if val == 0 {
        eprintln!(
            "warning: {} has no val split; `train` needs one (--val-fraction, --val-tokens or --val-docs)",
            args.out.display()
        );
    }
    eprintln!(
        "[prepare] wrote {} ({} documents, {} train and {val} val tokens)\n\
         next: point a run config's [data] dir at it and train: inheritune train --config run.toml --init MODEL --run runs/NAME",
        args.out.display(),
        manifest.documents,
        manifest.splits.get("train").map_or(0, |s| s.tokens),
    );
    println!(
        "{}",
        serde_json::to_string(
            &serde_json::json!({"out": args.out, "documents": manifest.documents, "splits": manifest.splits})
        )?
    );
    Ok(())
}
