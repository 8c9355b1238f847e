//! Massive activations over training on strata's tiny suite (`book/src/massive.md`, after
//! arXiv:2508.03616): every checkpoint of every suite model measured on the same KJV tokens,
//! the five-parameter curve fitted to each layer's top-1/median, top-1 and median series,
//! the R^2 table, and the fitted parameters predicted from the architecture.
//!
//! The full run reads the suite `cargo xtask train-tiny suite` writes to
//! `target/strata-suite` (and trains it first when it is missing). The smoke run trains a
//! 16-step suite with a checkpoint every 2 steps into its output folder, to check the
//! pipeline in a minute or two.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use burn::backend::Flex;
use serde::Serialize;
use strata_core::Tokenizer;
use strata_core::eval::corpus;
use strata_core::io::{RunManifest, write_json_atomic};
use strata_massive::{
    DynamicsFit, FitConfig, LayerArch, MassiveConfig, ParamPrediction, PredictorConfig,
    SeriesResult, Statistic, discover_series, fit_dynamics, measure_series, predict_parameters,
    series_rows,
};

use crate::paths::Paths;
use crate::read_lines;

/// The experiment's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    /// The suite folder (one series folder per model).
    pub suite: PathBuf,
    /// Extra `train-tiny suite` arguments used when the suite must be trained.
    pub train_args: Vec<String>,
    /// Evaluation sequences (contiguous chunks of the KJV validation split).
    pub n_seq: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
}

impl Settings {
    /// The full run: the suite as `cargo xtask train-tiny suite` writes it, 10 sequences of
    /// 128 tokens (the models' context).
    pub fn full(root: &Path) -> Self {
        Self {
            suite: root.join("target/strata-suite"),
            train_args: Vec::new(),
            n_seq: 10,
            seq_len: 128,
        }
    }

    /// The smoke run: a 16-step suite with a checkpoint every 2 steps, inside `out`.
    pub fn smoke(out: &Path) -> Self {
        Self {
            suite: out.join("suite"),
            train_args: ["--steps", "16", "--checkpoint-every", "2"]
                .map(String::from)
                .to_vec(),
            n_seq: 4,
            seq_len: 64,
        }
    }
}

/// One row of `series.csv`.
#[derive(Debug, Clone, Serialize)]
struct SeriesCsvRow {
    model: String,
    step: u64,
    layer: usize,
    top1: f64,
    median: f64,
    ratio: f64,
    max_abs: f64,
    token_pos: usize,
    dim: usize,
}

/// One row of `fits.csv`: a layer's fitted parameters, R^2, AIC and peak step.
#[derive(Debug, Clone, Serialize)]
struct FitRow {
    model: String,
    layer: usize,
    statistic: String,
    a: f64,
    lambda: f64,
    gamma: f64,
    t0: f64,
    k: f64,
    r2: f64,
    aic: f64,
    peak_step: Option<f64>,
    peak_observed: bool,
    n_points: usize,
}

/// Runs the experiment into `out`; returns the markdown summary.
pub fn run(settings: &Settings, root: &Path, out: &Path) -> Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    ensure_suite(settings)?;
    let mut models: Vec<PathBuf> = std::fs::read_dir(&settings.suite)
        .with_context(|| format!("{}: cannot read the suite", settings.suite.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("summary.json").is_file())
        .collect();
    models.sort();
    if models.is_empty() {
        bail!(
            "{}: no trained suite model (a folder with summary.json)",
            settings.suite.display()
        );
    }
    let device = Default::default();
    let config = MassiveConfig {
        top_k: 5,
        ..MassiveConfig::default()
    };
    let mut series_csv = Vec::new();
    let mut fits = Vec::new();
    let mut predictor_rows = Vec::new();
    let mut all_series = Vec::new();
    let mut files = Vec::new();
    for model_dir in &models {
        let name = model_dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let checkpoints = discover_series(model_dir)?;
        let tokenizer = Tokenizer::from_file(&checkpoints[0].path.join("tokenizer.json"))?;
        let sequences = eval_sequences(root, &tokenizer, settings)?;
        let bar = indicatif::ProgressBar::new(checkpoints.len() as u64).with_prefix(name.clone());
        let series = measure_series::<Flex>(
            model_dir,
            &checkpoints,
            &sequences,
            &config,
            &device,
            &mut |done, _| bar.set_position(done as u64),
        )?;
        bar.finish_and_clear();
        series_csv.extend(series_rows(&series).into_iter().map(|r| SeriesCsvRow {
            model: name.clone(),
            step: r.step,
            layer: r.layer,
            top1: r.top1,
            median: r.median,
            ratio: r.ratio,
            max_abs: r.max_abs,
            token_pos: r.token_pos,
            dim: r.dim,
        }));
        let steps: Vec<f64> = series.steps().iter().map(|&s| s as f64).collect();
        let mut trajectories = Vec::new();
        for layer in 0..series.model.n_layers {
            for statistic in [Statistic::Ratio, Statistic::Top1, Statistic::Median] {
                let values = series.trajectory(layer, statistic);
                let what = format!("{name} layer {layer} {}", statistic.name());
                let fit = match fit_dynamics(&what, &steps, &values, &FitConfig::default()) {
                    Ok(fit) => Some(fit),
                    Err(e) => {
                        eprintln!("{e}");
                        None
                    }
                };
                if statistic == Statistic::Ratio {
                    trajectories.push(strata_report::Trajectory {
                        name: format!("layer {layer}"),
                        points: steps.iter().copied().zip(values.iter().copied()).collect(),
                        fit: fit.as_ref().map(|f| f.params),
                    });
                    if let Some(f) = &fit {
                        predictor_rows.push((arch_of(&series, layer), f.params));
                    }
                }
                if let Some(f) = fit {
                    fits.push(fit_row(&name, layer, statistic, &f));
                }
            }
        }
        let figure = format!("trajectories_{name}.svg");
        strata_report::plot_trajectories(
            &trajectories,
            &format!("top-1 / median over training, with fits: {name}"),
            "top-1 / median |h|",
            &out.join(&figure),
        )?;
        files.push(figure);
        all_series.push(series);
    }
    let predictions = match predict_parameters(&predictor_rows, &PredictorConfig::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("predictor: {e}");
            Vec::new()
        }
    };
    strata_report::write_table(&out.join("series.csv"), &series_csv)?;
    strata_report::write_table(&out.join("fits.csv"), &fits)?;
    if !predictions.is_empty() {
        strata_report::write_table(&out.join("predictor.csv"), &predictions)?;
        files.extend(["predictor.csv", "predictor.parquet"].map(String::from));
    }
    write_json_atomic(
        &out.join("results.json"),
        &serde_json::json!({ "settings": settings, "series": all_series, "predictions": predictions }),
    )?;
    files.extend(
        [
            "series.csv",
            "series.parquet",
            "fits.csv",
            "fits.parquet",
            "results.json",
        ]
        .map(String::from),
    );
    RunManifest::new(settings.suite.display().to_string(), files).write(out)?;
    Ok(markdown(&all_series, &fits, &predictions))
}

/// Trains the suite with `train-tiny suite` when its `suite.json` is missing.
fn ensure_suite(settings: &Settings) -> Result<()> {
    if settings.suite.join("suite.json").is_file() {
        return Ok(());
    }
    eprintln!(
        "{}: no trained suite; training it (train-tiny suite {})",
        settings.suite.display(),
        settings.train_args.join(" ")
    );
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let status = Command::new(exe)
        .args(["train-tiny", "suite", "--out"])
        .arg(&settings.suite)
        .args(&settings.train_args)
        .status()
        .context("cannot start train-tiny")?;
    if !status.success() {
        bail!("train-tiny suite failed ({status})");
    }
    Ok(())
}

/// The fixed evaluation tokens: the first `n_seq` chunks of `seq_len` tokens of the KJV
/// validation split, framed as `strata ppl` frames a corpus.
fn eval_sequences(
    root: &Path,
    tokenizer: &Tokenizer,
    settings: &Settings,
) -> Result<Vec<Vec<u32>>> {
    let path = Paths::at(root).kjv("valid");
    let lines = read_lines(&path)?;
    let stream = corpus::frame_lines(tokenizer, lines.iter().map(String::as_str))?;
    let chunks: Vec<Vec<u32>> = stream
        .chunks_exact(settings.seq_len)
        .take(settings.n_seq)
        .map(<[u32]>::to_vec)
        .collect();
    if chunks.len() < settings.n_seq {
        bail!(
            "{}: {} tokens hold only {} sequences of {}",
            path.display(),
            stream.len(),
            chunks.len(),
            settings.seq_len
        );
    }
    Ok(chunks)
}

fn arch_of(series: &SeriesResult, layer: usize) -> LayerArch {
    let m = &series.model;
    LayerArch {
        layer,
        n_layers: m.n_layers,
        d_model: m.d_model,
        n_heads: m.n_heads,
        d_mlp: m.d_mlp,
    }
}

fn fit_row(model: &str, layer: usize, statistic: Statistic, f: &DynamicsFit) -> FitRow {
    FitRow {
        model: model.to_string(),
        layer,
        statistic: statistic.name().to_string(),
        a: f.params.a,
        lambda: f.params.lambda,
        gamma: f.params.gamma,
        t0: f.params.t0,
        k: f.params.k,
        r2: f.r2,
        aic: f.aic,
        peak_step: f.peak_step,
        peak_observed: f.peak_observed,
        n_points: f.n_points,
    }
}

/// The summary tables: final ratios, R^2 per model and statistic, the predictor.
fn markdown(series: &[SeriesResult], fits: &[FitRow], predictions: &[ParamPrediction]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| model | layer | ratio at step 0 | last ratio (step) | ratio fit R^2 | peak step |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for sr in series {
        let name = sr
            .dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let last_step = sr.steps().last().copied().unwrap_or(0);
        for layer in 0..sr.model.n_layers {
            let t = sr.trajectory(layer, Statistic::Ratio);
            let fit = fits
                .iter()
                .find(|f| f.model == name && f.layer == layer && f.statistic == "ratio");
            let _ = writeln!(
                s,
                "| {name} | {layer} | {:.1} | {:.1} ({last_step}) | {} | {} |",
                t.first().copied().unwrap_or(f64::NAN),
                t.last().copied().unwrap_or(f64::NAN),
                fit.map_or("-".into(), |f| format!("{:.4}", f.r2)),
                fit.and_then(|f| f.peak_step.filter(|_| f.peak_observed))
                    .map_or("not in training".into(), |p| format!("{p:.0}")),
            );
        }
    }
    let _ = writeln!(s, "\n| statistic | layers fitted | mean R^2 | min R^2 |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    for stat in ["ratio", "top1", "median"] {
        let r2: Vec<f64> = fits
            .iter()
            .filter(|f| f.statistic == stat)
            .map(|f| f.r2)
            .collect();
        if r2.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "| {stat} | {} | {:.4} | {:.4} |",
            r2.len(),
            r2.iter().sum::<f64>() / r2.len() as f64,
            r2.iter().copied().fold(f64::INFINITY, f64::min)
        );
    }
    if !predictions.is_empty() {
        let _ = writeln!(
            s,
            "\n| parameter | transform | ridge alpha | CV R^2 | test R^2 | train / test rows |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
        for p in predictions {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3} | {:.3} | {} / {} |",
                p.param, p.transform, p.alpha, p.cv_r2, p.test_r2, p.n_train, p.n_test
            );
        }
    }
    s
}
