//! The functional test of massive activations (Sun et al., 2024, section 3): replace them
//! where they appear, by zero or by their mean value, and measure what the model loses.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::Result;
use strata_core::probe::{HookContext, Probe, Site};

use crate::MassiveResult;

/// What a massive activation is replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Replacement {
    /// Zero (the paper: perplexity explodes).
    Zero,
    /// The mean of the massive values measured at that layer and dimension (the paper:
    /// perplexity barely moves, so the values act as fixed biases).
    Mean,
}

/// Sets entries of one feature dimension of one block's `hook_resid_post` whose magnitude
/// exceeds `threshold` to `value`; everything else passes unchanged. Later blocks see the
/// replaced stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MassiveIntervention {
    /// The block whose output is changed.
    pub layer: usize,
    /// The feature dimension.
    pub dim: usize,
    /// Entries with `|a|` above this are replaced (the massive ones).
    pub threshold: f64,
    /// The value they get.
    pub value: f64,
}

impl MassiveIntervention {
    /// The intervention at the layer where the massive activations appear (the first layer
    /// holding as many massive entries as any layer does, so a lone early outlier does not
    /// count), on the dimension most of them sit in, replacing by zero or by their mean signed
    /// value; `None` when the result holds no massive entry.
    pub fn from_result(result: &MassiveResult, replacement: Replacement) -> Option<Self> {
        let most = result.layers.iter().map(|l| l.massive().count()).max()?;
        if most == 0 {
            return None;
        }
        let first = result.layers.iter().find(|l| l.massive().count() == most)?;
        let mut by_dim: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for e in first.massive() {
            by_dim.entry(e.dim).or_default().push(e.value);
        }
        let (dim, values) = by_dim.into_iter().max_by_key(|(_, v)| v.len())?;
        let value = match replacement {
            Replacement::Zero => 0.0,
            Replacement::Mean => values.iter().sum::<f64>() / values.len() as f64,
        };
        Some(Self {
            layer: first.layer,
            dim,
            threshold: result.config.abs_threshold,
            value,
        })
    }
}

impl<B: Backend> Probe<B> for MassiveIntervention {
    fn wants(&self, site: Site) -> bool {
        site == Site::ResidPost { layer: self.layer }
    }

    fn hook(
        &mut self,
        _site: Site,
        activation: Tensor<B, 3>,
        _ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        let [b, p, d] = activation.dims();
        if self.dim >= d {
            return Err(strata_core::Error::Probe {
                site: Site::ResidPost { layer: self.layer }.to_string(),
                reason: format!("dimension {} of a residual stream {d} wide", self.dim),
            });
        }
        let ranges = [0..b, 0..p, self.dim..self.dim + 1];
        let column = activation.clone().slice(ranges.clone());
        let massive = column.clone().abs().greater_elem(self.threshold);
        let replaced = column.mask_fill(massive, self.value);
        Ok(activation.slice_assign(ranges, replaced))
    }
}
