//! [`LayerSkip`]: literal layer skipping, the forward-pass half of "void" skipping.

use std::collections::BTreeMap;

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

use super::{HookContext, Probe, Site};

/// Makes chosen blocks pass their input through unchanged for chosen tokens:
/// `hook_resid_post = hook_resid_pre` where skipped. Later blocks then see the unchanged
/// stream, in the forward pass and in their KV cache (a skipped block's own keys and values
/// come from its input, which skipping does not change).
#[derive(Debug, Clone)]
pub struct LayerSkip<B: Backend> {
    /// Per layer, the row-major `[batch, pos]` skip mask of the next call (true = skip);
    /// `None` skips every token.
    skip: BTreeMap<usize, Option<Vec<bool>>>,
    /// The input of each skipped block during the current call.
    resid_pre: BTreeMap<usize, Tensor<B, 3>>,
}

impl<B: Backend> LayerSkip<B> {
    /// Skips the given layers for every token.
    pub fn layers(layers: impl IntoIterator<Item = usize>) -> Self {
        Self {
            skip: layers.into_iter().map(|l| (l, None)).collect(),
            resid_pre: BTreeMap::new(),
        }
    }

    /// Skips `layer` for the tokens where `mask` (row-major `[batch, pos]` of the next
    /// forward call) is true.
    pub fn set_mask(&mut self, layer: usize, mask: Vec<bool>) {
        self.skip.insert(layer, Some(mask));
    }

    /// Stops skipping `layer`.
    pub fn clear(&mut self, layer: usize) {
        self.skip.remove(&layer);
    }
}

impl<B: Backend> Probe<B> for LayerSkip<B> {
    fn wants(&self, site: Site) -> bool {
        matches!(site, Site::ResidPre { layer } | Site::ResidPost { layer } if self.skip.contains_key(&layer))
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        _ctx: &HookContext<B>,
    ) -> Tensor<B, 3> {
        match site {
            Site::ResidPre { layer } => {
                self.resid_pre.insert(layer, activation.clone());
                activation
            }
            Site::ResidPost { layer } => {
                let input = self
                    .resid_pre
                    .remove(&layer)
                    .expect("resid_pre precedes resid_post");
                match &self.skip[&layer] {
                    None => input,
                    Some(mask) => {
                        let [batch, pos, d] = activation.dims();
                        let mask = Tensor::<B, 2, Bool>::from_data(
                            TensorData::new(mask.clone(), [batch, pos]),
                            &activation.device(),
                        )
                        .unsqueeze_dim::<3>(2)
                        .expand([batch, pos, d]);
                        activation.mask_where(mask, input)
                    }
                }
            }
            _ => activation,
        }
    }
}
