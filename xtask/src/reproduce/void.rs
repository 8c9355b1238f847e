//! The void experiment (`book/src/void.md`): which layers a model uses per token by the LAC
//! rule, and what skipping the voids does to its accuracy, perplexity and speed.
//!
//! For one model (default: the embedded tiny model; any HF folder or `.gguf` file):
//! 1. the token x layer map of a prompt and its greedy generation at alpha 0.8, with the
//!    usage profile of each phase;
//! 2. the multiple-choice accuracy by log-likelihood on `datasets/tasks` (first `n_items`
//!    of each file) of the full model, variant A (deepest active layer decodes), variant B
//!    (void layers pass their input through) and real compute skipping (the layers active
//!    for fewer than half of the task's tokens, skipped through core's `LayerSkip`), over
//!    an alpha grid; for a chat model (its tokenizer knows `<|im_start|>`) also the accuracy
//!    by generated option letter;
//! 3. the KJV valid perplexity of the same four variants;
//! 4. generation speed (tokens/s, greedy, no end-of-text stop) with the rarely active
//!    layers really skipped vs the full model.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use serde::{Deserialize, Serialize};
use strata_core::Model;
use strata_core::eval::{PerplexityConfig, TaskItem, corpus, read_task_file};
use strata_core::generate::{GenerateConfig, Sampling};
use strata_core::io::{RunManifest, write_json_atomic};
use strata_void::{
    LetterPrompt, Phase, Skip, VoidConfig, VoidResult, generate_with_voids, perplexity_with_voids,
    rarely_active_layers, score_by_letter, score_task_with_voids,
};

type B = Flex;

/// The experiment's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Model folder or `.gguf` file (relative paths from the workspace root).
    pub model: PathBuf,
    /// Task files under `datasets/tasks`.
    pub tasks: Vec<String>,
    /// Items scored per task file (the first ones).
    pub n_items: usize,
    /// Items per task scored by generated letter (chat models only).
    pub n_letter_items: usize,
    /// The alpha grid.
    pub alphas: Vec<f64>,
    /// Tokens of `datasets/kjv/valid.txt` in the perplexity stream.
    pub ppl_tokens: usize,
    /// The prompt mapped and timed.
    pub prompt: String,
    /// Tokens generated for the map and for timing.
    pub n_generate: usize,
    /// Layers active for fewer than this share of tokens are compute-skipped.
    pub skip_below: f64,
}

impl Settings {
    /// A quick run: 40 items per task, a 512-token perplexity stream.
    pub fn smoke() -> Self {
        Self {
            model: "datasets/models/tiny-default".into(),
            tasks: vec!["kjv_cloze.jsonl".into(), "arithmetic.jsonl".into()],
            n_items: 40,
            n_letter_items: 20,
            alphas: vec![0.2, 0.4, 0.6, 0.8],
            ppl_tokens: 512,
            prompt: "And God said, Let there be light: and there was light.".into(),
            n_generate: 24,
            skip_below: 0.5,
        }
    }

    /// Every item, a 4096-token perplexity stream.
    pub fn full() -> Self {
        Self {
            n_items: usize::MAX,
            n_letter_items: 100,
            ppl_tokens: 4096,
            ..Self::smoke()
        }
    }
}

/// One row of `accuracy.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    /// Task file stem, with `/letter` when scored by generated letter.
    pub task: String,
    /// `full`, `deepest-active` (A), `pass-through` (B) or `compute-skip`.
    pub variant: String,
    /// The rule's alpha (none for the full model).
    pub alpha: Option<f64>,
    /// Items scored.
    pub n_items: usize,
    /// Accuracy (`acc` by log-likelihood, or by letter).
    pub accuracy: f64,
    /// Parse failures by letter (none by log-likelihood).
    pub parse_failure_rate: Option<f64>,
    /// Share of (token, layer) pairs active, over every measured token.
    pub usage: f64,
    /// Share of (token, layer) pairs whose compute was skipped.
    pub skipped_share: f64,
    /// Share of tokens whose last layer is a void.
    pub last_void_share: f64,
    /// The compute-skipped layers, space-separated.
    pub layers_skipped: String,
}

/// One row of `ppl.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PplRow {
    /// The variant, as in [`AccuracyRow`].
    pub variant: String,
    /// The rule's alpha (none for the full model).
    pub alpha: Option<f64>,
    /// Perplexity of the stream.
    pub ppl: f64,
    /// Share of (token, layer) pairs active.
    pub usage: f64,
    /// Share of (token, layer) pairs whose compute was skipped.
    pub skipped_share: f64,
}

/// Generation speed, full vs compute-skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedRow {
    /// Layers skipped.
    pub layers_skipped: String,
    /// New tokens per run.
    pub n_new_tokens: usize,
    /// Tokens/s of the full model.
    pub full_tokens_per_s: f64,
    /// Tokens/s with the layers skipped.
    pub skipped_tokens_per_s: f64,
    /// The ratio.
    pub speedup: f64,
    /// Share of the blocks skipped per generated token.
    pub skipped_share: f64,
}

/// Everything the experiment measured (`results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The settings.
    pub settings: Settings,
    /// Blocks of the model.
    pub n_layers: usize,
    /// Prompt-phase usage of the mapped prompt at alpha 0.8.
    pub map_usage_prompt: f64,
    /// Generation-phase usage of its generation.
    pub map_usage_generation: f64,
    /// The generated text.
    pub generated: String,
    /// Accuracy rows.
    pub accuracy: Vec<AccuracyRow>,
    /// Perplexity rows.
    pub ppl: Vec<PplRow>,
    /// Speed.
    pub speed: SpeedRow,
}

/// `full`, the skip variant's name, or `compute-skip` (even when no layer qualifies).
fn variant_name(skip: Skip, compute_skip: &Option<Vec<usize>>) -> String {
    match (skip, compute_skip) {
        (_, Some(_)) => "compute-skip".into(),
        (Skip::Off, None) => "full".into(),
        (other, None) => other.name().into(),
    }
}

fn join(layers: &[usize]) -> String {
    layers
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the experiment and writes its tables, figures and `results.json` into `out`.
pub fn run(settings: &Settings, root: &Path, out: &Path) -> Result<Results> {
    let model_path = root.join(&settings.model);
    let model = Model::<B>::load(&model_path, &Default::default())
        .with_context(|| format!("loading {}", model_path.display()))?;
    let tokenizer = model.tokenizer()?;
    let n_layers = model.config().n_layers;
    let chat = tokenizer.token_id("<|im_start|>").is_some();
    let eot = tokenizer
        .end_of_text_id()
        .or(model.config().eos_token_id)
        .context("the tokenizer has no end-of-text token")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();

    // 1. The map of a prompt and its generation.
    let prompt_text = if chat {
        LetterPrompt::chatml()
            .template
            .replace("{message}", &settings.prompt)
    } else {
        settings.prompt.clone()
    };
    let prompt = tokenizer.encode_plain(&prompt_text)?;
    let greedy = GenerateConfig {
        max_new_tokens: settings.n_generate,
        sampling: Sampling::Greedy,
        seed: 0,
        eos_token_id: model.config().eos_token_id,
    };
    // The map shows a full generation: no end-of-text stop.
    let map_config = GenerateConfig {
        eos_token_id: None,
        ..greedy.clone()
    };
    let (new, map) = generate_with_voids(&model, &prompt, &map_config, &VoidConfig::default())?;
    let generated = tokenizer.decode(&new)?;
    eprintln!(
        "map: {} prompt tokens use {:.1}% of layers, {} generated tokens {:.1}%",
        map.prompt.n_tokens,
        100.0 * map.prompt.usage(),
        map.generation.n_tokens,
        100.0 * map.generation.usage()
    );
    let token = |id: u32| tokenizer.decode_with_special(&[id]).unwrap_or_default();
    let rows: Vec<strata_report::VoidMapRow> = map
        .tokens
        .iter()
        .map(|t| strata_report::VoidMapRow {
            label: format!("{} {:?}", t.token_pos, token(t.token_id)),
            generated: t.phase == Phase::Generation,
            active: t.active.clone(),
        })
        .collect();
    let name = model_path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    strata_report::plot_void_map(
        &rows,
        &format!("active (filled) and void layers, alpha 0.8: {name}"),
        &out.join("void_map.svg"),
    )?;
    let profile: Vec<(String, Vec<f64>)> = [Phase::Prompt, Phase::Generation]
        .into_iter()
        .filter(|&p| map.phase(p).n_tokens > 0)
        .map(|p| (p.name().to_string(), map.phase(p).layer_usage()))
        .collect();
    strata_report::plot_void_usage_by_layer(
        &profile,
        &format!("layer usage per phase, alpha 0.8: {name}"),
        &out.join("void_usage_by_layer.svg"),
    )?;
    files.extend(["void_map.svg".to_string(), "void_usage_by_layer.svg".into()]);

    // 2. Accuracy over the alpha grid.
    let mut accuracy = Vec::new();
    let mut task_items: Vec<(String, Vec<TaskItem>)> = Vec::new();
    for file in &settings.tasks {
        let path = root.join("datasets/tasks").join(file);
        let mut items = read_task_file(&path)?;
        items.truncate(settings.n_items);
        let stem = file.trim_end_matches(".jsonl").to_string();
        task_items.push((stem, items));
    }
    let n_runs = task_items.len() * (1 + 3 * settings.alphas.len());
    let mut run_idx = 0;
    for (stem, items) in &task_items {
        let mut score = |alpha: f64,
                         skip: Skip,
                         compute_skip: Option<Vec<usize>>|
         -> Result<VoidResult> {
            run_idx += 1;
            let config = VoidConfig {
                alpha: alpha as f32,
                skip,
                record_maps: false,
                compute_skip: compute_skip.clone().unwrap_or_default(),
            };
            let start = Instant::now();
            let (acc, result) =
                score_task_with_voids(&model, tokenizer, eot, items, &config, &mut |_, _| {})?;
            let overall = result.overall();
            let variant = variant_name(skip, &compute_skip);
            eprintln!(
                "[{run_idx}/{n_runs}] {stem} {variant} alpha {alpha}: acc {:.3}, usage {:.3} ({:.1}s)",
                acc.acc(),
                overall.usage(),
                start.elapsed().as_secs_f64()
            );
            accuracy.push(AccuracyRow {
                task: stem.clone(),
                alpha: (variant != "full").then_some(alpha),
                variant,
                n_items: acc.n_items,
                accuracy: acc.acc(),
                parse_failure_rate: None,
                usage: overall.usage(),
                skipped_share: overall.skipped_share(),
                last_void_share: overall.last_void_share(),
                layers_skipped: join(&compute_skip.unwrap_or_default()),
            });
            Ok(result)
        };
        score(settings.alphas[0], Skip::Off, None)?;
        for &alpha in &settings.alphas {
            let a = score(alpha, Skip::DeepestActive, None)?;
            score(alpha, Skip::PassThrough, None)?;
            // Variant A leaves every layer's input as the full model's: its usage profile
            // is the full model's, and picks the layers to skip for real.
            let layers = rarely_active_layers(&a.prompt, settings.skip_below)?;
            score(alpha, Skip::Off, Some(layers))?;
        }
    }
    if chat {
        let answer = GenerateConfig {
            max_new_tokens: 6,
            ..greedy.clone()
        };
        for (stem, items) in &task_items {
            let items = &items[..items.len().min(settings.n_letter_items)];
            let mut score = |alpha: f64,
                             skip: Skip,
                             compute_skip: Option<Vec<usize>>|
             -> Result<VoidResult> {
                let config = VoidConfig {
                    alpha: alpha as f32,
                    skip,
                    record_maps: false,
                    compute_skip: compute_skip.clone().unwrap_or_default(),
                };
                let start = Instant::now();
                let (acc, result) = score_by_letter(
                    &model,
                    tokenizer,
                    items,
                    &LetterPrompt::chatml(),
                    &answer,
                    &config,
                    &mut |_, _| {},
                )?;
                let overall = result.overall();
                let variant = variant_name(skip, &compute_skip);
                eprintln!(
                    "{stem}/letter {variant} alpha {alpha}: acc {:.3}, unparsed {:.3}, usage {:.3} ({:.1}s)",
                    acc.accuracy(),
                    acc.parse_failure_rate(),
                    overall.usage(),
                    start.elapsed().as_secs_f64()
                );
                accuracy.push(AccuracyRow {
                    task: format!("{stem}/letter"),
                    alpha: (variant != "full").then_some(alpha),
                    variant,
                    n_items: acc.n_items,
                    accuracy: acc.accuracy(),
                    parse_failure_rate: Some(acc.parse_failure_rate()),
                    usage: overall.usage(),
                    skipped_share: overall.skipped_share(),
                    last_void_share: overall.last_void_share(),
                    layers_skipped: join(&compute_skip.unwrap_or_default()),
                });
                Ok(result)
            };
            score(settings.alphas[0], Skip::Off, None)?;
            for &alpha in &settings.alphas {
                let a = score(alpha, Skip::DeepestActive, None)?;
                score(alpha, Skip::PassThrough, None)?;
                let layers = rarely_active_layers(&a.prompt, settings.skip_below)?;
                score(alpha, Skip::Off, Some(layers))?;
            }
        }
    }
    strata_report::write_table(&out.join("accuracy.csv"), &accuracy)?;
    files.extend(["accuracy.csv".to_string(), "accuracy.parquet".into()]);
    let mut tasks: Vec<String> = accuracy.iter().map(|r| r.task.clone()).collect();
    tasks.dedup();
    for task in &tasks {
        let rows: Vec<&AccuracyRow> = accuracy.iter().filter(|r| &r.task == task).collect();
        let full = rows
            .iter()
            .find(|r| r.variant == "full")
            .map(|r| r.accuracy);
        let series = |pick: &dyn Fn(&AccuracyRow) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
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
        let stem = task.replace('/', "_");
        strata_report::plot_void_vs_alpha(
            &series(&|r| r.accuracy),
            full,
            "accuracy",
            &format!("{task}: accuracy with voids skipped vs alpha: {name}"),
            &out.join(format!("accuracy_vs_alpha_{stem}.svg")),
        )?;
        strata_report::plot_void_vs_alpha(
            &series(&|r| r.usage),
            None,
            "share of (token, layer) pairs active",
            &format!("{task}: layer usage vs alpha: {name}"),
            &out.join(format!("usage_vs_alpha_{stem}.svg")),
        )?;
        files.push(format!("accuracy_vs_alpha_{stem}.svg"));
        files.push(format!("usage_vs_alpha_{stem}.svg"));
    }

    // 3. Perplexity of the same variants.
    let text = std::fs::read_to_string(root.join("datasets/kjv/valid.txt"))
        .context("reading datasets/kjv/valid.txt")?;
    let mut stream = corpus::frame_lines(tokenizer, text.lines())?;
    stream.truncate(settings.ppl_tokens);
    let window = model.config().n_ctx.min(256);
    let ppl_config = PerplexityConfig::new(window, window / 2)?;
    let mut ppl = Vec::new();
    let mut measure_ppl =
        |alpha: f64, skip: Skip, compute_skip: Option<Vec<usize>>| -> Result<VoidResult> {
            let config = VoidConfig {
                alpha: alpha as f32,
                skip,
                record_maps: false,
                compute_skip: compute_skip.clone().unwrap_or_default(),
            };
            let (value, result) =
                perplexity_with_voids(&model, &stream, &ppl_config, &config, &mut |_, _| {})?;
            let overall = result.overall();
            let variant = variant_name(skip, &compute_skip);
            eprintln!("ppl {variant} alpha {alpha}: {:.3}", value.ppl());
            ppl.push(PplRow {
                alpha: (variant != "full").then_some(alpha),
                variant,
                ppl: value.ppl(),
                usage: overall.usage(),
                skipped_share: overall.skipped_share(),
            });
            Ok(result)
        };
    measure_ppl(settings.alphas[0], Skip::Off, None)?;
    for &alpha in &settings.alphas {
        let a = measure_ppl(alpha, Skip::DeepestActive, None)?;
        measure_ppl(alpha, Skip::PassThrough, None)?;
        let layers = rarely_active_layers(&a.prompt, settings.skip_below)?;
        measure_ppl(alpha, Skip::Off, Some(layers))?;
    }
    strata_report::write_table(&out.join("ppl.csv"), &ppl)?;
    files.extend(["ppl.csv".to_string(), "ppl.parquet".into()]);

    // 4. Speed with the layers the prompt rarely uses really skipped.
    let layers = rarely_active_layers(&map.prompt, settings.skip_below)?;
    let timing = GenerateConfig {
        // Enough tokens that per-call overhead does not dominate, within the context.
        max_new_tokens: 64.min(model.config().n_ctx.saturating_sub(prompt.len())),
        eos_token_id: None,
        ..greedy.clone()
    };
    let time = |compute_skip: Vec<usize>| -> Result<(f64, VoidResult)> {
        let config = VoidConfig {
            record_maps: false,
            compute_skip,
            ..VoidConfig::default()
        };
        // A warm-up run, then the best of five.
        let (_, mut result) = generate_with_voids(&model, &prompt, &timing, &config)?;
        let mut best = 0.0f64;
        for _ in 0..5 {
            let start = Instant::now();
            let (tokens, r) = generate_with_voids(&model, &prompt, &timing, &config)?;
            best = best.max(tokens.len() as f64 / start.elapsed().as_secs_f64());
            result = r;
        }
        Ok((best, result))
    };
    let (full_speed, _) = time(Vec::new())?;
    let (skipped_speed, skipped_result) = time(layers.clone())?;
    let speed = SpeedRow {
        layers_skipped: join(&layers),
        n_new_tokens: timing.max_new_tokens,
        full_tokens_per_s: full_speed,
        skipped_tokens_per_s: skipped_speed,
        speedup: skipped_speed / full_speed,
        skipped_share: skipped_result.generation.skipped_share(),
    };
    eprintln!(
        "speed: {:.1} tokens/s full, {:.1} with layers [{}] skipped ({:.2}x)",
        speed.full_tokens_per_s, speed.skipped_tokens_per_s, speed.layers_skipped, speed.speedup
    );
    strata_report::write_table(&out.join("speed.csv"), std::slice::from_ref(&speed))?;
    files.extend(["speed.csv".to_string(), "speed.parquet".into()]);

    let results = Results {
        settings: settings.clone(),
        n_layers,
        map_usage_prompt: map.prompt.usage(),
        map_usage_generation: map.generation.usage(),
        generated,
        accuracy,
        ppl,
        speed,
    };
    write_json_atomic(&out.join("results.json"), &results)?;
    files.push("results.json".into());
    RunManifest::new(model_path.display().to_string(), files).write(out)?;
    Ok(results)
}

/// The accuracy, perplexity and speed tables as markdown.
pub fn markdown_table(results: &Results) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v}"));
    let _ = writeln!(
        s,
        "model `{}` ({} blocks); map of the prompt at alpha 0.8: {:.1}% of layers used in the prompt, {:.1}% in generation (generated: {:?})\n",
        results.settings.model.display(),
        results.n_layers,
        100.0 * results.map_usage_prompt,
        100.0 * results.map_usage_generation,
        results.generated
    );
    let _ = writeln!(
        s,
        "| task | variant | alpha | items | accuracy | unparsed | layer usage | compute skipped | last layer void | layers skipped |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &results.accuracy {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.3} | {} | {:.3} | {:.3} | {:.3} | {} |",
            r.task,
            r.variant,
            opt(r.alpha),
            r.n_items,
            r.accuracy,
            r.parse_failure_rate
                .map_or_else(|| "-".to_string(), |v| format!("{v:.3}")),
            r.usage,
            r.skipped_share,
            r.last_void_share,
            r.layers_skipped
        );
    }
    let _ = writeln!(
        s,
        "\n| variant | alpha | perplexity | layer usage | compute skipped |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for r in &results.ppl {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.3} | {:.3} |",
            r.variant,
            opt(r.alpha),
            r.ppl,
            r.usage,
            r.skipped_share
        );
    }
    let sp = &results.speed;
    let _ = writeln!(
        s,
        "\ngeneration speed ({} tokens, greedy, best of 5): {:.1} tokens/s full, {:.1} tokens/s with layers [{}] skipped ({:.2}x; {:.1}% of blocks skipped per generated token)",
        sp.n_new_tokens,
        sp.full_tokens_per_s,
        sp.skipped_tokens_per_s,
        sp.layers_skipped,
        sp.speedup,
        100.0 * sp.skipped_share
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_experiment_compares_the_full_model_with_its_variants() {
        let root = crate::workspace_root();
        let out = std::env::temp_dir().join(format!("void-smoke-{}", std::process::id()));
        let results = run(&Settings::smoke(), &root, &out).unwrap();
        assert_eq!(results.n_layers, 4);
        for usage in [results.map_usage_prompt, results.map_usage_generation] {
            assert!(usage > 0.0 && usage <= 1.0, "usage {usage}");
        }
        let variants: std::collections::BTreeSet<&str> = results
            .accuracy
            .iter()
            .map(|r| r.variant.as_str())
            .collect();
        assert!(
            variants.contains("full") && variants.len() >= 2,
            "{variants:?}"
        );
        for row in &results.accuracy {
            assert!((0.0..=1.0).contains(&row.accuracy) && row.n_items > 0);
        }
        let full = results.ppl.iter().find(|r| r.variant == "full").unwrap();
        // Skipping layers never helps the tiny model's perplexity this much.
        assert!(
            results
                .ppl
                .iter()
                .all(|r| r.ppl.is_finite() && r.ppl > 0.5 * full.ppl)
        );
        assert!(results.speed.speedup.is_finite() && results.speed.speedup > 0.0);
        for f in ["accuracy.csv", "ppl.csv", "speed.csv", "results.json"] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}
