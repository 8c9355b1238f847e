//! [`Capture`]: the probe that copies whole activations to the host.

use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::{Tensor, backend::Backend};

use super::{HookContext, Probe, Site};
use crate::error::Result;
use crate::weights::HostTensor;

/// Copies the activation at each chosen site to host memory (as f32).
///
/// This is the one probe that holds whole activations: use it for small inputs and tests,
/// and streaming reducers for corpora.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    sites: BTreeSet<Site>,
    /// Captured activations by site, `[batch, pos, width]` (attention patterns
    /// `[batch, n_heads, query_pos, key_pos]`).
    pub captured: BTreeMap<Site, HostTensor>,
}

impl Capture {
    /// Captures the given sites.
    pub fn new(sites: impl IntoIterator<Item = Site>) -> Self {
        Self {
            sites: sites.into_iter().collect(),
            captured: BTreeMap::new(),
        }
    }
}

impl<B: Backend> Probe<B> for Capture {
    fn wants(&self, site: Site) -> bool {
        self.sites.contains(&site)
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        _ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        self.captured
            .insert(site, HostTensor::from_tensor(activation.clone()));
        Ok(activation)
    }

    fn hook_pattern(
        &mut self,
        site: Site,
        pattern: Tensor<B, 4>,
        _ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 4>> {
        self.captured
            .insert(site, HostTensor::from_tensor(pattern.clone()));
        Ok(pattern)
    }
}
