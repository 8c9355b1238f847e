//! `SpectraConfig`: which tensors are analysed and how, with the three conventions of
//! `book/src/kappa-method.md` (strata's default and the `peft` and `kappatune` faithful modes).

use serde::{Deserialize, Serialize};

/// Which reference convention a configuration follows.
///
/// The conventions differ in which tensors count as units, the size cap, how 3-D expert
/// tensors are handled and the floor under `s_min` (see [`KappaFloor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// strata's default: 2-D linear weights, embeddings skipped, experts per slice,
    /// relative floor `max(s_min, 1e-7 s_max)`, size cap 16384.
    Strata,
    /// PEFT's `KappaTuneSelector`: linear weights plus fused 3-D experts (mean over experts),
    /// additive floor `s_min + 1e-8`, size cap 16384.
    Peft,
    /// The KappaTune reference optimizer: every >= 2-D parameter including embeddings, no floor
    /// (`+inf` when `s_min = 0`), no size cap, 3-D tensors skipped.
    Kappatune,
}

/// How `kappa = s_max / s_min` guards against a zero or tiny `s_min`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KappaFloor {
    /// `kappa = s_max / max(s_min, eps * s_max)`: scale-invariant, at most `1 / eps`.
    Relative {
        /// The relative floor, `1e-7` by default (about the f32 resolution).
        eps: f64,
    },
    /// `kappa = s_max / (s_min + eps)` (PEFT, `eps = 1e-8`): not scale-invariant when
    /// `s_min` is near `eps`.
    Additive {
        /// The absolute floor added to `s_min`.
        eps: f64,
    },
    /// `kappa = s_max / s_min`, `+inf` when `s_min = 0` (the KappaTune reference code).
    None,
}

/// How a 3-D tensor `[n_experts, rows, cols]` of fused MoE experts becomes units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpertUnits {
    /// One unit per expert slice, named `tensor[expert=e]`.
    PerExpert,
    /// One unit per tensor whose metrics are the means over its experts (PEFT).
    FusedMean,
    /// 3-D tensors are skipped (the KappaTune reference optimizer).
    Skip,
}

/// How singular values are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpectrumMethod {
    /// Eigenvalues of the f64 Gram matrix on the short side, with a fallback to an f64 SVD when
    /// the Gram error bound exceeds [`SpectraConfig::gram_tolerance`]. The default.
    Auto,
    /// Always the Gram path, whatever its error bound (the bound is still reported).
    Gram,
    /// Always an f64 SVD (the reference path; slower).
    Svd,
}

/// Settings of a spectra run. Build one with [`SpectraConfig::strata`] (the default),
/// [`SpectraConfig::peft`] or [`SpectraConfig::kappatune`], then adjust fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectraConfig {
    /// The convention this configuration started from (recorded with every result).
    pub convention: Convention,
    /// The floor under `s_min` used for `kappa`.
    pub floor: KappaFloor,
    /// Whether embedding tables (`*embed*`, `wte`, `wpe`) are analysed.
    pub include_embeddings: bool,
    /// Tensors with any dimension above this are skipped (`None`: no cap).
    pub max_dim: Option<usize>,
    /// How 3-D fused expert tensors become units.
    pub experts: ExpertUnits,
    /// Also analyse fused QKV projections split into their Q, K and V blocks (the whole matrix
    /// is always analysed too).
    pub split_fused_qkv: bool,
    /// Number of attention heads, needed only to split GPT-NeoX's head-interleaved
    /// `query_key_value`; read from `config.json` when the model folder has one.
    pub n_heads: Option<usize>,
    /// How singular values are computed.
    pub method: SpectrumMethod,
    /// Largest accepted worst-case bound on the relative error of `s_min` on the Gram path
    /// before an f64 SVD recomputes the matrix (the bound is derived in the `gram` module).
    ///
    /// The default `1e-4` keeps every reported singular value, and so `kappa`, within a
    /// relative `1e-4` of the exact singular values of the stored weights. An f32 SVD is off
    /// by about `eps_f32 * kappa`, which is larger once `kappa` exceeds about 1700. Measured
    /// errors are far below the bound: on all-MiniLM-L6-v2 the Gram path alone is within
    /// `6e-7` of numpy's f64 SVD for every matrix (worst `kappa = 8.2e4`), while the bound
    /// sends 7 of its 37 matrices to the SVD.
    pub gram_tolerance: f64,
    /// Standard deviation `s` of the Gaussian input `x ~ N(0, s^2 I)` in the entropy `h(Wx)`.
    pub input_std: f64,
    /// Whether to fit the WeightWatcher-style power-law exponent `alpha`.
    pub fit_powerlaw: bool,
    /// Eigenvalues `lambda = s^2` at or below this are left out of the power-law fit
    /// (WeightWatcher's `EVALS_THRESH`, `1e-5`).
    pub eval_threshold: f64,
    /// Keep every unit's singular values in the result (needed for ESD figures).
    pub keep_singular_values: bool,
    /// Worker threads (`None`: rayon's default, one per core). Tensors are split across
    /// threads; each tensor is computed by one thread.
    pub n_threads: Option<usize>,
    /// Upper bound on the working memory of the tensors in flight, in bytes: fewer threads run
    /// when the largest tensor's working set (see [`SpectraConfig::working_set_bytes`]) times
    /// the thread count would exceed it; at least one thread always runs. `None`: no bound.
    pub max_in_flight_bytes: Option<u64>,
}

impl Default for SpectraConfig {
    fn default() -> Self {
        Self::strata()
    }
}

impl SpectraConfig {
    /// strata's default convention (`book/src/kappa-method.md`, "Defaults").
    pub fn strata() -> Self {
        Self {
            convention: Convention::Strata,
            floor: KappaFloor::Relative { eps: 1e-7 },
            include_embeddings: false,
            max_dim: Some(16384),
            experts: ExpertUnits::PerExpert,
            split_fused_qkv: false,
            n_heads: None,
            method: SpectrumMethod::Auto,
            gram_tolerance: 1e-4,
            input_std: 1.0,
            fit_powerlaw: true,
            eval_threshold: 1e-5,
            keep_singular_values: false,
            n_threads: None,
            max_in_flight_bytes: Some(8 << 30),
        }
    }

    /// PEFT's `KappaTuneSelector` convention.
    pub fn peft() -> Self {
        Self {
            convention: Convention::Peft,
            floor: KappaFloor::Additive { eps: 1e-8 },
            experts: ExpertUnits::FusedMean,
            ..Self::strata()
        }
    }

    /// The KappaTune reference optimizer's convention.
    pub fn kappatune() -> Self {
        Self {
            convention: Convention::Kappatune,
            floor: KappaFloor::None,
            include_embeddings: true,
            max_dim: None,
            experts: ExpertUnits::Skip,
            ..Self::strata()
        }
    }

    /// The largest working set of one tensor of this shape while its spectrum is computed:
    /// its f32 values, the f64 copy of one matrix that the SVD fallback makes, and the f64
    /// Gram matrix (`4 n_elements + 8 rows cols + 8 k^2` bytes). On the Gram path alone the
    /// f64 copy is never made.
    pub fn working_set_bytes(shape: &[usize]) -> u64 {
        let n_elements: u64 = shape.iter().map(|&d| d as u64).product();
        let (rows, cols) = match shape {
            [.., r, c] => (*r as u64, *c as u64),
            _ => (0, 0),
        };
        let k = rows.min(cols);
        4 * n_elements + 8 * rows * cols + 8 * k * k
    }

    /// The configuration for a named convention.
    pub fn for_convention(convention: Convention) -> Self {
        match convention {
            Convention::Strata => Self::strata(),
            Convention::Peft => Self::peft(),
            Convention::Kappatune => Self::kappatune(),
        }
    }
}
