//! What a sparsity measurement keeps: sums and counts per layer and per window, so results of
//! disjoint sets of windows [`Merge`] exactly; means and ratios are methods.

use serde::{Deserialize, Serialize};
use strata_core::eval::Perplexity;
use strata_core::probe::Merge;

/// One layer at one CETT target, summed over windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// Block index.
    pub layer: usize,
    /// Sum over windows of the layer's threshold `eps_l` (solved per window on its dense
    /// activations).
    pub sum_threshold: f64,
    /// Sum over label-bearing tokens of the per-token CETT the threshold causes on the dense
    /// activations.
    pub sum_cett: f64,
    /// Label-bearing tokens the thresholds were solved on.
    pub n_tokens: usize,
    /// (token, neuron) pairs under the threshold in the dense activations.
    pub n_dropped_dense: u64,
    /// (token, neuron) pairs of the dense activations.
    pub n_pairs_dense: u64,
    /// (token, neuron) pairs zeroed during the sparse pass (the activations the sparse model
    /// computed, with every earlier layer already sparsified).
    pub n_dropped: u64,
    /// (token, neuron) pairs of the sparse pass.
    pub n_pairs: u64,
    /// Exact zeros among the dense activations (the zero-fraction sparsity of ReLU models,
    /// as ProSparse reports it; not CETT-based).
    pub n_exact_zero: u64,
}

impl LayerSparsity {
    /// An empty record for block `layer`.
    pub fn empty(layer: usize) -> Self {
        Self {
            layer,
            sum_threshold: 0.0,
            sum_cett: 0.0,
            n_tokens: 0,
            n_dropped_dense: 0,
            n_pairs_dense: 0,
            n_dropped: 0,
            n_pairs: 0,
            n_exact_zero: 0,
        }
    }

    /// Fraction of neurons the sparse model computes: `1 - n_dropped / n_pairs`.
    pub fn activation_ratio(&self) -> f64 {
        1.0 - self.n_dropped as f64 / self.n_pairs.max(1) as f64
    }

    /// `1 - activation_ratio`.
    pub fn sparsity(&self) -> f64 {
        1.0 - self.activation_ratio()
    }

    /// The activation ratio of the thresholds on the dense activations they were solved on.
    pub fn dense_activation_ratio(&self) -> f64 {
        1.0 - self.n_dropped_dense as f64 / self.n_pairs_dense.max(1) as f64
    }

    /// Fraction of exact zeros among the dense activations.
    pub fn zero_fraction(&self) -> f64 {
        self.n_exact_zero as f64 / self.n_pairs_dense.max(1) as f64
    }

    /// Mean over tokens of the per-token CETT at the thresholds.
    pub fn cett(&self) -> f64 {
        self.sum_cett / self.n_tokens.max(1) as f64
    }
}

/// Activation sparsity of a model at one CETT target over a set of windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparsityResult {
    /// The CETT target shared by all layers.
    pub cett: f64,
    /// Tokens per window (one forward pass each).
    pub window: usize,
    /// Windows measured.
    pub n_windows: usize,
    /// Negative log-likelihood of the dense model over the windows.
    pub dense: Perplexity,
    /// Negative log-likelihood of the sparse model over the windows.
    pub sparse: Perplexity,
    /// Sum over windows of the per-window perplexity ratio `exp(L_sparse - L_dense)`
    /// (mean token cross-entropies of that window).
    pub sum_ppl_ratio: f64,
    /// One entry per block, in order.
    pub layers: Vec<LayerSparsity>,
}

impl SparsityResult {
    /// Mean over windows of the per-window perplexity ratio (the reference code's PPL ratio,
    /// not the ratio of pooled perplexities).
    pub fn ppl_ratio(&self) -> f64 {
        self.sum_ppl_ratio / self.n_windows.max(1) as f64
    }

    /// Perplexity of the dense model over all windows.
    pub fn dense_ppl(&self) -> f64 {
        self.dense.ppl()
    }

    /// Perplexity of the sparse model over all windows.
    pub fn sparse_ppl(&self) -> f64 {
        self.sparse.ppl()
    }

    /// Unweighted mean over layers of the activation ratio.
    pub fn mean_activation_ratio(&self) -> f64 {
        mean(self.layers.iter().map(LayerSparsity::activation_ratio))
    }

    /// Unweighted mean over layers of the sparsity (`1 - mean_activation_ratio`).
    pub fn mean_sparsity(&self) -> f64 {
        1.0 - self.mean_activation_ratio()
    }

    /// Unweighted mean over layers of the exact-zero fraction.
    pub fn mean_zero_fraction(&self) -> f64 {
        mean(self.layers.iter().map(LayerSparsity::zero_fraction))
    }

    /// Per layer, the threshold averaged over windows (the fixed, out-of-sample thresholds of
    /// the reference's downstream evaluation).
    pub fn mean_thresholds(&self) -> Vec<f64> {
        self.layers
            .iter()
            .map(|l| l.sum_threshold / self.n_windows.max(1) as f64)
            .collect()
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

impl Merge for SparsityResult {
    /// Combines the results of two disjoint sets of windows measured at the same CETT target
    /// (thresholds are solved per window, so nothing is lost).
    fn merge(mut self, other: Self) -> Self {
        self.n_windows += other.n_windows;
        self.dense = self.dense.merge(other.dense);
        self.sparse = self.sparse.merge(other.sparse);
        self.sum_ppl_ratio += other.sum_ppl_ratio;
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            mine.sum_threshold += theirs.sum_threshold;
            mine.sum_cett += theirs.sum_cett;
            mine.n_tokens += theirs.n_tokens;
            mine.n_dropped_dense += theirs.n_dropped_dense;
            mine.n_pairs_dense += theirs.n_pairs_dense;
            mine.n_dropped += theirs.n_dropped;
            mine.n_pairs += theirs.n_pairs;
            mine.n_exact_zero += theirs.n_exact_zero;
        }
        self
    }
}
