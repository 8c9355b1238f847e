//! Activation sparsity over the checkpoints of one training run, as the Sparsing Law paper
//! draws it (its App. E): one CETT target for every checkpoint, either fixed or found by
//! the PPL-p% bisection jointly on the last checkpoints (the mean of their PPL ratios), then
//! the activation ratio of every checkpoint at it, on the same tokens, and the fitted laws
//! ([`crate::law`]) of the mean activation ratio against the tokens seen.
//!
//! A series folder holds one model folder per checkpoint, named by its training step:
//! `step{N}` (what `cargo xtask train-tiny` writes) or `checkpoint-{N}` (the transformers
//! `Trainer`'s). The tokens seen come from the checkpoint's `trainer_state.json`
//! (`n_tokens_seen`, or the `Trainer`'s `num_input_tokens_seen`), or from a tokens-per-step
//! count given by the caller. The warm-up length comes from the run's `summary.json`
//! (`spec.warmup_steps`, as `cargo xtask train-tiny` writes it) when the caller gives none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use strata_core::{Model, ModelConfig};

use crate::error::{Error, Result};
use crate::law::{Law, LawConfig, LawFit, fit_law};
use crate::result::SparsityResult;
use crate::search::{
    Bisection, DensePass, Progress, SearchStatus, SearchStep, SparsityConfig, bisect,
    bisection_steps,
};

/// One checkpoint of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesCheckpoint {
    /// Its training step.
    pub step: u64,
    /// Tokens seen by then.
    pub tokens_seen: u64,
    /// Its model folder.
    pub path: PathBuf,
}

/// The step a folder name gives: `None` for names that are not checkpoints, `Some(Err)` for
/// a checkpoint name whose step is not a number.
fn step_of(name: &str) -> Option<std::result::Result<u64, String>> {
    let digits = name
        .strip_prefix("step")
        .or_else(|| name.strip_prefix("checkpoint-"))?;
    Some(
        digits
            .parse::<u64>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("`{name}` looks like a checkpoint but has no step number")),
    )
}

/// A JSON file, `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let bad = |reason: String| Error::Series {
        dir: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| bad(format!("invalid JSON: {e}")))
}

/// The checkpoints of the series folder `dir`, by increasing step, with the tokens each has
/// seen: from its `trainer_state.json`, else `step * tokens_per_step`.
///
/// Refused with the folder named: a folder that cannot be read; fewer than two checkpoints
/// (a series needs at least two); a checkpoint name without a step number; the same step
/// twice; a checkpoint without `config.json`; a checkpoint whose tokens seen are recorded
/// nowhere when `tokens_per_step` is `None`.
pub fn discover_checkpoints(
    dir: &Path,
    tokens_per_step: Option<u64>,
) -> Result<Vec<SeriesCheckpoint>> {
    let bad = |reason: String| Error::Series {
        dir: dir.to_path_buf(),
        reason,
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read the folder: {e}")))?;
    let mut by_step: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("cannot list the folder: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = step_of(&name) else {
            continue;
        };
        let path = entry.path();
        let step = step.map_err(|reason| Error::Series {
            dir: path.clone(),
            reason,
        })?;
        if let Some(other) = by_step.insert(step, path.clone()) {
            return Err(Error::Series {
                dir: path,
                reason: format!("step {step} appears twice (also {})", other.display()),
            });
        }
    }
    match by_step.len() {
        0 => {
            return Err(bad(
                "holds no checkpoint folders (`step{N}` or `checkpoint-{N}`)".into(),
            ));
        }
        1 => {
            let (step, path) = by_step.iter().next().map_or((0, dir), |(s, p)| (*s, p));
            return Err(bad(format!(
                "holds one checkpoint ({}, step {step}): a series needs at least two; \
                 measure a single model without --series",
                path.display()
            )));
        }
        _ => {}
    }
    by_step
        .into_iter()
        .map(|(step, path)| {
            if !path.join("config.json").is_file() {
                return Err(Error::Series {
                    dir: path,
                    reason: "incomplete checkpoint: no config.json".into(),
                });
            }
            let state = read_json(&path.join("trainer_state.json"))?;
            let recorded = state.as_ref().and_then(|s| {
                s.get("n_tokens_seen")
                    .or_else(|| s.get("num_input_tokens_seen"))
                    .and_then(serde_json::Value::as_u64)
            });
            let tokens_seen = recorded
                .or_else(|| tokens_per_step.map(|t| t * step))
                .ok_or_else(|| Error::Series {
                    dir: path.clone(),
                    reason: "no tokens seen recorded (`n_tokens_seen` or \
                             `num_input_tokens_seen` in trainer_state.json): give the tokens \
                             per step"
                        .into(),
                })?;
            Ok(SeriesCheckpoint {
                step,
                tokens_seen,
                path,
            })
        })
        .collect()
}

/// The warm-up steps the run's `summary.json` records (`spec.warmup_steps`), if any.
pub fn recorded_warmup_steps(dir: &Path) -> Result<Option<u64>> {
    Ok(read_json(&dir.join("summary.json"))?
        .and_then(|s| s.pointer("/spec/warmup_steps").and_then(|v| v.as_u64())))
}

/// The CETT target of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesTarget {
    /// One fixed CETT target in `[0, 1]`.
    Cett(f64),
    /// PPL-p%, found jointly on the last `last` checkpoints (the mean of their PPL ratios;
    /// the paper uses 5).
    PplP {
        /// Allowed perplexity increase, percent.
        p: f64,
        /// Checkpoints, from the last, the bisection runs on.
        last: usize,
    },
}

/// The joint PPL-p% bisection on the last checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointSearch {
    /// Allowed perplexity increase, percent.
    pub p: f64,
    /// The steps of the checkpoints searched on.
    pub on_steps: Vec<u64>,
    /// The CETT target found.
    pub cett: f64,
    /// Whether it was bracketed.
    pub status: SearchStatus,
    /// Every bisection step; the PPL ratio is the mean over the checkpoints searched on.
    pub steps: Vec<SearchStep>,
}

/// One checkpoint measured at the series' CETT target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSparsity {
    /// Training step.
    pub step: u64,
    /// Tokens seen.
    pub tokens_seen: u64,
    /// Its model folder.
    pub path: PathBuf,
    /// Its sparsity at the target.
    pub result: SparsityResult,
}

/// Every checkpoint of a series at one CETT target, by increasing step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsitySeries {
    /// The series folder.
    pub dir: PathBuf,
    /// The architecture of the checkpoints.
    pub model: ModelConfig,
    /// The CETT target every checkpoint is measured at.
    pub cett: f64,
    /// How it was found, when it was searched for.
    pub search: Option<JointSearch>,
    /// The windows, tolerance and grid of every measurement.
    pub config: SparsityConfig,
    /// Dense forward passes run.
    pub n_dense_passes: usize,
    /// Sparse forward passes run.
    pub n_sparse_passes: usize,
    /// One entry per checkpoint.
    pub checkpoints: Vec<CheckpointSparsity>,
}

impl SparsitySeries {
    /// The checkpoints after the warm-up (`step > warmup_steps`) with tokens seen, as
    /// `(D, mean activation ratio in percent)`, `D` the tokens seen in billions: what the
    /// laws are fitted to.
    pub fn fit_points(&self, warmup_steps: u64) -> (Vec<f64>, Vec<f64>) {
        self.checkpoints
            .iter()
            .filter(|c| c.step > warmup_steps && c.tokens_seen > 0)
            .map(|c| {
                (
                    c.tokens_seen as f64 / 1e9,
                    100.0 * c.result.mean_activation_ratio(),
                )
            })
            .unzip()
    }

    /// Fits `law` to the mean activation ratio (percent) over the tokens seen (billions),
    /// after dropping the checkpoints of the first `warmup_steps` steps.
    pub fn fit(&self, law: Law, warmup_steps: u64, config: &LawConfig) -> Result<LawFit> {
        let (d, values) = self.fit_points(warmup_steps);
        fit_law(law, &d, &values, config)
    }
}

/// Reads every checkpoint's config and checks they share one architecture (the layer and
/// neuron counts, the vocabulary and the activation); returns the first.
fn check_architecture<B: Backend>(checkpoints: &[SeriesCheckpoint]) -> Result<ModelConfig> {
    let read = |c: &SeriesCheckpoint| {
        Model::<B>::read_config(&c.path).map_err(|e| Error::Checkpoint {
            path: c.path.clone(),
            step: c.step,
            source: Box::new(e.into()),
        })
    };
    let first = checkpoints.first().ok_or_else(|| Error::InvalidConfig {
        what: "checkpoints",
        value: "0".into(),
        reason: "a series needs at least two checkpoints".into(),
    })?;
    let reference = read(first)?;
    let key = |m: &ModelConfig| (m.n_layers, m.d_model, m.d_mlp, m.vocab_size, m.activation);
    for c in &checkpoints[1..] {
        let config = read(c)?;
        if key(&config) != key(&reference) {
            return Err(Error::Series {
                dir: c.path.clone(),
                reason: format!(
                    "another architecture than {}: (layers, d_model, d_mlp, vocab, \
                     activation) {:?} vs {:?}",
                    first.path.display(),
                    key(&config),
                    key(&reference)
                ),
            });
        }
    }
    Ok(reference)
}

/// Forward passes a series measurement runs: `(dense, sparse)`.
pub fn planned_passes(
    n_checkpoints: usize,
    target: SeriesTarget,
    config: &SparsityConfig,
) -> (usize, usize) {
    let w = config.n_windows;
    let dense = n_checkpoints * w;
    match target {
        SeriesTarget::Cett(_) => (dense, n_checkpoints * w),
        SeriesTarget::PplP { last, .. } => {
            let k = last.clamp(1, n_checkpoints);
            let searched = (bisection_steps(config.tol) + 1) * k * w;
            (dense, searched + (n_checkpoints - k) * w)
        }
    }
}

/// Measures every checkpoint on `tokens` (the same token ids each time) at `target`: the
/// fixed CETT, or the PPL-p% target found jointly on the last checkpoints (their models and
/// dense passes stay in memory during the bisection), applied to every checkpoint. The
/// other checkpoints are loaded one at a time. `progress` gets (forward passes done,
/// planned).
pub fn measure_series<B: Backend>(
    dir: &Path,
    checkpoints: &[SeriesCheckpoint],
    tokens: &[u32],
    target: SeriesTarget,
    config: &SparsityConfig,
    device: &B::Device,
    progress: Progress<'_>,
) -> Result<SparsitySeries> {
    config.validate()?;
    if checkpoints.len() < 2 {
        return Err(Error::Series {
            dir: dir.to_path_buf(),
            reason: format!(
                "{} checkpoint(s): a series needs at least two",
                checkpoints.len()
            ),
        });
    }
    match target {
        SeriesTarget::Cett(c) if !(0.0..=1.0).contains(&c) => {
            return Err(Error::InvalidCett { value: c });
        }
        SeriesTarget::PplP { p, .. } if !(p > 0.0 && p <= 100.0) => {
            return Err(Error::InvalidP { value: p });
        }
        SeriesTarget::PplP { last: 0, .. } => {
            return Err(Error::InvalidConfig {
                what: "last",
                value: "0".into(),
                reason: "search on at least the last checkpoint".into(),
            });
        }
        _ => {}
    }
    let model_config = check_architecture::<B>(checkpoints)?;
    let (planned_dense, planned_sparse) = planned_passes(checkpoints.len(), target, config);
    let planned = planned_dense + planned_sparse;
    let mut done = 0usize;
    let wrap = |c: &SeriesCheckpoint| {
        let (path, step) = (c.path.clone(), c.step);
        move |e: Error| Error::Checkpoint {
            path,
            step,
            source: Box::new(e),
        }
    };
    let mut results: Vec<CheckpointSparsity> = Vec::with_capacity(checkpoints.len());
    let (mut n_dense, mut n_sparse) = (0usize, 0usize);

    let (cett, search, rest) = match target {
        SeriesTarget::Cett(c) => (c, None, checkpoints),
        SeriesTarget::PplP { p, last } => {
            let k = last.min(checkpoints.len());
            let (rest, searched) = checkpoints.split_at(checkpoints.len() - k);
            let mut passes = Vec::with_capacity(k);
            for c in searched {
                let _span = tracing::info_span!("checkpoint", step = c.step).entered();
                let model = Model::<B>::load(&c.path, device).map_err(|e| wrap(c)(e.into()))?;
                let base = done;
                let dense = DensePass::run(&model, tokens, config, &mut |w, _| {
                    progress(base + w, planned)
                })
                .map_err(wrap(c))?;
                done += dense.n_dense_passes();
                n_dense += dense.n_dense_passes();
                passes.push((c, model, dense));
            }
            let mut last_results: Vec<SparsityResult> = Vec::new();
            let Bisection {
                cett,
                status,
                steps,
            } = bisect(p, config.tol, &mut |c| {
                last_results.clear();
                for (ckpt, model, dense) in passes.iter_mut() {
                    let base = done;
                    let r = dense
                        .evaluate(model, c, &mut |w, _| progress(base + w, planned))
                        .map_err(wrap(ckpt))?;
                    done += r.n_windows;
                    n_sparse += r.n_windows;
                    last_results.push(r);
                }
                let n = last_results.len() as f64;
                Ok((
                    last_results
                        .iter()
                        .map(SparsityResult::ppl_ratio)
                        .sum::<f64>()
                        / n,
                    last_results
                        .iter()
                        .map(SparsityResult::mean_activation_ratio)
                        .sum::<f64>()
                        / n,
                ))
            })?;
            for ((c, _, _), result) in passes.iter().zip(last_results) {
                results.push(CheckpointSparsity {
                    step: c.step,
                    tokens_seen: c.tokens_seen,
                    path: c.path.clone(),
                    result,
                });
            }
            let search = JointSearch {
                p,
                on_steps: searched.iter().map(|c| c.step).collect(),
                cett,
                status,
                steps,
            };
            (cett, Some(search), rest)
        }
    };
    for c in rest {
        let _span = tracing::info_span!("checkpoint", step = c.step, cett).entered();
        let model = Model::<B>::load(&c.path, device).map_err(|e| wrap(c)(e.into()))?;
        let base = done;
        let mut dense = DensePass::run(&model, tokens, config, &mut |w, _| {
            progress(base + w, planned)
        })
        .map_err(wrap(c))?;
        let base = done + dense.n_dense_passes();
        let result = dense
            .evaluate(&model, cett, &mut |w, _| progress(base + w, planned))
            .map_err(wrap(c))?;
        done += dense.n_dense_passes() + dense.n_sparse_passes();
        n_dense += dense.n_dense_passes();
        n_sparse += dense.n_sparse_passes();
        tracing::info!(
            step = c.step,
            activation_ratio = result.mean_activation_ratio(),
            "measured"
        );
        results.push(CheckpointSparsity {
            step: c.step,
            tokens_seen: c.tokens_seen,
            path: c.path.clone(),
            result,
        });
    }
    results.sort_by_key(|r| r.step);
    Ok(SparsitySeries {
        dir: dir.to_path_buf(),
        model: model_config,
        cett,
        search,
        config: config.clone(),
        n_dense_passes: n_dense,
        n_sparse_passes: n_sparse,
        checkpoints: results,
    })
}
