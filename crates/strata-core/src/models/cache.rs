//! [`KvCache`]: keys, values and padding of the tokens a decoder has already seen.

use burn::tensor::backend::Backend;

use super::attention::LayerCache;

/// Per-layer keys and values plus the padding mask of every cached position.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    /// One slot per layer, filled by the first forward call.
    pub layers: Vec<Option<LayerCache<B>>>,
    /// Per row, 1.0 for each cached real token and 0.0 for padding.
    pub mask: Vec<Vec<f32>>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model with `n_layers` blocks.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            mask: Vec::new(),
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.mask.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
