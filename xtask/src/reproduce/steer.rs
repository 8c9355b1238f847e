//! The steering experiment (`book/src/steer.md`): for each concept of
//! `datasets/steering/pairs.jsonl` (archaic, sentiment), the mean-difference direction of
//! every layer with its separation and held-out probe accuracy; the best layer by probe
//! accuracy; a dose-response over alpha there (log-odds of the concept on held-out pairs,
//! perplexity of KJV valid); greedy generations at increasing alpha; and the cosine of the
//! two concepts' directions layer by layer.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::backend::Flex;
use serde::{Deserialize, Serialize};
use strata_core::eval::{PerplexityConfig, corpus};
use strata_core::generate::{GenerateConfig, generate};
use strata_core::io::{RunManifest, write_json_atomic};
use strata_core::{Model, ProbeSet};
use strata_steer::{
    DosePoint, ExtractConfig, LayerScore, Method, ReadPosition, SiteKind, Steering, SteeringMeta,
    SteeringVectors, directions, dose_response, extract_activations, layer_cosines, read_pairs,
    score_layers,
};

type B = Flex;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model: PathBuf,
    pub concepts: Vec<String>,
    /// Pairs per concept (the first ones of the file).
    pub n_pairs: usize,
    pub position: String,
    pub alphas: Vec<f64>,
    /// Alphas of the printed generations (0 is the plain model).
    pub generation_alphas: Vec<f64>,
    pub n_eval: usize,
    pub ppl_tokens: usize,
    pub prompt: String,
    pub n_generate: usize,
}

impl Settings {
    pub fn smoke() -> Self {
        Self {
            model: "datasets/models/tiny-default".into(),
            concepts: vec!["archaic".into(), "sentiment".into()],
            n_pairs: 60,
            position: "mean".into(),
            alphas: vec![-8.0, -4.0, 0.0, 4.0, 8.0],
            generation_alphas: vec![0.0, 4.0, 8.0, 16.0],
            n_eval: 12,
            ppl_tokens: 512,
            prompt: "And the king said to the young man,".into(),
            n_generate: 24,
        }
    }

    pub fn full() -> Self {
        Self {
            n_pairs: usize::MAX,
            alphas: vec![-16.0, -8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0, 16.0],
            n_eval: 32,
            ppl_tokens: 2048,
            n_generate: 40,
            ..Self::smoke()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptResult {
    pub concept: String,
    pub n_pairs: usize,
    pub layers: Vec<LayerScore>,
    pub best_layer: usize,
    pub dose: Vec<DosePoint>,
    /// (alpha, generated text) at the best layer.
    pub generations: Vec<(f64, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub settings: Settings,
    pub n_layers: usize,
    pub concepts: Vec<ConceptResult>,
    /// cos(first concept, second concept) per layer.
    pub cross_concept_cosine: Vec<(usize, f64)>,
}

pub fn run(settings: &Settings, root: &Path, out: &Path) -> Result<Results> {
    let model_path = root.join(&settings.model);
    let model = Model::<B>::load(&model_path, &Default::default())
        .with_context(|| format!("loading {}", model_path.display()))?;
    let tok = model.tokenizer()?;
    let position: ReadPosition = settings.position.parse()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let valid = std::fs::read_to_string(root.join("datasets/kjv/valid.txt"))?;
    let mut stream = corpus::frame_lines(tok, valid.lines())?;
    stream.truncate(settings.ppl_tokens);
    let window = model.config().n_ctx.min(256).min(stream.len());
    let ppl_config = PerplexityConfig::new(window, window)?;
    let prompt = tok.encode(&settings.prompt)?;
    let mut files = Vec::new();
    let mut concepts = Vec::new();
    let mut all_vectors = Vec::new();
    for concept in &settings.concepts {
        let mut pairs = read_pairs(&root.join("datasets/steering/pairs.jsonl"), Some(concept))?;
        pairs.truncate(settings.n_pairs);
        let enc = |s: &str| tok.encode(s);
        let pos: Vec<Vec<u32>> = pairs
            .iter()
            .map(|p| enc(&p.positive))
            .collect::<Result<_, _>>()?;
        let neg: Vec<Vec<u32>> = pairs
            .iter()
            .map(|p| enc(&p.negative))
            .collect::<Result<_, _>>()?;
        let config = ExtractConfig {
            position: position.clone(),
            ..ExtractConfig::default()
        };
        let acts = extract_activations(&model, &pos, &neg, &config, &mut |done, total| {
            if done == total || done % 64 == 0 {
                eprintln!("{concept}: {done}/{total} sequences");
            }
        })?;
        let scores = score_layers(&acts)?;
        let vectors = SteeringVectors {
            meta: SteeringMeta {
                model: settings.model.display().to_string(),
                model_type: model.config().model_type.clone(),
                n_layers: model.config().n_layers,
                d_model: model.config().d_model,
                site: SiteKind::ResidPost,
                position: position.clone(),
                method: Method::MeanDiff,
                normalized: false,
                n_pairs: acts.n_pairs,
                concept: Some(concept.clone()),
            },
            layers: directions(&acts, Method::MeanDiff)?,
        };
        let dir = out.join(concept);
        std::fs::create_dir_all(&dir)?;
        vectors.save(&dir.join("directions.safetensors"))?;
        vectors.export_gguf(&dir.join("control_vector.gguf"))?;
        strata_report::write_table(&dir.join("layers.csv"), &scores)?;
        let accuracy: Vec<(usize, f64)> = scores
            .iter()
            .filter_map(|s| s.probe_accuracy.map(|a| (s.layer, a)))
            .collect();
        let separation: Vec<(usize, f64)> =
            scores.iter().map(|s| (s.layer, s.separation)).collect();
        strata_report::plot_steer_layer_scores(
            &accuracy,
            &separation,
            &format!("{concept}: layer scores"),
            &dir.join("layer_scores.svg"),
        )?;
        let best_layer = scores
            .iter()
            .filter_map(|s| s.probe_accuracy.map(|a| (s.layer, a, s.separation)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(a.2.total_cmp(&b.2)))
            .map_or(0, |b| b.0);
        let v = vectors.layer(best_layer)?.to_vec();
        let steer_at = |alpha: f32| {
            Steering::add(
                SiteKind::ResidPost,
                BTreeMap::from([(best_layer, v.clone())]),
                alpha,
            )
        };
        let held: Vec<usize> = (0..pos.len())
            .filter(|i| i % 5 == 4)
            .take(settings.n_eval)
            .collect();
        let eval_pos: Vec<Vec<u32>> = held.iter().map(|&i| pos[i].clone()).collect();
        let eval_neg: Vec<Vec<u32>> = held.iter().map(|&i| neg[i].clone()).collect();
        let dose = dose_response(
            &model,
            &steer_at,
            &settings.alphas,
            (&eval_pos, &eval_neg),
            &stream,
            &ppl_config,
            &mut |done, total| eprintln!("{concept}: alpha {done}/{total}"),
        )?;
        strata_report::write_table(&dir.join("dose_response.csv"), &dose)?;
        let curve: Vec<(f64, f64, f64)> =
            dose.iter().map(|p| (p.alpha, p.log_odds, p.ppl)).collect();
        strata_report::plot_steer_dose_response(
            &curve,
            &format!("{concept}: dose-response at layer {best_layer}"),
            &dir.join("dose_response.svg"),
        )?;
        let gen_config = GenerateConfig {
            max_new_tokens: settings.n_generate,
            eos_token_id: model.config().eos_token_id,
            ..GenerateConfig::default()
        };
        let mut generations = Vec::new();
        for &alpha in &settings.generation_alphas {
            let mut steer = steer_at(alpha as f32)?;
            let ids = generate(&model, &prompt, &gen_config, &mut ProbeSet::one(&mut steer))?;
            generations.push((alpha, tok.decode(&ids)?));
        }
        for f in [
            "directions.safetensors",
            "control_vector.gguf",
            "layers.csv",
            "layers.parquet",
            "layer_scores.svg",
            "dose_response.csv",
            "dose_response.parquet",
            "dose_response.svg",
        ] {
            files.push(format!("{concept}/{f}"));
        }
        all_vectors.push(vectors);
        concepts.push(ConceptResult {
            concept: concept.clone(),
            n_pairs: acts.n_pairs,
            layers: scores,
            best_layer,
            dose,
            generations,
        });
    }
    let cross_concept_cosine = match all_vectors.as_slice() {
        [a, b, ..] => {
            let cells = layer_cosines(a, b);
            let matrix: Vec<(usize, usize, f64)> = strata_steer::cosine_matrix(a, b)
                .iter()
                .map(|c| (c.layer_a, c.layer_b, c.cosine))
                .collect();
            strata_report::plot_steer_cosines(
                &matrix,
                &format!("{} vs {}", settings.concepts[0], settings.concepts[1]),
                &out.join("cosines.svg"),
            )?;
            files.push("cosines.svg".into());
            cells.iter().map(|c| (c.layer_a, c.cosine)).collect()
        }
        _ => Vec::new(),
    };
    let results = Results {
        settings: settings.clone(),
        n_layers: model.config().n_layers,
        concepts,
        cross_concept_cosine,
    };
    write_json_atomic(&out.join("results.json"), &results)?;
    files.push("results.json".into());
    RunManifest::new(settings.model.display().to_string(), files).write(out)?;
    Ok(results)
}

pub fn markdown_table(results: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "model `{}` ({} blocks), read position `{}`\n",
        results.settings.model.display(),
        results.n_layers,
        results.settings.position
    );
    for c in &results.concepts {
        let _ = writeln!(
            s,
            "### {} ({} pairs, best layer {})\n",
            c.concept, c.n_pairs, c.best_layer
        );
        let _ = writeln!(
            s,
            "| layer | separation | probe accuracy | mean-diff norm |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|");
        for l in &c.layers {
            let _ = writeln!(
                s,
                "| {} | {:.3} | {} | {:.3} |",
                l.layer,
                l.separation,
                l.probe_accuracy.map_or("-".into(), |a| format!("{a:.3}")),
                l.mean_diff_norm
            );
        }
        let _ = writeln!(s, "\n| alpha | log-odds (nats) | KJV ppl |");
        let _ = writeln!(s, "|---:|---:|---:|");
        for p in &c.dose {
            let _ = writeln!(s, "| {} | {:.3} | {:.3} |", p.alpha, p.log_odds, p.ppl);
        }
        let _ = writeln!(s);
        for (alpha, text) in &c.generations {
            let _ = writeln!(s, "- alpha {alpha}: {:?}", text);
        }
        let _ = writeln!(s);
    }
    if !results.cross_concept_cosine.is_empty() {
        let cells: Vec<String> = results
            .cross_concept_cosine
            .iter()
            .map(|(l, c)| format!("{l}: {c:.3}"))
            .collect();
        let _ = writeln!(s, "cos(archaic, sentiment) by layer: {}", cells.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_experiment_scores_every_layer_and_sweeps_alpha() {
        let root = crate::workspace_root();
        let out = std::env::temp_dir().join(format!("steer-smoke-{}", std::process::id()));
        let results = run(&Settings::smoke(), &root, &out).unwrap();
        assert_eq!(results.n_layers, 4);
        assert!(!results.concepts.is_empty());
        for concept in &results.concepts {
            assert!(concept.n_pairs > 0);
            assert_eq!(concept.layers.len(), results.n_layers);
            assert!(concept.best_layer < results.n_layers);
            for layer in &concept.layers {
                assert!(layer.separation.is_finite() && layer.mean_diff_norm > 0.0);
                if let Some(acc) = layer.probe_accuracy {
                    assert!((0.0..=1.0).contains(&acc));
                }
            }
            let base = concept
                .dose
                .iter()
                .find(|d| d.alpha == 0.0)
                .expect("the sweep includes alpha 0");
            // Steering moves the concept's log-odds away from the unsteered value.
            assert!(
                concept
                    .dose
                    .iter()
                    .any(|d| d.alpha != 0.0 && (d.log_odds - base.log_odds).abs() > 1e-3),
                "{}: no alpha changed the log-odds",
                concept.concept
            );
            assert!(
                concept
                    .dose
                    .iter()
                    .all(|d| d.ppl.is_finite() && d.ppl > 1.0)
            );
        }
        assert!(out.join("results.json").is_file());
        std::fs::remove_dir_all(&out).unwrap();
    }
}
