//! The two probes at `blocks.{l}.mlp.hook_post`: [`DenseCapture`] keeps the dense
//! activations of the label-bearing tokens on the device, [`ThresholdMask`] zeroes every
//! neuron whose output norm is under its layer's threshold.

use burn::tensor::{Tensor, backend::Backend};
use strata_core::probe::{HookContext, Probe, Site};
use strata_core::{Error as CoreError, Model, Result as CoreResult};

use crate::error::{Error, Result};
use crate::threshold::{count, neuron_weight_norms};

/// The rows of a `[batch, pos, d_mlp]` activation that predict a token inside the call:
/// every position but the last of each row, as `[batch * (pos - 1), d_mlp]` (`pos >= 2`).
fn label_rows<B: Backend>(activation: Tensor<B, 3>) -> Tensor<B, 2> {
    let [batch, pos, d] = activation.dims();
    activation
        .slice([0..batch, 0..pos - 1, 0..d])
        .reshape([batch * (pos - 1), d])
}

/// Keeps, per layer, the dense `blocks.{l}.mlp.hook_post` activations of the tokens that
/// carry a label (all positions but the last of each row) on the device, as
/// `[n_tokens, d_mlp]`. Changes nothing. Refuses padded calls.
#[derive(Debug)]
pub struct DenseCapture<B: Backend> {
    /// Per layer, the activations of the last call (`None` before a call reached it).
    pub layers: Vec<Option<Tensor<B, 2>>>,
}

impl<B: Backend> DenseCapture<B> {
    /// A probe for a model of `n_layers` blocks.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }
}

impl<B: Backend> Probe<B> for DenseCapture<B> {
    fn wants(&self, site: Site) -> bool {
        matches!(site, Site::MlpPost { layer } if layer < self.layers.len())
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> CoreResult<Tensor<B, 3>> {
        if ctx.padding_mask.is_some() {
            return Err(CoreError::Probe {
                site: site.to_string(),
                reason: "sparsity thresholds need unpadded sequences".into(),
            });
        }
        if let Site::MlpPost { layer } = site
            && activation.dims()[1] >= 2
            && let Some(slot) = self.layers.get_mut(layer)
        {
            *slot = Some(label_rows(activation.clone()));
        }
        Ok(activation)
    }
}

/// The intervention of the sparse pass: at every `blocks.{l}.mlp.hook_post`, activations
/// `a_i` with `|a_i| * ||W_out[:, i]|| < eps_l` (strict) are set to zero before the down
/// projection. Counts, per layer, the (token, neuron) pairs it zeroed among the
/// label-bearing tokens of each call.
#[derive(Debug)]
pub struct ThresholdMask<B: Backend> {
    thresholds: Vec<f32>,
    weight_norms: Vec<Tensor<B, 2>>,
    /// Per layer, pairs zeroed among the label-bearing tokens, summed over calls.
    pub n_dropped: Vec<u64>,
    /// Per layer, label-bearing (token, neuron) pairs seen, summed over calls.
    pub n_pairs: Vec<u64>,
}

impl<B: Backend> ThresholdMask<B> {
    /// A mask with one threshold per block of `model` (`thresholds[l]` for block `l`).
    pub fn new(model: &Model<B>, thresholds: &[f64]) -> Result<Self> {
        let norms = weight_norms(model)?;
        Self::from_norms(norms, thresholds)
    }

    /// A mask from per-layer neuron weight norms (`[1, d_mlp]` each, see
    /// [`neuron_weight_norms`]) and one threshold per layer.
    pub fn from_norms(weight_norms: Vec<Tensor<B, 2>>, thresholds: &[f64]) -> Result<Self> {
        if weight_norms.len() != thresholds.len() {
            return Err(Error::Shape {
                what: "the thresholds".into(),
                expected: format!("{} values (one per layer)", weight_norms.len()),
                found: vec![thresholds.len()],
            });
        }
        if let Some((l, t)) = thresholds
            .iter()
            .enumerate()
            .find(|(_, t)| !t.is_finite() || **t < 0.0)
        {
            return Err(Error::InvalidConfig {
                what: "threshold",
                value: t.to_string(),
                reason: format!("layer {l}: a threshold is a finite norm >= 0"),
            });
        }
        let n = thresholds.len();
        Ok(Self {
            thresholds: thresholds.iter().map(|&t| t as f32).collect(),
            weight_norms,
            n_dropped: vec![0; n],
            n_pairs: vec![0; n],
        })
    }
}

/// Per block of `model`, the neuron weight norms `||W_out[:, i]||` as `[1, d_mlp]`.
pub fn weight_norms<B: Backend>(model: &Model<B>) -> Result<Vec<Tensor<B, 2>>> {
    (0..model.config().n_layers)
        .map(|layer| {
            model
                .mlp_output_weight(layer)
                .map(neuron_weight_norms)
                .map_err(|e| Error::NoMlp {
                    model: model.source_path().to_path_buf(),
                    layer,
                    reason: e.to_string(),
                })
        })
        .collect()
}

impl<B: Backend> Probe<B> for ThresholdMask<B> {
    fn wants(&self, site: Site) -> bool {
        matches!(site, Site::MlpPost { layer } if layer < self.thresholds.len())
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        _ctx: &HookContext<B>,
    ) -> CoreResult<Tensor<B, 3>> {
        let Site::MlpPost { layer } = site else {
            return Ok(activation);
        };
        let [batch, pos, d] = activation.dims();
        let norms = &self.weight_norms[layer];
        if norms.dims()[1] != d {
            return Err(CoreError::Probe {
                site: site.to_string(),
                reason: format!(
                    "{d} neurons, but the mask was made for {} (a different model?)",
                    norms.dims()[1]
                ),
            });
        }
        let dropped = (activation.clone().abs() * norms.clone().reshape([1, 1, d]))
            .lower_elem(self.thresholds[layer]);
        if pos >= 2 {
            let labelled = dropped.clone().slice([0..batch, 0..pos - 1, 0..d]);
            let n = count(labelled).map_err(|e| CoreError::Probe {
                site: site.to_string(),
                reason: e.to_string(),
            })?;
            self.n_dropped[layer] += n;
            self.n_pairs[layer] += (batch * (pos - 1) * d) as u64;
        }
        Ok(activation.mask_fill(dropped, 0.0))
    }
}
