//! Checkpoint series: the same measurement on every checkpoint of one training run, on the
//! same fixed evaluation tokens, giving the (checkpoint, layer) table the dynamics fit reads.
//!
//! A series folder holds one folder per checkpoint, named by its training step: `step{N}`
//! (Pythia's revision names, and what `cargo xtask train-tiny` writes) or `checkpoint-{N}`
//! (the transformers `Trainer`'s). Other entries are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use strata_core::{Model, ModelConfig};

use crate::error::{Error, Result};
use crate::{MassiveConfig, MassiveResult, measure};

/// One checkpoint of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its training step.
    pub step: u64,
    /// Its model folder.
    pub path: PathBuf,
}

/// The measurement of one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointResult {
    /// Training step.
    pub step: u64,
    /// The model folder, as given.
    pub path: PathBuf,
    /// Its statistics, layer by layer.
    pub result: MassiveResult,
}

/// Which per-layer statistic a series follows over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statistic {
    /// `mean top-1 / mean median`, the dynamics paper's tracked series (its Eq. 8).
    Ratio,
    /// Mean top-1 magnitude.
    Top1,
    /// Mean median magnitude.
    Median,
}

impl Statistic {
    /// The statistic's name in tables: `ratio`, `top1`, `median`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ratio => "ratio",
            Self::Top1 => "top1",
            Self::Median => "median",
        }
    }

    /// Its value for one layer.
    pub fn of(self, layer: &crate::LayerStats) -> f64 {
        match self {
            Self::Ratio => layer.ratio_of_means(),
            Self::Top1 => layer.mean_top1(),
            Self::Median => layer.mean_median(),
        }
    }
}

/// Every checkpoint of a series measured on the same tokens, in training order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesResult {
    /// The series folder.
    pub dir: PathBuf,
    /// The architecture every checkpoint shares.
    pub model: ModelConfig,
    /// Tokens measured per checkpoint (the same tokens each time).
    pub n_tokens: usize,
    /// One entry per checkpoint, by increasing step.
    pub checkpoints: Vec<CheckpointResult>,
}

impl SeriesResult {
    /// The training steps, in order.
    pub fn steps(&self) -> Vec<u64> {
        self.checkpoints.iter().map(|c| c.step).collect()
    }

    /// `statistic` of block `layer` at every checkpoint, in step order.
    pub fn trajectory(&self, layer: usize, statistic: Statistic) -> Vec<f64> {
        self.checkpoints
            .iter()
            .filter_map(|c| c.result.layers.get(layer).map(|l| statistic.of(l)))
            .collect()
    }
}

/// The step a checkpoint folder's name gives, `None` for names that are not checkpoints.
/// `Some(Err(..))` for a checkpoint name whose step is not a number.
fn step_of(name: &str) -> Option<std::result::Result<u64, String>> {
    let digits = name
        .strip_prefix("step")
        .or_else(|| name.strip_prefix("checkpoint-"))?;
    Some(
        digits
            .parse::<u64>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("`{name}` is named like a checkpoint but `{digits}` is not a step number")
            }),
    )
}

/// The checkpoints of the series folder `dir`, ordered by training step.
///
/// Refused, with the folder named: a missing folder or one without checkpoints; a
/// checkpoint name whose step is not a number; two folders of the same step (`step100` and
/// `step0100`); a checkpoint folder without `config.json`; a checkpoint whose
/// `trainer_state.json` records another step than its name (folders out of order); and,
/// when the series says which steps it saved (the `report.checkpoints` of the
/// `summary.json` that `cargo xtask train-tiny` writes), any such step without its folder.
pub fn discover_series(dir: &Path) -> Result<Vec<Checkpoint>> {
    let bad = |reason: String| Error::Series {
        dir: dir.to_path_buf(),
        reason,
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read the series folder: {e}")))?;
    let mut by_step: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("cannot list the series folder: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = step_of(&name) else {
            continue;
        };
        let path = entry.path();
        let step = step.map_err(|reason| Error::Series {
            dir: path.clone(),
            reason,
        })?;
        if !path.is_dir() {
            return Err(Error::Series {
                dir: path,
                reason: "a checkpoint must be a model folder".into(),
            });
        }
        if let Some(other) = by_step.insert(step, path.clone()) {
            return Err(Error::Series {
                dir: path,
                reason: format!("step {step} appears twice (also {})", other.display()),
            });
        }
    }
    if by_step.is_empty() {
        return Err(bad(
            "holds no checkpoint folders (`step{N}` or `checkpoint-{N}`)".into(),
        ));
    }
    for (&step, path) in &by_step {
        if !path.join("config.json").is_file() {
            return Err(Error::Series {
                dir: path.clone(),
                reason: "incomplete checkpoint: no config.json".into(),
            });
        }
        if let Some(recorded) = recorded_step(path)?
            && recorded != step
        {
            return Err(Error::Series {
                dir: path.clone(),
                reason: format!(
                    "named step {step} but its trainer_state.json records step {recorded}: \
                     the checkpoint folders are out of order"
                ),
            });
        }
    }
    if let Some(expected) = saved_steps(dir)? {
        let missing: Vec<String> = expected
            .iter()
            .filter(|s| !by_step.contains_key(s))
            .map(u64::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "summary.json lists checkpoints at steps {} that have no folder (missing steps)",
                missing.join(", ")
            )));
        }
    }
    Ok(by_step
        .into_iter()
        .map(|(step, path)| Checkpoint { step, path })
        .collect())
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::Series {
        dir: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Series {
            dir: path.to_path_buf(),
            reason: format!("invalid JSON: {e}"),
        })
}

/// The `step` a checkpoint's `trainer_state.json` records (strata's own key, or the
/// transformers Trainer's `global_step`).
fn recorded_step(checkpoint: &Path) -> Result<Option<u64>> {
    let path = checkpoint.join("trainer_state.json");
    let Some(json) = read_json(&path)? else {
        return Ok(None);
    };
    Ok(json
        .get("step")
        .or_else(|| json.get("global_step"))
        .and_then(serde_json::Value::as_u64))
}

/// The steps a strata run says it saved (`summary.json`: `report.checkpoints`).
fn saved_steps(dir: &Path) -> Result<Option<Vec<u64>>> {
    let path = dir.join("summary.json");
    let Some(json) = read_json(&path)? else {
        return Ok(None);
    };
    let Some(list) = json.pointer("/report/checkpoints") else {
        return Ok(None);
    };
    let steps = list
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(serde_json::Value::as_u64)
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Error::Series {
            dir: path.clone(),
            reason: "`report.checkpoints` is not a list of step numbers".into(),
        })?;
    Ok(Some(steps))
}

/// The config fields compared first, so a mismatch names the most telling one.
const ARCH_KEYS: [&str; 8] = [
    "family",
    "model_type",
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "d_mlp",
    "vocab_size",
];

/// Reads every checkpoint's config and checks they describe one architecture (everything
/// but the stored dtype must agree); returns it. The first difference is named.
pub fn check_architecture<B: Backend>(checkpoints: &[Checkpoint]) -> Result<ModelConfig> {
    let Some(first) = checkpoints.first() else {
        return Err(Error::InvalidArgument {
            what: "checkpoints".into(),
            reason: "must hold at least one checkpoint".into(),
        });
    };
    let read = |c: &Checkpoint| {
        Model::<B>::read_config(&c.path).map_err(|e| Error::Checkpoint {
            path: c.path.clone(),
            step: c.step,
            source: Box::new(e.into()),
        })
    };
    let reference = read(first)?;
    let as_json = |config: &ModelConfig| {
        let mut value = serde_json::to_value(config).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("dtype");
        }
        value
    };
    let want = as_json(&reference);
    for c in &checkpoints[1..] {
        let config = read(c)?;
        let got = as_json(&config);
        if got == want {
            continue;
        }
        let (Some(w), Some(g)) = (want.as_object(), got.as_object()) else {
            continue;
        };
        // The family and the sizes first: they say most about what differs.
        let keys = ARCH_KEYS
            .iter()
            .map(|k| k.to_string())
            .chain(w.keys().cloned());
        if let Some(key) = keys.into_iter().find(|k| w.get(k) != g.get(k)) {
            let show = |v: Option<&serde_json::Value>| {
                v.map_or_else(|| "absent".into(), ToString::to_string)
            };
            return Err(Error::ArchitectureMismatch {
                path: c.path.clone(),
                first: first.path.clone(),
                expected: show(w.get(&key)),
                found: show(g.get(&key)),
                key,
            });
        }
    }
    Ok(reference)
}

/// Measures every checkpoint on `sequences` (the same token ids each time), in step order,
/// one model in memory at a time. The architectures are checked first, before any weights
/// are read. `progress` gets (checkpoints done, total).
pub fn measure_series<B: Backend>(
    dir: &Path,
    checkpoints: &[Checkpoint],
    sequences: &[Vec<u32>],
    config: &MassiveConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SeriesResult> {
    let model_config = check_architecture::<B>(checkpoints)?;
    let mut results = Vec::with_capacity(checkpoints.len());
    for (i, c) in checkpoints.iter().enumerate() {
        let span = tracing::info_span!("checkpoint", step = c.step);
        let _enter = span.enter();
        let wrap = |e: Error| Error::Checkpoint {
            path: c.path.clone(),
            step: c.step,
            source: Box::new(e),
        };
        let model = Model::<B>::load(&c.path, device).map_err(|e| wrap(e.into()))?;
        let result = measure(&model, sequences, config, &mut |_, _| {}).map_err(wrap)?;
        tracing::debug!(
            top_layer_ratio = result
                .layers
                .iter()
                .map(crate::LayerStats::ratio_of_means)
                .fold(0.0, f64::max),
            "measured"
        );
        results.push(CheckpointResult {
            step: c.step,
            path: c.path.clone(),
            result,
        });
        progress(i + 1, checkpoints.len());
    }
    Ok(SeriesResult {
        dir: dir.to_path_buf(),
        model: model_config,
        n_tokens: sequences.iter().map(Vec::len).sum(),
        checkpoints: results,
    })
}
