//! Layer scores: how well a layer's activations separate the two sides of a contrastive set.
//!
//! - **separation** (the default, Fisher-like): project every activation on the unit
//!   mean-difference direction `û = (μ⁺ − μ⁻)/‖μ⁺ − μ⁻‖`; the score is the distance of the
//!   two projected means over the pooled standard deviation of the projections,
//!   `(m⁺ − m⁻) / sqrt((s⁺² + s⁻²)/2)` (Cohen's d along `û`, sample variances). It is
//!   scale-free, so layers with larger residual norms are not favoured. It is computed on
//!   all pairs (in-sample), so with fewer pairs than dimensions it is optimistic.
//! - **probe accuracy**: a logistic probe (see [`crate::Method::Probe`]) fitted on the
//!   training pairs (every pair whose index is not `4 mod 5`), scored on the held-out fifth:
//!   an activation `h` is called positive when `(h − μ_train)·w > 0`, `μ_train` the mean of
//!   all training activations; the accuracy counts both sides of every held-out pair.
//! - **js**: the Jensen-Shannon divergence (nats) between `softmax(h⁺)` and `softmax(h⁻)` over
//!   hidden dimensions, averaged over pairs: the score the TA2 code meant to compute.
//! - **legacy_ta2**: what the TA2 code computes (`methods/steer.md`): PyTorch's `kl_div`
//!   given probabilities where it expects log-probabilities, which reduces to
//!   `mean_j(M_j log M_j − M_j²)` with `M = (softmax(h⁺) + softmax(h⁻))/2`, averaged over
//!   pairs. It depends on the mixture only, not on the contrast; kept for reproduction.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::aggregate::{fit_logistic, mean_rows};
use crate::error::{Error, Result};
use crate::extract::PairActivations;

/// The scores of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    /// The block.
    pub layer: usize,
    /// Fisher-like separation along the mean difference (unitless; larger separates more).
    pub separation: f64,
    /// Held-out accuracy of a logistic probe in [0, 1]; `None` with fewer than 5 pairs (no
    /// held-out fifth).
    pub probe_accuracy: Option<f64>,
    /// Mean Jensen-Shannon divergence of the softmaxed activations, in nats.
    pub js: f64,
    /// The TA2 code's mixture-only score (legacy, see the module doc).
    pub legacy_ta2: f64,
    /// `‖μ⁺ − μ⁻‖`: the norm of the raw mean-difference vector.
    pub mean_diff_norm: f64,
}

/// Scores every layer of a contrastive set.
pub fn score_layers(acts: &PairActivations) -> Result<Vec<LayerScore>> {
    acts.layers
        .iter()
        .zip(acts.positive.iter().zip(&acts.negative))
        .map(|(&layer, (pos, neg))| score_layer(layer, pos, neg, acts.d_model))
        .collect()
}

/// Scores one layer's `[n, d]` positive and negative activations.
pub fn score_layer(
    layer: usize,
    positive: &[f32],
    negative: &[f32],
    d: usize,
) -> Result<LayerScore> {
    let (pos, neg) = (to_matrix(positive, d)?, to_matrix(negative, d)?);
    if pos.nrows() != neg.nrows() {
        return Err(Error::Unpaired {
            what: format!("activations of layer {layer}"),
            n_positive: pos.nrows(),
            n_negative: neg.nrows(),
            reason: "both sides need the same number of rows".into(),
        });
    }
    let diff = mean_rows(&pos) - mean_rows(&neg);
    let mean_diff_norm = diff.norm();
    Ok(LayerScore {
        layer,
        separation: separation(&pos, &neg, &diff),
        probe_accuracy: probe_accuracy(&pos, &neg)?,
        js: mean_over_pairs(positive, negative, d, js_divergence),
        legacy_ta2: mean_over_pairs(positive, negative, d, legacy_ta2_score),
        mean_diff_norm,
    })
}

fn to_matrix(rows: &[f32], d: usize) -> Result<DMatrix<f64>> {
    if d == 0 || rows.is_empty() || !rows.len().is_multiple_of(d) {
        return Err(Error::InvalidArgument {
            what: "activations".into(),
            reason: format!("{} values are not whole rows of {d}", rows.len()),
        });
    }
    Ok(DMatrix::from_row_slice(
        rows.len() / d,
        d,
        &rows.iter().map(|&x| x as f64).collect::<Vec<_>>(),
    ))
}

fn separation(pos: &DMatrix<f64>, neg: &DMatrix<f64>, diff: &DVector<f64>) -> f64 {
    let norm = diff.norm();
    if norm == 0.0 {
        return 0.0;
    }
    let u = diff / norm;
    let (p, q) = (pos * &u, neg * &u);
    let var = |x: &DVector<f64>| {
        let n = x.len();
        if n < 2 {
            return 0.0;
        }
        let m = x.mean();
        x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64
    };
    let pooled = ((var(&p) + var(&q)) / 2.0).sqrt();
    let gap = p.mean() - q.mean();
    if pooled == 0.0 {
        return f64::INFINITY;
    }
    gap / pooled
}

/// Fits on pairs whose index is not `4 mod 5`, scores the rest.
fn probe_accuracy(pos: &DMatrix<f64>, neg: &DMatrix<f64>) -> Result<Option<f64>> {
    let n = pos.nrows();
    let test: Vec<usize> = (0..n).filter(|i| i % 5 == 4).collect();
    let train: Vec<usize> = (0..n).filter(|i| i % 5 != 4).collect();
    if test.is_empty() {
        return Ok(None);
    }
    let d = pos.ncols();
    let half = DMatrix::from_fn(train.len(), d, |r, j| {
        (pos[(train[r], j)] - neg[(train[r], j)]) / 2.0
    });
    let w = fit_logistic(&half, 1.0)?;
    let mut centre = DVector::<f64>::zeros(d);
    for &i in &train {
        centre += pos.row(i).transpose() + neg.row(i).transpose();
    }
    centre /= (2 * train.len()) as f64;
    let mut correct = 0;
    for &i in &test {
        if (pos.row(i).transpose() - &centre).dot(&w) > 0.0 {
            correct += 1;
        }
        if (neg.row(i).transpose() - &centre).dot(&w) < 0.0 {
            correct += 1;
        }
    }
    Ok(Some(correct as f64 / (2 * test.len()) as f64))
}

fn mean_over_pairs(pos: &[f32], neg: &[f32], d: usize, f: fn(&[f32], &[f32]) -> f64) -> f64 {
    let n = pos.len() / d;
    let sum: f64 = pos.chunks(d).zip(neg.chunks(d)).map(|(p, q)| f(p, q)).sum();
    sum / n as f64
}

/// `softmax(x)` in f64.
pub fn softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// `log softmax(x)` in f64.
fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    x.iter().map(|&v| v as f64 - lse).collect()
}

/// Jensen-Shannon divergence (nats) of `softmax(a)` and `softmax(b)`, computed from
/// log-probabilities so that underflowing entries (residual streams with massive
/// activations put almost all the mass on one dimension) stay finite.
pub fn js_divergence(a: &[f32], b: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(a), log_softmax(b));
    let mut total = 0.0;
    for (&x, &y) in lp.iter().zip(&lq) {
        let hi = x.max(y);
        let lm = hi + ((x - hi).exp() + (y - hi).exp()).ln() - std::f64::consts::LN_2;
        total += x.exp() * (x - lm) + y.exp() * (y - lm);
    }
    (total / 2.0).max(0.0)
}

/// The TA2 code's score of one pair: `mean_j(M_j log M_j − M_j²)`,
/// `M = (softmax(a) + softmax(b))/2`.
pub fn legacy_ta2_score(a: &[f32], b: &[f32]) -> f64 {
    let (p, q) = (softmax(a), softmax(b));
    let n = p.len() as f64;
    p.iter()
        .zip(&q)
        .map(|(x, y)| {
            let m = (x + y) / 2.0;
            let mlogm = if m > 0.0 { m * m.ln() } else { 0.0 };
            mlogm - m * m
        })
        .sum::<f64>()
        / n
}
