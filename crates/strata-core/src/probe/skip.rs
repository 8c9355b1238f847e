//! [`LayerSkip`]: skip chosen blocks for chosen tokens, by a rule asked at every forward call.
//!
//! This is core's general "skip this block for these tokens" mechanism (the void analysis's
//! literal skipping builds on it). A skipped block computes nothing it does not need: with
//! [`BlockSkip::All`] the model runs neither its attention nor its MLP, only (with a KV
//! cache) the keys and values of its input, so a speed-up is real and measurable.

use std::collections::BTreeSet;

use burn::tensor::backend::Backend;

use super::{BlockSkip, HookContext, Probe, Site};
use crate::error::Result;

/// The rule a [`LayerSkip`] asks: for block `layer` and the tokens of this call, which to skip.
type SkipRule<'a, B> = Box<dyn FnMut(usize, &HookContext<B>) -> Result<BlockSkip> + 'a>;

/// Makes blocks pass their input through unchanged (`hook_resid_post = hook_resid_pre`) for
/// the tokens a rule chooses. Later blocks then see the unchanged stream, in the forward pass
/// and in their KV cache (a skipped block's keys and values come from its input).
///
/// The rule is asked once per block per forward call, with that call's [`HookContext`], so
/// during generation it decides afresh for every new token.
///
/// ```
/// use burn::backend::Flex;
/// use strata_core::probe::{BlockSkip, LayerSkip};
/// // Skip block 1 for every token after the prompt.
/// let mut skip = LayerSkip::<Flex>::new(|layer, ctx| {
///     Ok(if layer == 1 && ctx.generation_step.is_some_and(|s| s > 0) {
///         BlockSkip::All
///     } else {
///         BlockSkip::Run
///     })
/// });
/// # let _ = &mut skip;
/// ```
pub struct LayerSkip<'a, B: Backend> {
    rule: SkipRule<'a, B>,
}

impl<'a, B: Backend> LayerSkip<'a, B> {
    /// Skips what `rule(layer, ctx)` says, asked at every block of every call.
    pub fn new(rule: impl FnMut(usize, &HookContext<B>) -> Result<BlockSkip> + 'a) -> Self {
        Self {
            rule: Box::new(rule),
        }
    }

    /// Skips the given layers for every token of every call.
    pub fn layers(layers: impl IntoIterator<Item = usize>) -> Self {
        let layers: BTreeSet<usize> = layers.into_iter().collect();
        Self::new(move |layer, _ctx| {
            Ok(if layers.contains(&layer) {
                BlockSkip::All
            } else {
                BlockSkip::Run
            })
        })
    }
}

impl<B: Backend> std::fmt::Debug for LayerSkip<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerSkip").finish_non_exhaustive()
    }
}

impl<B: Backend> Probe<B> for LayerSkip<'_, B> {
    fn wants(&self, _site: Site) -> bool {
        false
    }

    fn skip_block(&mut self, layer: usize, ctx: &HookContext<B>) -> Result<BlockSkip> {
        (self.rule)(layer, ctx)
    }
}
