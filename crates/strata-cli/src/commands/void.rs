//! `strata void`: which layers a model uses for each token (the LAC void maps of a prompt
//! and its generation), and its multiple-choice accuracy with the voids skipped across an
//! alpha grid.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use serde::Serialize;
use strata_core::eval::read_task_file;
use strata_core::generate::{GenerateConfig, Sampling};
use strata_core::io::{RunManifest, write_json_atomic};
use strata_core::{Model, Tokenizer};
use strata_void::{
    LetterPrompt, Phase, PhaseUsage, Skip, VoidConfig, VoidResult, generate_with_voids, map_prompt,
    rarely_active_layers, score_by_letter, score_task_with_voids,
};

use super::input::InputArgs;
use super::model_args::ModelArgs;
use crate::progress;
use crate::with_backend;

/// How voids are skipped, as `--skip` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SkipArg {
    /// Measure only (the plain model).
    Off,
    /// Variant A: every layer runs; each token decodes from its deepest active layer.
    DeepestActive,
    /// Variant B: a void layer passes its input through to later layers and KV caches.
    PassThrough,
}

impl From<SkipArg> for Skip {
    fn from(arg: SkipArg) -> Self {
        match arg {
            SkipArg::Off => Skip::Off,
            SkipArg::DeepestActive => Skip::DeepestActive,
            SkipArg::PassThrough => Skip::PassThrough,
        }
    }
}

/// How task items are scored, as `--by` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreBy {
    /// Log-likelihood of each choice (`acc`, `acc_norm`).
    Loglik,
    /// Generation from a lettered prompt, scored by the first option letter.
    Letter,
}

/// Arguments of `strata void`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: ModelArgs,
    #[command(flatten)]
    pub input: InputArgs,
    /// A multiple-choice task file (`*.jsonl`): sweep the accuracy with voids skipped over
    /// `--alpha` instead of mapping one prompt.
    #[arg(long, conflicts_with_all = ["text", "token_ids"])]
    pub task: Option<PathBuf>,
    /// A plain-text corpus (framed as `strata ppl` frames it): sweep its perplexity with
    /// voids skipped over `--alpha` instead.
    #[arg(long, conflicts_with_all = ["text", "token_ids", "task"])]
    pub corpus: Option<PathBuf>,
    /// Tokens of `--corpus` scored.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// The rule's alpha in [0, 1]; a comma-separated grid with `--task`.
    #[arg(long, value_delimiter = ',', default_value = "0.8")]
    pub alpha: Vec<f64>,
    /// Tokens to generate after the prompt (their maps are the generation phase).
    #[arg(long, default_value_t = 0)]
    pub generate: usize,
    /// What happens to the voids while mapping a prompt.
    #[arg(long, value_enum, default_value = "off")]
    pub skip: SkipArg,
    /// Wrap `--text` (and `--by letter` prompts) in the ChatML template of instruct models.
    #[arg(long)]
    pub chat: bool,
    /// Sampling temperature (nucleus sampling); without it decoding is greedy.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus mass for sampling.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also time generation with the layers used by fewer than `--skip-below` of the prompt
    /// tokens really skipped (no attention or MLP computed), against the full model.
    #[arg(long)]
    pub speed: bool,
    /// Layers active for fewer than this share of the measured tokens are compute-skipped
    /// (`--speed`, and the `compute-skip` rows of a task sweep).
    #[arg(long, default_value_t = 0.5)]
    pub skip_below: f64,
    /// How task items are scored.
    #[arg(long, value_enum, default_value = "loglik")]
    pub by: ScoreBy,
    /// Score only the first N items of the task.
    #[arg(long)]
    pub limit: Option<usize>,
    /// New tokens per item with `--by letter`.
    #[arg(long, default_value_t = 8)]
    pub answer_tokens: usize,
    /// Output folder: `void.csv`/`.parquet` and `void.json` (maps), or `sweep.csv`/`.parquet`
    /// and `sweep.json` (task), with figures and `manifest.json`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One row of `void.csv`: one (phase, token, layer).
#[derive(Serialize)]
struct MapRow {
    phase: &'static str,
    token_pos: usize,
    token_id: u32,
    token: String,
    layer: usize,
    norm_in: f32,
    norm_out: f32,
    delta: f32,
    threshold: f32,
    active: u8,
    skipped: u8,
    /// Index of the forward call the token was measured in: 0 for a prompt, then one per
    /// generated token (or one per sequence when several are measured).
    call: usize,
}

/// One row of `sweep.csv`.
#[derive(Serialize)]
struct SweepRow {
    variant: String,
    alpha: Option<f64>,
    n_items: usize,
    accuracy: f64,
    acc_norm: Option<f64>,
    parse_failure_rate: Option<f64>,
    usage_prompt: f64,
    usage_generation: Option<f64>,
    last_void_share: f64,
    layers_compute_skipped: String,
    skipped_share: f64,
}

/// Usage of one phase in `void.json`.
#[derive(Serialize)]
struct PhaseSummary {
    n_tokens: u64,
    usage: f64,
    layer_usage: Vec<f64>,
    last_void_share: f64,
    skipped_share: f64,
}

impl PhaseSummary {
    fn of(usage: &PhaseUsage) -> Self {
        Self {
            n_tokens: usage.n_tokens,
            usage: usage.usage(),
            layer_usage: usage.layer_usage(),
            last_void_share: usage.last_void_share(),
            skipped_share: usage.skipped_share(),
        }
    }
}

/// Tokens per second of generation, full model vs layers really skipped.
#[derive(Serialize)]
pub struct Speed {
    n_new_tokens: usize,
    layers_skipped: Vec<usize>,
    full_tokens_per_s: f64,
    skipped_tokens_per_s: f64,
    speedup: f64,
    same_tokens: bool,
}

/// `void.json`.
#[derive(Serialize)]
pub struct Summary {
    model: String,
    alpha: f64,
    skip: &'static str,
    n_layers: usize,
    prompt: PhaseSummary,
    generation: PhaseSummary,
    generated_text: Option<String>,
    speed: Option<Speed>,
}

impl Summary {
    /// The summary of a map of `model` measured at `alpha`.
    pub fn new(
        model: &Path,
        alpha: f64,
        result: &VoidResult,
        generated_text: Option<String>,
        speed: Option<Speed>,
    ) -> Self {
        Self {
            model: model.display().to_string(),
            alpha,
            skip: result.config.skip.name(),
            n_layers: result.n_layers,
            prompt: PhaseSummary::of(&result.prompt),
            generation: PhaseSummary::of(&result.generation),
            generated_text,
            speed,
        }
    }
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    for &alpha in &args.alpha {
        strata_void::check_alpha(alpha).context("--alpha")?;
    }
    let spec = args.target.device_spec()?;
    if args.task.is_some() {
        with_backend!(spec, sweep_on(args))
    } else if args.corpus.is_some() {
        with_backend!(spec, ppl_on(args))
    } else {
        with_backend!(spec, map_on(args))
    }
}

fn generate_config<B: Backend>(model: &Model<B>, args: &Args, n: usize) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens: n,
        sampling: match args.temperature {
            Some(temperature) => Sampling::TopP {
                temperature,
                top_p: args.top_p,
            },
            None => Sampling::Greedy,
        },
        seed: args.seed,
        eos_token_id: model.config().eos_token_id,
    }
}

fn prompt_tokens<B: Backend>(model: &Model<B>, args: &Args) -> Result<Vec<u32>> {
    match (&args.input.text, args.chat) {
        (Some(text), true) => {
            let message = LetterPrompt::chatml().template.replace("{message}", text);
            let ids = model.tokenizer()?.encode_plain(&message)?;
            if ids.is_empty() {
                bail!("empty prompt: --text encodes to no tokens");
            }
            Ok(ids)
        }
        (Some(text), false) if text.is_empty() => bail!("empty prompt: --text is empty"),
        _ => args.input.tokens(model),
    }
}

fn map_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let &[alpha] = args.alpha.as_slice() else {
        bail!("--alpha takes one value when mapping a prompt (a grid needs --task)");
    };
    let model = args.target.load::<B>(device)?;
    let prompt = prompt_tokens(&model, args)?;
    let config = VoidConfig {
        alpha: alpha as f32,
        skip: args.skip.into(),
        ..VoidConfig::default()
    };
    let (new, result) = if args.generate > 0 {
        let gen_config = generate_config(&model, args, args.generate);
        generate_with_voids(&model, &prompt, &gen_config, &config)?
    } else {
        (Vec::new(), map_prompt(&model, &prompt, &config)?)
    };
    let tokenizer = model.tokenizer_if_any();
    let generated_text = match tokenizer {
        Some(t) if !new.is_empty() => Some(t.decode(&new)?),
        _ => None,
    };
    for phase in [Phase::Prompt, Phase::Generation] {
        let usage = result.phase(phase);
        if usage.n_tokens == 0 {
            continue;
        }
        say!(
            "{:<10} {:>4} tokens: {:5.1}% of layers active; last layer void for {:.1}% of tokens",
            phase.name(),
            usage.n_tokens,
            100.0 * usage.usage(),
            100.0 * usage.last_void_share()
        );
        let profile: Vec<String> = usage
            .layer_usage()
            .iter()
            .map(|u| format!("{:.0}", 100.0 * u))
            .collect();
        say!("           per layer (%): {}", profile.join(" "));
    }
    if let Some(text) = &generated_text {
        say!("generated: {text:?}");
    }
    let speed = if args.speed {
        Some(measure_speed(&model, &prompt, args, &config, &result)?)
    } else {
        None
    };
    if let Some(s) = &speed {
        say!(
            "speed: {:.1} tokens/s full, {:.1} tokens/s with layers {:?} skipped ({:.2}x){}",
            s.full_tokens_per_s,
            s.skipped_tokens_per_s,
            s.layers_skipped,
            s.speedup,
            if s.same_tokens {
                ""
            } else {
                "; the generated tokens differ"
            }
        );
    }
    let Some(out) = &args.out else {
        return Ok(());
    };
    let summary = Summary::new(&args.target.model, alpha, &result, generated_text, speed);
    write_map_outputs(
        out,
        &args.target.model,
        tokenizer,
        &result,
        &summary,
        usize::MAX,
    )?;
    say!("wrote {}", out.display());
    Ok(())
}

/// Writes the files of a void map into `out`: `void.csv` (and `.parquet`), `void.json`
/// (`summary`), `void_map.svg` (the first `max_map_tokens` token maps) and
/// `void_usage_by_layer.svg`, with `manifest.json`.
pub fn write_map_outputs(
    out: &Path,
    model: &Path,
    tokenizer: Option<&Tokenizer>,
    result: &VoidResult,
    summary: &Summary,
    max_map_tokens: usize,
) -> Result<()> {
    let alpha = summary.alpha;
    let token = |id: u32| {
        tokenizer
            .and_then(|t| t.decode_with_special(&[id]).ok())
            .unwrap_or_default()
    };
    let rows: Vec<MapRow> = result
        .tokens
        .iter()
        .flat_map(|t| {
            let text = token(t.token_id);
            (0..t.active.len()).map(move |layer| MapRow {
                phase: t.phase.name(),
                token_pos: t.token_pos,
                token_id: t.token_id,
                token: text.clone(),
                layer,
                norm_in: t.norms[layer],
                norm_out: t.norms[layer + 1],
                delta: t.deltas[layer],
                threshold: t.thresholds[layer],
                active: u8::from(t.active[layer]),
                skipped: u8::from(t.skipped[layer]),
                call: t.call,
            })
        })
        .collect();
    strata_report::write_table(&out.join("void.csv"), &rows)?;
    write_json_atomic(&out.join("void.json"), summary)?;
    let map_rows: Vec<strata_report::VoidMapRow> = result
        .tokens
        .iter()
        .take(max_map_tokens)
        .map(|t| strata_report::VoidMapRow {
            label: format!("{} {:?}", t.token_pos, token(t.token_id)),
            generated: t.phase == Phase::Generation,
            active: t.active.clone(),
        })
        .collect();
    let name = model
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    strata_report::plot_void_map(
        &map_rows,
        &format!("active (filled) and void layers, alpha {alpha}: {name}"),
        &out.join("void_map.svg"),
    )?;
    let mut files = vec![
        "void.csv".to_string(),
        "void.parquet".to_string(),
        "void.json".to_string(),
        "void_map.svg".to_string(),
    ];
    if plot_usage(result, alpha, &name, &out.join("void_usage_by_layer.svg"))? {
        files.push("void_usage_by_layer.svg".into());
    }
    RunManifest::new(model.display().to_string(), files).write(out)?;
    Ok(())
}

fn model_name(args: &Args) -> String {
    args.target
        .model
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The usage profile of each measured phase; false when there is nothing to draw.
fn plot_usage(result: &VoidResult, alpha: f64, name: &str, path: &std::path::Path) -> Result<bool> {
    let series: Vec<(String, Vec<f64>)> = [Phase::Prompt, Phase::Generation]
        .into_iter()
        .filter(|&p| result.phase(p).n_tokens > 0)
        .map(|p| (p.name().to_string(), result.phase(p).layer_usage()))
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    strata_report::plot_void_usage_by_layer(
        &series,
        &format!("layer usage per phase, alpha {alpha}: {name}"),
        path,
    )?;
    Ok(true)
}

/// Generation speed with and without the rarely active layers of the prompt skipped.
fn measure_speed<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    args: &Args,
    config: &VoidConfig,
    measured: &VoidResult,
) -> Result<Speed> {
    let n_new = args.generate.max(16);
    let layers = rarely_active_layers(&measured.prompt, args.skip_below)?;
    // No end-of-text stop: both runs generate exactly `n_new` tokens.
    let gen_config = GenerateConfig {
        eos_token_id: None,
        ..generate_config(model, args, n_new)
    };
    let measure_only = VoidConfig {
        skip: Skip::Off,
        record_maps: false,
        ..config.clone()
    };
    let skipping = VoidConfig {
        compute_skip: layers.clone(),
        ..measure_only.clone()
    };
    let time = |cfg: &VoidConfig| -> Result<(f64, Vec<u32>)> {
        // A warm-up run, then the best of three.
        let mut tokens = generate_with_voids(model, prompt, &gen_config, cfg)?.0;
        let mut best = 0.0f64;
        for _ in 0..3 {
            let start = Instant::now();
            tokens = generate_with_voids(model, prompt, &gen_config, cfg)?.0;
            best = best.max(tokens.len() as f64 / start.elapsed().as_secs_f64());
        }
        Ok((best, tokens))
    };
    let (full, full_tokens) = time(&measure_only)?;
    let (skipped, skipped_tokens) = time(&skipping)?;
    Ok(Speed {
        n_new_tokens: n_new,
        layers_skipped: layers,
        full_tokens_per_s: full,
        skipped_tokens_per_s: skipped,
        speedup: skipped / full,
        same_tokens: full_tokens == skipped_tokens,
    })
}

fn sweep_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    let Some(task) = &args.task else {
        bail!("give --task");
    };
    let model = args.target.load::<B>(device)?;
    let tokenizer = model.tokenizer()?;
    let mut items = read_task_file(task)?;
    if let Some(limit) = args.limit {
        items.truncate(limit);
    }
    let eot = tokenizer
        .end_of_text_id()
        .or(model.config().eos_token_id)
        .context("the tokenizer has no end-of-text token to start items with")?;
    let letter_prompt = if args.chat {
        LetterPrompt::chatml()
    } else {
        LetterPrompt::plain()
    };
    let gen_config = generate_config(&model, args, args.answer_tokens);
    let n_runs = 1 + 3 * args.alpha.len();
    let bar = progress::bar((n_runs * items.len()) as u64, "items");
    let mut run_idx = 0;
    let mut score = |alpha: f64,
                     skip: Skip,
                     compute_skip: Option<Vec<usize>>|
     -> Result<(SweepRow, VoidResult)> {
        let config = VoidConfig {
            alpha: alpha as f32,
            skip,
            record_maps: false,
            compute_skip: compute_skip.clone().unwrap_or_default(),
        };
        let offset = (run_idx * items.len()) as u64;
        run_idx += 1;
        let mut progress = |done: usize, _| bar.set_position(offset + done as u64);
        let (accuracy, acc_norm, parse, result) = match args.by {
            ScoreBy::Loglik => {
                let (acc, result) =
                    score_task_with_voids(&model, tokenizer, eot, &items, &config, &mut progress)?;
                (acc.acc(), Some(acc.acc_norm()), None, result)
            }
            ScoreBy::Letter => {
                let (acc, result) = score_by_letter(
                    &model,
                    tokenizer,
                    &items,
                    &letter_prompt,
                    &gen_config,
                    &config,
                    &mut progress,
                )?;
                (acc.accuracy(), None, Some(acc.parse_failure_rate()), result)
            }
        };
        let overall = result.overall();
        let row = SweepRow {
            variant: match (skip, &compute_skip) {
                (_, Some(_)) => "compute-skip".into(),
                (Skip::Off, None) => "full".into(),
                (other, None) => other.name().into(),
            },
            alpha: (skip != Skip::Off || compute_skip.is_some()).then_some(alpha),
            n_items: items.len(),
            accuracy,
            acc_norm,
            parse_failure_rate: parse,
            usage_prompt: result.prompt.usage(),
            usage_generation: (result.generation.n_tokens > 0).then(|| result.generation.usage()),
            last_void_share: overall.last_void_share(),
            layers_compute_skipped: compute_skip
                .unwrap_or_default()
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            skipped_share: overall.skipped_share(),
        };
        Ok((row, result))
    };
    let mut rows = vec![score(args.alpha[0], Skip::Off, None)?.0];
    for &alpha in &args.alpha {
        let (a, a_result) = score(alpha, Skip::DeepestActive, None)?;
        let (b, _) = score(alpha, Skip::PassThrough, None)?;
        // Variant A leaves every layer's input as the full model's, so its prompt-phase
        // usage is the full model's profile: it picks the layers to skip for real.
        let layers = rarely_active_layers(&a_result.prompt, args.skip_below)?;
        let (c, _) = score(alpha, Skip::Off, Some(layers))?;
        rows.extend([a, b, c]);
    }
    bar.finish_and_clear();
    say!(
        "{:<15} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}  skipped",
        "variant",
        "alpha",
        "acc",
        "acc_norm",
        "parse!",
        "use PP",
        "use RG"
    );
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    for r in &rows {
        say!(
            "{:<15} {:>5} {:>8.3} {:>8} {:>8} {:>8.3} {:>8}  {}",
            r.variant,
            r.alpha.map_or_else(|| "-".into(), |a| format!("{a}")),
            r.accuracy,
            opt(r.acc_norm),
            opt(r.parse_failure_rate),
            r.usage_prompt,
            opt(r.usage_generation),
            r.layers_compute_skipped
        );
    }
    if let Some(out) = &args.out {
        strata_report::write_table(&out.join("sweep.csv"), &rows)?;
        write_json_atomic(
            &out.join("sweep.json"),
            &serde_json::json!({
                "model": args.target.model.display().to_string(),
                "task": task.display().to_string(),
                "by": format!("{:?}", args.by).to_lowercase(),
                "n_items": items.len(),
                "skip_below": args.skip_below,
                "rows": rows,
            }),
        )?;
        let full = rows
            .iter()
            .find(|r| r.variant == "full")
            .map(|r| r.accuracy);
        let series = |pick: &dyn Fn(&SweepRow) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
            ["deepest-active", "pass-through", "compute-skip"]
                .iter()
                .map(|v| {
                    let pts = rows
                        .iter()
                        .filter(|r| r.variant == *v)
                        .filter_map(|r| r.alpha.map(|a| (a, pick(r))))
                        .collect();
                    (v.to_string(), pts)
                })
                .collect()
        };
        let name = model_name(args);
        strata_report::plot_void_vs_alpha(
            &series(&|r| r.accuracy),
            full,
            "accuracy",
            &format!("accuracy with voids skipped vs alpha: {name}"),
            &out.join("sweep_accuracy.svg"),
        )?;
        strata_report::plot_void_vs_alpha(
            &series(&|r| r.usage_prompt),
            None,
            "share of prompt (token, layer) pairs active",
            &format!("layer usage vs alpha: {name}"),
            &out.join("sweep_usage.svg"),
        )?;
        RunManifest::new(
            args.target.model.display().to_string(),
            vec![
                "sweep.csv".into(),
                "sweep.parquet".into(),
                "sweep.json".into(),
                "sweep_accuracy.svg".into(),
                "sweep_usage.svg".into(),
            ],
        )
        .write(out)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}

/// One row of `ppl.csv`.
#[derive(Serialize)]
struct PplRow {
    variant: String,
    alpha: Option<f64>,
    n_tokens: usize,
    ppl: f64,
    usage: f64,
    layers_compute_skipped: String,
    skipped_share: f64,
}

fn ppl_on<B: Backend>(device: &B::Device, args: &Args) -> Result<()> {
    use strata_core::eval::{PerplexityConfig, corpus};
    let Some(path) = &args.corpus else {
        bail!("give --corpus");
    };
    let model = args.target.load::<B>(device)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading corpus {}", path.display()))?;
    let mut stream = corpus::frame_lines(model.tokenizer()?, text.lines())?;
    stream.truncate(args.max_tokens);
    let window = model.config().n_ctx.min(256);
    let ppl_config = PerplexityConfig::new(window, window / 2)?;
    let mut rows = Vec::new();
    let mut run =
        |alpha: f64, skip: Skip, compute_skip: Option<Vec<usize>>| -> Result<VoidResult> {
            let config = VoidConfig {
                alpha: alpha as f32,
                skip,
                record_maps: false,
                compute_skip: compute_skip.clone().unwrap_or_default(),
            };
            let (ppl, result) = strata_void::perplexity_with_voids(
                &model,
                &stream,
                &ppl_config,
                &config,
                &mut |_, _| {},
            )?;
            let variant = match (skip, &compute_skip) {
                (_, Some(_)) => "compute-skip".to_string(),
                (Skip::Off, None) => "full".into(),
                (other, None) => other.name().into(),
            };
            say!(
                "{:<15} alpha {:<4} PPL {:>10.3}  usage {:.3}",
                variant,
                if variant == "full" {
                    "-".to_string()
                } else {
                    alpha.to_string()
                },
                ppl.ppl(),
                result.prompt.usage()
            );
            rows.push(PplRow {
                alpha: (variant != "full").then_some(alpha),
                variant,
                n_tokens: stream.len(),
                ppl: ppl.ppl(),
                usage: result.prompt.usage(),
                layers_compute_skipped: compute_skip
                    .unwrap_or_default()
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                skipped_share: result.prompt.skipped_share(),
            });
            Ok(result)
        };
    run(args.alpha[0], Skip::Off, None)?;
    for &alpha in &args.alpha {
        let a = run(alpha, Skip::DeepestActive, None)?;
        run(alpha, Skip::PassThrough, None)?;
        let layers = rarely_active_layers(&a.prompt, args.skip_below)?;
        run(alpha, Skip::Off, Some(layers))?;
    }
    if let Some(out) = &args.out {
        strata_report::write_table(&out.join("ppl.csv"), &rows)?;
        RunManifest::new(
            args.target.model.display().to_string(),
            vec!["ppl.csv".into(), "ppl.parquet".into()],
        )
        .write(out)?;
        say!("wrote {}", out.display());
    }
    Ok(())
}
