//! `inheritune convert`: a GGUF file (llama.cpp, Ollama, LM Studio) as a Hugging Face folder
//! that `transformers` loads: config.json, model.safetensors, tokenizer.json and
//! tokenizer_config.json. Every other verb takes a `.gguf` path directly (converted once into
//! the cache, see `inheritune_model::gguf::convert::cached_folder`).

use std::path::PathBuf;

use anyhow::Result;
use inheritune_model::gguf::convert;

use crate::args::DTypeArg;

/// Arguments of `inheritune convert`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  inheritune convert --model SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2-135m")]
pub struct Args {
    /// The GGUF file.
    #[arg(long = "model", alias = "from", value_name = "FILE.gguf")]
    from: PathBuf,
    /// The new Hugging Face folder (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// The dtype of model.safetensors (quantized tensors are exact in f32).
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    dtype: DTypeArg,
}

/// Runs the verb.
pub fn run(args: &Args) -> Result<()> {
    convert::to_folder(&args.from, &args.out, args.dtype.into())?;
    eprintln!(
        "[convert] {} -> {} (config.json, model.safetensors, tokenizer files)\nnext: inheritune analyze --model {} --text FILE --out DIR",
        args.from.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
