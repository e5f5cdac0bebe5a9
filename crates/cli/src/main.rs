//! `inheritune`: the command-line tool of inheritune-rs.
//!
//! Verbs parse arguments, call the library crates, show progress and print results; they hold no
//! model or training logic of their own.

mod args;
mod perplexity;

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
    /// Perplexity of a text file under a Hugging Face checkpoint folder.
    Perplexity(perplexity::Args),
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Perplexity(args) => perplexity::run(&args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
