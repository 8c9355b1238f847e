//! The `strata` command line: one subcommand per job, glue over the library crates.

#[macro_use]
mod stdout;
mod allocator;
mod backend;
mod commands;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Look inside transformer language models.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Architecture, sizes, dtype and parameter count of a model folder.
    Info(commands::info::Args),
    /// Save activations at chosen sites to a safetensors file.
    Capture(commands::capture::Args),
    /// Generate text (greedy or sampled, KV-cached).
    Generate(commands::generate::Args),
    /// Perplexity of a text corpus with a sliding window.
    Ppl(commands::ppl::Args),
    /// Singular-value spectra, condition numbers and power-law exponents of every weight matrix.
    Spectra(commands::spectra::Args),
    /// Rank weight tensors by condition number and select the ones to fine-tune (KappaTune).
    Kappatune(commands::kappatune::Args),
    /// Where the massive activations sit: top magnitudes vs the median, layer by layer.
    Massive(commands::massive::Args),
    /// How many MLP neurons each layer can skip at a perplexity cost of p% (CETT thresholds).
    Sparsity(commands::sparsity::Args),
    /// Which layers each token uses (LAC void maps), and accuracy with the voids skipped.
    Void(commands::void::Args),
    /// Steering vectors: extract from contrastive pairs, apply, sweep alpha, compare.
    Steer(commands::steer::Args),
    /// Write a model (a `.gguf` file, say) as a Hugging Face folder.
    Export(commands::export::Args),
    /// Every analysis on one model (default: the embedded tiny model), as one HTML page.
    Report(commands::report::Args),
    /// Combine the results of sharded runs (`--shard i/n`) into the unsharded run's files.
    Merge(commands::merge::Args),
    /// Serve this machine's device to `--device remote:ws://HOST:PORT` elsewhere (feature
    /// `server`).
    ServeDevice(commands::serve_device::Args),
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<stdout::StdoutError>()
                .is_some_and(stdout::StdoutError::is_broken_pipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Info(args) => commands::info::run(args),
        Command::Capture(args) => commands::capture::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Ppl(args) => commands::ppl::run(args),
        Command::Spectra(args) => commands::spectra::run(args),
        Command::Kappatune(args) => commands::kappatune::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Massive(args) => commands::massive::run(args),
        Command::Sparsity(args) => commands::sparsity::run(args),
        Command::Void(args) => commands::void::run(args),
        Command::Steer(args) => commands::steer::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Merge(args) => commands::merge::run(args),
        Command::ServeDevice(args) => commands::serve_device::run(args),
    }
}
