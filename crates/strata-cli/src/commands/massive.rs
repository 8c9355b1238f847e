//! `strata massive`: where the massive activations of a model sit, layer by layer.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::Serialize;
use strata_core::eval::corpus;
use strata_core::io::{RunManifest, write_json_atomic};
use strata_massive::{MassiveConfig, measure};

use super::model_args::ModelArgs;
use crate::progress;
use crate::with_backend;

/// Arguments of `strata massive`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    /// A text to measure (one sequence).
    #[arg(long, conflicts_with = "corpus")]
    pub text: Option<String>,
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
    /// Folder for `layers.csv`, `entries.csv` and `massive.json`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One row of `layers.csv`.
#[derive(Serialize)]
struct LayerRow {
    layer: usize,
    n_sequences: usize,
    mean_top1: f64,
    mean_top2: f64,
    mean_top3: f64,
    mean_median: f64,
    ratio_of_means: f64,
    n_massive: usize,
}

/// One row of `entries.csv`.
#[derive(Serialize)]
struct EntryRow {
    layer: usize,
    sequence: usize,
    position: usize,
    token_id: u32,
    token: String,
    dim: usize,
    value: f64,
    ratio_to_median: f64,
    massive: bool,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, massive_on(args))
}

fn massive_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let model = args.target.load::<B>(device)?;
    let tokenizer = model.tokenizer()?;
    let sequences: Vec<Vec<u32>> = match (&args.text, &args.corpus) {
        (Some(text), _) => vec![tokenizer.encode(text)?],
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading corpus {}", path.display()))?;
            let stream = corpus::frame_lines(tokenizer, text.lines())?;
            let seq_len = args.seq_len.unwrap_or(model.config().n_ctx.min(256));
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
            chunks
        }
        (None, None) => bail!("give --text or --corpus"),
    };
    let config = MassiveConfig {
        top_k: args.top_k,
        abs_threshold: args.abs_threshold,
        ratio_threshold: args.ratio_threshold,
    };
    let bar = progress::bar(sequences.len() as u64, "sequences");
    let result = measure(&model, &sequences, &config, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let token = |id: u32| tokenizer.decode_with_special(&[id]).unwrap_or_default();

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
            args.abs_threshold,
            args.ratio_threshold
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
    let mut interventions = Vec::new();
    if args.intervene {
        interventions = intervene(&model, &sequences, &result)?;
    }
    if let Some(out) = &args.out {
        if !interventions.is_empty() {
            strata_report::write_table(&out.join("intervention.csv"), &interventions)?;
        }
        let layers: Vec<LayerRow> = result
            .layers
            .iter()
            .map(|l| LayerRow {
                layer: l.layer,
                n_sequences: l.n_sequences,
                mean_top1: l.mean_top1(),
                mean_top2: l.sum_top2 / l.n_sequences.max(1) as f64,
                mean_top3: l.sum_top3 / l.n_sequences.max(1) as f64,
                mean_median: l.mean_median(),
                ratio_of_means: l.ratio_of_means(),
                n_massive: l.massive().count(),
            })
            .collect();
        let entries: Vec<EntryRow> = result
            .layers
            .iter()
            .flat_map(|l| &l.top)
            .map(|e| EntryRow {
                layer: e.layer,
                sequence: e.sequence,
                position: e.position,
                token_id: e.token_id,
                token: token(e.token_id),
                dim: e.dim,
                value: e.value,
                ratio_to_median: e.ratio_to_median,
                massive: e.massive,
            })
            .collect();
        strata_report::write_table(&out.join("layers.csv"), &layers)?;
        strata_report::write_table(&out.join("entries.csv"), &entries)?;
        write_json_atomic(&out.join("massive.json"), &result)?;
        let title = format!(
            "largest and median |h| by layer: {}",
            args.target
                .model
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        strata_report::plot_massive_by_layer(&result, &title, &out.join("massive_by_layer.svg"))?;
        let mut files = vec![
            "layers.csv".to_string(),
            "entries.csv".to_string(),
            "massive.json".to_string(),
            "massive_by_layer.svg".to_string(),
        ];
        if !interventions.is_empty() {
            files.push("intervention.csv".into());
        }
        RunManifest::new(args.target.model.display().to_string(), files).write(out)?;
        say!("wrote {}", out.display());
    }
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
