//! `strata sparsity`: how many MLP neurons each layer can skip at a perplexity cost of p%
//! (PPL-p% with CETT thresholds), or at a fixed CETT target; and over the checkpoints of a
//! training run (`--series`), with the Sparsing Law's fitted laws.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use strata_core::eval::corpus;
use strata_core::io::{RunManifest, write_json_atomic};
use strata_core::probe::Merge;
use strata_core::{Model, Shard, Tokenizer};
use strata_sparsity::{
    DensePass, Law, LawConfig, LawFit, PplSearch, SearchStatus, SearchStep, SeriesTarget,
    SparsityConfig, SparsityResult, SparsitySeries, ThresholdConfig, discover_checkpoints,
    measure_series, planned_passes, recorded_warmup_steps,
};

use super::merge::ShardFile;
use super::model_args::ModelArgs;
use super::shard::{self, ShardState};
use crate::progress;
use crate::with_backend;

/// The `--model` value that means none was given.
const NO_MODEL: &str = "-";

/// Arguments of `strata sparsity`.
#[derive(Debug, clap::Args)]
// `--model` is not needed with `--series`: "-" stands for "not given".
#[command(mut_arg("model", |a| a.required(false).default_value(NO_MODEL).hide_default_value(true)))]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    /// A checkpoint series instead of one model: a folder of `step{N}` (or
    /// `checkpoint-{N}`) model folders, every one measured on the same tokens at one CETT
    /// target (`--cett`, or the PPL-p% target found jointly on the last `--last`
    /// checkpoints), with the Sparsing Law's fitted laws of the activation ratio over the
    /// tokens seen.
    #[arg(long)]
    pub series: Option<PathBuf>,
    /// `--series`: the PPL-p% search runs on this many checkpoints, from the last (the mean
    /// of their PPL ratios).
    #[arg(long, default_value_t = 5)]
    pub last: usize,
    /// `--series`: checkpoints up to this step are warm-up, left out of the fits (default:
    /// the `spec.warmup_steps` of the series' `summary.json`, else 0).
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// `--series`: tokens per training step, for checkpoints whose `trainer_state.json`
    /// does not record the tokens seen.
    #[arg(long)]
    pub tokens_per_step: Option<u64>,
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
    /// With `--cett`: measure only shard `i/n` of the windows (numbered from 1: `1/4` to
    /// `4/4`, contiguous shares) and write its state to `OUT/shard.json` for `strata merge`.
    /// Needs `--out`. (The PPL-p% search is not sharded: each bisection step needs the
    /// perplexity of every window.)
    #[arg(long, value_parser = shard::parse_shard)]
    pub shard: Option<Shard>,
    /// Folder for `sparsity.csv` (and `.parquet`), `sparsity.json` and
    /// `sparsity_by_layer.svg`; with `--series`, `series.csv` (and `.parquet`, one row per
    /// checkpoint and layer), `series.json` (the measurements and the fit of each law) and
    /// `activation_over_training.svg`.
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
struct Summary<'a> {
    model: String,
    window: usize,
    n_windows: usize,
    n_tokens: usize,
    config: SparsityConfig,
    n_dense_passes: usize,
    n_sparse_passes: usize,
    dense_wall_s: f64,
    runs: &'a [RunSummary],
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    if let Some(s) = args.shard {
        if args.series.is_some() {
            bail!("--shard {s} splits the windows of one model; --series is not sharded");
        }
        if args.cett.is_none() {
            bail!(
                "--shard {s} needs --cett: a fixed CETT target measures each window on its own, \
                 while each step of the PPL-p% search needs the perplexity of every window"
            );
        }
        shard::require_out(s, args.out.as_deref())?;
    }
    if args.series.is_some() {
        return with_backend!(spec, series_on(args));
    }
    if args.target.model.as_os_str() == NO_MODEL {
        bail!("give --model (one model) or --series (a folder of checkpoints)");
    }
    with_backend!(spec, sparsity_on(args))
}

/// The token stream from `--corpus` (framed with `tokenizer`) or `--token-ids` (checked
/// against the vocabulary).
fn tokens_of(args: &Args, tokenizer: Option<&Tokenizer>, vocab_size: usize) -> Result<Vec<u32>> {
    match (&args.corpus, &args.token_ids) {
        (Some(path), _) => {
            let tokenizer = tokenizer
                .context("--corpus needs a tokenizer.json in the model folder; give --token-ids")?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading corpus {}", path.display()))?;
            corpus::frame_lines(tokenizer, text.lines())
                .with_context(|| format!("framing corpus {}", path.display()))
        }
        (None, Some(ids)) => {
            strata_core::TokenBatch::single(ids)?
                .check_vocab(vocab_size)
                .context("checking --token-ids")?;
            Ok(ids.clone())
        }
        (None, None) => bail!("give the tokens with --corpus or --token-ids"),
    }
}

/// The measurement settings of the arguments, checked.
fn config_of(args: &Args, n_ctx: usize) -> Result<SparsityConfig> {
    let config = SparsityConfig {
        window: args.window.unwrap_or(n_ctx.min(256)),
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
    Ok(config)
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
    let all_tokens = tokens_of(args, model.tokenizer_if_any(), model.config().vocab_size)?;
    let whole = config_of(args, model.config().n_ctx)?;
    // A shard measures its windows of the whole run's (which must fit the corpus).
    let span = strata_sparsity::windows(&all_tokens, whole.window, whole.n_windows)?.len();
    let items = match args.shard {
        Some(s) => shard::take(s, span, "windows")?,
        None => 0..span,
    };
    let tokens = &all_tokens[items.start * whole.window..items.end * whole.window];
    let config = SparsityConfig {
        n_windows: items.len(),
        ..whole.clone()
    };

    let started = Instant::now();
    let bar = progress::bar(config.n_windows as u64, "dense passes");
    let mut dense = DensePass::run(&model, tokens, &config, &mut |w, _| {
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

    let passes = Passes {
        n_dense_passes: dense.n_dense_passes(),
        n_sparse_passes: dense.n_sparse_passes(),
        dense_wall_s,
        wall_s: started.elapsed().as_secs_f64(),
    };
    say_runs(&config, &runs, &passes)?;
    if let Some(out) = &args.out {
        let mut files = write_outputs(out, &args.target.model, &config, &passes, &runs)?;
        if let (Some(s), [run]) = (args.shard, runs.as_slice()) {
            let state = SparsityShard {
                result: run.result.clone(),
                passes: passes.clone(),
                run_wall_s: run.wall_s,
            };
            let settings = BTreeMap::from([
                (
                    "tokens".into(),
                    shard::tokens_fingerprint(&all_tokens[..span * whole.window]).into(),
                ),
                ("config".into(), serde_json::to_value(&whole)?),
                ("cett".into(), serde_json::to_value(run.cett)?),
            ]);
            ShardState::new(
                "sparsity",
                s,
                &args.target.model,
                settings,
                "windows",
                span,
                items,
                &state,
            )?
            .write(out)?;
            files.push(shard::STATE_FILE.into());
        }
        RunManifest::new(args.target.model.display().to_string(), files).write(out)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}

/// Forward passes and time of a measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Passes {
    n_dense_passes: usize,
    n_sparse_passes: usize,
    dense_wall_s: f64,
    /// The whole measurement, dense passes included.
    wall_s: f64,
}

impl Passes {
    /// The passes and time of two shards together (time summed over the machines).
    fn add(self, other: &Self) -> Self {
        Self {
            n_dense_passes: self.n_dense_passes + other.n_dense_passes,
            n_sparse_passes: self.n_sparse_passes + other.n_sparse_passes,
            dense_wall_s: self.dense_wall_s + other.dense_wall_s,
            wall_s: self.wall_s + other.wall_s,
        }
    }
}

/// What `sparsity --cett C --shard i/n` keeps in `shard.json`.
#[derive(Debug, Serialize, Deserialize)]
struct SparsityShard {
    /// The shard's measurement at the CETT target.
    result: SparsityResult,
    passes: Passes,
    /// Time of the sparse passes at the target.
    run_wall_s: f64,
}

/// Prints each run's summary and per-layer table.
fn say_runs(config: &SparsityConfig, runs: &[RunSummary], passes: &Passes) -> Result<()> {
    say!(
        "{} windows of {} tokens; dense PPL {:.3}",
        config.n_windows,
        config.window,
        runs.first().map_or(f64::NAN, |r| r.dense_ppl)
    );
    for run in runs {
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
        passes.n_dense_passes,
        passes.n_sparse_passes,
        passes.wall_s
    );
    Ok(())
}

/// Writes `sparsity.csv` (and `.parquet`), `sparsity_by_layer.svg` and `sparsity.json`;
/// returns the files written, for the manifest.
fn write_outputs(
    out: &Path,
    model: &Path,
    config: &SparsityConfig,
    passes: &Passes,
    runs: &[RunSummary],
) -> Result<Vec<String>> {
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
        model
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    strata_report::plot_activation_ratio_by_layer(
        &series,
        &title,
        &out.join("sparsity_by_layer.svg"),
    )?;
    let summary = Summary {
        model: model.display().to_string(),
        window: config.window,
        n_windows: config.n_windows,
        n_tokens: config.window * config.n_windows,
        config: config.clone(),
        n_dense_passes: passes.n_dense_passes,
        n_sparse_passes: passes.n_sparse_passes,
        dense_wall_s: passes.dense_wall_s,
        runs,
    };
    write_json_atomic(&out.join("sparsity.json"), &summary)?;
    Ok([
        "sparsity.csv",
        "sparsity.parquet",
        "sparsity.json",
        "sparsity_by_layer.svg",
    ]
    .map(String::from)
    .to_vec())
}

/// `strata merge` of `sparsity --cett` shards (checked to be one run, in shard order): the
/// sums and counts of every shard's windows at the shared target. Times are summed over
/// the shards.
pub fn merge_shards(shards: &[ShardFile], out: &Path) -> Result<()> {
    let mut parts = Vec::with_capacity(shards.len());
    for s in shards {
        let part: SparsityShard = s.state.state(&s.path)?;
        parts.push(part);
    }
    let run_wall_s = parts.iter().map(|p| p.run_wall_s).sum();
    let passes = parts
        .iter()
        .map(|p| p.passes.clone())
        .reduce(|a, b| a.add(&b))
        .context("no shards to merge")?;
    let result = parts
        .into_iter()
        .map(|p| p.result)
        .reduce(Merge::merge)
        .context("no shards to merge")?;
    let config: SparsityConfig = serde_json::from_value(
        shards[0]
            .state
            .settings
            .get("config")
            .cloned()
            .unwrap_or_default(),
    )
    .with_context(|| format!("{}: the setting `config`", shards[0].path.display()))?;
    let runs = vec![summary(None, result, None, run_wall_s)];
    say_runs(&config, &runs, &passes)?;
    let model = Path::new(&shards[0].state.model);
    let files = write_outputs(out, model, &config, &passes, &runs)?;
    RunManifest::new(model.display().to_string(), files).write(out)?;
    say!("wrote {}", out.display());
    Ok(())
}

/// One row of `series.csv`: one (checkpoint, layer).
#[derive(Debug, Serialize)]
struct SeriesRow {
    step: u64,
    tokens_seen: u64,
    /// Left out of the fits as warm-up.
    warmup: bool,
    cett: f64,
    layer: usize,
    threshold: f64,
    activation_ratio: f64,
    dense_activation_ratio: f64,
    zero_fraction: f64,
    /// The checkpoint's mean over layers (repeated on each of its rows).
    mean_activation_ratio: f64,
    ppl_ratio: f64,
    dense_ppl: f64,
    sparse_ppl: f64,
}

/// One law's fit in `series.json`.
#[derive(Debug, Serialize)]
struct LawSummary {
    law: Law,
    formula: &'static str,
    /// Whether the paper fits this law to a model of this activation.
    for_this_activation: bool,
    /// `D`, tokens seen in billions; the activation ratio in percent.
    fit: Option<LawFit>,
    /// Why there is no fit.
    error: Option<String>,
}

/// `series.json`.
#[derive(Debug, Serialize)]
struct SeriesSummary {
    warmup_steps: u64,
    n_fit_points: usize,
    fits: Vec<LawSummary>,
    wall_s: f64,
    series: SparsitySeries,
}

fn series_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let dir = args.series.as_deref().context("--series")?;
    if let Some(limit) = args.target.max_memory {
        strata_core::config::limits::set_memory_limit(limit);
    }
    let checkpoints = discover_checkpoints(dir, args.tokens_per_step)?;
    let first = &checkpoints[0];
    let model_config = Model::<B>::read_config(&first.path)?;
    let tokenizer_path = first.path.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() {
        Some(Tokenizer::from_file(&tokenizer_path)?)
    } else {
        None
    };
    let tokens = tokens_of(args, tokenizer.as_ref(), model_config.vocab_size)?;
    let config = config_of(args, model_config.n_ctx)?;
    let target = match (args.cett, args.p.as_slice()) {
        (Some(c), _) => SeriesTarget::Cett(c),
        (None, [p]) => SeriesTarget::PplP {
            p: *p,
            last: args.last,
        },
        (None, ps) => bail!(
            "--series applies one CETT target to every checkpoint: give one --p (not {})",
            ps.len()
        ),
    };
    let warmup_steps = match args.warmup_steps {
        Some(w) => w,
        None => recorded_warmup_steps(dir)?.unwrap_or(0),
    };
    let last = checkpoints.last().map_or(0, |c| c.step);
    say!(
        "{}: {} checkpoints (steps {} to {last}), {} windows of {} tokens; warm-up to step \
         {warmup_steps} left out of the fits",
        dir.display(),
        checkpoints.len(),
        first.step,
        config.n_windows,
        config.window
    );
    let (dense, sparse) = planned_passes(checkpoints.len(), target, &config);
    let bar = progress::bar((dense + sparse) as u64, "forward passes");
    if let SeriesTarget::PplP { p, last } = target {
        bar.set_message(format!(
            "PPL-{p}% on the last {} checkpoints",
            last.min(checkpoints.len())
        ));
    }
    let started = Instant::now();
    let series = measure_series::<B>(
        dir,
        &checkpoints,
        &tokens,
        target,
        &config,
        device,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let wall_s = started.elapsed().as_secs_f64();
    if let Some(search) = &series.search {
        say!(
            "PPL-{}% on steps {:?}: CETT {:.4}",
            search.p,
            search.on_steps,
            search.cett
        );
        if let SearchStatus::Unreachable { reason } = &search.status {
            say!("PPL-{}% not reached: {reason}", search.p);
        }
    }
    say!(
        "{:>8} {:>12} {:>9} {:>10}  active % by layer",
        "step",
        "tokens",
        "active %",
        "PPL ratio"
    );
    for c in &series.checkpoints {
        let layers: Vec<String> = c
            .result
            .layers
            .iter()
            .map(|l| format!("{:.1}", 100.0 * l.activation_ratio()))
            .collect();
        say!(
            "{:>8} {:>12} {:>9.2} {:>10.4}  {}{}",
            c.step,
            c.tokens_seen,
            100.0 * c.result.mean_activation_ratio(),
            c.result.ppl_ratio(),
            layers.join(" "),
            if c.step <= warmup_steps {
                " (warm-up)"
            } else {
                ""
            }
        );
    }
    let expected = Law::for_activation(series.model.activation);
    let fits: Vec<LawSummary> = Law::ALL
        .iter()
        .map(|&law| {
            let (fit, error) = match series.fit(law, warmup_steps, &LawConfig::default()) {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(e.to_string())),
            };
            LawSummary {
                law,
                formula: law.formula(),
                for_this_activation: law == expected,
                fit,
                error,
            }
        })
        .collect();
    for f in &fits {
        let mark = if f.for_this_activation {
            " (this activation's law)"
        } else {
            ""
        };
        match (&f.fit, &f.error) {
            (Some(fit), _) => {
                say!(
                    "{}{mark}: {}, R^2 {:.4}, {} points",
                    f.formula,
                    fit.params,
                    fit.r2,
                    fit.n_points
                );
                if let Some(caveat) = &fit.caveat {
                    say!("  caveat: {caveat}");
                }
            }
            (None, Some(e)) => say!("{}{mark}: {e}", f.formula),
            (None, None) => {}
        }
    }
    say!(
        "{} dense and {} sparse forward passes, {wall_s:.1} s",
        series.n_dense_passes,
        series.n_sparse_passes
    );
    if let Some(out) = &args.out {
        let summary = SeriesSummary {
            warmup_steps,
            n_fit_points: series.fit_points(warmup_steps).0.len(),
            fits,
            wall_s,
            series,
        };
        write_series_outputs(out, dir, &summary)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}

/// The fitted law of `summary` for the series' activation as a curve for the figure:
/// `(tokens seen, activation ratio as a fraction)` over the fitted range, and its legend.
fn fitted_curve(summary: &SeriesSummary) -> (Vec<(f64, f64)>, Option<String>) {
    let Some(fit) = summary
        .fits
        .iter()
        .find(|f| f.for_this_activation)
        .and_then(|f| f.fit.as_ref())
    else {
        return (Vec::new(), None);
    };
    let curve = fit
        .curve(100)
        .into_iter()
        .map(|(t, a)| (t, a / 100.0))
        .collect();
    (curve, Some(fit.label("%")))
}

fn write_series_outputs(out: &Path, dir: &Path, summary: &SeriesSummary) -> Result<()> {
    let series = &summary.series;
    let rows: Vec<SeriesRow> = series
        .checkpoints
        .iter()
        .flat_map(|c| {
            let thresholds = c.result.mean_thresholds();
            c.result.layers.iter().map(move |l| SeriesRow {
                step: c.step,
                tokens_seen: c.tokens_seen,
                warmup: c.step <= summary.warmup_steps,
                cett: c.result.cett,
                layer: l.layer,
                threshold: thresholds[l.layer],
                activation_ratio: l.activation_ratio(),
                dense_activation_ratio: l.dense_activation_ratio(),
                zero_fraction: l.zero_fraction(),
                mean_activation_ratio: c.result.mean_activation_ratio(),
                ppl_ratio: c.result.ppl_ratio(),
                dense_ppl: c.result.dense_ppl(),
                sparse_ppl: c.result.sparse_ppl(),
            })
        })
        .collect();
    strata_report::write_table(&out.join("series.csv"), &rows)?;
    write_json_atomic(&out.join("series.json"), summary)?;
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (fit, fit_name) = fitted_curve(summary);
    let curve = strata_report::TrainingCurve {
        name: format!("{name} ({:?} MLP)", series.model.activation).to_lowercase(),
        points: series
            .checkpoints
            .iter()
            .map(|c| (c.tokens_seen as f64, c.result.mean_activation_ratio()))
            .collect(),
        fit,
        fit_name,
    };
    strata_report::plot_activation_ratio_over_training(
        &[curve],
        &format!(
            "activation ratio over training at CETT {:.3}: {name}",
            series.cett
        ),
        &out.join("activation_over_training.svg"),
    )?;
    let files = [
        "series.csv",
        "series.parquet",
        "series.json",
        "activation_over_training.svg",
    ]
    .map(String::from)
    .to_vec();
    RunManifest::new(dir.display().to_string(), files).write(out)?;
    Ok(())
}
