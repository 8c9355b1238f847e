//! Predicting the fitted parameters of a layer from the architecture alone (the dynamics
//! paper's Table 3): one row per (model, layer), the paper's ten features (its Table 4),
//! standardised on the training rows, one ridge regression per parameter with the penalty
//! chosen by k-fold cross-validation, and the R^2 on held-out rows.
//!
//! Targets are transformed as in the paper: `log1p` for `A`, `lambda`, `gamma`, `t0`, and
//! Yeo-Johnson for `K` (its exponent fitted by maximum likelihood on the training rows). R^2
//! is computed on the transformed scale. Rows whose transformed target is not finite (a
//! `log1p` of a value at or below -1) are left out of that parameter's regression and
//! counted. No tree ensemble is offered.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fit::{DynamicsParams, N_PARAMS, PARAM_NAMES};

/// The architecture of the layer a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerArch {
    /// Block index, from 0.
    pub layer: usize,
    /// Blocks in the model (`L`).
    pub n_layers: usize,
    /// Residual width (`d`).
    pub d_model: usize,
    /// Attention heads (`H`).
    pub n_heads: usize,
    /// MLP width (`d_ff`).
    pub d_mlp: usize,
}

/// How the relative depth `l / L` is counted (the paper says "0 = first layer, 1 = last
/// layer"; its formula reads `l / L`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DepthConvention {
    /// `l / (L - 1)` with `l` from 0: the first layer 0, the last 1.
    FirstZeroLastOne,
    /// `(l + 1) / L`: the first layer `1 / L`, the last 1.
    OneBased,
}

/// The names of the features, in [`features`] order (the paper's Table 4).
pub const FEATURE_NAMES: [&str; 10] = [
    "l/L",
    "(l/L)^2",
    "(l/L)^3",
    "sqrt(l/L)",
    "H/d",
    "d_ff/d",
    "d/L",
    "H/L",
    "log d",
    "l*L",
];

/// The ten features of one layer.
pub fn features(arch: &LayerArch, convention: DepthConvention) -> [f64; 10] {
    let n_layers = arch.n_layers as f64;
    let depth = match convention {
        DepthConvention::FirstZeroLastOne => arch.layer as f64 / (n_layers - 1.0).max(1.0),
        DepthConvention::OneBased => (arch.layer + 1) as f64 / n_layers,
    };
    let d = arch.d_model as f64;
    let h = arch.n_heads as f64;
    [
        depth,
        depth.powi(2),
        depth.powi(3),
        depth.sqrt(),
        h / d,
        arch.d_mlp as f64 / d,
        d / n_layers,
        h / n_layers,
        d.ln(),
        (arch.layer + 1) as f64 * n_layers,
    ]
}

/// Settings of the regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictorConfig {
    /// Fraction of the rows held out for the test R^2 (the paper: 0.2).
    pub test_fraction: f64,
    /// Folds of the cross-validation that picks the ridge penalty (the paper: 5).
    pub n_folds: usize,
    /// The ridge penalties tried.
    pub alphas: Vec<f64>,
    /// Seed of the row shuffle.
    pub seed: u64,
    /// How relative depth is counted.
    pub depth: DepthConvention,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        Self {
            test_fraction: 0.2,
            n_folds: 5,
            alphas: vec![1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0],
            seed: 1,
            depth: DepthConvention::FirstZeroLastOne,
        }
    }
}

/// The regression of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamPrediction {
    /// The parameter (`A`, `lambda`, `gamma`, `t0`, `K`).
    pub param: String,
    /// The target transform (`log1p` or `yeo-johnson`).
    pub transform: String,
    /// The ridge penalty cross-validation picked.
    pub alpha: f64,
    /// Mean R^2 over the folds at that penalty (training rows).
    pub cv_r2: f64,
    /// R^2 on the held-out rows.
    pub test_r2: f64,
    /// Training rows.
    pub n_train: usize,
    /// Held-out rows.
    pub n_test: usize,
    /// Rows left out because the transformed target was not finite.
    pub n_dropped: usize,
}

/// Regresses each fitted parameter on the architecture features of its layer.
///
/// Refused when the rows are too few for the split and the folds (at least
/// `n_folds + 2` usable rows per parameter, and at least 2 held out) or a setting is out
/// of range.
pub fn predict_parameters(
    rows: &[(LayerArch, DynamicsParams)],
    config: &PredictorConfig,
) -> Result<Vec<ParamPrediction>> {
    if config.test_fraction.is_nan() || config.test_fraction <= 0.0 || config.test_fraction >= 1.0 {
        return Err(Error::InvalidArgument {
            what: "test_fraction".into(),
            reason: format!("must lie in (0, 1), got {}", config.test_fraction),
        });
    }
    if config.n_folds < 2
        || config.alphas.is_empty()
        || config.alphas.iter().any(|a| a.is_nan() || *a <= 0.0)
    {
        return Err(Error::InvalidArgument {
            what: "n_folds / alphas".into(),
            reason: "need at least 2 folds and positive penalties".into(),
        });
    }
    let x_all: Vec<[f64; 10]> = rows
        .iter()
        .map(|(a, _)| features(a, config.depth))
        .collect();
    let mut out = Vec::with_capacity(N_PARAMS);
    for (param_idx, name) in PARAM_NAMES.iter().enumerate() {
        let is_k = param_idx == 4;
        let raw: Vec<f64> = rows.iter().map(|(_, p)| p.to_array()[param_idx]).collect();
        // log1p is fixed; Yeo-Johnson is fitted on the training rows below.
        let usable: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                raw[i].is_finite() && (is_k || (raw[i] > -1.0 && raw[i].ln_1p().is_finite()))
            })
            .collect();
        let n = usable.len();
        let n_test = ((n as f64 * config.test_fraction).round() as usize).max(2);
        if n < n_test + config.n_folds.max(2) + 1 {
            return Err(Error::BadData {
                what: format!("the regression of {name}"),
                reason: format!(
                    "{n} usable rows of {} are too few for {} held out and {} folds",
                    rows.len(),
                    n_test,
                    config.n_folds
                ),
            });
        }
        let mut order = usable.clone();
        shuffle(&mut order, config.seed.wrapping_add(param_idx as u64));
        let (test, train) = order.split_at(n_test);
        let (target, transform) = if is_k {
            let lambda = yeo_johnson_lambda(&train.iter().map(|&i| raw[i]).collect::<Vec<_>>());
            (
                raw.iter()
                    .map(|&v| yeo_johnson(v, lambda))
                    .collect::<Vec<_>>(),
                "yeo-johnson",
            )
        } else {
            (raw.iter().map(|v| v.ln_1p()).collect::<Vec<_>>(), "log1p")
        };
        // Cross-validation on the training rows picks the penalty.
        let mut best = (f64::NEG_INFINITY, config.alphas[0]);
        for &alpha in &config.alphas {
            let mut scores = Vec::new();
            for fold in 0..config.n_folds {
                let in_fold = |j: &usize| j % config.n_folds == fold;
                let va: Vec<usize> = (0..train.len()).filter(in_fold).map(|j| train[j]).collect();
                let tr: Vec<usize> = (0..train.len())
                    .filter(|j| !in_fold(j))
                    .map(|j| train[j])
                    .collect();
                if va.is_empty() {
                    continue;
                }
                let model = Ridge::fit(&x_all, &target, &tr, alpha);
                scores.push(r2(
                    &va.iter().map(|&i| target[i]).collect::<Vec<_>>(),
                    &model.predict_rows(&x_all, &va),
                ));
            }
            let mean = scores.iter().sum::<f64>() / scores.len().max(1) as f64;
            if mean > best.0 {
                best = (mean, alpha);
            }
        }
        let model = Ridge::fit(&x_all, &target, train, best.1);
        let truth: Vec<f64> = test.iter().map(|&i| target[i]).collect();
        out.push(ParamPrediction {
            param: (*name).to_string(),
            transform: transform.to_string(),
            alpha: best.1,
            cv_r2: best.0,
            test_r2: r2(&truth, &model.predict_rows(&x_all, test)),
            n_train: train.len(),
            n_test: test.len(),
            n_dropped: rows.len() - n,
        });
    }
    Ok(out)
}

/// `1 - SS_res / SS_tot` (the mean as the baseline; `-inf` never, `0` for a constant truth
/// predicted exactly, negative when worse than the mean).
pub fn r2(truth: &[f64], predicted: &[f64]) -> f64 {
    let mean = truth.iter().sum::<f64>() / truth.len().max(1) as f64;
    let ss_tot: f64 = truth.iter().map(|y| (y - mean).powi(2)).sum();
    let ss_res: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(y, p)| (y - p).powi(2))
        .sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 {
            1.0
        } else {
            f64::NEG_INFINITY
        };
    }
    1.0 - ss_res / ss_tot
}

/// Ridge regression on standardised features (training mean and standard deviation; a
/// constant feature is left at 0), with an unpenalised intercept.
#[derive(Debug, Clone)]
pub struct Ridge {
    mean: Vec<f64>,
    scale: Vec<f64>,
    weights: DVector<f64>,
    intercept: f64,
}

impl Ridge {
    /// Fits on the rows `rows` of `x` and `y` with penalty `alpha`.
    pub fn fit<const F: usize>(x: &[[f64; F]], y: &[f64], rows: &[usize], alpha: f64) -> Self {
        let n = rows.len().max(1) as f64;
        let mean: Vec<f64> = (0..F)
            .map(|j| rows.iter().map(|&i| x[i][j]).sum::<f64>() / n)
            .collect();
        let scale: Vec<f64> = (0..F)
            .map(|j| {
                let var = rows
                    .iter()
                    .map(|&i| (x[i][j] - mean[j]).powi(2))
                    .sum::<f64>()
                    / n;
                if var > 1e-24 { var.sqrt() } else { 0.0 }
            })
            .collect();
        let standardise = |i: usize, j: usize| {
            if scale[j] == 0.0 {
                0.0
            } else {
                (x[i][j] - mean[j]) / scale[j]
            }
        };
        let design = DMatrix::from_fn(rows.len(), F, |r, j| standardise(rows[r], j));
        let y_mean = rows.iter().map(|&i| y[i]).sum::<f64>() / n;
        let centred = DVector::from_iterator(rows.len(), rows.iter().map(|&i| y[i] - y_mean));
        let gram = design.transpose() * &design + DMatrix::identity(F, F) * alpha;
        let rhs = design.transpose() * centred;
        // The penalty makes the Gram matrix positive definite.
        let weights = gram
            .cholesky()
            .map(|c| c.solve(&rhs))
            .unwrap_or_else(|| DVector::zeros(F));
        Self {
            mean,
            scale,
            weights,
            intercept: y_mean,
        }
    }

    /// Predicts one feature row.
    pub fn predict<const F: usize>(&self, row: &[f64; F]) -> f64 {
        self.intercept
            + (0..F)
                .filter(|&j| self.scale[j] != 0.0)
                .map(|j| self.weights[j] * (row[j] - self.mean[j]) / self.scale[j])
                .sum::<f64>()
    }

    fn predict_rows<const F: usize>(&self, x: &[[f64; F]], rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&i| self.predict(&x[i])).collect()
    }
}

/// The Yeo-Johnson transform of `y` with exponent `lambda`.
pub fn yeo_johnson(y: f64, lambda: f64) -> f64 {
    if y >= 0.0 {
        if lambda.abs() < 1e-12 {
            y.ln_1p()
        } else {
            ((y + 1.0).powf(lambda) - 1.0) / lambda
        }
    } else if (lambda - 2.0).abs() < 1e-12 {
        -(-y).ln_1p()
    } else {
        -((1.0 - y).powf(2.0 - lambda) - 1.0) / (2.0 - lambda)
    }
}

/// The maximum-likelihood Yeo-Johnson exponent of `values` (golden-section search on
/// `[-5, 5]`, as scipy's `yeojohnson_normmax` brackets it).
pub fn yeo_johnson_lambda(values: &[f64]) -> f64 {
    let log_likelihood = |lambda: f64| {
        let n = values.len() as f64;
        let t: Vec<f64> = values.iter().map(|&y| yeo_johnson(y, lambda)).collect();
        let mean = t.iter().sum::<f64>() / n;
        let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let jacobian: f64 = values.iter().map(|&y| y.signum() * y.abs().ln_1p()).sum();
        -0.5 * n * var.max(1e-300).ln() + (lambda - 1.0) * jacobian
    };
    let (mut lo, mut hi) = (-5.0f64, 5.0f64);
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let a = hi - ratio * (hi - lo);
        let b = lo + ratio * (hi - lo);
        if log_likelihood(a) > log_likelihood(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    (lo + hi) / 2.0
}

/// A seeded Fisher-Yates shuffle (SplitMix64 as the generator).
fn shuffle(items: &mut [usize], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
