//! `strata report`: spectra, massive activations, sparsity, voids and steering on one model,
//! written as one self-contained page, `OUT/report/index.html`, with each analysis's tables
//! and figures in a subfolder beside it.
//!
//! Each analysis runs through its own command's code (the same files, the same columns),
//! with the sizes chosen here; the page reads the results the commands return or wrote. A
//! failing analysis (or one that panics) becomes a section showing its error, and the others
//! still run.

use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use clap::Parser;
use strata_core::probe::ProbeSet;
use strata_core::{Model, Tokenizer};
use strata_report::html::{self, Figure, ReportPage, Section, SectionBody, SteerConcept};
use strata_void::{VoidConfig, VoidProbe};

use super::model_args::ModelArgs;
use super::{massive, sparsity, spectra, steer, void};
use crate::with_backend;

/// The embedded default model (a folder committed to the repository).
const DEFAULT_MODEL: &str = "datasets/models/tiny-default";

/// Token maps drawn in the void map figure (the first ones of the first sequence).
const VOID_MAP_TOKENS: usize = 64;

/// Analyses run, for the `[k/N]` progress lines.
const N_STEPS: usize = 5;

/// Arguments of `strata report`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("model", |a| a.required(false).default_value(DEFAULT_MODEL)))]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    /// Output folder: the page is `OUT/report/index.html`, each analysis's files are in
    /// `OUT/report/<analysis>/`.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// The plain-text corpus of massive activations, voids and sparsity (framed as `strata
    /// ppl` frames it).
    #[arg(long, default_value = "datasets/kjv/valid.txt")]
    pub corpus: PathBuf,
    /// Tokens per sequence for massive activations and voids (default: the model's context,
    /// at most 256).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Sequences for massive activations and voids (one forward pass each, shared).
    #[arg(long, default_value_t = 8)]
    pub n_seq: usize,
    /// The sparsity target: perplexity allowed to rise p% (PPL-p%).
    #[arg(long, default_value_t = 1.0)]
    pub p: f64,
    /// Tokens per sparsity window (default: the model's context, at most 256).
    #[arg(long)]
    pub window: Option<usize>,
    /// Sparsity windows.
    #[arg(long, default_value_t = 4)]
    pub n_windows: usize,
    /// Threshold grid points per layer of the sparsity search (default: `strata sparsity`'s).
    #[arg(long)]
    pub grid_size: Option<usize>,
    /// The void rule's alpha in [0, 1].
    #[arg(long, default_value_t = 0.8)]
    pub alpha: f64,
    /// Contrastive pairs for the steering directions (JSONL, as `strata steer extract` reads
    /// them).
    #[arg(long, default_value = "datasets/steering/pairs.jsonl")]
    pub pairs: PathBuf,
    /// Concepts of the pairs file, one direction set each, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "archaic,sentiment")]
    pub concepts: Vec<String>,
    /// Where the steering activations are read (as `strata steer extract --position`).
    #[arg(long, default_value = "mean")]
    pub position: String,
}

/// The heading and question of a section.
struct Info {
    id: &'static str,
    title: &'static str,
    question: &'static str,
}

const SPECTRA: Info = Info {
    id: "spectra",
    title: "Spectra",
    question: "How well conditioned is each weight matrix? The condition number kappa \
               (largest over smallest singular value), the stable rank and the power-law \
               exponent of the eigenvalue tail, per matrix.",
};
const MASSIVE: Info = Info {
    id: "massive",
    title: "Massive activations",
    question: "Where do the largest values of the residual stream sit, and how far above the \
               median do they rise? The top magnitudes of every block's output, layer by layer.",
};
const SPARSITY: Info = Info {
    id: "sparsity",
    title: "Activation sparsity",
    question: "How many MLP neurons can each layer skip for a small perplexity cost? CETT \
               thresholds on the neurons' output norms, searched for the PPL-p% target.",
};
const VOID: Info = Info {
    id: "void",
    title: "Voids",
    question: "Which layers does each token use? The L2 Adaptive Computation rule marks a layer \
               a void for a token when it barely changes the token's residual norm (measured \
               in the same forward passes as the massive activations).",
};
const STEER: Info = Info {
    id: "steer",
    title: "Steering directions",
    question: "Where does the model represent a concept linearly? Directions from contrastive \
               pairs and how well each layer separates the two sides.",
};

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    let spec = args.target.device_spec()?;
    with_backend!(spec, report_on(args))
}

fn report_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let started = Instant::now();
    let dir = args.out.join("report");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating output folder {}", dir.display()))?;

    let spectra = run_section(&SPECTRA, 1, || spectra_part(args, &dir));
    let model = args
        .target
        .load::<B>(device)
        .map_err(|e| format!("loading the model: {e:#}"));
    let (massive, void) = match &model {
        Ok(model) => massive_and_void(model, args, &dir),
        Err(e) => (
            failed_section(&MASSIVE, e.clone()),
            failed_section(&VOID, e.clone()),
        ),
    };
    let sparsity = run_section(&SPARSITY, 4, || sparsity_part(args, &dir));
    let steer = run_section(&STEER, 5, || match &model {
        Ok(model) => steer_part(model, args, &dir),
        Err(e) => bail!("{e}"),
    });

    let mut settings = settings_of(args, model.as_ref().ok());
    settings.push((
        "total wall time".into(),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));
    let page = ReportPage {
        title: format!("strata report: {}", model_name(&args.target.model)),
        settings,
        sections: vec![spectra, massive, sparsity, void, steer],
    };
    let index = dir.join("index.html");
    page.write(&index)?;
    say!("wrote {}", index.display());
    let failed: Vec<&str> = page
        .sections
        .iter()
        .filter(|s| s.body.is_err())
        .map(|s| s.title.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} analyses failed ({}); {} shows their errors",
            failed.len(),
            page.sections.len(),
            failed.join(", "),
            index.display()
        );
    }
    Ok(())
}

/// Runs one analysis with progress lines on stderr, turning an error or a panic into the
/// section's error.
fn run_section(info: &Info, step: usize, part: impl FnOnce() -> Result<SectionBody>) -> Section {
    eprintln!("[{step}/{N_STEPS}] {} ...", info.title.to_lowercase());
    let started = Instant::now();
    let body = match catch_unwind(AssertUnwindSafe(part)) {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(panic) => Err(panic_message(panic.as_ref())),
    };
    let wall_s = started.elapsed().as_secs_f64();
    eprintln!(
        "[{step}/{N_STEPS}] {} {} in {wall_s:.1} s",
        info.title.to_lowercase(),
        if body.is_ok() { "done" } else { "FAILED" }
    );
    section(info, wall_s, body)
}

fn section(info: &Info, wall_s: f64, body: std::result::Result<SectionBody, String>) -> Section {
    Section {
        id: info.id.into(),
        title: info.title.into(),
        question: info.question.into(),
        wall_s,
        body,
    }
}

fn failed_section(info: &Info, error: String) -> Section {
    section(info, 0.0, Err(error))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("the analysis panicked: {text}")
}

/// A command's arguments, parsed from a command line as a user would type it: the model
/// flags (`--model`, `--device`, `--max-memory` as the report was given them, unless
/// `with_model` is false), then `flags` as `--name value` pairs, leaving out those without
/// a value. The command gets its own defaults for everything the report does not set.
fn command_args<T: clap::Args>(
    args: &Args,
    with_model: bool,
    flags: &[(&str, Option<OsString>)],
) -> Result<T> {
    #[derive(Parser)]
    struct Command<T: clap::Args> {
        #[command(flatten)]
        inner: T,
    }
    let mut argv: Vec<OsString> = vec!["strata".into()];
    let model_flags = [
        ("model", Some(args.target.model.clone().into())),
        ("device", Some(args.target.device.clone().into())),
        (
            "max-memory",
            args.target.max_memory.map(|b| b.to_string().into()),
        ),
    ];
    let model_flags = if with_model {
        &model_flags[..]
    } else {
        &model_flags[..1]
    };
    for (name, value) in model_flags.iter().chain(flags) {
        if let Some(value) = value {
            argv.extend([format!("--{name}").into(), value.clone()]);
        }
    }
    Ok(Command::<T>::try_parse_from(argv)
        .context("building a command's arguments")?
        .inner)
}

/// A flag value.
fn value(v: impl Into<OsString>) -> Option<OsString> {
    Some(v.into())
}

/// An optional number as a flag value.
fn number(v: Option<usize>) -> Option<OsString> {
    v.map(|n| n.to_string().into())
}

/// The output folder `dir/name`, created.
fn folder(dir: &Path, name: &str) -> Result<PathBuf> {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(out)
}

fn spectra_part(args: &Args, dir: &Path) -> Result<SectionBody> {
    let out = folder(dir, SPECTRA.id)?;
    // Spectra reads the weights only: no device.
    let spectra_args = command_args::<spectra::Args>(args, false, &[("out", value(&out))])?;
    let result = spectra::run_spectra(&spectra_args)?;
    let mut body = html::spectra_section(&result)?;
    body.figures = vec![
        Figure::from_file(
            &out.join("kappa_by_layer.svg"),
            "kappa of every matrix against its layer (log scale)",
        )?,
        Figure::from_file(
            &out.join("esd.svg"),
            "empirical spectral densities of the best- and worst-conditioned matrices",
        )?,
    ];
    body.files = files_in(dir, &out)?;
    Ok(body)
}

/// Massive activations and voids from the same forward passes: the void probe rides along
/// the massive measurement (`measure_with` runs the caller's probes ahead of its own). A
/// failure of the shared passes fails both sections; a failure of the void part alone fails
/// only the void section.
fn massive_and_void<B: Backend>(model: &Model<B>, args: &Args, dir: &Path) -> (Section, Section) {
    let mut void_part: Option<(Result<SectionBody, String>, f64)> = None;
    let mut massive = run_section(&MASSIVE, 2, || {
        let out = folder(dir, MASSIVE.id)?;
        let massive_args = command_args::<massive::Args>(
            args,
            true,
            &[
                ("corpus", value(&args.corpus)),
                ("n-seq", number(Some(args.n_seq))),
                ("seq-len", number(args.seq_len)),
                ("out", value(&out)),
            ],
        )?;
        let config = VoidConfig {
            alpha: args.alpha as f32,
            ..VoidConfig::default()
        };
        let mut probe = match VoidProbe::<B>::new(model.config().n_layers, config) {
            Ok(probe) => Some(probe),
            Err(e) => {
                void_part = Some((Err(format!("{e:#}")), 0.0));
                None
            }
        };
        let mut probes = match probe.as_mut() {
            Some(p) => ProbeSet::one(p),
            None => ProbeSet::none(),
        };
        let result = massive::measure_and_write(model, &massive_args, &mut probes)?;
        drop(probes);
        if let Some(probe) = probe {
            let t = Instant::now();
            let void =
                void_outputs(model, args, dir, probe.into_result()).map_err(|e| format!("{e:#}"));
            void_part = Some((void, t.elapsed().as_secs_f64()));
        }
        let tokenizer = model.tokenizer_if_any();
        let token = |id: u32| token_text(tokenizer, id);
        let mut body = html::massive_section(&result, &token)?;
        body.figures = vec![
            Figure::from_file(
                &out.join("massive_by_layer.svg"),
                "largest and median |h| of each block's output (log scale)",
            )?,
            Figure::from_file(
                &out.join("ratio_by_layer.svg"),
                "top-1 / median |h| by layer",
            )?,
            Figure::from_file(
                &out.join("top_layer_heatmap.svg"),
                "|h| over tokens and dimensions at the layer holding the largest value",
            )?,
        ];
        body.files = files_in(dir, &out)?;
        Ok(body)
    });
    let void = match void_part {
        Some((body, wall_s)) => {
            // The shared passes are the massive section's time; the void section's is the
            // reading and writing of its own results.
            massive.wall_s -= wall_s;
            eprintln!("[3/{N_STEPS}] voids (measured with the massive activations)");
            section(&VOID, wall_s, body)
        }
        None => failed_section(
            &VOID,
            match &massive.body {
                Err(e) => format!("the shared forward passes failed: {e}"),
                Ok(_) => "the void probe did not run".into(),
            },
        ),
    };
    (massive, void)
}

fn void_outputs<B: Backend>(
    model: &Model<B>,
    args: &Args,
    dir: &Path,
    result: strata_void::VoidResult,
) -> Result<SectionBody> {
    let out = folder(dir, VOID.id)?;
    let summary = void::Summary::new(&args.target.model, args.alpha, &result, None, None);
    void::write_map_outputs(
        &out,
        &args.target.model,
        model.tokenizer_if_any(),
        &result,
        &summary,
        VOID_MAP_TOKENS,
    )?;
    let mut body = html::void_section(&result)?;
    body.figures = vec![
        Figure::from_file(
            &out.join("void_map.svg"),
            &format!(
                "active (filled) and void layers of the first {VOID_MAP_TOKENS} tokens of the \
                 first sequence"
            ),
        )?,
        Figure::from_file(
            &out.join("void_usage_by_layer.svg"),
            "share of tokens for which each layer is active",
        )?,
    ];
    body.files = files_in(dir, &out)?;
    Ok(body)
}

fn sparsity_part(args: &Args, dir: &Path) -> Result<SectionBody> {
    let out = folder(dir, SPARSITY.id)?;
    let sparsity_args = command_args::<sparsity::Args>(
        args,
        true,
        &[
            ("corpus", value(&args.corpus)),
            ("p", value(args.p.to_string())),
            ("n-windows", number(Some(args.n_windows))),
            ("window", number(args.window)),
            ("grid-size", number(args.grid_size)),
            ("out", value(&out)),
        ],
    )?;
    // The dense pass of the sparsity search takes no caller probes (`DensePass::run`), so it
    // cannot share the massive and void passes: sparsity runs on its own, through its
    // command, which loads the model again.
    sparsity::run(&sparsity_args)?;
    let json_path = out.join("sparsity.json");
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("reading {}", json_path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json_path.display()))?;
    let run = &summary["runs"][0];
    let result: strata_sparsity::SparsityResult = serde_json::from_value(run["result"].clone())
        .with_context(|| format!("{}: runs[0].result", json_path.display()))?;
    let unreached = (run["reached"].as_bool() == Some(false))
        .then(|| run["note"].as_str().unwrap_or("no reason given"));
    let mut body = html::sparsity_section(run["p"].as_f64(), &result, unreached)?;
    body.figures = vec![Figure::from_file(
        &out.join("sparsity_by_layer.svg"),
        "share of MLP neurons computed, by layer",
    )?];
    body.files = files_in(dir, &out)?;
    Ok(body)
}

fn steer_part<B: Backend>(model: &Model<B>, args: &Args, dir: &Path) -> Result<SectionBody> {
    if args.concepts.is_empty() {
        bail!("--concepts names no concept");
    }
    let mut concepts = Vec::new();
    let mut figures = Vec::new();
    let mut files = Vec::new();
    for concept in &args.concepts {
        let out = dir.join(STEER.id).join(concept);
        let extract = command_args::<steer::ExtractArgs>(
            args,
            true,
            &[
                ("pairs", value(&args.pairs)),
                ("concept", value(concept)),
                ("position", value(&args.position)),
                ("out", value(&out)),
            ],
        )?;
        let scores =
            steer::extract_with(model, &extract).with_context(|| format!("concept `{concept}`"))?;
        let n_pairs = strata_steer::read_pairs(&args.pairs, Some(concept))?.len();
        concepts.push(SteerConcept {
            concept: concept.clone(),
            n_pairs,
            scores,
        });
        figures.push(Figure::from_file(
            &out.join("layer_scores.svg"),
            &format!("{concept}: probe accuracy and separation by layer"),
        )?);
        files.extend(files_in(dir, &out)?);
    }
    let mut body = html::steer_section(&concepts)?;
    body.figures = figures;
    body.files = files;
    Ok(body)
}

/// The files in `folder`, as paths relative to `dir`, sorted.
fn files_in(dir: &Path, folder: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(folder).with_context(|| format!("listing {}", folder.display()))?
    {
        let path = entry?.path();
        if path.is_file() {
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            names.push(relative.display().to_string());
        }
    }
    names.sort();
    Ok(names)
}

fn token_text(tokenizer: Option<&Tokenizer>, id: u32) -> String {
    tokenizer
        .and_then(|t| t.decode_with_special(&[id]).ok())
        .unwrap_or_else(|| id.to_string())
}

fn model_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The settings table of the page.
fn settings_of<B: Backend>(args: &Args, model: Option<&Model<B>>) -> Vec<(String, String)> {
    let n_ctx = model.map(|m| m.config().n_ctx);
    let default_len = |given: Option<usize>| match (given, n_ctx) {
        (Some(n), _) => n.to_string(),
        (None, Some(n_ctx)) => n_ctx.min(256).to_string(),
        (None, None) => "the model's context, at most 256".into(),
    };
    let mut settings = vec![
        ("model".to_string(), args.target.model.display().to_string()),
        ("device".into(), args.target.device.clone()),
    ];
    if let Some(m) = model {
        let c = m.config();
        settings.push((
            "architecture".into(),
            format!(
                "{}: {} layers, d_model {}, d_mlp {}, {} heads, context {}",
                c.model_type, c.n_layers, c.d_model, c.d_mlp, c.n_heads, c.n_ctx
            ),
        ));
    }
    settings.extend([
        ("corpus".into(), args.corpus.display().to_string()),
        (
            "massive activations and voids".into(),
            format!(
                "{} sequences of {} tokens, shared forward passes; void alpha {}",
                args.n_seq,
                default_len(args.seq_len),
                args.alpha
            ),
        ),
        (
            "sparsity".into(),
            format!(
                "PPL-{}%, {} windows of {} tokens",
                args.p,
                args.n_windows,
                default_len(args.window)
            ),
        ),
        (
            "steering".into(),
            format!(
                "{} from {}, read at position `{}`, mean difference",
                args.concepts.join(", "),
                args.pairs.display(),
                args.position
            ),
        ),
        ("strata version".into(), env!("CARGO_PKG_VERSION").into()),
    ]);
    settings
}
