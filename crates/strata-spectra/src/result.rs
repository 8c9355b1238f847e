//! `SpectraResult`: one row per analysed unit, plus the tensors that were skipped and why.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::SpectraConfig;
use crate::error::Result;
use crate::metrics::SpectrumMetrics;
use crate::spectrum::SpectrumPath;

/// Which part of a checkpoint tensor a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnitPart {
    /// The whole 2-D tensor.
    Whole,
    /// One expert slice `W[expert_idx]` of a 3-D `[n_experts, rows, cols]` tensor.
    Expert {
        /// The expert's index along the first dimension.
        expert_idx: usize,
    },
    /// A 3-D expert tensor scored as the mean over its experts (PEFT's fused unit).
    ExpertMean {
        /// How many experts were averaged.
        n_experts: usize,
    },
    /// The query block of a fused QKV projection.
    Query,
    /// The key block of a fused QKV projection.
    Key,
    /// The value block of a fused QKV projection.
    Value,
}

impl UnitPart {
    /// The suffix appended to the tensor name to name the unit (`""` for a whole tensor).
    pub fn suffix(&self) -> String {
        match self {
            UnitPart::Whole | UnitPart::ExpertMean { .. } => String::new(),
            UnitPart::Expert { expert_idx } => format!("[expert={expert_idx}]"),
            UnitPart::Query => "[q]".into(),
            UnitPart::Key => "[k]".into(),
            UnitPart::Value => "[v]".into(),
        }
    }
}

/// Whether a unit's spectrum was computed, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TensorStatus {
    /// Metrics computed.
    Ok,
    /// The tensor holds NaN or infinite values; nothing was computed for it.
    NonFinite {
        /// Number of NaN values.
        n_nan: usize,
        /// Number of infinite values.
        n_inf: usize,
    },
    /// Every value is zero: no condition number exists.
    ZeroMatrix,
    /// Neither the Gram eigensolver nor the SVD converged.
    NoConvergence,
    /// The tensor could not be read from the weights.
    Unreadable {
        /// The reader's message.
        message: String,
    },
}

impl TensorStatus {
    /// A short label for tables: `ok`, `non_finite`, `zero`, `no_convergence`, `unreadable`.
    pub fn label(&self) -> &'static str {
        match self {
            TensorStatus::Ok => "ok",
            TensorStatus::NonFinite { .. } => "non_finite",
            TensorStatus::ZeroMatrix => "zero",
            TensorStatus::NoConvergence => "no_convergence",
            TensorStatus::Unreadable { .. } => "unreadable",
        }
    }
}

/// One analysed unit: a 2-D tensor, an expert slice, or a Q/K/V block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpectrum {
    /// The unit's name: the checkpoint tensor name plus [`UnitPart::suffix`].
    pub unit: String,
    /// The checkpoint tensor the unit comes from.
    pub tensor: String,
    /// Which part of the tensor the unit is.
    pub part: UnitPart,
    /// The transformer layer, from the first integer in the tensor name (`h.3.`, `layers.3.`).
    pub layer_idx: Option<usize>,
    /// The tensor name after the layer index, without `.weight`, other integers as `*`
    /// (`attn.c_attn`, `mlp.experts.*.down_proj`): groups units across layers.
    pub module_type: String,
    /// Rows of the unit's matrix as stored.
    pub rows: usize,
    /// Columns of the unit's matrix as stored.
    pub cols: usize,
    /// The stored dtype (`F32`, `BF16`, ...).
    pub dtype: String,
    /// Number of parameters in the unit.
    pub n_params: usize,
    /// Whether metrics were computed.
    pub status: TensorStatus,
    /// The computation that produced the singular values (`None` when none ran).
    pub path: Option<SpectrumPath>,
    /// The Gram path's bound on the relative error of `s_min`, when it ran.
    #[serde(with = "crate::float_serde::option")]
    pub gram_error_bound: Option<f64>,
    /// The metrics (`None` unless `status` is `Ok`).
    pub metrics: Option<SpectrumMetrics>,
    /// The singular values, largest first, when `keep_singular_values` is set.
    pub singular_values: Option<Vec<f64>>,
}

impl TensorSpectrum {
    /// `kappa`, when computed.
    pub fn kappa(&self) -> Option<f64> {
        self.metrics.as_ref().map(|m| m.kappa)
    }
}

/// A checkpoint tensor that the configuration does not analyse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedTensor {
    /// The tensor name.
    pub tensor: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its stored dtype.
    pub dtype: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The spectra of every analysed unit of one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectraResult {
    /// The model folder or file analysed (`None` for in-memory matrices).
    pub model: Option<String>,
    /// The configuration used.
    pub config: SpectraConfig,
    /// How many tensors the checkpoint holds.
    pub n_tensors: usize,
    /// One row per unit, in checkpoint name order (units of one tensor in part order).
    pub units: Vec<TensorSpectrum>,
    /// Tensors not analysed, with the reason.
    pub skipped: Vec<SkippedTensor>,
}

impl SpectraResult {
    /// Units whose metrics were computed.
    pub fn ok_units(&self) -> impl Iterator<Item = &TensorSpectrum> {
        self.units.iter().filter(|u| u.status == TensorStatus::Ok)
    }

    /// Units that could not be analysed (NaN/Inf values, all zeros, no convergence).
    pub fn failed_units(&self) -> impl Iterator<Item = &TensorSpectrum> {
        self.units.iter().filter(|u| u.status != TensorStatus::Ok)
    }

    /// The unit name to `kappa` map (the KappaTune reference code's `condition_numbers.json`).
    pub fn kappa_map(&self) -> BTreeMap<String, f64> {
        self.ok_units()
            .filter_map(|u| u.kappa().map(|k| (u.unit.clone(), k)))
            .collect()
    }

    /// The unit with this name.
    pub fn unit(&self, name: &str) -> Option<&TensorSpectrum> {
        self.units.iter().find(|u| u.unit == name)
    }

    /// Writes the result as pretty JSON.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        crate::json_file::write_json(self, path)
    }

    /// Reads a result written by [`SpectraResult::save_json`].
    pub fn load_json(path: &Path) -> Result<Self> {
        crate::json_file::read_json(path)
    }
}
