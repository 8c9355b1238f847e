//! `strata steer`: steering vectors from contrastive pairs: extract (with a score per
//! layer), apply (steered generations), sweep (dose-response over alpha), compare (cosines
//! across layers and models).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::Serialize;
use strata_core::eval::{PerplexityConfig, corpus};
use strata_core::generate::{GenerateConfig, generate};
use strata_core::io::RunManifest;
use strata_core::{Model, ProbeSet};
use strata_steer::{
    ContrastivePair, ExtractConfig, Method, ReadPosition, SiteKind, Steering, SteeringMeta,
    SteeringVectors, cosine_matrix, directions, dose_response, extract_activations, layer_cosines,
    read_pairs, score_layers,
};

use super::model_args::ModelArgs;
use crate::progress;
use crate::with_backend;

/// Arguments of `strata steer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SteerCommand,
}

/// The `strata steer` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SteerCommand {
    /// Extract a direction per layer from contrastive pairs, with a score per layer.
    Extract(ExtractArgs),
    /// Generate with a saved direction added (or ablated), at one or more alphas.
    Apply(ApplyArgs),
    /// Dose-response over alpha: log-odds of the concept and perplexity of a neutral text.
    Sweep(SweepArgs),
    /// Cosine similarity of two direction files, across layers.
    Compare(CompareArgs),
}

/// Which pairs.
#[derive(Debug, clap::Args)]
pub struct PairArgs {
    /// JSONL of `{"positive": ..., "negative": ...}` pairs.
    #[arg(long, default_value = "datasets/steering/pairs.jsonl")]
    pub pairs: PathBuf,
    /// Keep only the pairs of this concept (the `concept` field).
    #[arg(long)]
    pub concept: Option<String>,
}

/// Arguments of `strata steer extract`.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub target: ModelArgs,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// Aggregator: mean-diff, pca, pca-centered, probe.
    #[arg(long, default_value = "mean-diff")]
    pub method: String,
    /// Read position: last, an index like -2, mean, mean:K, explicit:I,J.
    #[arg(long, default_value = "last", allow_hyphen_values = true)]
    pub position: String,
    /// Residual site: resid_pre, resid_mid, resid_post.
    #[arg(long, default_value = "resid_post")]
    pub site: String,
    /// Blocks to read (default: all).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Save unit vectors instead of raw ones.
    #[arg(long)]
    pub normalize: bool,
    /// Output folder: directions.safetensors, layers.csv (+ .parquet), control_vector.gguf,
    /// figures, manifest.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Which saved vectors, checked against the model.
#[derive(Debug, clap::Args)]
pub struct VectorArgs {
    /// A `directions.safetensors` written by `strata steer extract`.
    #[arg(long)]
    pub vectors: PathBuf,
    /// The block to steer at (default: the best probe accuracy in the layers.csv beside the
    /// vectors, else the middle block).
    #[arg(long)]
    pub layer: Option<usize>,
    /// Use vectors made for another model (same width); only a warning then.
    #[arg(long)]
    pub allow_other_model: bool,
    /// Project the direction out at every block instead of adding it.
    #[arg(long)]
    pub ablate: bool,
}

/// Arguments of `strata steer apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub target: ModelArgs,
    #[command(flatten)]
    pub vectors: VectorArgs,
    /// Multipliers, comma separated (each gives one steered generation).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "4"
    )]
    pub alpha: Vec<f32>,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// New tokens per generation (greedy).
    #[arg(long, default_value_t = 40)]
    pub max_new_tokens: usize,
    /// Folder for generations.csv.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `strata steer sweep`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub target: ModelArgs,
    #[command(flatten)]
    pub vectors: VectorArgs,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// Multipliers.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        default_value = "-8,-4,-2,0,2,4,8"
    )]
    pub alphas: Vec<f64>,
    /// Evaluation pairs: the held-out fifth (index 4 mod 5) of the pair file, at most this
    /// many.
    #[arg(long, default_value_t = 32)]
    pub n_eval: usize,
    /// The neutral text whose perplexity is the fluency cost.
    #[arg(long, default_value = "datasets/kjv/valid.txt")]
    pub corpus: PathBuf,
    /// Tokens of the corpus scored.
    #[arg(long, default_value_t = 1024)]
    pub ppl_tokens: usize,
    /// Output folder: dose_response.csv (+ .parquet), dose_response.svg, manifest.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `strata steer compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The first direction file.
    #[arg(long)]
    pub a: PathBuf,
    /// The second (default: the first, for the within-model matrix).
    #[arg(long)]
    pub b: Option<PathBuf>,
    /// Output folder: cosines.csv (every layer pair), layer_cosines.csv, cosines.svg.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        SteerCommand::Extract(a) => {
            let spec = a.target.device_spec()?;
            with_backend!(spec, extract_on(a))
        }
        SteerCommand::Apply(a) => {
            let spec = a.target.device_spec()?;
            with_backend!(spec, apply_on(a))
        }
        SteerCommand::Sweep(a) => {
            let spec = a.target.device_spec()?;
            with_backend!(spec, sweep_on(a))
        }
        SteerCommand::Compare(a) => compare(a),
    }
}

fn parse_site(text: &str) -> Result<SiteKind> {
    Ok(match text.trim_start_matches("hook_") {
        "resid_pre" => SiteKind::ResidPre,
        "resid_mid" => SiteKind::ResidMid,
        "resid_post" => SiteKind::ResidPost,
        other => bail!("--site `{other}` is not one of resid_pre, resid_mid, resid_post"),
    })
}

fn model_name(path: &Path) -> String {
    path.display().to_string()
}

/// Token ids of each side of a contrastive set: (positives, negatives).
type EncodedPairs = (Vec<Vec<u32>>, Vec<Vec<u32>>);

fn encode_pairs<B: Backend>(model: &Model<B>, pairs: &[ContrastivePair]) -> Result<EncodedPairs> {
    let tok = model.tokenizer()?;
    let mut pos = Vec::with_capacity(pairs.len());
    let mut neg = Vec::with_capacity(pairs.len());
    for p in pairs {
        pos.push(tok.encode(&p.positive)?);
        neg.push(tok.encode(&p.negative)?);
    }
    Ok((pos, neg))
}

/// One row of `layers.csv`.
#[derive(Serialize)]
struct LayerRow {
    layer: usize,
    separation: f64,
    probe_accuracy: Option<f64>,
    js: f64,
    legacy_ta2: f64,
    mean_diff_norm: f64,
    vector_norm: f64,
}

fn extract_on<B: Backend>(device: &B::Device, args: &ExtractArgs) -> Result<()> {
    let model = args.target.load::<B>(device)?;
    extract_with(&model, args).map(drop)
}

/// Runs `strata steer extract` on a loaded model: prints the layer scores, writes the
/// `--out` files and returns the scores.
pub fn extract_with<B: Backend>(
    model: &Model<B>,
    args: &ExtractArgs,
) -> Result<Vec<strata_steer::LayerScore>> {
    let method: Method = args.method.parse()?;
    let position: ReadPosition = args.position.parse()?;
    let site = parse_site(&args.site)?;
    let pairs = read_pairs(&args.pairs.pairs, args.pairs.concept.as_deref())?;
    let (pos, neg) = encode_pairs(model, &pairs)?;
    let config = ExtractConfig {
        site,
        layers: args.layers.clone(),
        position: position.clone(),
        batch_size: args.batch_size,
    };
    let bar = progress::bar(2 * pairs.len() as u64, "sequences");
    let acts = extract_activations(model, &pos, &neg, &config, &mut |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();
    let scores = score_layers(&acts)?;
    let layers = directions(&acts, method)?;
    let name = model_name(&args.target.model);
    let mut vectors = SteeringVectors {
        meta: SteeringMeta {
            model: name.clone(),
            model_type: model.config().model_type.clone(),
            n_layers: model.config().n_layers,
            d_model: model.config().d_model,
            site,
            position,
            method,
            normalized: false,
            n_pairs: acts.n_pairs,
            concept: args.pairs.concept.clone(),
        },
        layers,
    };
    if args.normalize {
        vectors = vectors.normalized();
    }
    let rows: Vec<LayerRow> = scores
        .iter()
        .map(|s| LayerRow {
            layer: s.layer,
            separation: s.separation,
            probe_accuracy: s.probe_accuracy,
            js: s.js,
            legacy_ta2: s.legacy_ta2,
            mean_diff_norm: s.mean_diff_norm,
            vector_norm: vectors.layers[&s.layer]
                .iter()
                .map(|&x| x as f64 * x as f64)
                .sum::<f64>()
                .sqrt(),
        })
        .collect();
    say!(
        "{} pairs, method {method}, site {:?}, position {}",
        acts.n_pairs,
        site,
        vectors.meta.position
    );
    say!(
        "{:>5} {:>10} {:>9} {:>10} {:>11} {:>10}",
        "layer",
        "separation",
        "probe acc",
        "js",
        "legacy_ta2",
        "|v|"
    );
    for r in &rows {
        say!(
            "{:>5} {:>10.3} {:>9} {:>10.2e} {:>11.3e} {:>10.3}",
            r.layer,
            r.separation,
            r.probe_accuracy
                .map_or("-".to_string(), |a| format!("{a:.3}")),
            r.js,
            r.legacy_ta2,
            r.vector_norm
        );
    }
    if let Some(best) = best_layer(&rows) {
        say!("best probe accuracy at layer {best}");
    }
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    vectors.save(&out.join("directions.safetensors"))?;
    strata_report::write_table(&out.join("layers.csv"), &rows)?;
    let mut files = vec![
        "directions.safetensors".to_string(),
        "layers.csv".to_string(),
        "layers.parquet".to_string(),
    ];
    if site == SiteKind::ResidPost {
        vectors.export_gguf(&out.join("control_vector.gguf"))?;
        files.push("control_vector.gguf".into());
    }
    let accuracy: Vec<(usize, f64)> = rows
        .iter()
        .filter_map(|r| r.probe_accuracy.map(|a| (r.layer, a)))
        .collect();
    let separation: Vec<(usize, f64)> = rows.iter().map(|r| (r.layer, r.separation)).collect();
    let title = format!(
        "{}{}: layer scores",
        name,
        args.pairs
            .concept
            .as_ref()
            .map_or(String::new(), |c| format!(" / {c}"))
    );
    strata_report::plot_steer_layer_scores(
        &accuracy,
        &separation,
        &title,
        &out.join("layer_scores.svg"),
    )?;
    files.push("layer_scores.svg".into());
    RunManifest::new(name, files).write(out)?;
    say!("wrote {}", out.display());
    Ok(scores)
}

fn best_layer(rows: &[LayerRow]) -> Option<usize> {
    rows.iter()
        .filter_map(|r| r.probe_accuracy.map(|a| (r.layer, a, r.separation)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))
        .map(|(l, _, _)| l)
}

/// The vectors, checked against the model, and the layer to use.
fn load_vectors<B: Backend>(
    model: &Model<B>,
    target: &ModelArgs,
    args: &VectorArgs,
) -> Result<(SteeringVectors, usize)> {
    let vectors = SteeringVectors::load(&args.vectors)?;
    vectors.check_model(
        &args.vectors,
        model.config(),
        &model_name(&target.model),
        args.allow_other_model,
    )?;
    let layer = match args.layer {
        Some(l) => l,
        None => layer_from_csv(&args.vectors).unwrap_or_else(|| {
            vectors
                .layers
                .keys()
                .nth(vectors.layers.len() / 2)
                .copied()
                .unwrap_or(0)
        }),
    };
    vectors.layer(layer)?;
    Ok((vectors, layer))
}

/// The layer of best probe accuracy in the `layers.csv` beside a vector file.
fn layer_from_csv(vectors: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(vectors.parent()?.join("layers.csv")).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let (li, ai, si) = (
        header.iter().position(|h| *h == "layer")?,
        header.iter().position(|h| *h == "probe_accuracy")?,
        header.iter().position(|h| *h == "separation")?,
    );
    lines
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            Some((
                cells.get(li)?.parse::<usize>().ok()?,
                cells.get(ai)?.parse::<f64>().ok()?,
                cells.get(si)?.parse::<f64>().unwrap_or(0.0),
            ))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))
        .map(|(l, _, _)| l)
}

fn steering_for(
    vectors: &SteeringVectors,
    layer: usize,
    ablate: bool,
    alpha: f32,
) -> strata_steer::Result<Steering> {
    let v = vectors.layer(layer)?.to_vec();
    if ablate {
        Steering::ablate(&v)
    } else {
        Steering::add(vectors.meta.site, BTreeMap::from([(layer, v)]), alpha)
    }
}

/// One row of `generations.csv`.
#[derive(Serialize)]
struct GenerationRow {
    layer: usize,
    operator: String,
    alpha: Option<f64>,
    text: String,
}

fn apply_on<B: Backend>(device: &B::Device, args: &ApplyArgs) -> Result<()> {
    if let Some(a) = args.alpha.iter().find(|a| !a.is_finite()) {
        bail!("--alpha {a} is not a finite number");
    }
    let model = args.target.load::<B>(device)?;
    let (vectors, layer) = load_vectors(&model, &args.target, &args.vectors)?;
    let tok = model.tokenizer()?;
    let prompt = tok.encode(&args.prompt)?;
    let config = GenerateConfig {
        max_new_tokens: args.max_new_tokens,
        eos_token_id: model.config().eos_token_id,
        ..GenerateConfig::default()
    };
    let mut rows = Vec::new();
    let plain = generate(&model, &prompt, &config, &mut ProbeSet::none())?;
    rows.push(GenerationRow {
        layer,
        operator: "none".into(),
        alpha: None,
        text: tok.decode(&plain)?,
    });
    let runs: Vec<Option<f32>> = if args.vectors.ablate {
        vec![None]
    } else {
        args.alpha.iter().map(|&a| Some(a)).collect()
    };
    for alpha in runs {
        let mut steer = steering_for(&vectors, layer, args.vectors.ablate, alpha.unwrap_or(0.0))?;
        steer.check_model(model.config(), &model_name(&args.target.model))?;
        let ids = generate(&model, &prompt, &config, &mut ProbeSet::one(&mut steer))?;
        rows.push(GenerationRow {
            layer,
            operator: if args.vectors.ablate { "ablate" } else { "add" }.into(),
            alpha: alpha.map(f64::from),
            text: tok.decode(&ids)?,
        });
    }
    say!("prompt: {}", args.prompt);
    for r in &rows {
        let label = match (r.operator.as_str(), r.alpha) {
            ("none", _) => "plain".to_string(),
            ("ablate", _) => format!("ablated (all blocks, layer {layer}'s direction)"),
            (_, Some(a)) => format!("layer {layer}, alpha {a}"),
            _ => r.operator.clone(),
        };
        say!("[{label}] {}", r.text.replace('\n', " "));
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        strata_report::write_table(&out.join("generations.csv"), &rows)?;
        RunManifest::new(
            model_name(&args.target.model),
            vec!["generations.csv".into(), "generations.parquet".into()],
        )
        .write(out)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}

fn sweep_on<B: Backend>(device: &B::Device, args: &SweepArgs) -> Result<()> {
    if let Some(a) = args.alphas.iter().find(|a| !a.is_finite()) {
        bail!("--alphas holds {a}, not a finite number");
    }
    let model = args.target.load::<B>(device)?;
    let (vectors, layer) = load_vectors(&model, &args.target, &args.vectors)?;
    let pairs = read_pairs(&args.pairs.pairs, args.pairs.concept.as_deref())?;
    let held_out: Vec<ContrastivePair> = pairs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 5 == 4)
        .map(|(_, p)| p)
        .take(args.n_eval)
        .collect();
    if held_out.is_empty() {
        bail!(
            "{}: fewer than 5 pairs, so no held-out pair to evaluate on",
            args.pairs.pairs.display()
        );
    }
    let (pos, neg) = encode_pairs(&model, &held_out)?;
    let text = std::fs::read_to_string(&args.corpus)
        .with_context(|| format!("reading corpus {}", args.corpus.display()))?;
    let mut stream = corpus::frame_lines(model.tokenizer()?, text.lines())?;
    stream.truncate(args.ppl_tokens);
    let window = model.config().n_ctx.min(256).min(stream.len());
    let ppl_config = PerplexityConfig::new(window, window)?;
    let bar = progress::bar(args.alphas.len() as u64, "alphas");
    let ablate = args.vectors.ablate;
    let points = dose_response(
        &model,
        &|alpha| steering_for(&vectors, layer, ablate, alpha),
        &args.alphas,
        (&pos, &neg),
        &stream,
        &ppl_config,
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    say!(
        "layer {layer}, {} held-out pairs, perplexity on {} tokens of {}",
        held_out.len(),
        stream.len(),
        args.corpus.display()
    );
    say!("{:>8} {:>10} {:>10}", "alpha", "log-odds", "ppl");
    for p in &points {
        say!("{:>8} {:>10.3} {:>10.3}", p.alpha, p.log_odds, p.ppl);
    }
    let out = &args.out;
    std::fs::create_dir_all(out)?;
    strata_report::write_table(&out.join("dose_response.csv"), &points)?;
    let curve: Vec<(f64, f64, f64)> = points
        .iter()
        .map(|p| (p.alpha, p.log_odds, p.ppl))
        .collect();
    strata_report::plot_steer_dose_response(
        &curve,
        &format!(
            "{}: dose-response at layer {layer}",
            model_name(&args.target.model)
        ),
        &out.join("dose_response.svg"),
    )?;
    RunManifest::new(
        model_name(&args.target.model),
        vec![
            "dose_response.csv".into(),
            "dose_response.parquet".into(),
            "dose_response.svg".into(),
        ],
    )
    .write(out)?;
    say!("wrote {}", out.display());
    Ok(())
}

fn compare(args: &CompareArgs) -> Result<()> {
    let a = SteeringVectors::load(&args.a)?;
    let b_path = args.b.clone().unwrap_or_else(|| args.a.clone());
    let b = SteeringVectors::load(&b_path)?;
    if a.meta.d_model != b.meta.d_model {
        bail!(
            "{} is {} wide and {} is {} wide: directions of different widths do not compare",
            args.a.display(),
            a.meta.d_model,
            b_path.display(),
            b.meta.d_model
        );
    }
    let cells = cosine_matrix(&a, &b);
    let diagonal = layer_cosines(&a, &b);
    say!(
        "{} ({}) vs {} ({})",
        args.a.display(),
        a.meta.model,
        b_path.display(),
        b.meta.model
    );
    say!("{:>5} {:>8}", "layer", "cosine");
    for c in &diagonal {
        say!("{:>5} {:>8.4}", c.layer_a, c.cosine);
    }
    let out = &args.out;
    std::fs::create_dir_all(out)?;
    strata_report::write_table(&out.join("cosines.csv"), &cells)?;
    strata_report::write_table(&out.join("layer_cosines.csv"), &diagonal)?;
    let matrix: Vec<(usize, usize, f64)> = cells
        .iter()
        .map(|c| (c.layer_a, c.layer_b, c.cosine))
        .collect();
    strata_report::plot_steer_cosines(
        &matrix,
        &format!("cosine: {} vs {}", a.meta.model, b.meta.model),
        &out.join("cosines.svg"),
    )?;
    RunManifest::new(
        a.meta.model.clone(),
        vec![
            "cosines.csv".into(),
            "cosines.parquet".into(),
            "layer_cosines.csv".into(),
            "layer_cosines.parquet".into(),
            "cosines.svg".into(),
        ],
    )
    .write(out)?;
    say!("wrote {}", out.display());
    Ok(())
}
