//! `strata sparsity`: how many MLP neurons each layer can skip at a perplexity cost of p%
//! (PPL-p% with CETT thresholds), or at a fixed CETT target.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::Serialize;
use strata_core::eval::corpus;
use strata_core::io::{RunManifest, write_json_atomic};
use strata_sparsity::{
    DensePass, PplSearch, SearchStatus, SearchStep, SparsityConfig, SparsityResult, ThresholdConfig,
};

use super::model_args::ModelArgs;
use crate::progress;
use crate::with_backend;

/// Arguments of `strata sparsity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    /// A plain-text corpus, framed as `strata ppl` frames it and cut into `--n-windows`
    /// back-to-back windows of `--window` tokens.
    #[arg(long, conflicts_with = "token_ids")]
    pub corpus: Option<PathBuf>,
    /// Comma-separated token ids instead of a corpus (for folders without a tokenizer).
    #[arg(long, value_delimiter = ',')]
    pub token_ids: Option<Vec<u32>>,
    /// Allowed perplexity increases in percent, comma-separated (PPL-p%): 1,5,10.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        conflicts_with = "cett"
    )]
    pub p: Vec<f64>,
    /// Evaluate one fixed CETT target in [0, 1] instead of searching for PPL-p%.
    #[arg(long)]
    pub cett: Option<f64>,
    /// Tokens per window (default: the model's context, at most 256).
    #[arg(long)]
    pub window: Option<usize>,
    /// Windows measured; every window's thresholds are solved on its own dense activations.
    #[arg(long, default_value_t = 4)]
    pub n_windows: usize,
    /// Width of the final CETT bracket of the PPL-p% bisection.
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Threshold grid points per layer.
    #[arg(long, default_value_t = 65_536)]
    pub grid_size: usize,
    /// Reproduce the reference code's index wraparound (index -1 picks the largest threshold).
    #[arg(long)]
    pub wraparound: bool,
    /// Folder for `sparsity.csv` (and `.parquet`), `sparsity.json` and
    /// `sparsity_by_layer.svg`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One row of `sparsity.csv`: one (run, layer).
#[derive(Debug, Serialize)]
struct LayerRow {
    /// The PPL-p% target in percent (empty for a fixed CETT run).
    p: Option<f64>,
    cett: f64,
    layer: usize,
    /// Mean over windows of the layer's threshold on the neuron output norm.
    threshold: f64,
    activation_ratio: f64,
    sparsity: f64,
    /// The activation ratio on the dense activations the thresholds were solved on.
    dense_activation_ratio: f64,
    /// Mean over tokens of the CETT the layer's thresholds cause.
    layer_cett: f64,
    /// Exact zeros among the dense activations (ReLU models' zero-fraction sparsity).
    zero_fraction: f64,
}

/// One run of `sparsity.json`.
#[derive(Debug, Serialize)]
struct RunSummary {
    p: Option<f64>,
    cett: f64,
    reached: bool,
    note: Option<String>,
    dense_ppl: f64,
    sparse_ppl: f64,
    ppl_ratio: f64,
    mean_activation_ratio: f64,
    mean_sparsity: f64,
    mean_zero_fraction: f64,
    thresholds: Vec<f64>,
    activation_ratios: Vec<f64>,
    steps: Vec<SearchStep>,
    wall_s: f64,
    result: SparsityResult,
}

/// `sparsity.json`.
#[derive(Debug, Serialize)]
struct Summary {
    model: String,
    window: usize,
    n_windows: usize,
    n_tokens: usize,
    config: SparsityConfig,
    n_dense_passes: usize,
    n_sparse_passes: usize,
    dense_wall_s: f64,
    runs: Vec<RunSummary>,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, sparsity_on(args))
}

fn summary(
    p: Option<f64>,
    result: SparsityResult,
    search: Option<&PplSearch>,
    wall_s: f64,
) -> RunSummary {
    let (reached, note) = match search.map(|s| &s.status) {
        Some(SearchStatus::Unreachable { reason }) => (false, Some(reason.clone())),
        _ => (true, None),
    };
    RunSummary {
        p,
        cett: result.cett,
        reached,
        note,
        dense_ppl: result.dense_ppl(),
        sparse_ppl: result.sparse_ppl(),
        ppl_ratio: result.ppl_ratio(),
        mean_activation_ratio: result.mean_activation_ratio(),
        mean_sparsity: result.mean_sparsity(),
        mean_zero_fraction: result.mean_zero_fraction(),
        thresholds: result.mean_thresholds(),
        activation_ratios: result.layers.iter().map(|l| l.activation_ratio()).collect(),
        steps: search.map(|s| s.steps.clone()).unwrap_or_default(),
        wall_s,
        result,
    }
}

fn sparsity_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let model = args.target.load::<B>(device)?;
    let tokens: Vec<u32> = match (&args.corpus, &args.token_ids) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading corpus {}", path.display()))?;
            corpus::frame_lines(model.tokenizer()?, text.lines())
                .with_context(|| format!("framing corpus {}", path.display()))?
        }
        (None, Some(ids)) => {
            strata_core::TokenBatch::single(ids)?
                .check_vocab(model.config().vocab_size)
                .context("checking --token-ids")?;
            ids.clone()
        }
        (None, None) => bail!("give the tokens with --corpus or --token-ids"),
    };
    let config = SparsityConfig {
        window: args
            .window
            .unwrap_or_else(|| SparsityConfig::for_model(model.config()).window),
        n_windows: args.n_windows,
        tol: args.tol,
        threshold: ThresholdConfig {
            grid_size: args.grid_size,
            wraparound: args.wraparound,
            ..ThresholdConfig::default()
        },
    };
    if let Some(&p) = args.p.iter().find(|&&p| !(p > 0.0 && p <= 100.0)) {
        return Err(strata_sparsity::Error::InvalidP { value: p }.into());
    }
    if let Some(c) = args.cett
        && !(0.0..=1.0).contains(&c)
    {
        return Err(strata_sparsity::Error::InvalidCett { value: c }.into());
    }
    config.validate()?;

    let started = Instant::now();
    let bar = progress::bar(config.n_windows as u64, "dense passes");
    let mut dense = DensePass::run(&model, &tokens, &config, &mut |w, _| {
        bar.set_position(w as u64)
    })?;
    bar.finish_and_clear();
    let dense_wall_s = started.elapsed().as_secs_f64();

    let mut runs = Vec::new();
    if let Some(c) = args.cett {
        let t = Instant::now();
        let bar = progress::bar(config.n_windows as u64, "sparse passes");
        let result = dense.evaluate(&model, c, &mut |w, _| bar.set_position(w as u64))?;
        bar.finish_and_clear();
        runs.push(summary(None, result, None, t.elapsed().as_secs_f64()));
    } else {
        for &p in &args.p {
            let t = Instant::now();
            let n_steps = (1.0 / config.tol).log2().ceil() as u64;
            let bar = progress::bar((n_steps + 1) * config.n_windows as u64, "sparse passes");
            bar.set_message(format!("PPL-{p}%"));
            let search = dense.search(&model, p, &mut |d, _| bar.set_position(d as u64))?;
            bar.finish_and_clear();
            if let SearchStatus::Unreachable { reason } = &search.status {
                say!("PPL-{p}% not reached: {reason}");
            }
            let wall_s = t.elapsed().as_secs_f64();
            runs.push(summary(
                Some(p),
                search.result.clone(),
                Some(&search),
                wall_s,
            ));
        }
    }

    say!(
        "{} windows of {} tokens; dense PPL {:.3}",
        config.n_windows,
        config.window,
        runs.first().map_or(f64::NAN, |r| r.dense_ppl)
    );
    for run in &runs {
        let name = run
            .p
            .map_or_else(|| format!("CETT {}", run.cett), |p| format!("PPL-{p}%"));
        say!(
            "{name}: CETT {:.4}, sparse PPL {:.3} (ratio {:.4}), mean activation ratio {:.2}% \
             (exact zeros {:.2}%), {:.1} s",
            run.cett,
            run.sparse_ppl,
            run.ppl_ratio,
            100.0 * run.mean_activation_ratio,
            100.0 * run.mean_zero_fraction,
            run.wall_s
        );
        say!(
            "{:>5} {:>12} {:>10} {:>10}",
            "layer",
            "threshold",
            "active %",
            "zero %"
        );
        for (layer, l) in run.result.layers.iter().enumerate() {
            say!(
                "{:>5} {:>12.5} {:>10.2} {:>10.2}",
                layer,
                run.thresholds[layer],
                100.0 * l.activation_ratio(),
                100.0 * l.zero_fraction()
            );
        }
    }
    say!(
        "{} dense and {} sparse forward passes, {:.1} s",
        dense.n_dense_passes(),
        dense.n_sparse_passes(),
        started.elapsed().as_secs_f64()
    );

    if let Some(out) = &args.out {
        let rows: Vec<LayerRow> = runs
            .iter()
            .flat_map(|run| {
                run.result.layers.iter().map(move |l| LayerRow {
                    p: run.p,
                    cett: run.cett,
                    layer: l.layer,
                    threshold: run.thresholds[l.layer],
                    activation_ratio: l.activation_ratio(),
                    sparsity: l.sparsity(),
                    dense_activation_ratio: l.dense_activation_ratio(),
                    layer_cett: l.cett(),
                    zero_fraction: l.zero_fraction(),
                })
            })
            .collect();
        strata_report::write_table(&out.join("sparsity.csv"), &rows)?;
        let series: Vec<(String, Vec<f64>)> = runs
            .iter()
            .map(|run| {
                let name = run.p.map_or_else(
                    || format!("CETT {}", run.cett),
                    |p| format!("PPL-{p}% (CETT {:.3})", run.cett),
                );
                (name, run.activation_ratios.clone())
            })
            .collect();
        let title = format!(
            "activation ratio by layer: {}",
            args.target
                .model
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        strata_report::plot_activation_ratio_by_layer(
            &series,
            &title,
            &out.join("sparsity_by_layer.svg"),
        )?;
        let summary = Summary {
            model: args.target.model.display().to_string(),
            window: config.window,
            n_windows: config.n_windows,
            n_tokens: config.window * config.n_windows,
            config: config.clone(),
            n_dense_passes: dense.n_dense_passes(),
            n_sparse_passes: dense.n_sparse_passes(),
            dense_wall_s,
            runs,
        };
        write_json_atomic(&out.join("sparsity.json"), &summary)?;
        let files = [
            "sparsity.csv",
            "sparsity.parquet",
            "sparsity.json",
            "sparsity_by_layer.svg",
        ]
        .map(String::from)
        .to_vec();
        RunManifest::new(args.target.model.display().to_string(), files).write(out)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}
