//! [`FnProbe`]: a probe from a closure, for one-off interventions.

use burn::tensor::{Tensor, backend::Backend};

use super::{HookContext, Probe, Site};
use crate::error::Result;

/// A probe built from a site filter and a closure (rank-3 sites; the closure may fail).
///
/// ```
/// use burn::backend::Flex;
/// use strata_core::probe::{FnProbe, Site};
/// // Zero the MLP output of block 0.
/// let mut zero = FnProbe::<Flex, _>::new(
///     |site| site == Site::MlpOut { layer: 0 },
///     |_site, x, _ctx| Ok(x.zeros_like()),
/// );
/// # let _ = &mut zero;
/// ```
pub struct FnProbe<B: Backend, F> {
    filter: Box<dyn Fn(Site) -> bool>,
    hook: F,
    _backend: std::marker::PhantomData<B>,
}

impl<B: Backend, F> FnProbe<B, F>
where
    F: FnMut(Site, Tensor<B, 3>, &HookContext<B>) -> Result<Tensor<B, 3>>,
{
    /// A probe that calls `hook` at every site where `filter` is true.
    pub fn new(filter: impl Fn(Site) -> bool + 'static, hook: F) -> Self {
        Self {
            filter: Box::new(filter),
            hook,
            _backend: std::marker::PhantomData,
        }
    }
}

impl<B: Backend, F> Probe<B> for FnProbe<B, F>
where
    F: FnMut(Site, Tensor<B, 3>, &HookContext<B>) -> Result<Tensor<B, 3>>,
{
    fn wants(&self, site: Site) -> bool {
        (self.filter)(site)
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        (self.hook)(site, activation, ctx)
    }
}
