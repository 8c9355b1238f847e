//! `strata spectra`: singular-value spectra, condition numbers and power-law exponents of
//! every weight matrix, written as `spectra.csv`, `spectra.json` and SVG figures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use strata_spectra::{Convention, SpectraConfig, SpectraResult, SpectrumMethod, analyze_path};

/// Options shared by `strata spectra` and `strata kappatune`: which tensors, which convention.
#[derive(Debug, Clone, clap::Args)]
pub struct SpectraOptions {
    /// Reference convention: `strata` (default), `peft` or `kappatune` (see the book, KappaTune method).
    #[arg(long, value_enum, default_value_t = ConventionArg::Strata)]
    pub convention: ConventionArg,
    /// Also analyse embedding tables (skipped by default except with `--convention kappatune`).
    #[arg(long)]
    pub include_embeddings: bool,
    /// Skip tensors with a dimension above this (default: 16384, none for `kappatune`; 0: no cap).
    #[arg(long)]
    pub max_dim: Option<usize>,
    /// Also analyse fused QKV projections split into Q, K and V.
    #[arg(long)]
    pub split_qkv: bool,
    /// How singular values are computed: `auto` (Gram eigenvalues, SVD when needed), `gram`, `svd`.
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    pub method: MethodArg,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `--convention` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConventionArg {
    /// strata's default.
    Strata,
    /// PEFT's KappaTuneSelector.
    Peft,
    /// The KappaTune reference optimizer.
    Kappatune,
}

/// `--method` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Gram eigenvalues with an SVD fallback.
    Auto,
    /// Gram eigenvalues only.
    Gram,
    /// f64 SVD only.
    Svd,
}

impl SpectraOptions {
    /// The library configuration these options describe.
    pub fn config(&self) -> SpectraConfig {
        let convention = match self.convention {
            ConventionArg::Strata => Convention::Strata,
            ConventionArg::Peft => Convention::Peft,
            ConventionArg::Kappatune => Convention::Kappatune,
        };
        let mut config = SpectraConfig::for_convention(convention);
        config.include_embeddings |= self.include_embeddings;
        if let Some(max_dim) = self.max_dim {
            config.max_dim = (max_dim > 0).then_some(max_dim);
        }
        config.split_fused_qkv = self.split_qkv;
        config.method = match self.method {
            MethodArg::Auto => SpectrumMethod::Auto,
            MethodArg::Gram => SpectrumMethod::Gram,
            MethodArg::Svd => SpectrumMethod::Svd,
        };
        config.n_threads = self.threads;
        config
    }
}

/// Arguments of `strata spectra`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model folder (`model.safetensors` or a sharded index) or a single `.safetensors` file.
    #[arg(long)]
    pub model: PathBuf,
    /// Output folder for `spectra.csv`, `spectra.json`, `kappa_by_layer.svg` and `esd.svg`.
    #[arg(long, default_value = "out/spectra")]
    pub out: PathBuf,
    /// Units to draw in `esd.svg`, comma-separated (default: the lowest- and highest-kappa ones).
    #[arg(long, value_delimiter = ',')]
    pub esd: Vec<String>,
    /// Write the tables only, no figures.
    #[arg(long)]
    pub no_figures: bool,
    #[command(flatten)]
    pub options: SpectraOptions,
}

/// Runs `strata spectra`.
pub fn run(args: &Args) -> Result<()> {
    run_spectra(args).map(drop)
}

/// Runs `strata spectra` and returns the result it wrote (singular values kept unless
/// `--no-figures`).
pub fn run_spectra(args: &Args) -> Result<SpectraResult> {
    let mut config = args.options.config();
    config.keep_singular_values = !args.no_figures;
    let result = analyze_with_progress(&args.model, &config)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output folder {}", args.out.display()))?;

    let csv = args.out.join("spectra.csv");
    strata_report::write_spectra_csv(&result, &csv)?;
    let mut lean = result.clone();
    lean.units.iter_mut().for_each(|u| u.singular_values = None);
    lean.save_json(&args.out.join("spectra.json"))?;

    let mut written = vec![
        "spectra.csv".to_string(),
        "spectra.parquet".to_string(),
        "spectra.json".to_string(),
    ];
    if !args.no_figures {
        strata_report::plot_kappa_by_layer(&result, &args.out.join("kappa_by_layer.svg"))?;
        written.push("kappa_by_layer.svg".into());
        let chosen = esd_units(&result, &args.esd)?;
        let chosen: Vec<&str> = chosen.iter().map(String::as_str).collect();
        strata_report::plot_esd(&result, &chosen, &args.out.join("esd.svg"))?;
        written.push("esd.svg".into());
    }
    strata_core::io::RunManifest::new(args.model.display().to_string(), written)
        .write(&args.out)?;
    summarize(&result, &args.out)?;
    Ok(result)
}

/// Analyses a model with a progress bar on stderr.
pub fn analyze_with_progress(model: &Path, config: &SpectraConfig) -> Result<SpectraResult> {
    let bar = crate::progress::bar(0, "tensors");
    let callback = |p: strata_spectra::Progress<'_>| {
        bar.set_length(p.n_total as u64);
        bar.set_position(p.n_done as u64);
        bar.set_message(p.tensor.to_string());
    };
    let result = analyze_path(model, config, Some(&callback))
        .with_context(|| format!("strata spectra on {}", model.display()))?;
    bar.finish_and_clear();
    Ok(result)
}

/// The units named with `--esd` (each must be an analysed unit), or the lowest- and
/// highest-kappa units.
fn esd_units(result: &SpectraResult, requested: &[String]) -> Result<Vec<String>> {
    if !requested.is_empty() {
        for name in requested {
            if !result.units.iter().any(|u| &u.unit == name) {
                let known: Vec<&str> = result
                    .units
                    .iter()
                    .take(4)
                    .map(|u| u.unit.as_str())
                    .collect();
                anyhow::bail!(
                    "--esd: no unit `{name}` in this model (units are named like {}, ...; see \
                     spectra.csv)",
                    known.join(", ")
                );
            }
        }
        return Ok(requested.to_vec());
    }
    let (ranking, _) = strata_spectra::rank(result);
    let mut chosen: Vec<String> = ranking
        .first()
        .map(|r| r.unit.clone())
        .into_iter()
        .collect();
    if let Some(last) = ranking.last().filter(|_| ranking.len() > 1) {
        chosen.push(last.unit.clone());
    }
    Ok(chosen)
}

fn summarize(result: &SpectraResult, out: &Path) -> Result<()> {
    let n_ok = result.ok_units().count();
    let n_svd = result
        .ok_units()
        .filter(|u| u.path == Some(strata_spectra::SpectrumPath::Svd))
        .count();
    say!(
        "{n_ok} units analysed ({n_svd} by SVD), {} failed, {} tensors skipped; wrote {}",
        result.failed_units().count(),
        result.skipped.len(),
        out.join("spectra.csv").display()
    );
    for unit in result.failed_units() {
        say!("  not analysed: `{}` ({})", unit.unit, unit.status.label());
    }
    Ok(())
}
