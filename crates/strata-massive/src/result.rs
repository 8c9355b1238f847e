//! What the massive-activation probe keeps: per layer, running sums of top-1 and median and
//! the largest entries, mergeable across shards.

use serde::{Deserialize, Serialize};
use strata_core::probe::Merge;

/// One large residual-stream entry and where it sits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MassiveEntry {
    /// The block whose `hook_resid_post` holds it.
    pub layer: usize,
    /// Index of the input sequence (in the order the sequences were measured).
    pub sequence: usize,
    /// Token position within the sequence.
    pub position: usize,
    /// The token id at that position.
    pub token_id: u32,
    /// Feature dimension.
    pub dim: usize,
    /// The signed value.
    pub value: f64,
    /// `|value| / median(|h|)` of the same sequence and layer.
    pub ratio_to_median: f64,
    /// Whether it passes both thresholds of the run.
    pub massive: bool,
}

/// One layer's statistics over every sequence seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// Block index.
    pub layer: usize,
    /// Sequences measured.
    pub n_sequences: usize,
    /// Sum over sequences of the largest `|h|` (for the mean top-1).
    pub sum_top1: f64,
    /// Sum over sequences of the second largest `|h|`.
    pub sum_top2: f64,
    /// Sum over sequences of the third largest `|h|`.
    pub sum_top3: f64,
    /// Sum over sequences of the exact median of `|h|` (all `pos x d_model` entries).
    pub sum_median: f64,
    /// The largest entries over all sequences, by magnitude, at most `top_k`.
    pub top: Vec<MassiveEntry>,
}

impl LayerStats {
    /// Mean top-1 magnitude over the sequences.
    pub fn mean_top1(&self) -> f64 {
        self.sum_top1 / self.n_sequences.max(1) as f64
    }

    /// Mean median magnitude over the sequences.
    pub fn mean_median(&self) -> f64 {
        self.sum_median / self.n_sequences.max(1) as f64
    }

    /// The tracked series of the dynamics paper (its Eq. 8): mean top-1 over mean median.
    pub fn ratio_of_means(&self) -> f64 {
        self.mean_top1() / self.mean_median()
    }

    /// The entries flagged massive.
    pub fn massive(&self) -> impl Iterator<Item = &MassiveEntry> {
        self.top.iter().filter(|e| e.massive)
    }
}

/// The measurement of a model over a set of sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MassiveResult {
    /// The thresholds and sizes used.
    pub config: crate::MassiveConfig,
    /// One entry per block, in order.
    pub layers: Vec<LayerStats>,
}

impl MassiveResult {
    /// Every massive entry of every layer, largest first within each layer.
    pub fn massive(&self) -> impl Iterator<Item = &MassiveEntry> {
        self.layers.iter().flat_map(LayerStats::massive)
    }
}

/// Keeps the `k` largest entries by magnitude (ties: the earlier sequence, position, dim).
pub(crate) fn keep_largest(entries: &mut Vec<MassiveEntry>, k: usize) {
    entries.sort_by(|a, b| {
        b.value
            .abs()
            .total_cmp(&a.value.abs())
            .then(a.sequence.cmp(&b.sequence))
            .then(a.position.cmp(&b.position))
            .then(a.dim.cmp(&b.dim))
    });
    entries.truncate(k);
}

impl Merge for MassiveResult {
    /// Combines the results of two disjoint sets of sequences measured with the same config;
    /// the second set's sequence indices follow the first's.
    fn merge(mut self, other: Self) -> Self {
        let offset = self.layers.first().map_or(0, |l| l.n_sequences);
        for (mine, theirs) in self.layers.iter_mut().zip(other.layers) {
            mine.n_sequences += theirs.n_sequences;
            mine.sum_top1 += theirs.sum_top1;
            mine.sum_top2 += theirs.sum_top2;
            mine.sum_top3 += theirs.sum_top3;
            mine.sum_median += theirs.sum_median;
            mine.top.extend(theirs.top.into_iter().map(|mut e| {
                e.sequence += offset;
                e
            }));
            keep_largest(&mut mine.top, self.config.top_k);
        }
        self
    }
}
