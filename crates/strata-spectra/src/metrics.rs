//! `SpectrumMetrics`: every scalar strata derives from one unit's singular values.
//!
//! Definitions (`book/src/kappa-method.md`, "Definitions"), for `W` of shape `[rows, cols]`,
//! `k = min(rows, cols)` singular values `s_1 >= ... >= s_k >= 0`:
//!
//! - `kappa = s_1 / s_k` under the configured [`KappaFloor`];
//! - log-volume `LV = sum_i ln s_i` (`-inf` when `s_k = 0`); `LV(cW) = LV(W) + k ln|c|`;
//! - normalized log-volume `sum_i ln(s_i / s_1) / k`, scale-invariant, in
//!   `[-(k - 1) ln(kappa) / k, -ln(kappa) / k]`;
//! - output entropy of `y = Wx`, `x ~ N(mu, s^2 I_cols)`:
//!   `h(Wx) = (k / 2) ln(2 pi e s^2) + LV` (the density of `Wx` on its `k`-dimensional image);
//! - its bound at the same Frobenius norm `F`: by AM-GM, `LV <= (k / 2) ln(F^2 / k)`, so
//!   `h(Wx) <= (k / 2) ln(2 pi e s^2) + (k / 2) ln(F^2 / k)`, with equality iff `kappa = 1`;
//! - stable rank `F^2 / s_1^2`, spectral norm `s_1`, Frobenius norm `F`;
//! - spectral entropy `-sum p ln p / ln r` with `p = s^2 / F^2` and `r` the numerical rank
//!   (WeightWatcher's `entropy`; 0 when `r <= 1`);
//! - numerical rank: the number of `s_i > s_1 * max(rows, cols) * eps_f32` (NumPy's
//!   `matrix_rank` rule for f32 data).

use serde::{Deserialize, Serialize};

use crate::config::{KappaFloor, SpectraConfig};
use crate::powerlaw::{PowerLawFit, fit_powerlaw};

/// Scalars derived from one unit's singular values. Natural logarithms throughout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrumMetrics {
    /// Largest singular value `s_max` (the spectral norm).
    pub s_max: f64,
    /// Smallest of the `min(rows, cols)` singular values, `s_min` (not floored).
    pub s_min: f64,
    /// Condition number `s_max / s_min` under the configured floor; `inf` only with
    /// [`KappaFloor::None`] and `s_min = 0`.
    #[serde(with = "crate::float_serde")]
    pub kappa: f64,
    /// Whether the floor changed `kappa` (the relative floor was active, or `s_min = 0`).
    pub kappa_floored: bool,
    /// Whether `s_min` is zero or below the numerical-rank tolerance.
    pub rank_deficient: bool,
    /// Number of singular values above `s_max * max(rows, cols) * eps_f32`.
    pub numerical_rank: usize,
    /// Log-volume `sum ln s_i` (`-inf` when a singular value is zero).
    #[serde(with = "crate::float_serde")]
    pub log_volume: f64,
    /// Normalized log-volume `sum ln(s_i / s_max) / k` (scale-invariant, <= 0).
    #[serde(with = "crate::float_serde")]
    pub normalized_log_volume: f64,
    /// Differential entropy `h(Wx)` in nats of `Wx` for `x ~ N(mu, s^2 I)`, on its image.
    #[serde(with = "crate::float_serde")]
    pub entropy: f64,
    /// Upper bound on `h(Wx)` over all matrices with the same Frobenius norm (`kappa = 1`).
    pub entropy_bound: f64,
    /// Stable rank `sum s_i^2 / s_max^2`.
    pub stable_rank: f64,
    /// Spectral norm `s_max` (same value as `s_max`, kept for WeightWatcher's column name).
    pub spectral_norm: f64,
    /// Frobenius norm `sqrt(sum s_i^2)`.
    pub frobenius_norm: f64,
    /// Spectral entropy of `p = s^2 / sum s^2`, normalized by `ln(numerical_rank)`.
    pub spectral_entropy: f64,
    /// The power-law fit of the eigenvalue tail, when enabled and possible.
    pub powerlaw: Option<PowerLawFit>,
}

/// `kappa` and whether the floor was active, for singular values `s_max >= s_min >= 0`.
pub fn kappa_with_floor(s_max: f64, s_min: f64, floor: KappaFloor) -> (f64, bool) {
    match floor {
        KappaFloor::Relative { eps } => {
            let floored = s_min < eps * s_max;
            (s_max / s_min.max(eps * s_max), floored)
        }
        KappaFloor::Additive { eps } => (s_max / (s_min + eps), s_min == 0.0),
        KappaFloor::None => {
            if s_min == 0.0 {
                (f64::INFINITY, true)
            } else {
                (s_max / s_min, false)
            }
        }
    }
}

impl SpectrumMetrics {
    /// Computes every metric from `singular_values` (largest first) of a `[rows, cols]` unit.
    ///
    /// Returns `None` for an empty spectrum or an all-zero matrix (`s_max = 0`), which has no
    /// condition number.
    pub fn from_singular_values(
        singular_values: &[f64],
        rows: usize,
        cols: usize,
        config: &SpectraConfig,
    ) -> Option<Self> {
        let k = singular_values.len();
        let s_max = *singular_values.first()?;
        let s_min = *singular_values.last()?;
        if s_max <= 0.0 {
            return None;
        }
        let (kappa, kappa_floored) = kappa_with_floor(s_max, s_min, config.floor);
        let rank_tolerance = s_max * rows.max(cols) as f64 * f64::from(f32::EPSILON);
        let numerical_rank = singular_values
            .iter()
            .filter(|&&s| s > rank_tolerance)
            .count();
        let frobenius_sq: f64 = singular_values.iter().map(|s| s * s).sum();
        let log_volume: f64 = singular_values.iter().map(|s| s.ln()).sum();
        let k_f = k as f64;
        let gaussian_term = 0.5
            * k_f
            * (2.0
                * std::f64::consts::PI
                * std::f64::consts::E
                * config.input_std
                * config.input_std)
                .ln();
        let spectral_entropy = if numerical_rank > 1 {
            let h: f64 = singular_values
                .iter()
                .map(|s| s * s / frobenius_sq)
                .filter(|&p| p > 0.0)
                .map(|p| -p * p.ln())
                .sum();
            h / (numerical_rank as f64).ln()
        } else {
            0.0
        };
        let powerlaw = if config.fit_powerlaw {
            let eigenvalues: Vec<f64> = singular_values.iter().map(|s| s * s).collect();
            fit_powerlaw(&eigenvalues, config.eval_threshold)
        } else {
            None
        };
        Some(Self {
            s_max,
            s_min,
            kappa,
            kappa_floored,
            rank_deficient: s_min <= rank_tolerance,
            numerical_rank,
            log_volume,
            normalized_log_volume: (log_volume - k_f * s_max.ln()) / k_f,
            entropy: gaussian_term + log_volume,
            entropy_bound: gaussian_term + 0.5 * k_f * (frobenius_sq / k_f).ln(),
            stable_rank: frobenius_sq / (s_max * s_max),
            spectral_norm: s_max,
            frobenius_norm: frobenius_sq.sqrt(),
            spectral_entropy,
            powerlaw,
        })
    }

    /// The mean of several units' metrics (PEFT's fused expert score: `kappa` is the mean of
    /// the experts' `kappa`s; every other number is averaged the same way, flags are OR-ed,
    /// and the power-law fit is averaged over the experts that have one).
    pub fn mean(parts: &[SpectrumMetrics]) -> Option<Self> {
        if parts.is_empty() {
            return None;
        }
        let n = parts.len() as f64;
        let avg = |f: fn(&SpectrumMetrics) -> f64| parts.iter().map(f).sum::<f64>() / n;
        let fits: Vec<&PowerLawFit> = parts.iter().filter_map(|p| p.powerlaw.as_ref()).collect();
        let powerlaw = (!fits.is_empty()).then(|| {
            let m = fits.len() as f64;
            let avg_fit = |f: fn(&PowerLawFit) -> f64| fits.iter().map(|x| f(x)).sum::<f64>() / m;
            PowerLawFit {
                alpha: avg_fit(|f| f.alpha),
                xmin: avg_fit(|f| f.xmin),
                ks_distance: avg_fit(|f| f.ks_distance),
                sigma: avg_fit(|f| f.sigma),
                n_tail: (avg_fit(|f| f.n_tail as f64)).round() as usize,
                n_evals: (avg_fit(|f| f.n_evals as f64)).round() as usize,
            }
        });
        Some(Self {
            s_max: avg(|p| p.s_max),
            s_min: avg(|p| p.s_min),
            kappa: avg(|p| p.kappa),
            kappa_floored: parts.iter().any(|p| p.kappa_floored),
            rank_deficient: parts.iter().any(|p| p.rank_deficient),
            numerical_rank: (avg(|p| p.numerical_rank as f64)).round() as usize,
            log_volume: avg(|p| p.log_volume),
            normalized_log_volume: avg(|p| p.normalized_log_volume),
            entropy: avg(|p| p.entropy),
            entropy_bound: avg(|p| p.entropy_bound),
            stable_rank: avg(|p| p.stable_rank),
            spectral_norm: avg(|p| p.spectral_norm),
            frobenius_norm: avg(|p| p.frobenius_norm),
            spectral_entropy: avg(|p| p.spectral_entropy),
            powerlaw,
        })
    }
}
