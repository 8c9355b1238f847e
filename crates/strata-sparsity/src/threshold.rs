//! The per-layer CETT threshold: [`LayerSolver`] holds one layer's dense activations on the
//! device and finds the largest neuron-output-norm threshold whose dropped neurons change the
//! MLP output by at most a relative L2 error `c` (mean over tokens), by binary search over a
//! linear grid (`methods/sparsity.md`, "Per-layer threshold for target c").

use std::collections::HashMap;

use burn::tensor::{Int, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the per-layer thresholds are solved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdConfig {
    /// Linear grid candidates from the smallest neuron output norm to the quantile below
    /// (the reference code: 65,536).
    pub grid_size: usize,
    /// The top of the grid: this quantile of a strided subsample of the norms (0.99: outliers
    /// are skipped, so a layer's sparsity tops out near 99%).
    pub quantile: f64,
    /// The threshold used for a CETT target of exactly 0 (the reference code: 1e-7, so only
    /// neurons whose output norm is below it count as inactive).
    pub zero_cett_threshold: f64,
    /// Reproduce the reference code's index wraparound: when even the smallest grid value
    /// drops too much, index `-1` picks the *largest* grid value. Off by default, when the
    /// smallest grid value is used instead (with the strict `<` it drops nothing).
    pub wraparound: bool,
}

impl Default for ThresholdConfig {
    /// The reference code's grid (65,536 points up to the 99th percentile, 1e-7 at CETT 0),
    /// with the wraparound guarded.
    fn default() -> Self {
        Self {
            grid_size: 65_536,
            quantile: 0.99,
            zero_cett_threshold: 1e-7,
            wraparound: false,
        }
    }
}

impl ThresholdConfig {
    /// Fails unless the grid has at least 2 points, the quantile is in `(0, 1]` and the
    /// zero-target threshold is positive and finite.
    pub fn validate(&self) -> Result<()> {
        if self.grid_size < 2 {
            return Err(Error::InvalidConfig {
                what: "grid_size",
                value: self.grid_size.to_string(),
                reason: "the threshold grid needs at least 2 points".into(),
            });
        }
        if !(self.quantile > 0.0 && self.quantile <= 1.0) {
            return Err(Error::InvalidConfig {
                what: "quantile",
                value: self.quantile.to_string(),
                reason: "the top of the grid is a quantile in (0, 1]".into(),
            });
        }
        if !(self.zero_cett_threshold.is_finite() && self.zero_cett_threshold > 0.0) {
            return Err(Error::InvalidConfig {
                what: "zero_cett_threshold",
                value: self.zero_cett_threshold.to_string(),
                reason: "must be a positive finite norm".into(),
            });
        }
        Ok(())
    }
}

/// One layer's threshold for one CETT target, and what it drops from the dense activations
/// it was solved on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerThreshold {
    /// The CETT target `c`.
    pub target: f64,
    /// The threshold `eps` on the neuron output norm `|a_i| * ||W_out[:, i]||`: neurons
    /// strictly below it are dropped.
    pub threshold: f64,
    /// The grid index the threshold is (`None` for a target of 0, which uses the fixed
    /// zero-target threshold).
    pub grid_idx: Option<usize>,
    /// Sum over tokens of the per-token CETT that dropping the neurons below `threshold`
    /// causes (divide by `n_tokens` for the layer CETT).
    pub sum_cett: f64,
    /// Tokens (rows) the threshold was solved on.
    pub n_tokens: usize,
    /// (token, neuron) pairs strictly below the threshold.
    pub n_dropped: u64,
    /// (token, neuron) pairs in all.
    pub n_pairs: u64,
}

impl LayerThreshold {
    /// Mean over tokens of the per-token CETT at the threshold.
    pub fn cett(&self) -> f64 {
        self.sum_cett / self.n_tokens.max(1) as f64
    }

    /// Fraction of (token, neuron) pairs kept: `1 - n_dropped / n_pairs`.
    pub fn activation_ratio(&self) -> f64 {
        1.0 - self.n_dropped as f64 / self.n_pairs.max(1) as f64
    }
}

/// One layer's dense activations `A` (`[n_tokens, d_mlp]`, the value at
/// `blocks.{l}.mlp.hook_post` of the tokens that count) and its MLP output weight `W`
/// (`[d_mlp, d_model]`, row `i` what neuron `i` writes), on the device, with the neuron
/// output norms and the grid derived from them.
///
/// CETT values at grid points are remembered, so solving for many targets on the same
/// activations (the outer PPL-p% bisection) repeats no matrix product.
#[derive(Debug)]
pub struct LayerSolver<B: Backend> {
    acts: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    /// `|A| * ||W_i||`, `[n_tokens, d_mlp]`.
    norms: Tensor<B, 2>,
    /// `1 / ||A W||` per token, `[n_tokens, 1]`.
    inv_out_norm: Tensor<B, 2>,
    grid_min: f64,
    grid_max: f64,
    config: ThresholdConfig,
    n_tokens: usize,
    d_mlp: usize,
    memo: HashMap<usize, f64>,
}

/// The L2 norm of each row of `weight` (`[d_mlp, d_model]`) as `[1, d_mlp]`: what neuron `i`
/// writes per unit of activation.
pub fn neuron_weight_norms<B: Backend>(weight: Tensor<B, 2>) -> Tensor<B, 2> {
    let [d_mlp, _] = weight.dims();
    weight.square().sum_dim(1).sqrt().reshape([1, d_mlp])
}

impl<B: Backend> LayerSolver<B> {
    /// Prepares the solve: the neuron output norms, the full output norm per token, and the
    /// grid from the smallest norm to the configured quantile of a strided subsample of them
    /// (stride `max(numel / grid_size, 1)`, linear interpolation between order statistics).
    pub fn new(acts: Tensor<B, 2>, weight: Tensor<B, 2>, config: &ThresholdConfig) -> Result<Self> {
        config.validate()?;
        let [n_tokens, d_mlp] = acts.dims();
        let [w_rows, _] = weight.dims();
        if n_tokens == 0 || d_mlp == 0 {
            return Err(Error::Shape {
                what: "the activations".into(),
                expected: "[n_tokens >= 1, d_mlp >= 1]".into(),
                found: vec![n_tokens, d_mlp],
            });
        }
        if w_rows != d_mlp {
            return Err(Error::Shape {
                what: "the MLP output weight".into(),
                expected: format!("[{d_mlp}, d_model] (one row per neuron)"),
                found: weight.dims().to_vec(),
            });
        }
        let norms = acts.clone().abs() * neuron_weight_norms(weight.clone());
        let out_norm = acts
            .clone()
            .matmul(weight.clone())
            .square()
            .sum_dim(1)
            .sqrt();
        // A token whose MLP output is exactly zero has CETT 0 for any dropped set that is
        // zero too; the floor keeps the ratio finite.
        let inv_out_norm = out_norm.clamp_min(f32::MIN_POSITIVE).recip();
        let numel = n_tokens * d_mlp;
        let grid_min = f64::from(scalar(norms.clone().min())?);
        let stride = (numel / config.grid_size).max(1);
        let flat = norms.clone().reshape([numel]);
        let sub = if stride == 1 {
            flat
        } else {
            let idx = Tensor::<B, 1, Int>::arange_step(0..numel as i64, stride, &norms.device());
            flat.select(0, idx)
        };
        let n_sub = sub.dims()[0];
        let sorted = sub.sort(0);
        let pos = config.quantile * (n_sub - 1) as f64;
        let below = pos.floor() as usize;
        let above = (below + 1).min(n_sub - 1);
        let two = sorted
            .narrow(0, below, above + 1 - below)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|e| Error::NonFinite {
                what: format!("reading the grid quantile: {e:?}"),
                value: f64::NAN,
            })?;
        let (lo, hi) = (f64::from(two[0]), f64::from(*two.last().unwrap_or(&two[0])));
        let grid_max = lo + (hi - lo) * (pos - below as f64);
        for (what, value) in [
            ("the smallest neuron output norm", grid_min),
            ("the grid top", grid_max),
        ] {
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    what: what.into(),
                    value,
                });
            }
        }
        Ok(Self {
            acts,
            weight,
            norms,
            inv_out_norm,
            grid_min,
            grid_max,
            config: config.clone(),
            n_tokens,
            d_mlp,
            memo: HashMap::new(),
        })
    }

    /// Tokens (rows) of the activations.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// Neurons of the layer.
    pub fn d_mlp(&self) -> usize {
        self.d_mlp
    }

    /// Grid value `idx`: `min + (top - min) * idx / (grid_size - 1)` in f64, rounded to f32
    /// (the precision the norms are compared in).
    pub fn grid_value(&self, idx: usize) -> f64 {
        let t = idx as f64 / (self.config.grid_size - 1) as f64;
        f64::from((self.grid_min + (self.grid_max - self.grid_min) * t) as f32)
    }

    /// The search's CETT at grid point `idx`: mean over tokens of
    /// `||A' W|| / ||A W||`, where `A'` keeps the entries whose norm is at most the grid
    /// value (the dropped tail). Remembered per index.
    pub fn cett_at(&mut self, idx: usize) -> Result<f64> {
        if let Some(&v) = self.memo.get(&idx) {
            return Ok(v);
        }
        let g = self.grid_value(idx) as f32;
        let keep_in_tail = self.norms.clone().greater_elem(g);
        let sum = self.sum_tail_cett(keep_in_tail)?;
        let cett = sum / self.n_tokens as f64;
        self.memo.insert(idx, cett);
        Ok(cett)
    }

    /// Sum over tokens of the per-token CETT of dropping the entries *not* in `outside`
    /// (`outside` is true where an entry is kept in the model).
    fn sum_tail_cett(&self, outside: Tensor<B, 2, burn::tensor::Bool>) -> Result<f64> {
        let tail = self.acts.clone().mask_fill(outside, 0.0);
        let err = tail.matmul(self.weight.clone()).square().sum_dim(1).sqrt();
        let sum = f64::from(scalar((err * self.inv_out_norm.clone()).sum())?);
        if !sum.is_finite() {
            return Err(Error::NonFinite {
                what: "the CETT of a layer".into(),
                value: sum,
            });
        }
        Ok(sum)
    }

    /// The threshold for CETT target `target` (in `[0, 1]`): the largest grid value whose
    /// CETT is at most the target, by binary search over the grid, and what it drops.
    pub fn solve(&mut self, target: f64) -> Result<LayerThreshold> {
        if !(0.0..=1.0).contains(&target) {
            return Err(Error::InvalidCett { value: target });
        }
        if target == 0.0 {
            return self.evaluate(target, self.config.zero_cett_threshold, None);
        }
        let n = self.config.grid_size;
        let (mut lo, mut hi) = (0usize, n - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.cett_at(mid)? > target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let idx = match lo {
            0 if self.config.wraparound => n - 1,
            0 => 0,
            lo => lo - 1,
        };
        self.evaluate(target, self.grid_value(idx), Some(idx))
    }

    /// What threshold `threshold` drops: pairs strictly below it and the CETT that causes.
    pub fn evaluate(
        &self,
        target: f64,
        threshold: f64,
        grid_idx: Option<usize>,
    ) -> Result<LayerThreshold> {
        let dropped = self.norms.clone().lower_elem(threshold as f32);
        let n_dropped = count(dropped.clone())?;
        let sum_cett = self.sum_tail_cett(dropped.bool_not())?;
        Ok(LayerThreshold {
            target,
            threshold,
            grid_idx,
            sum_cett,
            n_tokens: self.n_tokens,
            n_dropped,
            n_pairs: (self.n_tokens * self.d_mlp) as u64,
        })
    }

    /// Exact zeros among the activations (the zero-fraction sparsity of ReLU models).
    pub fn n_exact_zero(&self) -> Result<u64> {
        count(self.acts.clone().equal_elem(0.0))
    }
}

/// The threshold of one layer for one CETT target, solved on `acts` (`[n_tokens, d_mlp]`)
/// and the layer's MLP output weight `weight` (`[d_mlp, d_model]`).
pub fn layer_threshold<B: Backend>(
    acts: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    target: f64,
    config: &ThresholdConfig,
) -> Result<LayerThreshold> {
    LayerSolver::new(acts, weight, config)?.solve(target)
}

/// Number of true entries of a mask.
pub(crate) fn count<B: Backend, const D: usize>(
    mask: Tensor<B, D, burn::tensor::Bool>,
) -> Result<u64> {
    let n = mask.int().sum().into_scalar();
    let n: i64 = burn::tensor::ElementConversion::elem(n);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The one value of a one-element float tensor.
fn scalar<B: Backend>(t: Tensor<B, 1>) -> Result<f32> {
    Ok(burn::tensor::ElementConversion::elem(t.into_scalar()))
}
