//! The [`Probe`] trait and the [`ProbeSet`] a forward pass carries.

use burn::tensor::{Tensor, backend::Backend};

use super::Site;

/// What a probe knows about the call besides the activation.
#[derive(Debug, Clone)]
pub struct HookContext<B: Backend> {
    /// `[batch, pos]`, 1.0 for real tokens and 0.0 for padding; `None` when nothing is padded.
    pub attention_mask: Option<Tensor<B, 2>>,
    /// Tokens already in the KV cache before this call (0 without a cache): position `p` of
    /// this call's tensors is absolute position `pos_offset + p`.
    pub pos_offset: usize,
}

/// Observes or changes the forward pass at the sites it asks for.
///
/// `hook` receives the activation at `site` and returns the tensor the model continues with:
/// return `activation` itself to observe, anything of the same shape to intervene. Reduce on
/// the device and keep only small results: probes should not copy whole activations to the
/// host unless that is their job (as with [`super::Capture`]).
pub trait Probe<B: Backend> {
    /// Whether this probe wants to see `site`. Called once per site per forward pass.
    fn wants(&self, site: Site) -> bool;

    /// Sees the activation at `site`, shaped `[batch, pos, width]`, and returns the tensor
    /// that replaces it.
    fn hook(&mut self, site: Site, activation: Tensor<B, 3>, ctx: &HookContext<B>) -> Tensor<B, 3>;
}

/// Results of probes that ran over disjoint shards of the data combine exactly.
pub trait Merge: Sized {
    /// Combines two shard results into the result of the concatenated data.
    fn merge(self, other: Self) -> Self;
}

/// The probes attached to one forward pass, run in order at every site.
pub struct ProbeSet<'a, B: Backend> {
    probes: Vec<&'a mut dyn Probe<B>>,
}

impl<B: Backend> Default for ProbeSet<'_, B> {
    fn default() -> Self {
        Self { probes: Vec::new() }
    }
}

impl<'a, B: Backend> ProbeSet<'a, B> {
    /// No probes: the plain forward pass.
    pub fn none() -> Self {
        Self::default()
    }

    /// A set holding one probe.
    pub fn one(probe: &'a mut dyn Probe<B>) -> Self {
        Self {
            probes: vec![probe],
        }
    }

    /// Adds a probe; it runs after the ones already attached.
    pub fn with(mut self, probe: &'a mut dyn Probe<B>) -> Self {
        self.probes.push(probe);
        self
    }

    /// Whether no probe is attached.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    /// Runs every probe that wants `site`, threading the activation through them.
    #[inline]
    pub fn apply(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Tensor<B, 3> {
        let mut x = activation;
        for probe in self.probes.iter_mut() {
            if probe.wants(site) {
                x = probe.hook(site, x, ctx);
            }
        }
        x
    }
}
