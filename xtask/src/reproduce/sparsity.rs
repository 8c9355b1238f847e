//! PPL-p% activation sparsity of the tiny models (`book/src/sparsity.md`): per model, the
//! CETT target at which perplexity on KJV valid rises by p% and the per-layer activation
//! ratio there; for every suite model that has been trained (`cargo xtask train-tiny suite`,
//! `target/strata-suite/<name>/step{N}/`), the activation ratio over training at the CETT
//! found on the final checkpoint, as the Sparsing Law paper draws it (its App. E applies one
//! CETT to every checkpoint).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use serde::{Deserialize, Serialize};
use strata_core::Model;
use strata_core::eval::corpus;
use strata_sparsity::{DensePass, SearchStatus, SparsityConfig};

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

/// One checkpoint of a suite model at the final checkpoint's PPL-1% CETT.
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
    /// The CETT applied (found on the final checkpoint).
    pub cett: f64,
    /// Mean activation ratio over layers.
    pub mean_activation_ratio: f64,
    /// Mean per-window PPL ratio.
    pub ppl_ratio: f64,
    /// Dense perplexity.
    pub dense_ppl: f64,
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
}

/// A model to measure: name, activation, final folder, checkpoints `(step, tokens, dir)`.
struct Target {
    name: String,
    activation: String,
    dir: PathBuf,
    checkpoints: Vec<(usize, usize, PathBuf)>,
}

fn targets(cfg: &Settings, root: &Path) -> Vec<Target> {
    let mut out = vec![Target {
        name: "tiny-default".into(),
        activation: "silu (gated)".into(),
        dir: root.join("datasets/models/tiny-default"),
        checkpoints: Vec::new(),
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
        let mut checkpoints: Vec<(usize, usize, PathBuf)> = std::fs::read_dir(&base)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let step: usize = name.strip_prefix("step")?.parse().ok()?;
                e.path()
                    .join("config.json")
                    .exists()
                    .then(|| (step, step * spec.tokens_per_step(), e.path()))
            })
            .collect();
        checkpoints.sort_by_key(|c| c.0);
        let gated = if spec.arch.model_type == "llama" {
            " (gated)"
        } else {
            ""
        };
        out.push(Target {
            name: spec.arch.name.clone(),
            activation: format!("{}{gated}", spec.arch.activation),
            dir: final_dir,
            checkpoints,
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
    };
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
        let mut cett_1 = None;
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
            if p == cfg.ps[0] {
                cett_1 = Some(s.cett);
            }
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
        if let Some(cett) = cett_1 {
            for (step, tokens_seen, dir) in &target.checkpoints {
                let ckpt = Model::<Flex>::load(dir, &device)?;
                let r = strata_sparsity::at_cett(&ckpt, &tokens, cett, &config, &mut |_, _| {})?;
                results.series.push(SeriesRow {
                    model: target.name.clone(),
                    activation: target.activation.clone(),
                    step: *step,
                    tokens_seen: *tokens_seen,
                    cett,
                    mean_activation_ratio: r.mean_activation_ratio(),
                    ppl_ratio: r.ppl_ratio(),
                    dense_ppl: r.dense_ppl(),
                });
            }
        }
    }
    strata_report::write_table(&out.join("models.csv"), &results.models)?;
    if !results.series.is_empty() {
        strata_report::write_table(&out.join("series.csv"), &results.series)?;
        let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for row in &results.series {
            let name = format!("{} ({})", row.model, row.activation);
            let point = (row.tokens_seen as f64, row.mean_activation_ratio);
            match lines.iter_mut().find(|(n, _)| *n == name) {
                Some((_, pts)) => pts.push(point),
                None => lines.push((name, vec![point])),
            }
        }
        strata_report::plot_activation_ratio_over_training(
            &lines,
            "activation ratio over training at the final checkpoint's PPL-1% CETT",
            &out.join("activation_over_training.svg"),
        )?;
    }
    strata_core::io::write_json_atomic(&out.join("results.json"), &results)?;
    Ok(results)
}

/// The results as a markdown table (the book chapter's).
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
