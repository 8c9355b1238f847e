//! PPL-p% activation sparsity of the tiny models (`book/src/sparsity.md`): per model, the
//! CETT target at which perplexity on KJV valid rises by p% and the per-layer activation
//! ratio there; for every suite model that has been trained (`cargo xtask train-tiny suite`,
//! `target/strata-suite/<name>/step{N}/`), the activation ratio over training at the PPL-1%
//! CETT found jointly on the last 5 checkpoints (the mean of their PPL ratios) and applied to
//! every checkpoint, as the Sparsing Law paper draws it (its App. E), with the paper's fitted
//! law of the model's activation (Eq. 4 for ReLU, Eq. 5 for SiLU and GELU) after the warm-up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use serde::{Deserialize, Serialize};
use strata_core::Model;
use strata_core::eval::corpus;
use strata_sparsity::{
    DensePass, Law, LawConfig, LawParams, SearchStatus, SeriesTarget, SparsityConfig,
    discover_checkpoints, measure_series,
};

use crate::train::spec::suite_preset;

/// The experiment's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Allowed perplexity increases, in percent.
    pub ps: Vec<f64>,
    /// Tokens per window.
    pub window: usize,
    /// Windows from the start of KJV valid.
    pub n_windows: usize,
    /// Width of the final CETT bracket.
    pub tol: f64,
    /// Include the trained suite models (and their checkpoint series) when present.
    pub suite: bool,
}

impl Settings {
    /// p = 1, 5, 10; 8 windows of 128 tokens; the suite when trained.
    pub fn full() -> Self {
        Self {
            ps: vec![1.0, 5.0, 10.0],
            window: 128,
            n_windows: 8,
            tol: 1e-3,
            suite: true,
        }
    }

    /// p = 1 on 2 windows of 64 tokens of the default model, bracket 1e-2.
    pub fn smoke() -> Self {
        Self {
            ps: vec![1.0],
            window: 64,
            n_windows: 2,
            tol: 1e-2,
            suite: false,
        }
    }
}

/// One (model, p) result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRow {
    /// Model name.
    pub model: String,
    /// MLP activation.
    pub activation: String,
    /// Allowed perplexity increase, percent.
    pub p: f64,
    /// The CETT target found.
    pub cett: f64,
    /// Whether it was bracketed.
    pub reached: bool,
    /// Dense perplexity of the windows.
    pub dense_ppl: f64,
    /// Sparse perplexity of the windows.
    pub sparse_ppl: f64,
    /// Mean per-window PPL ratio.
    pub ppl_ratio: f64,
    /// Mean activation ratio over layers.
    pub mean_activation_ratio: f64,
    /// Mean exact-zero fraction over layers (dense).
    pub mean_zero_fraction: f64,
    /// Per-layer activation ratios, `;`-separated.
    pub layer_activation_ratios: String,
    /// Sparse forward passes run for this p.
    pub n_sparse_passes: usize,
    /// Wall time of the search, seconds.
    pub wall_s: f64,
}

/// One checkpoint of a suite model at the PPL-1% CETT of its last 5 checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Model name.
    pub model: String,
    /// MLP activation.
    pub activation: String,
    /// Training step of the checkpoint.
    pub step: usize,
    /// Tokens seen at that step.
    pub tokens_seen: usize,
    /// The CETT applied (found jointly on the last 5 checkpoints).
    pub cett: f64,
    /// Left out of the fit as warm-up.
    pub warmup: bool,
    /// Mean activation ratio over layers.
    pub mean_activation_ratio: f64,
    /// Mean per-window PPL ratio.
    pub ppl_ratio: f64,
    /// Dense perplexity.
    pub dense_ppl: f64,
}

/// The fitted law of one suite model's activation ratio over training (percent, `D` in
/// billions of tokens).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitRow {
    /// Model name.
    pub model: String,
    /// The law fitted (the model's activation's).
    pub law: Law,
    /// The parameters, when the fit succeeded.
    pub params: Option<LawParams>,
    /// The limit `A0`, percent.
    pub a0: Option<f64>,
    /// Coefficient of determination.
    pub r2: Option<f64>,
    /// Checkpoints fitted (after the warm-up).
    pub n_points: usize,
    /// Why the fit failed, or what is odd about it.
    pub note: Option<String>,
}

/// Everything the experiment measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The settings used.
    pub settings: Settings,
    /// One row per (model, p).
    pub models: Vec<ModelRow>,
    /// Checkpoint series of the suite models.
    pub series: Vec<SeriesRow>,
    /// The fitted law of each suite model's series.
    pub fits: Vec<FitRow>,
}

/// A model to measure: name, activation, final folder, and for a suite model its series
/// folder, tokens per step and warm-up steps.
struct Target {
    name: String,
    activation: String,
    dir: PathBuf,
    series: Option<(PathBuf, u64, u64)>,
}

fn targets(cfg: &Settings, root: &Path) -> Vec<Target> {
    let mut out = vec![Target {
        name: "tiny-default".into(),
        activation: "silu (gated)".into(),
        dir: root.join("datasets/models/tiny-default"),
        series: None,
    }];
    if !cfg.suite {
        return out;
    }
    for spec in suite_preset() {
        let base = root.join("target/strata-suite").join(&spec.arch.name);
        let final_dir = base.join(format!("step{}", spec.n_steps));
        if !final_dir.join("config.json").exists() {
            eprintln!(
                "{}: not trained (run `cargo xtask train-tiny suite`), skipped",
                final_dir.display()
            );
            continue;
        }
        let gated = if spec.arch.model_type == "llama" {
            " (gated)"
        } else {
            ""
        };
        out.push(Target {
            name: spec.arch.name.clone(),
            activation: format!("{}{gated}", spec.arch.activation),
            dir: final_dir,
            series: Some((
                base,
                spec.tokens_per_step() as u64,
                spec.warmup_steps as u64,
            )),
        });
    }
    out
}

fn kjv_tokens(model: &Model<Flex>, root: &Path) -> Result<Vec<u32>> {
    let path = root.join("datasets/kjv/valid.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(corpus::frame_lines(model.tokenizer()?, text.lines())?)
}

/// Runs the experiment, writing `models.csv`, `series.csv`, `results.json`, one figure per
/// model and `activation_over_training.svg` into `out`.
pub fn run(cfg: &Settings, root: &Path, out: &Path) -> Result<Results> {
    let device = Default::default();
    let mut results = Results {
        settings: cfg.clone(),
        models: Vec::new(),
        series: Vec::new(),
        fits: Vec::new(),
    };
    let mut curves = Vec::new();
    for target in targets(cfg, root) {
        let model = Model::<Flex>::load(&target.dir, &device)?;
        let tokens = kjv_tokens(&model, root)?;
        let config = SparsityConfig {
            window: cfg.window.min(model.config().n_ctx),
            n_windows: cfg.n_windows,
            tol: cfg.tol,
            ..SparsityConfig::for_model(model.config())
        };
        let mut dense = DensePass::run(&model, &tokens, &config, &mut |_, _| {})?;
        let mut figure = Vec::new();
        for &p in &cfg.ps {
            let started = Instant::now();
            let before = dense.n_sparse_passes();
            let s = dense.search(&model, p, &mut |_, _| {})?;
            let r = &s.result;
            let ratios: Vec<f64> = r.layers.iter().map(|l| l.activation_ratio()).collect();
            eprintln!(
                "{} PPL-{p}%: CETT {:.4}, activation ratio {:.2}%",
                target.name,
                s.cett,
                100.0 * r.mean_activation_ratio()
            );
            figure.push((format!("PPL-{p}% (CETT {:.3})", s.cett), ratios.clone()));
            results.models.push(ModelRow {
                model: target.name.clone(),
                activation: target.activation.clone(),
                p,
                cett: s.cett,
                reached: s.status == SearchStatus::Reached,
                dense_ppl: r.dense_ppl(),
                sparse_ppl: r.sparse_ppl(),
                ppl_ratio: r.ppl_ratio(),
                mean_activation_ratio: r.mean_activation_ratio(),
                mean_zero_fraction: r.mean_zero_fraction(),
                layer_activation_ratios: ratios
                    .iter()
                    .map(|v| format!("{v:.4}"))
                    .collect::<Vec<_>>()
                    .join(";"),
                n_sparse_passes: dense.n_sparse_passes() - before,
                wall_s: started.elapsed().as_secs_f64(),
            });
        }
        strata_report::plot_activation_ratio_by_layer(
            &figure,
            &format!("activation ratio by layer: {}", target.name),
            &out.join(format!("{}_by_layer.svg", target.name)),
        )?;
        if let Some((base, tokens_per_step, warmup)) = &target.series {
            let checkpoints = discover_checkpoints(base, Some(*tokens_per_step))?;
            let started = Instant::now();
            let target_p = SeriesTarget::PplP {
                p: cfg.ps[0],
                last: 5,
            };
            let series = measure_series::<Flex>(
                base,
                &checkpoints,
                &tokens,
                target_p,
                &config,
                &device,
                &mut |_, _| {},
            )?;
            let law = Law::for_activation(model.config().activation);
            let fit = series.fit(law, *warmup, &LawConfig::default());
            eprintln!(
                "{} series: {} checkpoints at CETT {:.4} in {:.1} s; {} law: {}",
                target.name,
                series.checkpoints.len(),
                series.cett,
                started.elapsed().as_secs_f64(),
                law.name(),
                match &fit {
                    Ok(f) => format!("{}, R^2 {:.4}", f.params, f.r2),
                    Err(e) => e.to_string(),
                }
            );
            for c in &series.checkpoints {
                results.series.push(SeriesRow {
                    model: target.name.clone(),
                    activation: target.activation.clone(),
                    step: c.step as usize,
                    tokens_seen: c.tokens_seen as usize,
                    cett: series.cett,
                    warmup: c.step <= *warmup,
                    mean_activation_ratio: c.result.mean_activation_ratio(),
                    ppl_ratio: c.result.ppl_ratio(),
                    dense_ppl: c.result.dense_ppl(),
                });
            }
            let n_points = series.fit_points(*warmup).0.len();
            let mut curve = strata_report::TrainingCurve {
                name: format!("{} ({})", target.name, target.activation),
                points: series
                    .checkpoints
                    .iter()
                    .map(|c| (c.tokens_seen as f64, c.result.mean_activation_ratio()))
                    .collect(),
                ..Default::default()
            };
            let row = match fit {
                Ok(f) => {
                    curve.fit = f
                        .curve(100)
                        .into_iter()
                        .map(|(t, a)| (t, a / 100.0))
                        .collect();
                    curve.fit_name = Some(f.label("%"));
                    FitRow {
                        model: target.name.clone(),
                        law,
                        params: Some(f.params),
                        a0: Some(f.params.limit()),
                        r2: Some(f.r2),
                        n_points,
                        note: f.caveat,
                    }
                }
                Err(e) => FitRow {
                    model: target.name.clone(),
                    law,
                    params: None,
                    a0: None,
                    r2: None,
                    n_points,
                    note: Some(e.to_string()),
                },
            };
            results.fits.push(row);
            curves.push(curve);
        }
    }
    strata_report::write_table(&out.join("models.csv"), &results.models)?;
    if !results.series.is_empty() {
        strata_report::write_table(&out.join("series.csv"), &results.series)?;
        strata_core::io::write_json_atomic(&out.join("fits.json"), &results.fits)?;
        strata_report::plot_activation_ratio_over_training(
            &curves,
            "activation ratio over training at the PPL-1% CETT of the last 5 checkpoints",
            &out.join("activation_over_training.svg"),
        )?;
    }
    strata_core::io::write_json_atomic(&out.join("results.json"), &results)?;
    Ok(results)
}

/// The results as markdown tables (the book chapter's): one row per (model, p), then the
/// fitted laws of the suite models' series when there are any.
pub fn markdown_table(results: &Results) -> String {
    let mut s = String::from(
        "| model | MLP | p | CETT | dense PPL | sparse PPL | activation ratio | per layer |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in &results.models {
        s.push_str(&format!(
            "| {} | {} | {}% | {:.4}{} | {:.2} | {:.2} | {:.2}% | {} |\n",
            r.model,
            r.activation,
            r.p,
            r.cett,
            if r.reached { "" } else { " (not reached)" },
            r.dense_ppl,
            r.sparse_ppl,
            100.0 * r.mean_activation_ratio,
            r.layer_activation_ratios
                .split(';')
                .filter_map(|v| v.parse::<f64>().ok())
                .map(|v| format!("{:.1}", 100.0 * v))
                .collect::<Vec<_>>()
                .join(" / ")
        ));
    }
    let fits = fits_markdown_table(results);
    if !fits.is_empty() {
        s.push('\n');
        s.push_str(&fits);
    }
    s
}

/// The fitted laws as a markdown table (empty when no suite model was measured).
pub fn fits_markdown_table(results: &Results) -> String {
    if results.fits.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "| model | law | parameters (D in billions of tokens, A in %) | A0 | R^2 | points | note |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for f in &results.fits {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            f.model,
            f.law.name(),
            f.params.map_or_else(|| "-".into(), |p| p.to_string()),
            f.a0.map_or_else(|| "-".into(), |a| format!("{a:.2}%")),
            f.r2.map_or_else(|| "-".into(), |r| format!("{r:.4}")),
            f.n_points,
            f.note.as_deref().unwrap_or("")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_experiment_lands_near_its_perplexity_target() {
        let root = crate::workspace_root();
        let out = std::env::temp_dir().join(format!("sparsity-smoke-{}", std::process::id()));
        let cfg = Settings::smoke();
        let results = run(&cfg, &root, &out).unwrap();
        assert!(!results.models.is_empty());
        for row in &results.models {
            let target = 1.0 + row.p / 100.0;
            assert!(row.reached, "{}: target not reached", row.model);
            assert!(
                (row.ppl_ratio - target).abs() < 0.02,
                "{}: ratio {} for target {target}",
                row.model,
                row.ppl_ratio
            );
            assert!(row.cett > 0.0 && row.cett < 1.0);
            assert!(row.mean_activation_ratio > 0.0 && row.mean_activation_ratio < 1.0);
            assert_eq!(row.layer_activation_ratios.split(';').count(), 4);
        }
        for f in ["models.csv", "models.parquet", "results.json"] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}
