//! Singular-value spectra of every weight matrix of a checkpoint: condition number `kappa`,
//! log-volume, Gaussian output entropy, stable rank, norms and the WeightWatcher power-law
//! exponent, plus KappaTune's selection of the lowest-`kappa` tensors to fine-tune.
//!
//! Which weight matrices are specialised and which are close to isotropic? KappaTune
//! (Ludwig, arXiv:2506.16289) ranks matrices by `kappa = s_max / s_min`, computed once on the
//! pre-trained weights with no data, and fine-tunes only the lowest-`kappa` ones to reduce
//! forgetting. The definitions, the three reference conventions and their pitfalls are in
//! `book/src/kappa-method.md`; WeightWatcher's `alpha` is reproduced so the two can be compared.
//!
//! # Example
//!
//! ```
//! use strata_spectra::{SpectraConfig, analyze_matrix};
//!
//! # fn main() -> Result<(), strata_spectra::Error> {
//! // diag(1, 1, 1e-3): kappa = 1000, log-volume = ln(1e-3).
//! let w = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1e-3_f32];
//! let unit = analyze_matrix("w", 3, 3, &w, &SpectraConfig::default())?;
//! let metrics = unit.metrics.expect("a finite, nonzero matrix has metrics");
//! assert!((metrics.kappa - 1e3).abs() < 1e-3);
//! assert!((metrics.log_volume - (1e-3_f64).ln()).abs() < 1e-6);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a checkpoint and a selection
//!
//! ```no_run
//! use std::path::Path;
//! use strata_spectra::{Budget, SpectraConfig, TrainableMask, analyze_path, select};
//!
//! # fn main() -> Result<(), strata_spectra::Error> {
//! let config = SpectraConfig::strata();
//! let result = analyze_path(Path::new("models/gpt2"), &config, None)?;
//! let selection = select(&result, Budget::Fraction(0.2))?;
//! TrainableMask::from_selection(&selection, config.convention).save(Path::new("selection.json"))?;
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults and costs
//!
//! [`SpectraConfig::strata`]: 2-D float weights of linear maps; biases, norm scales and
//! embedding tables skipped; tensors with a dimension above 16384 skipped; 3-D MoE expert
//! tensors analysed per expert; `kappa = s_max / max(s_min, 1e-7 s_max)`. The `peft` and
//! `kappatune` conventions reproduce the two reference implementations.
//!
//! Singular values come from the eigenvalues of the f64 Gram matrix on the short side
//! (`W W^T` or `W^T W`), with a proven error bound (see the `gram` module docs); when the
//! bound on `s_min` exceeds [`SpectraConfig::gram_tolerance`] an f64 SVD recomputes that
//! matrix. Tensors are streamed from memory-mapped safetensors one at a time per worker
//! thread and split across threads; no forward pass and no burn device are involved.
//!
//! Not offered: singular vectors, GPU SVD, WeightWatcher's MP fits, randomization and
//! truncated power laws. NaN or infinite weights do not stop a run: the tensor is reported by
//! name with [`TensorStatus::NonFinite`] and the rest continue.
//!
//! No cargo features.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod analyze;
mod config;
mod error;
mod float_serde;
mod gram;
mod json_file;
mod metrics;
mod powerlaw;
mod result;
mod select;
mod spectrum;
mod svd;
mod tridiagonal;
mod units;

pub use analyze::{
    Progress, ProgressFn, analyze_matrix, analyze_path, analyze_store, analyze_tensors,
};
pub use config::{Convention, ExpertUnits, KappaFloor, SpectraConfig, SpectrumMethod};
pub use error::{Error, Result};
pub use metrics::{SpectrumMetrics, kappa_with_floor};
pub use powerlaw::{MIN_EVALS, PowerLawFit, fit_powerlaw};
pub use result::{SkippedTensor, SpectraResult, TensorSpectrum, TensorStatus, UnitPart};
pub use select::{Budget, RankedUnit, Selection, TrainableMask, rank, select};
pub use spectrum::SpectrumPath;

/// Singular values of a row-major `[rows, cols]` matrix, largest first, by the path
/// `config.method` chooses; also returns that path and the Gram error bound when the Gram
/// path ran. Exposed for benchmarks and for cross-checks against other libraries.
pub fn singular_values(
    rows: usize,
    cols: usize,
    data: &[f32],
    config: &SpectraConfig,
) -> Result<(Vec<f64>, SpectrumPath, Option<f64>)> {
    if rows * cols != data.len() {
        return Err(Error::MatrixShape {
            name: "matrix".into(),
            rows,
            cols,
            n_values: data.len(),
        });
    }
    let spectrum = spectrum::compute_spectrum(rows, cols, data, config).ok_or_else(|| {
        Error::NoConvergence {
            name: "matrix".into(),
        }
    })?;
    Ok((
        spectrum.singular_values,
        spectrum.path,
        spectrum.gram_error_bound,
    ))
}
