//! `strata kappatune`: rank weight matrices by condition number and select the lowest-kappa
//! ones to fine-tune (KappaTune), writing the ranking and a selection file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_spectra::{Budget, TrainableMask, select};

use super::spectra::{SpectraOptions, analyze_with_progress};

/// Arguments of `strata kappatune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model folder (`model.safetensors` or a sharded index) or a single `.safetensors` file.
    #[arg(long)]
    pub model: PathBuf,
    /// How many units to select: `count:N` (or `N`), `fraction:P` (or `0.P`), `threshold:T`,
    /// `params:N` or `all`.
    #[arg(long, default_value = "fraction:0.2")]
    pub budget: Budget,
    /// Output folder for `ranking.csv`, `selection.json` and `condition_numbers.json`.
    #[arg(long, default_value = "out/kappatune")]
    pub out: PathBuf,
    #[command(flatten)]
    pub options: SpectraOptions,
}

/// Runs `strata kappatune`.
pub fn run(args: &Args) -> Result<()> {
    let config = args.options.config();
    let result = analyze_with_progress(&args.model, &config)?;
    let selection = select(&result, args.budget)
        .with_context(|| format!("selecting with budget {}", args.budget))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output folder {}", args.out.display()))?;

    strata_report::write_ranking_csv(&selection, &args.out.join("ranking.csv"))?;
    let mask = TrainableMask::from_selection(&selection, config.convention);
    mask.save(&args.out.join("selection.json"))?;
    // JSON has no infinity: an infinite kappa (`kappatune` convention, s_min = 0) is "inf".
    let kappas: serde_json::Map<String, serde_json::Value> = result
        .kappa_map()
        .into_iter()
        .map(|(unit, kappa)| (unit, strata_core::io::json_float(kappa)))
        .collect();
    strata_core::io::write_json_atomic(&args.out.join("condition_numbers.json"), &kappas)?;
    strata_core::io::RunManifest::new(
        args.model.display().to_string(),
        vec![
            "ranking.csv".into(),
            "ranking.parquet".into(),
            "selection.json".into(),
            "condition_numbers.json".into(),
        ],
    )
    .write(&args.out)?;

    say!(
        "selected {} of {} units ({} parameters) with budget {}; wrote {}",
        selection.n_selected(),
        selection.ranking.len(),
        selection.n_params_selected(),
        args.budget,
        args.out.join("selection.json").display()
    );
    for unit in selection.selected().take(10) {
        say!(
            "  {:>4}  kappa {:>12.4}  {}",
            unit.rank,
            unit.kappa,
            unit.unit
        );
    }
    if selection.n_selected() > 10 {
        say!(
            "  ... ({} more in ranking.csv)",
            selection.n_selected() - 10
        );
    }
    Ok(())
}
