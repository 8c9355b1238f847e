//! `strata massive`: where the massive activations of a model sit, layer by layer, and how
//! they emerged over the checkpoints of a training run (`--series`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use strata_core::eval::corpus;
use strata_core::io::{RunManifest, write_bytes_atomic, write_json_atomic};
use strata_core::probe::{Capture, Merge, ProbeSet, Site};
use strata_core::{Model, Shard, TokenBatch, Tokenizer};
use strata_massive::{
    FitConfig, MassiveConfig, MassiveEntry, MassiveResult, Statistic, discover_series,
    fit_dynamics, layer_rows, measure_series, measure_with, series_rows, top_rows,
};

use super::merge::ShardFile;
use super::model_args::ModelArgs;
use super::shard::{self, ShardState};
use crate::progress;
use crate::with_backend;

/// The `--model` value that means none was given.
const NO_MODEL: &str = "-";

/// Arguments of `strata massive`.
#[derive(Debug, clap::Args)]
// `--model` is not needed with `--series`: "-" stands for "not given".
#[command(mut_arg("model", |a| a.required(false).default_value(NO_MODEL).hide_default_value(true)))]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    /// A checkpoint series instead of one model: a folder of `step{N}` (or
    /// `checkpoint-{N}`) model folders, measured in step order on the same tokens, with the
    /// five-parameter fit of every layer's series.
    #[arg(long, conflicts_with = "intervene")]
    pub series: Option<PathBuf>,
    /// A text to measure (one sequence).
    #[arg(long, conflicts_with_all = ["corpus", "token_ids"])]
    pub text: Option<String>,
    /// Token ids to measure (one sequence), comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "corpus")]
    pub token_ids: Option<Vec<u32>>,
    /// A plain-text corpus, framed as `strata ppl` frames it and cut into `--n-seq`
    /// contiguous sequences of `--seq-len` tokens.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Tokens per sequence (default: the model's context, at most 256).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Number of sequences from the corpus.
    #[arg(long, default_value_t = 10)]
    pub n_seq: usize,
    /// Entries kept per layer.
    #[arg(long, default_value_t = 20)]
    pub top_k: usize,
    /// A massive entry's magnitude exceeds this.
    #[arg(long, default_value_t = 100.0)]
    pub abs_threshold: f64,
    /// ... and is at least this many times its layer's median magnitude.
    #[arg(long, default_value_t = 1000.0)]
    pub ratio_threshold: f64,
    /// Also replace the massive activations where they first appear, by zero and by their
    /// mean, and report the perplexity of the measured sequences each way.
    #[arg(long)]
    pub intervene: bool,
    /// Measure only shard `i/n` of the `--corpus` sequences (numbered from 1: `1/4` to `4/4`,
    /// contiguous shares; sequences keep their numbers in the whole corpus) and write its
    /// state to `OUT/shard.json` for `strata merge`. Needs `--corpus` and `--out`.
    #[arg(long, value_parser = shard::parse_shard)]
    pub shard: Option<Shard>,
    /// Output folder. One model: `massive.csv`, `top_activations.csv` (each also as
    /// `.parquet`), `massive.json` and figures. A series: `series.csv`, `fits.csv`,
    /// `series.json` and the trajectories figure.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    if let Some(s) = args.shard {
        check_shard_args(s, args)?;
    }
    if args.series.is_some() {
        return with_backend!(spec, series_on(args));
    }
    if args.target.model.as_os_str() == NO_MODEL {
        bail!("give --model (one model) or --series (a folder of checkpoints)");
    }
    with_backend!(spec, massive_on(args))
}

/// Refuses `--shard` where the sequences cannot be split: a checkpoint series, the
/// interventions (they need the whole measurement first) and a single sequence.
fn check_shard_args(shard: Shard, args: &Args) -> Result<()> {
    if args.series.is_some() {
        bail!(
            "--shard {shard} splits the --corpus sequences of one model; --series is not sharded"
        );
    }
    if args.intervene {
        bail!(
            "--shard {shard} cannot run --intervene: the interventions start from the \
             measurement of the whole corpus; run them unsharded"
        );
    }
    if args.corpus.is_none() {
        bail!(
            "--shard {shard} splits the sequences of --corpus; --text and --token-ids measure \
             one sequence"
        );
    }
    shard::require_out(shard, args.out.as_deref())?;
    Ok(())
}

/// The sequences to measure, from `--text`, `--token-ids` or `--corpus`.
fn sequences(args: &Args, tokenizer: Option<&Tokenizer>, n_ctx: usize) -> Result<Vec<Vec<u32>>> {
    let need = |what: &str| {
        tokenizer.with_context(|| format!("{what} needs a tokenizer; give --token-ids instead"))
    };
    if let Some(ids) = &args.token_ids {
        if ids.is_empty() {
            bail!("--token-ids is empty");
        }
        return Ok(vec![ids.clone()]);
    }
    if let Some(text) = &args.text {
        return Ok(vec![need("--text")?.encode(text)?]);
    }
    let Some(path) = &args.corpus else {
        bail!("give --text, --token-ids or --corpus");
    };
    let tokenizer = need("--corpus")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading corpus {}", path.display()))?;
    let stream = corpus::frame_lines(tokenizer, text.lines())?;
    let seq_len = args.seq_len.unwrap_or(n_ctx.min(256));
    if seq_len == 0 || args.n_seq == 0 {
        bail!("--seq-len and --n-seq must be at least 1");
    }
    let chunks: Vec<Vec<u32>> = stream
        .chunks_exact(seq_len)
        .take(args.n_seq)
        .map(<[u32]>::to_vec)
        .collect();
    if chunks.len() < args.n_seq {
        bail!(
            "{}: {} tokens hold only {} sequences of {seq_len}",
            path.display(),
            stream.len(),
            chunks.len()
        );
    }
    Ok(chunks)
}

fn config_of(args: &Args) -> MassiveConfig {
    MassiveConfig {
        top_k: args.top_k,
        abs_threshold: args.abs_threshold,
        ratio_threshold: args.ratio_threshold,
    }
}

fn massive_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let model = args.target.load::<B>(device)?;
    measure_and_write(&model, args, &mut ProbeSet::none()).map(drop)
}

/// Measures `model` on the sequences `args` names (with `--shard`, on the shard's share of
/// them), with `probes` attached to the same forward passes (ahead of the measurement, so
/// other analyses can share them), prints the summary and writes the `--out` files.
pub fn measure_and_write<B: Backend>(
    model: &Model<B>,
    args: &Args,
    probes: &mut ProbeSet<'_, B>,
) -> Result<MassiveResult> {
    let tokenizer = model.tokenizer_if_any();
    let sequences = sequences(args, tokenizer, model.config().n_ctx)?;
    let config = config_of(args);
    let items = match args.shard {
        Some(s) => shard::take(s, sequences.len(), "sequences")?,
        None => 0..sequences.len(),
    };
    let bar = progress::bar(items.len() as u64, "sequences");
    let mut result = measure_with(
        model,
        &sequences[items.clone()],
        &config,
        probes,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    // A shard numbers its sequences as the whole corpus does.
    renumber(&mut result, items.start, true);
    let token = |id: u32| {
        tokenizer
            .and_then(|t| t.decode_with_special(&[id]).ok())
            .unwrap_or_else(|| id.to_string())
    };
    say_summary(&result, &token)?;
    let mut interventions = Vec::new();
    if args.intervene {
        interventions = intervene(model, &sequences, &result)?;
    }
    if let Some(out) = &args.out {
        let model_path = &args.target.model;
        if !interventions.is_empty() {
            strata_report::write_table(&out.join("intervention.csv"), &interventions)?;
        }
        write_result_files(out, model_path, &result, &token)?;
        let heatmap = heatmap_of_top_layer(model, &sequences, &result, &token)?;
        strata_report::plot_token_dim_heatmap(
            &heatmap.1,
            32,
            96,
            &heatmap_title(heatmap.0, heatmap.2, model_path),
            &out.join(HEATMAP_FILE),
        )?;
        let mut files = result_files();
        if !interventions.is_empty() {
            files.push("intervention.csv".into());
            files.push("intervention.parquet".into());
        }
        if let Some(s) = args.shard {
            let tokens: BTreeMap<u32, String> = result
                .layers
                .iter()
                .flat_map(|l| &l.top)
                .map(|e| (e.token_id, token(e.token_id)))
                .collect();
            let state = MassiveShard {
                result: result.clone(),
                tokens,
                heatmap: (heatmap.0, heatmap.2),
            };
            let stream: Vec<u32> = sequences.concat();
            let settings = BTreeMap::from([
                ("tokens".into(), shard::tokens_fingerprint(&stream).into()),
                ("n_seq".into(), sequences.len().into()),
                ("seq_len".into(), sequences[0].len().into()),
                ("config".into(), serde_json::to_value(&config)?),
            ]);
            ShardState::new(
                "massive",
                s,
                model_path,
                settings,
                "sequences",
                sequences.len(),
                items,
                &state,
            )?
            .write(out)?;
            files.push(shard::STATE_FILE.into());
        }
        RunManifest::new(model_path.display().to_string(), files).write(out)?;
        say!("wrote {}", out.display());
    }
    Ok(result)
}

/// The figure of the layer holding the largest magnitude, drawn from one more forward pass.
const HEATMAP_FILE: &str = "top_layer_heatmap.svg";

/// What `massive --shard` keeps in `shard.json`.
#[derive(Debug, Serialize, Deserialize)]
struct MassiveShard {
    /// The shard's measurement, its sequences numbered as in the whole corpus.
    result: MassiveResult,
    /// The text of every token id among the kept entries (`strata merge` has no tokenizer).
    tokens: BTreeMap<u32, String>,
    /// The (layer, sequence) that the shard's `top_layer_heatmap.svg` shows.
    heatmap: (usize, usize),
}

/// Shifts the sequence numbers of `result`'s entries by `offset`, up or down.
fn renumber(result: &mut MassiveResult, offset: usize, up: bool) {
    for e in result.layers.iter_mut().flat_map(|l| l.top.iter_mut()) {
        e.sequence = if up {
            e.sequence + offset
        } else {
            e.sequence - offset
        };
    }
}

/// Prints the per-layer table and the largest massive entries.
fn say_summary(result: &MassiveResult, token: &dyn Fn(u32) -> String) -> Result<()> {
    say!(
        "{:>5} {:>12} {:>12} {:>12}  massive",
        "layer",
        "top-1",
        "median",
        "top/median"
    );
    for layer in &result.layers {
        say!(
            "{:>5} {:>12.3} {:>12.5} {:>12.1}  {}",
            layer.layer,
            layer.mean_top1(),
            layer.mean_median(),
            layer.ratio_of_means(),
            layer.massive().count()
        );
    }
    let massive: Vec<_> = result.massive().collect();
    if massive.is_empty() {
        say!(
            "no massive activations (|a| > {} and >= {}x median); lower --abs-threshold for small models",
            result.config.abs_threshold,
            result.config.ratio_threshold
        );
    }
    for e in massive.iter().take(12) {
        say!(
            "  layer {:>3} seq {:>3} pos {:>4} dim {:>5} value {:>11.2} ({:.0}x median) token {:?}",
            e.layer,
            e.sequence,
            e.position,
            e.dim,
            e.value,
            e.ratio_to_median,
            token(e.token_id)
        );
    }
    Ok(())
}

/// The files of one measurement besides interventions and shard state.
fn result_files() -> Vec<String> {
    [
        "massive.csv",
        "massive.parquet",
        "top_activations.csv",
        "top_activations.parquet",
        "massive.json",
        "massive_by_layer.svg",
        "ratio_by_layer.svg",
        HEATMAP_FILE,
    ]
    .map(String::from)
    .to_vec()
}

/// Writes the tables, `massive.json` and the two by-layer figures of `result`.
fn write_result_files(
    out: &Path,
    model: &Path,
    result: &MassiveResult,
    token: &dyn Fn(u32) -> String,
) -> Result<()> {
    strata_report::write_table(&out.join("massive.csv"), &layer_rows(result))?;
    strata_report::write_table(&out.join("top_activations.csv"), &top_rows(result, token))?;
    write_json_atomic(&out.join("massive.json"), result)?;
    let name = model_name(model);
    strata_report::plot_massive_by_layer(
        result,
        &format!("largest and median |h| by layer: {name}"),
        &out.join("massive_by_layer.svg"),
    )?;
    strata_report::plot_ratio_bars(
        result,
        &format!("top-1 / median |h| by layer: {name}"),
        &out.join("ratio_by_layer.svg"),
    )?;
    Ok(())
}

fn model_name(model: &Path) -> String {
    model
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn heatmap_title(layer: usize, sequence: usize, model: &Path) -> String {
    format!(
        "|h| at blocks.{layer}.hook_resid_post, sequence {sequence}: {}",
        model_name(model)
    )
}

/// The largest entry of any layer (on a tie, the deepest layer's).
fn top_entry(result: &MassiveResult) -> Result<&MassiveEntry> {
    result
        .layers
        .iter()
        .filter_map(|l| l.top.first())
        .max_by(|a, b| a.value.abs().total_cmp(&b.value.abs()))
        .context("no layer holds an entry")
}

/// `strata merge` of `massive` shards (checked to be one run, in shard order): the sums,
/// counts and top entries of every shard's sequences, and the heatmap figure of the shard
/// that holds the largest entry (it drew the figure the whole run draws).
pub fn merge_shards(shards: &[ShardFile], out: &Path) -> Result<()> {
    let mut tokens = BTreeMap::new();
    let mut results = Vec::with_capacity(shards.len());
    let mut heatmaps = Vec::with_capacity(shards.len());
    for s in shards {
        let part: MassiveShard = s.state.state(&s.path)?;
        tokens.extend(part.tokens);
        let mut result = part.result;
        // Merge numbers the second set's sequences after the first's.
        if let Some(e) = result
            .layers
            .iter()
            .flat_map(|l| &l.top)
            .find(|e| !s.state.items.contains(&e.sequence))
        {
            bail!(
                "{}: an entry of sequence {} lies outside the shard's sequences {}..{}",
                s.path.display(),
                e.sequence,
                s.state.items.start,
                s.state.items.end
            );
        }
        renumber(&mut result, s.state.items.start, false);
        results.push(result);
        heatmaps.push(part.heatmap);
    }
    let result = results
        .into_iter()
        .reduce(Merge::merge)
        .context("no shards to merge")?;
    let token = |id: u32| tokens.get(&id).cloned().unwrap_or_else(|| id.to_string());
    say_summary(&result, &token)?;
    let model = Path::new(&shards[0].state.model);
    write_result_files(out, model, &result, &token)?;
    let top = top_entry(&result)?;
    let holder = shards
        .iter()
        .zip(&heatmaps)
        .find(|(s, _)| s.state.items.contains(&top.sequence));
    match holder {
        Some((s, &heatmap)) if heatmap == (top.layer, top.sequence) => {
            let figure = s.dir.join(HEATMAP_FILE);
            let bytes = std::fs::read(&figure)
                .with_context(|| format!("reading {} to copy it", figure.display()))?;
            write_bytes_atomic(&out.join(HEATMAP_FILE), &bytes)?;
        }
        _ => bail!(
            "no shard drew the heatmap of layer {} sequence {} (the largest entry of the \
             merged measurement)",
            top.layer,
            top.sequence
        ),
    }
    RunManifest::new(model.display().to_string(), result_files()).write(out)?;
    say!("wrote {}", out.display());
    Ok(())
}

/// `|h|` over (token, dim) at the layer holding the largest magnitude, for the sequence
/// holding it: (layer, map, sequence).
fn heatmap_of_top_layer<B: Backend>(
    model: &Model<B>,
    sequences: &[Vec<u32>],
    result: &MassiveResult,
    token: &dyn Fn(u32) -> String,
) -> Result<(usize, strata_report::TokenDimMap, usize)> {
    let top = top_entry(result)?;
    let (layer, sequence) = (top.layer, top.sequence);
    let ids = &sequences[sequence];
    let site = Site::ResidPost { layer };
    let mut capture = Capture::new([site]);
    model.forward_with(
        &TokenBatch::single(ids)?,
        None,
        &mut ProbeSet::one(&mut capture),
    )?;
    let h = capture
        .captured
        .remove(&site)
        .context("the capture of the top layer is missing")?;
    let map = strata_report::TokenDimMap {
        n_tokens: h.shape[1],
        width: h.shape[2],
        values: h.data,
        tokens: ids.iter().map(|&id| token(id)).collect(),
    };
    Ok((layer, map, sequence))
}

/// One row of `fits.csv`.
#[derive(Serialize)]
struct FitRow {
    layer: usize,
    statistic: &'static str,
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

fn series_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let dir = args.series.as_deref().context("--series")?;
    let checkpoints = discover_series(dir)?;
    let first = &checkpoints[0];
    let config0 = Model::<B>::read_config(&first.path)?;
    let tokenizer_path = first.path.join("tokenizer.json");
    let tokenizer = if tokenizer_path.is_file() {
        Some(Tokenizer::from_file(&tokenizer_path)?)
    } else {
        None
    };
    let sequences = sequences(args, tokenizer.as_ref(), config0.n_ctx)?;
    say!(
        "{}: {} checkpoints (steps {} to {}), {} sequences of {} tokens",
        dir.display(),
        checkpoints.len(),
        first.step,
        checkpoints[checkpoints.len() - 1].step,
        sequences.len(),
        sequences[0].len()
    );
    let bar = progress::bar(checkpoints.len() as u64, "checkpoints");
    let series = measure_series::<B>(
        dir,
        &checkpoints,
        &sequences,
        &config_of(args),
        device,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let steps: Vec<f64> = series.steps().iter().map(|&s| s as f64).collect();
    let n_layers = series.model.n_layers;
    let mut fits = Vec::new();
    let mut trajectories = Vec::new();
    say!(
        "{:>5} {:>10} {:>10}   ratio fit: {:>8} {:>10} {:>10}",
        "layer",
        "first",
        "last",
        "R^2",
        "AIC",
        "peak step"
    );
    for layer in 0..n_layers {
        for statistic in [Statistic::Ratio, Statistic::Top1, Statistic::Median] {
            let values = series.trajectory(layer, statistic);
            let what = format!("layer {layer} {}", statistic.name());
            let fit = match fit_dynamics(&what, &steps, &values, &FitConfig::default()) {
                Ok(fit) => Some(fit),
                Err(e) => {
                    if statistic == Statistic::Ratio {
                        say!("  {e}");
                    }
                    None
                }
            };
            if statistic == Statistic::Ratio {
                say!(
                    "{:>5} {:>10.2} {:>10.2}              {:>8} {:>10} {:>10}",
                    layer,
                    values[0],
                    values[values.len() - 1],
                    fit.as_ref().map_or("-".into(), |f| format!("{:.4}", f.r2)),
                    fit.as_ref().map_or("-".into(), |f| format!("{:.1}", f.aic)),
                    fit.as_ref()
                        .and_then(|f| f.peak_step)
                        .map_or("none".into(), |t| format!("{t:.0}"))
                );
                trajectories.push(strata_report::Trajectory {
                    name: format!("layer {layer}"),
                    points: steps.iter().copied().zip(values.iter().copied()).collect(),
                    fit: fit.as_ref().map(|f| f.params),
                });
            }
            if let Some(f) = fit {
                fits.push(FitRow {
                    layer,
                    statistic: statistic.name(),
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
                });
            }
        }
    }
    if let Some(out) = &args.out {
        write_series_outputs(out, dir, &series, &fits, &trajectories)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}

fn write_series_outputs(
    out: &Path,
    dir: &Path,
    series: &strata_massive::SeriesResult,
    fits: &[FitRow],
    trajectories: &[strata_report::Trajectory],
) -> Result<()> {
    strata_report::write_table(&out.join("series.csv"), &series_rows(series))?;
    strata_report::write_table(&out.join("fits.csv"), fits)?;
    write_json_atomic(&out.join("series.json"), series)?;
    let name = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    strata_report::plot_trajectories(
        trajectories,
        &format!("top-1 / median over training, with fits: {name}"),
        "top-1 / median |h|",
        &out.join("trajectories.svg"),
    )?;
    let files = [
        "series.csv",
        "series.parquet",
        "fits.csv",
        "fits.parquet",
        "series.json",
        "trajectories.svg",
    ]
    .map(String::from)
    .to_vec();
    RunManifest::new(dir.display().to_string(), files).write(out)?;
    Ok(())
}

/// One row of `intervention.csv`.
#[derive(Serialize)]
struct InterventionRow {
    replacement: String,
    layer: Option<usize>,
    dim: Option<usize>,
    value: Option<f64>,
    ppl: f64,
}

/// Perplexity of the measured sequences (each its own window) plain, with the massive
/// activations zeroed and set to their mean where they first appear.
fn intervene<B: Backend>(
    model: &strata_core::Model<B>,
    sequences: &[Vec<u32>],
    result: &strata_massive::MassiveResult,
) -> Result<Vec<InterventionRow>> {
    use strata_core::ProbeSet;
    use strata_core::eval::{PerplexityConfig, perplexity};
    use strata_massive::{MassiveIntervention, Replacement};
    let seq_len = sequences.iter().map(Vec::len).min().unwrap_or(0);
    let stream: Vec<u32> = sequences
        .iter()
        .flat_map(|s| s[..seq_len].iter().copied())
        .collect();
    let config = PerplexityConfig::new(seq_len, seq_len)?;
    let ppl = |probes: &mut ProbeSet<'_, B>| -> Result<f64> {
        Ok(perplexity(model, &stream, &config, probes, &mut |_, _| {})?.ppl())
    };
    let mut rows = vec![InterventionRow {
        replacement: "none".into(),
        layer: None,
        dim: None,
        value: None,
        ppl: ppl(&mut ProbeSet::none())?,
    }];
    for replacement in [Replacement::Zero, Replacement::Mean] {
        let Some(mut probe) = MassiveIntervention::from_result(result, replacement) else {
            say!("no massive activations to intervene on");
            return Ok(Vec::new());
        };
        let (layer, dim, value) = (probe.layer, probe.dim, probe.value);
        // A zeroed model may produce non-finite log-likelihoods: report that as infinite.
        let value_ppl = match ppl(&mut ProbeSet::one(&mut probe)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("perplexity with the massive activations replaced: {e}");
                f64::INFINITY
            }
        };
        rows.push(InterventionRow {
            replacement: format!("{replacement:?}").to_lowercase(),
            layer: Some(layer),
            dim: Some(dim),
            value: Some(value),
            ppl: value_ppl,
        });
    }
    say!("perplexity of the measured sequences (each its own window):");
    for row in &rows {
        match (row.layer, row.dim, row.value) {
            (Some(l), Some(d), Some(v)) => say!(
                "  {:<5} block {l} dim {d} -> {v:.2}: PPL {:.3}",
                row.replacement,
                row.ppl
            ),
            _ => say!("  {:<5} PPL {:.3}", row.replacement, row.ppl),
        }
    }
    Ok(rows)
}
