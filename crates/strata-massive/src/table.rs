//! The rows of the tables `strata massive` and `cargo xtask reproduce massive` write: plain
//! `Serialize` structs, one field per column, so every writer produces the same columns.

use serde::{Deserialize, Serialize};

use crate::{LayerStats, MassiveResult, SeriesResult};

/// One row of `massive.csv`: one layer of one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    /// Block index, as in `blocks.{l}.hook_resid_post`.
    pub layer: usize,
    /// Mean over sequences of the largest `|h|` (with one sequence: the largest `|h|`).
    pub top1: f64,
    /// Mean over sequences of the second largest `|h|`.
    pub top2: f64,
    /// Mean over sequences of the third largest `|h|`.
    pub top3: f64,
    /// Mean over sequences of the exact median `|h|`.
    pub median: f64,
    /// `top1 / median` (the ratio of the means).
    pub ratio: f64,
    /// The largest `|h|` over every sequence.
    pub max_abs: f64,
    /// The sequence holding it.
    pub sequence: usize,
    /// Its token position.
    pub token_pos: usize,
    /// Its feature dimension.
    pub dim: usize,
    /// Sequences measured.
    pub n_sequences: usize,
    /// Kept entries flagged massive.
    pub n_massive: usize,
}

/// One row of `top_activations.csv`: one of the largest entries of a layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopRow {
    /// Block index.
    pub layer: usize,
    /// Rank within the layer, from 1 (largest `|h|`).
    pub rank: usize,
    /// Input sequence.
    pub sequence: usize,
    /// Token position.
    pub token_pos: usize,
    /// Token id there.
    pub token_id: u32,
    /// The token's text.
    pub token: String,
    /// Feature dimension.
    pub dim: usize,
    /// The signed value.
    pub value: f64,
    /// `|value| / median(|h|)` of its sequence and layer.
    pub ratio_to_median: f64,
    /// Whether it passes both thresholds.
    pub massive: bool,
}

/// One row of `series.csv`: one layer of one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRow {
    /// Training step of the checkpoint.
    pub step: u64,
    /// Block index.
    pub layer: usize,
    /// Mean top-1 `|h|`.
    pub top1: f64,
    /// Mean median `|h|`.
    pub median: f64,
    /// `top1 / median`.
    pub ratio: f64,
    /// The largest `|h|` over every sequence.
    pub max_abs: f64,
    /// Its token position.
    pub token_pos: usize,
    /// Its feature dimension.
    pub dim: usize,
}

fn mean(sum: f64, layer: &LayerStats) -> f64 {
    sum / layer.n_sequences.max(1) as f64
}

/// The `massive.csv` rows of a measurement.
pub fn layer_rows(result: &MassiveResult) -> Vec<LayerRow> {
    result
        .layers
        .iter()
        .map(|l| {
            let top = l.top.first();
            LayerRow {
                layer: l.layer,
                top1: l.mean_top1(),
                top2: mean(l.sum_top2, l),
                top3: mean(l.sum_top3, l),
                median: l.mean_median(),
                ratio: l.ratio_of_means(),
                max_abs: top.map_or(0.0, |e| e.value.abs()),
                sequence: top.map_or(0, |e| e.sequence),
                token_pos: top.map_or(0, |e| e.position),
                dim: top.map_or(0, |e| e.dim),
                n_sequences: l.n_sequences,
                n_massive: l.massive().count(),
            }
        })
        .collect()
}

/// The `top_activations.csv` rows of a measurement; `token` spells a token id.
pub fn top_rows(result: &MassiveResult, token: &dyn Fn(u32) -> String) -> Vec<TopRow> {
    result
        .layers
        .iter()
        .flat_map(|l| l.top.iter().enumerate())
        .map(|(rank, e)| TopRow {
            layer: e.layer,
            rank: rank + 1,
            sequence: e.sequence,
            token_pos: e.position,
            token_id: e.token_id,
            token: token(e.token_id),
            dim: e.dim,
            value: e.value,
            ratio_to_median: e.ratio_to_median,
            massive: e.massive,
        })
        .collect()
}

/// The `series.csv` rows of a checkpoint series, by step then layer.
pub fn series_rows(series: &SeriesResult) -> Vec<SeriesRow> {
    series
        .checkpoints
        .iter()
        .flat_map(|c| {
            layer_rows(&c.result).into_iter().map(|r| SeriesRow {
                step: c.step,
                layer: r.layer,
                top1: r.top1,
                median: r.median,
                ratio: r.ratio,
                max_abs: r.max_abs,
                token_pos: r.token_pos,
                dim: r.dim,
            })
        })
        .collect()
}
