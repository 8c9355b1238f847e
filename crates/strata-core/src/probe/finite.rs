//! [`FiniteCheck`]: where NaN or infinity first appears in a forward pass.

use burn::tensor::{Tensor, backend::Backend};

use super::{HookContext, Probe, ProbeSet, Site};
use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::models::Model;
use crate::weights::HostTensor;

/// The first non-finite value of a forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFiniteAt {
    /// The site, in forward order.
    pub site: Site,
    /// Batch row.
    pub row: usize,
    /// Position within the call.
    pub pos: usize,
    /// Feature index (for the attention pattern: the head).
    pub feature: usize,
    /// The value found.
    pub value: f32,
}

impl NonFiniteAt {
    /// The error that reports it.
    pub fn into_error(self) -> Error {
        Error::NonFinite {
            site: self.site.to_string(),
            row: self.row,
            pos: self.pos,
            feature: self.feature,
            value: self.value,
        }
    }
}

/// A diagnostic probe: copies every site to the host until it finds a NaN or infinity, and
/// records the first one. Slow (one read-back per site); run it after a result came out
/// non-finite, as [`locate_non_finite`] does.
#[derive(Debug, Clone, Default)]
pub struct FiniteCheck {
    /// The first non-finite value seen, if any.
    pub first: Option<NonFiniteAt>,
}

impl FiniteCheck {
    fn scan(&mut self, site: Site, host: HostTensor) {
        if self.first.is_some() {
            return;
        }
        let Some(idx) = host.data.iter().position(|v| !v.is_finite()) else {
            return;
        };
        let (row, pos, feature) = match host.shape.as_slice() {
            // [batch, heads, query, key]: report the query position and the head.
            [_, h, q, k] => {
                let per_row = h * q * k;
                let within = idx % per_row;
                (idx / per_row, (within / k) % q, within / (q * k))
            }
            [_, p, w] => (idx / (p * w), (idx / w) % p, idx % w),
            _ => (0, 0, idx),
        };
        self.first = Some(NonFiniteAt {
            site,
            row,
            pos,
            feature,
            value: host.data[idx],
        });
    }
}

impl<B: Backend> Probe<B> for FiniteCheck {
    fn wants(&self, _site: Site) -> bool {
        self.first.is_none()
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        _ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        self.scan(site, HostTensor::from_tensor(activation.clone()));
        Ok(activation)
    }

    fn hook_pattern(
        &mut self,
        site: Site,
        pattern: Tensor<B, 4>,
        _ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 4>> {
        self.scan(site, HostTensor::from_tensor(pattern.clone()));
        Ok(pattern)
    }
}

/// Runs `batch` through `model` with a [`FiniteCheck`] and returns where the first NaN or
/// infinity appears (`None` if the whole pass is finite).
pub fn locate_non_finite<B: Backend>(
    model: &Model<B>,
    batch: &TokenBatch,
) -> Result<Option<NonFiniteAt>> {
    let mut check = FiniteCheck::default();
    model.forward_with(batch, None, &mut ProbeSet::one(&mut check))?;
    Ok(check.first)
}

/// Fails with [`Error::NonFinite`], naming the first site and token where a non-finite value
/// appears, if `values` (an output of `batch`) holds any.
pub fn ensure_finite<B: Backend>(
    model: &Model<B>,
    batch: &TokenBatch,
    values: &[f32],
) -> Result<()> {
    if values.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    match locate_non_finite(model, batch)? {
        Some(at) => Err(at.into_error()),
        None => Err(Error::NonFiniteResult {
            what: "the model output".into(),
            value: f64::NAN,
        }),
    }
}
