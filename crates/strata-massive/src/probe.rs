//! [`MassiveProbe`]: per-sequence top magnitudes and exact medians at every
//! `hook_resid_post`, and [`measure`], which runs it over a set of sequences.

use burn::tensor::{ElementConversion, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::probe::{HookContext, Probe, ProbeSet, Site};
use strata_core::weights::HostTensor;
use strata_core::{Error, Model, Result, TokenBatch};

use crate::result::{LayerStats, MassiveEntry, MassiveResult, keep_largest};

/// Where a probe met a non-finite residual value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NonFiniteSeen {
    layer: usize,
    sequence: usize,
    position: usize,
    dim: usize,
    value: f32,
}

/// Thresholds and sizes of a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MassiveConfig {
    /// Entries kept per layer (over all sequences), largest magnitude first.
    pub top_k: usize,
    /// A massive entry's magnitude exceeds this (Sun et al.: 100).
    pub abs_threshold: f64,
    /// ... and is at least this many times the median magnitude of its layer and sequence
    /// (Sun et al.: about 1000).
    pub ratio_threshold: f64,
}

impl Default for MassiveConfig {
    /// The published definition: `|a| > 100` and `|a| >= 1000 x median`, 20 entries per layer.
    fn default() -> Self {
        Self {
            top_k: 20,
            abs_threshold: 100.0,
            ratio_threshold: 1000.0,
        }
    }
}

/// Observes every block's `hook_resid_post` and keeps, per layer, the running sums of the
/// top-1/2/3 and median magnitudes and the `top_k` largest entries. Changes nothing.
///
/// The median is exact: the `pos x d_model` magnitudes of each sequence are sorted on the
/// device (numpy's convention for an even count: the mean of the two middle values).
/// Padded batches are refused: the median would count padding.
#[derive(Debug, Clone)]
pub struct MassiveProbe {
    config: MassiveConfig,
    layers: Vec<LayerStats>,
    /// Index of the first sequence of the next forward call.
    next_sequence: usize,
    /// The first non-finite value met, if any (the forward pass stops there).
    non_finite: Option<NonFiniteSeen>,
}

impl MassiveProbe {
    /// A probe for a model of `n_layers` blocks.
    pub fn new(n_layers: usize, config: MassiveConfig) -> Self {
        let layers = (0..n_layers)
            .map(|layer| LayerStats {
                layer,
                n_sequences: 0,
                sum_top1: 0.0,
                sum_top2: 0.0,
                sum_top3: 0.0,
                sum_median: 0.0,
                top: Vec::new(),
            })
            .collect();
        Self {
            config,
            layers,
            next_sequence: 0,
            non_finite: None,
        }
    }

    /// The first NaN or infinity met in a residual stream, as an error naming the block,
    /// sequence, position and dimension; `None` while every value seen was finite.
    pub fn non_finite_error(&self) -> Option<crate::Error> {
        self.non_finite.map(|n| crate::Error::NonFiniteActivation {
            layer: n.layer,
            sequence: n.sequence,
            position: n.position,
            dim: n.dim,
            value: n.value,
        })
    }

    /// Marks the end of a forward call of `batch` sequences (their indices come next).
    pub fn finish_call(&mut self, batch: usize) {
        self.next_sequence += batch;
    }

    /// The result so far.
    pub fn into_result(self) -> MassiveResult {
        MassiveResult {
            config: self.config,
            layers: self.layers,
        }
    }

    fn observe<B: Backend>(
        &mut self,
        layer: usize,
        h: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<()> {
        if ctx.padding_mask.is_some() {
            return Err(Error::Probe {
                site: Site::ResidPost { layer }.to_string(),
                reason: "massive-activation statistics need unpadded sequences (the median \
                         would count padding): measure sequences one at a time or of equal length"
                    .into(),
            });
        }
        let [batch, pos, d] = h.dims();
        let n = pos * d;
        let k = self.config.top_k.max(3).min(n);
        let flat = h.reshape([batch, n]);
        let magnitude = flat.clone().abs();
        // One boolean read back per layer: a NaN would make the top-k and the median
        // meaningless, so it is located (on the host, only then) and the pass stops.
        let all_finite = magnitude
            .clone()
            .is_finite()
            .all()
            .int()
            .into_scalar()
            .elem::<i64>()
            == 1;
        if !all_finite {
            let host = HostTensor::from_tensor(flat);
            let (flat_idx, &value) = host
                .data
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite())
                .unwrap_or((0, &f32::NAN));
            let (row, within) = (flat_idx / n, flat_idx % n);
            let seen = NonFiniteSeen {
                layer,
                sequence: self.next_sequence + row,
                position: within / d,
                dim: within % d,
                value,
            };
            self.non_finite = Some(seen);
            return Err(Error::NonFinite {
                site: Site::ResidPost { layer }.to_string(),
                row,
                pos: seen.position,
                feature: seen.dim,
                value,
            });
        }
        let (_, idx) = magnitude.clone().topk_with_indices(k, 1);
        let signed = HostTensor::from_tensor(flat.gather(1, idx.clone()));
        let idx: Vec<i64> = idx
            .into_data()
            .convert::<i64>()
            .into_vec::<i64>()
            .map_err(|e| Error::Probe {
                site: Site::ResidPost { layer }.to_string(),
                reason: format!("reading top-k indices: {e:?}"),
            })?;
        let sorted = magnitude.sort(1);
        let middle = if n % 2 == 1 {
            HostTensor::from_tensor(sorted.slice([0..batch, n / 2..n / 2 + 1]))
                .data
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>()
        } else {
            let two = HostTensor::from_tensor(sorted.slice([0..batch, n / 2 - 1..n / 2 + 1]));
            two.data
                .chunks(2)
                .map(|c| (f64::from(c[0]) + f64::from(c[1])) / 2.0)
                .collect()
        };
        let Some(stats) = self.layers.get_mut(layer) else {
            return Err(Error::Probe {
                site: Site::ResidPost { layer }.to_string(),
                reason: format!("the probe was made for {} layers", self.layers.len()),
            });
        };
        for row in 0..batch {
            let median = middle[row];
            let values = &signed.data[row * k..(row + 1) * k];
            let top = |i: usize| f64::from(values[i].abs());
            stats.n_sequences += 1;
            stats.sum_top1 += top(0);
            stats.sum_top2 += top(1);
            stats.sum_top3 += top(2);
            stats.sum_median += median;
            for (i, &value) in values.iter().enumerate().take(self.config.top_k) {
                let flat_idx = usize::try_from(idx[row * k + i]).unwrap_or(0);
                let (position, dim) = (flat_idx / d, flat_idx % d);
                let value = f64::from(value);
                let ratio = value.abs() / median;
                stats.top.push(MassiveEntry {
                    layer,
                    sequence: self.next_sequence + row,
                    position,
                    token_id: ctx
                        .token_ids
                        .get(row * pos + position)
                        .copied()
                        .unwrap_or(0),
                    dim,
                    value,
                    ratio_to_median: ratio,
                    massive: value.abs() > self.config.abs_threshold
                        && ratio >= self.config.ratio_threshold,
                });
            }
            keep_largest(&mut stats.top, self.config.top_k);
        }
        Ok(())
    }
}

impl<B: Backend> Probe<B> for MassiveProbe {
    fn wants(&self, site: Site) -> bool {
        matches!(site, Site::ResidPost { .. })
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        if let Site::ResidPost { layer } = site {
            self.observe(layer, activation.clone(), ctx)?;
        }
        Ok(activation)
    }
}

/// Measures every `hook_resid_post` of `model` over `sequences`, one sequence per forward
/// pass (as the reference code does). `progress` gets (sequences done, total).
///
/// A NaN or infinity in a residual stream is an [`Error::NonFiniteActivation`](crate::Error)
/// naming the block, sequence, position and dimension where it first appears.
pub fn measure<B: Backend>(
    model: &Model<B>,
    sequences: &[Vec<u32>],
    config: &MassiveConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::Result<MassiveResult> {
    measure_with(model, sequences, config, &mut ProbeSet::none(), progress)
}

/// [`measure`] with the caller's `probes` attached before the measurement (a steering or
/// ablation probe, say, so the statistics are those of the changed model).
pub fn measure_with<B: Backend>(
    model: &Model<B>,
    sequences: &[Vec<u32>],
    config: &MassiveConfig,
    probes: &mut ProbeSet<'_, B>,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::Result<MassiveResult> {
    if sequences.is_empty() {
        return Err(Error::EmptyInput {
            what: "no sequences to measure".into(),
        }
        .into());
    }
    if config.top_k == 0 {
        return Err(crate::Error::InvalidArgument {
            what: "top_k".into(),
            reason: "must be at least 1".into(),
        });
    }
    let mut probe = MassiveProbe::new(model.config().n_layers, config.clone());
    for (i, ids) in sequences.iter().enumerate() {
        let batch = TokenBatch::single(ids)?;
        let mut before = Before(probes);
        let outcome = model.forward_with(
            &batch,
            None,
            &mut ProbeSet::one(&mut before).with(&mut probe),
        );
        if let Some(err) = probe.non_finite_error() {
            return Err(err);
        }
        outcome?;
        probe.finish_call(1);
        progress(i + 1, sequences.len());
    }
    Ok(probe.into_result())
}

/// The caller's probe set, run as one probe ahead of the measurement.
struct Before<'s, 'a, B: Backend>(&'s mut ProbeSet<'a, B>);

impl<B: Backend> Probe<B> for Before<'_, '_, B> {
    fn wants(&self, site: Site) -> bool {
        self.0.wants(site)
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        self.0.apply(site, activation, ctx)
    }

    fn hook_pattern(
        &mut self,
        site: Site,
        pattern: Tensor<B, 4>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 4>> {
        self.0.apply_pattern(site, pattern, ctx)
    }

    fn skip_block(
        &mut self,
        layer: usize,
        ctx: &HookContext<B>,
    ) -> Result<strata_core::probe::BlockSkip> {
        self.0.skip_block(layer, ctx)
    }
}
