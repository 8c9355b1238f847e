//! Aggregators: from the paired activations of one layer to one direction.
//!
//! With `δ_i = h(x_i⁺) − h(x_i⁻)` (in f64):
//! - [`Method::MeanDiff`]: `v = mean_i δ_i`, raw (it carries the magnitude).
//! - [`Method::Pca`]: the first principal component of the symmetrised set `{±δ_i}` without
//!   centring (steering-vectors' `pca_aggregator`), unit length, signed so `mean_i δ_i·v > 0`.
//! - [`Method::PcaCentered`]: the first principal component of `{δ_i}` after subtracting
//!   their mean (repeng's `pca_diff`, which runs sklearn's centring PCA), unit length, signed
//!   by majority vote of `proj(h⁺) > proj(h⁻)` (ties: by the sign of `mean δ·v`).
//! - [`Method::Probe`]: logistic regression without intercept on the pairs centred at their
//!   midpoints (`±δ_i/2` labelled `±1`; steering-vectors' `logistic_aggregator`), L2-penalised
//!   as scikit-learn's default (`C = 1`), fitted by Newton's method; unit length.

use std::fmt;
use std::str::FromStr;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the paired activations of a layer become a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Mean of the differences (raw).
    MeanDiff,
    /// Uncentred PCA of `±δ`, sign-fixed (unit).
    Pca,
    /// Centred PCA of `δ`, sign by majority vote (unit; repeng's default).
    PcaCentered,
    /// Logistic-probe direction (unit).
    Probe,
}

impl Method {
    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Method::MeanDiff => "mean-diff",
            Method::Pca => "pca",
            Method::PcaCentered => "pca-centered",
            Method::Probe => "probe",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        [
            Method::MeanDiff,
            Method::Pca,
            Method::PcaCentered,
            Method::Probe,
        ]
        .into_iter()
        .find(|m| m.name() == text)
        .ok_or_else(|| Error::InvalidArgument {
            what: "method".into(),
            reason: format!("`{text}` is not one of mean-diff, pca, pca-centered, probe"),
        })
    }
}

/// The direction of one layer's paired activations (`[n, d]` row-major each).
pub fn aggregate(method: Method, positive: &[f32], negative: &[f32], d: usize) -> Result<Vec<f32>> {
    let deltas = differences(positive, negative, d)?;
    let v = match method {
        Method::MeanDiff => mean_rows(&deltas),
        Method::Pca => {
            let v = top_component(&deltas)?;
            let mean = mean_rows(&deltas);
            if mean.dot(&v) < 0.0 { -v } else { v }
        }
        Method::PcaCentered => {
            let mean = mean_rows(&deltas);
            let mut centred = deltas.clone();
            for mut row in centred.row_iter_mut() {
                row -= mean.transpose();
            }
            let v = top_component(&centred)?;
            let proj = &deltas * &v;
            let n_up = proj.iter().filter(|&&p| p > 0.0).count();
            let n_down = proj.iter().filter(|&&p| p < 0.0).count();
            let flip = n_down > n_up || (n_down == n_up && mean.dot(&v) < 0.0);
            if flip { -v } else { v }
        }
        Method::Probe => {
            let half = &deltas * 0.5;
            let w = fit_logistic(&half, 1.0)?;
            let norm = w.norm();
            if norm == 0.0 {
                return Err(Error::InvalidArgument {
                    what: "probe".into(),
                    reason: "the logistic fit is zero: the two sides are identical".into(),
                });
            }
            w / norm
        }
    };
    Ok(v.iter().map(|&x| x as f32).collect())
}

/// `δ_i = h⁺_i − h⁻_i` as an `[n, d]` f64 matrix.
pub(crate) fn differences(positive: &[f32], negative: &[f32], d: usize) -> Result<DMatrix<f64>> {
    if d == 0
        || !positive.len().is_multiple_of(d)
        || positive.len() != negative.len()
        || positive.is_empty()
    {
        return Err(Error::Unpaired {
            what: format!("activations {d} wide"),
            n_positive: positive.len() / d.max(1),
            n_negative: negative.len() / d.max(1),
            reason: "both sides need the same number of rows, at least one".into(),
        });
    }
    let n = positive.len() / d;
    Ok(DMatrix::from_fn(n, d, |i, j| {
        positive[i * d + j] as f64 - negative[i * d + j] as f64
    }))
}

/// Column means of an `[n, d]` matrix.
pub(crate) fn mean_rows(m: &DMatrix<f64>) -> DVector<f64> {
    let n = m.nrows() as f64;
    DVector::from_iterator(m.ncols(), m.column_iter().map(|c| c.sum() / n))
}

/// The top right-singular vector of `m` (unit), through the smaller Gram matrix.
fn top_component(m: &DMatrix<f64>) -> Result<DVector<f64>> {
    let (n, d) = m.shape();
    let v = if n < d {
        let gram = m * m.transpose();
        let eig = gram.symmetric_eigen();
        let top = argmax(eig.eigenvalues.as_slice());
        m.transpose() * eig.eigenvectors.column(top)
    } else {
        let gram = m.transpose() * m;
        let eig = gram.symmetric_eigen();
        let top = argmax(eig.eigenvalues.as_slice());
        eig.eigenvectors.column(top).into_owned()
    };
    let norm = v.norm();
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "pca".into(),
            reason: "the differences have no variance to take a component of".into(),
        });
    }
    Ok(v / norm)
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Logistic regression without intercept on rows `x_i` labelled `+1` and `−x_i` labelled
/// `−1`: minimises `½‖w‖² + 2C Σ log(1 + exp(−w·x_i))` by Newton's method.
pub(crate) fn fit_logistic(x: &DMatrix<f64>, c: f64) -> Result<DVector<f64>> {
    let d = x.ncols();
    let mut w = DVector::<f64>::zeros(d);
    for _ in 0..100 {
        let z = x * &w;
        // sigma(-z) and sigma(z)(1 - sigma(z)) per row.
        let s_neg: Vec<f64> = z.iter().map(|&z| 1.0 / (1.0 + z.exp())).collect();
        let mut grad = w.clone();
        let mut hess = DMatrix::<f64>::identity(d, d);
        for (i, &s) in s_neg.iter().enumerate() {
            let row = x.row(i).transpose();
            grad -= &row * (2.0 * c * s);
            let curvature = 2.0 * c * s * (1.0 - s);
            hess.ger(curvature, &row, &row, 1.0);
        }
        let step = hess
            .cholesky()
            .ok_or_else(|| Error::InvalidArgument {
                what: "probe".into(),
                reason: "the Newton system is not positive definite (non-finite activations?)"
                    .into(),
            })?
            .solve(&grad);
        w -= &step;
        if step.norm() <= 1e-10 * (1.0 + w.norm()) {
            break;
        }
    }
    Ok(w)
}
