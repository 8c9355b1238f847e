//! `cargo xtask bench-compare`: strata against PyTorch, side by side in one run.
//!
//! Each area is a Python script in `scripts/` that times both sides on the same inputs with
//! the same thread count and prints the ratio. The scripts need torch and transformers:
//! `python3 -m venv .venv && .venv/bin/pip install torch transformers numpy`. The Python is
//! `--python`, else `STRATA_BENCH_PYTHON`, else the workspace's `.venv` when it exists, else
//! `python3`.

use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::workspace_root;

/// Arguments of `cargo xtask bench-compare`.
#[derive(clap::Args)]
pub struct Args {
    /// What to compare.
    #[arg(value_enum)]
    pub area: Area,
    /// Threads on both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// `forward` only: an HF causal-LM folder to time instead of the random GPT-2-small
    /// (for example SmolLM2-135M written by `strata export`).
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// `forward` only: also measure peak RSS while loading this GGUF file.
    #[arg(long)]
    pub gguf: Option<std::path::PathBuf>,
    /// `forward` only: rows per forward pass.
    #[arg(long)]
    pub batch: Option<usize>,
    /// `forward` only: tokens per row.
    #[arg(long)]
    pub seq: Option<usize>,
    /// `forward` and `train-step`: interleaved rounds of both sides.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// The Python with torch and transformers (default: `STRATA_BENCH_PYTHON`, then
    /// `.venv/bin/python`, then `python3`).
    #[arg(long)]
    pub python: Option<std::path::PathBuf>,
}

/// The benchmarked areas.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Area {
    /// Forward throughput, 4 x 256 tokens, vs HF eager fp32: a GPT-2-small-shaped model, or
    /// `--model`.
    Forward,
    /// Singular values of every 2-D tensor of a GPT-2-small-shaped checkpoint vs torch.linalg.svdvals.
    Spectra,
    /// One training step of the tiny-default architecture, 16 x 128 tokens, vs PyTorch CPU AdamW.
    TrainStep,
    /// One dense + sparse pass pair of the CETT sparsity measurement (dense pass with
    /// capture, every layer's threshold solve, sparse pass) on the tiny default model, one
    /// window of 128 tokens, vs the same in PyTorch with forward hooks.
    Sparsity,
}

/// Runs the comparison script of `args.area`.
pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    let venv_python = root.join(".venv/bin/python");
    let python = match (&args.python, std::env::var_os("STRATA_BENCH_PYTHON")) {
        (Some(python), _) => python.clone(),
        (None, Some(python)) => python.into(),
        (None, None) if venv_python.is_file() => venv_python,
        (None, None) => "python3".into(),
    };
    let script = match args.area {
        Area::Forward => "scripts/bench_forward.py",
        Area::Spectra => "scripts/bench_spectra.py",
        Area::TrainStep => "scripts/bench_train_step.py",
        Area::Sparsity => "scripts/bench_sparsity.py",
    };
    if let Area::Spectra = args.area {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "strata-spectra",
                "--example",
                "bench_spectra",
            ])
            .current_dir(&root)
            .status()
            .context("building the spectra benchmark")?;
        ensure!(
            status.success(),
            "building the spectra benchmark failed ({status})"
        );
    }
    let mut command = Command::new(&python);
    command
        .arg(root.join(script))
        .arg("--threads")
        .arg(args.threads.to_string());
    if let Area::Forward = args.area {
        if let Some(model) = &args.model {
            command.arg("--model").arg(model);
        }
        if let Some(gguf) = &args.gguf {
            command.arg("--gguf").arg(gguf);
        }
        for (flag, value) in [("--batch", args.batch), ("--seq", args.seq)] {
            if let Some(value) = value {
                command.arg(flag).arg(value.to_string());
            }
        }
    }
    if let (Area::Forward | Area::TrainStep, Some(rounds)) = (args.area, args.rounds) {
        command.arg("--rounds").arg(rounds.to_string());
    }
    if let Area::TrainStep = args.area {
        // The strata side runs `xtask train-tiny`: this binary, already built in release.
        let xtask = std::env::current_exe().context("locating the xtask binary")?;
        command.arg("--xtask").arg(xtask);
    }
    let status = command
        .current_dir(&root)
        .status()
        .with_context(|| format!("running {} {script}", python.display()))?;
    ensure!(status.success(), "{script} failed ({status})");
    Ok(())
}
