//! Comparing directions: cosine similarity across layers of one set, and between two sets
//! (two checkpoints, a base and a fine-tuned model) layer by layer.

use serde::{Deserialize, Serialize};

use crate::vectors::SteeringVectors;

/// `cos(a, b)`, in f64; 0 when either is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// One cell of a cosine matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineCell {
    /// Block of the first set's vector.
    pub layer_a: usize,
    /// Block of the second set's vector.
    pub layer_b: usize,
    /// Their cosine similarity.
    pub cosine: f64,
}

/// Every pair of layers of `a` and `b` (pass the same set twice for the within-model
/// matrix); vectors of different widths are skipped.
pub fn cosine_matrix(a: &SteeringVectors, b: &SteeringVectors) -> Vec<CosineCell> {
    let mut cells = Vec::new();
    for (&la, va) in &a.layers {
        for (&lb, vb) in &b.layers {
            if va.len() == vb.len() {
                cells.push(CosineCell {
                    layer_a: la,
                    layer_b: lb,
                    cosine: cosine(va, vb),
                });
            }
        }
    }
    cells
}

/// The diagonal: `cos(a_l, b_l)` for every block both sets hold, of equal widths.
pub fn layer_cosines(a: &SteeringVectors, b: &SteeringVectors) -> Vec<CosineCell> {
    cosine_matrix(a, b)
        .into_iter()
        .filter(|c| c.layer_a == c.layer_b)
        .collect()
}
