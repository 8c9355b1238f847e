//! WeightWatcher-style power-law fit of the tail of the empirical spectral density.
//!
//! The data are the eigenvalues `lambda = s^2` above a threshold (WeightWatcher's
//! `EVALS_THRESH = 1e-5`), sorted. For every candidate `xmin` (each eigenvalue but the largest)
//! the continuous power-law maximum-likelihood exponent over the tail `lambda >= xmin` is
//!
//! ```text
//! alpha = 1 + n_tail / sum_{lambda_j >= xmin} ln(lambda_j / xmin)
//! ```
//!
//! and the Kolmogorov-Smirnov distance between the tail's empirical CDF (`j / n_tail` at the
//! `j`-th smallest tail value) and the fitted CDF `1 - (lambda / xmin)^(1 - alpha)` is
//! measured; the `xmin` with the smallest distance wins (Clauset, Shalizi and Newman 2009).
//! No `xmax` is used. `sigma = (alpha - 1) / sqrt(n_tail)`. This is `WWFit` of WeightWatcher
//! 0.7.5.5 (`WW_powerlaw.py`): candidates with `alpha <= 1` get distance 1, ties go to the
//! smallest `xmin`. Cost `O(n^2)` in the number of eigenvalues.

use serde::{Deserialize, Serialize};

/// Fewest eigenvalues above the threshold for a fit (WeightWatcher's `min_evals`).
pub const MIN_EVALS: usize = 10;

/// The fitted power law of one unit's eigenvalue tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    /// Tail exponent `alpha` of `p(lambda) ~ lambda^-alpha` (well-trained layers: about 2 to 6).
    pub alpha: f64,
    /// The eigenvalue where the tail starts (`xmin`, in units of `s^2`).
    pub xmin: f64,
    /// Kolmogorov-Smirnov distance `D` of the chosen fit.
    pub ks_distance: f64,
    /// Standard error of `alpha`, `(alpha - 1) / sqrt(n_tail)`.
    pub sigma: f64,
    /// Eigenvalues in the fitted tail (WeightWatcher's `num_pl_spikes`).
    pub n_tail: usize,
    /// Eigenvalues above the threshold that entered the fit.
    pub n_evals: usize,
}

/// Fits the power-law tail of `eigenvalues` (any order) above `threshold`.
///
/// Returns `None` when fewer than [`MIN_EVALS`] eigenvalues pass the threshold or no
/// candidate gives `alpha > 1`.
pub fn fit_powerlaw(eigenvalues: &[f64], threshold: f64) -> Option<PowerLawFit> {
    let mut data: Vec<f64> = eigenvalues
        .iter()
        .copied()
        .filter(|&l| l > threshold && l.is_finite())
        .collect();
    if data.len() < MIN_EVALS {
        return None;
    }
    data.sort_by(f64::total_cmp);
    let n = data.len();
    let logs: Vec<f64> = data.iter().map(|l| l.ln()).collect();
    // suffix_sums[i] = sum of logs[i..].
    let mut suffix_sums = vec![0.0; n + 1];
    for i in (0..n).rev() {
        suffix_sums[i] = suffix_sums[i + 1] + logs[i];
    }

    let mut best: Option<(f64, usize, f64)> = None; // (distance, xmin_idx, alpha)
    for xmin_idx in 0..n - 1 {
        let n_tail = (n - xmin_idx) as f64;
        let log_xmin = logs[xmin_idx];
        let denom = suffix_sums[xmin_idx] - n_tail * log_xmin;
        let alpha = 1.0 + n_tail / denom;
        let distance = if alpha > 1.0 && alpha.is_finite() {
            let exponent = 1.0 - alpha;
            logs[xmin_idx..]
                .iter()
                .enumerate()
                .map(|(j, &log_l)| {
                    let model_cdf = 1.0 - (exponent * (log_l - log_xmin)).exp();
                    (model_cdf - j as f64 / n_tail).abs()
                })
                .fold(0.0, f64::max)
        } else {
            1.0
        };
        if best.is_none_or(|(d, _, _)| distance < d) {
            best = Some((distance, xmin_idx, alpha));
        }
    }
    let (ks_distance, xmin_idx, alpha) = best?;
    if !(alpha > 1.0 && alpha.is_finite()) {
        return None;
    }
    let n_tail = n - xmin_idx;
    Some(PowerLawFit {
        alpha,
        xmin: data[xmin_idx],
        ks_distance,
        sigma: (alpha - 1.0) / (n_tail as f64).sqrt(),
        n_tail,
        n_evals: n,
    })
}
