//! [`VoidProbe`]: the LAC rule at every block of every forward call, with the optional
//! skipping variants.

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::probe::{BlockSkip, HookContext, LayerSkip, Probe, Site};
use strata_core::weights::HostTensor;

use crate::result::{Phase, TokenMap, VoidResult};
use crate::rule::{History, check_alpha, check_depth};

/// What the probe does with the voids it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skip {
    /// Measure only: the forward pass is the plain model's.
    #[default]
    Off,
    /// Variant A, the reference code's behaviour: every layer runs on the un-skipped stream
    /// (KV caches are the full model's); only the state fed to the final norm and LM head is
    /// replaced, per token, by the output of its deepest active layer (the embedding if none
    /// is active). A token whose last layer is active decodes exactly as the full model.
    DeepestActive,
    /// Variant B, literal skipping: a void layer passes its input through, so later layers
    /// and their KV caches see the skipped stream. The layer is still computed (its void
    /// test needs its output), so this saves no compute; see
    /// [`VoidConfig::compute_skip`] for skipping that does.
    PassThrough,
}

impl Skip {
    /// `off`, `deepest-active` or `pass-through`, as tables and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Skip::Off => "off",
            Skip::DeepestActive => "deepest-active",
            Skip::PassThrough => "pass-through",
        }
    }
}

/// Settings of a void measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoidConfig {
    /// The rule's `alpha` in `[0, 1]`: a layer is a void when its norm change is below
    /// `alpha` x the range of the earlier layers' changes (reference default 0.8).
    pub alpha: f32,
    /// What happens to the voids.
    pub skip: Skip,
    /// Keep every token's map (`VoidResult::tokens`); off for long evaluations, where only
    /// the usage counts are kept.
    pub record_maps: bool,
    /// Layers whose compute is really skipped (through core's [`LayerSkip`]) at every
    /// forward call except a generation's prompt pass: the block runs neither attention
    /// nor MLP and passes its input on. Chosen ahead of the call (for example from a
    /// prompt's usage profile, [`crate::rarely_active_layers`]), since the rule itself
    /// needs a layer's output. Empty: nothing skipped.
    pub compute_skip: Vec<usize>,
}

impl Default for VoidConfig {
    /// `alpha` 0.8, measure only, maps recorded, nothing compute-skipped.
    fn default() -> Self {
        Self {
            alpha: 0.8,
            skip: Skip::Off,
            record_maps: true,
            compute_skip: Vec::new(),
        }
    }
}

/// The state of one forward call.
struct Call<B: Backend> {
    phase: Phase,
    batch: usize,
    n_pos: usize,
    real: Vec<bool>,
    token_ids: Vec<u32>,
    positions: Vec<usize>,
    /// Per token: norms of the input of layer 0 and of every output so far.
    norms: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    thresholds: Vec<Vec<f32>>,
    active: Vec<Vec<bool>>,
    skipped: Vec<Vec<bool>>,
    history: Vec<History>,
    /// Norms of the current layer's input.
    pre_norms: Vec<f32>,
    /// The current layer's input (variant B passes it on where the layer is void).
    pre: Option<Tensor<B, 3>>,
    /// The output of each token's deepest active layer so far (variant A).
    carry: Option<Tensor<B, 3>>,
}

/// Measures the L2 Adaptive Computation rule per token at every block, and optionally
/// skips the voids ([`Skip`]) and the compute of chosen layers
/// ([`VoidConfig::compute_skip`]).
///
/// It reads `blocks.{l}.hook_resid_pre` and `blocks.{l}.hook_resid_post` of every block:
/// `delta_l` is the f32 norm of the block's output minus that of its input, per token,
/// reduced on the device and copied to the host as `[batch, pos]` values. The rule's
/// history resets at every forward call, so each token is judged against its own earlier
/// layers only: batch rows and padding never affect each other, and padding is not counted.
pub struct VoidProbe<B: Backend> {
    config: VoidConfig,
    n_layers: usize,
    result: VoidResult,
    call: Option<Call<B>>,
    layer_skip: Option<LayerSkip<'static, B>>,
    /// Whether this probe skipped the current block's compute.
    skipping: bool,
}

impl<B: Backend> std::fmt::Debug for VoidProbe<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoidProbe")
            .field("config", &self.config)
            .field("n_layers", &self.n_layers)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> VoidProbe<B> {
    /// A probe for a model of `n_layers` blocks; refuses `alpha` outside `[0, 1]`, a model
    /// shallower than [`crate::MIN_LAYERS`] and compute-skip layers past the last block.
    pub fn new(n_layers: usize, config: VoidConfig) -> crate::Result<Self> {
        check_alpha(f64::from(config.alpha))?;
        check_depth(n_layers)?;
        if let Some(&bad) = config.compute_skip.iter().find(|&&l| l >= n_layers) {
            return Err(crate::Error::InvalidArgument {
                what: "compute-skip layer".into(),
                reason: format!("layer {bad} does not exist in a model of {n_layers} blocks"),
            });
        }
        let layer_skip = (!config.compute_skip.is_empty()).then(|| {
            let layers: std::collections::BTreeSet<usize> =
                config.compute_skip.iter().copied().collect();
            LayerSkip::new(move |layer, ctx: &HookContext<B>| {
                Ok(
                    if layers.contains(&layer) && ctx.generation_step != Some(0) {
                        BlockSkip::All
                    } else {
                        BlockSkip::Run
                    },
                )
            })
        });
        Ok(Self {
            result: VoidResult::new(config.clone(), n_layers),
            config,
            n_layers,
            call: None,
            layer_skip,
            skipping: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VoidConfig {
        &self.config
    }

    /// The result so far (a forward call that ended early is not counted).
    pub fn result(&self) -> &VoidResult {
        &self.result
    }

    /// The result, ending the measurement.
    pub fn into_result(self) -> VoidResult {
        self.result
    }

    fn start_call(&mut self, x: &Tensor<B, 3>, ctx: &HookContext<B>) {
        let [batch, n_pos, _] = x.dims();
        let n = batch * n_pos;
        let phase = match ctx.generation_step {
            Some(step) if step > 0 => Phase::Generation,
            _ => Phase::Prompt,
        };
        let real = (0..n).map(|i| ctx.is_real(i / n_pos, i % n_pos)).collect();
        self.call = Some(Call {
            phase,
            batch,
            n_pos,
            real,
            token_ids: ctx.token_ids.clone(),
            positions: ctx.positions.clone(),
            norms: vec![Vec::with_capacity(self.n_layers + 1); n],
            deltas: vec![Vec::with_capacity(self.n_layers); n],
            thresholds: vec![Vec::with_capacity(self.n_layers); n],
            active: vec![Vec::with_capacity(self.n_layers); n],
            skipped: vec![Vec::with_capacity(self.n_layers); n],
            history: vec![History::default(); n],
            pre_norms: Vec::new(),
            pre: None,
            carry: None,
        });
    }

    fn resid_pre(&mut self, layer: usize, x: &Tensor<B, 3>, ctx: &HookContext<B>) -> Result<()> {
        if layer == 0 {
            self.start_call(x, ctx);
        }
        let site = Site::ResidPre { layer };
        let norms = token_norms(x, site)?;
        let skip = self.config.skip;
        let call = self.call_mut(site)?;
        if norms.len() != call.batch * call.n_pos {
            return Err(probe_error(site, "the batch changed within a forward call"));
        }
        if layer == 0 {
            for (token, &n) in call.norms.iter_mut().zip(&norms) {
                token.push(n);
            }
            if skip == Skip::DeepestActive {
                call.carry = Some(x.clone());
            }
        }
        if skip == Skip::PassThrough {
            call.pre = Some(x.clone());
        }
        call.pre_norms = norms;
        Ok(())
    }

    fn resid_post(&mut self, layer: usize, x: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        let site = Site::ResidPost { layer };
        let norms = token_norms(&x, site)?;
        let (alpha, skip, last) = (
            self.config.alpha,
            self.config.skip,
            layer + 1 == self.n_layers,
        );
        let skipped = std::mem::take(&mut self.skipping);
        let call = self.call_mut(site)?;
        if call.deltas.first().map_or(0, Vec::len) != layer || norms.len() != call.pre_norms.len() {
            return Err(probe_error(
                site,
                "blocks were seen out of order (each block's hook_resid_pre comes first)",
            ));
        }
        let mut active_now = Vec::with_capacity(norms.len());
        for (i, &norm) in norms.iter().enumerate() {
            let delta = if skipped {
                0.0
            } else {
                norm - call.pre_norms[i]
            };
            let threshold = call.history[i].threshold(alpha);
            let active = !skipped && delta >= threshold;
            if !skipped {
                call.history[i].push(delta);
            }
            call.norms[i].push(norm);
            call.deltas[i].push(delta);
            call.thresholds[i].push(threshold);
            call.active[i].push(active);
            call.skipped[i].push(skipped);
            // Padding keeps the block's output: its decision is never used.
            active_now.push(active || !call.real[i]);
        }
        let [batch, n_pos, d_model] = x.dims();
        let device = x.device();
        let mask = |values: Vec<bool>| {
            Tensor::<B, 2, Bool>::from_data(TensorData::new(values, [batch, n_pos]), &device)
                .unsqueeze_dim::<3>(2)
                .expand([batch, n_pos, d_model])
        };
        let out = match skip {
            Skip::Off => x,
            Skip::PassThrough => {
                let void: Vec<bool> = active_now.iter().map(|a| !a).collect();
                match call.pre.take() {
                    Some(pre) if void.iter().any(|&v| v) => x.mask_where(mask(void), pre),
                    _ => x,
                }
            }
            Skip::DeepestActive => {
                let carry = call
                    .carry
                    .take()
                    .ok_or_else(|| probe_error(site, "no carried state from hook_resid_pre 0"))?;
                let carry = if active_now.iter().all(|&a| a) {
                    x.clone()
                } else {
                    carry.mask_where(mask(active_now), x.clone())
                };
                if last {
                    carry
                } else {
                    call.carry = Some(carry);
                    x
                }
            }
        };
        if last {
            self.finish_call();
        }
        Ok(out)
    }

    fn finish_call(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let call_idx = self.result.n_calls;
        self.result.n_calls += 1;
        let usage = match call.phase {
            Phase::Prompt => &mut self.result.prompt,
            Phase::Generation => &mut self.result.generation,
        };
        let n = call.batch * call.n_pos;
        let mut maps = Vec::new();
        let (mut norms, mut deltas, mut thresholds, mut active, mut skipped) = (
            call.norms,
            call.deltas,
            call.thresholds,
            call.active,
            call.skipped,
        );
        for i in 0..n {
            if !call.real[i] {
                continue;
            }
            usage.n_tokens += 1;
            for (layer, &a) in active[i].iter().enumerate() {
                usage.n_active[layer] += u64::from(a);
                usage.n_skipped[layer] += u64::from(skipped[i][layer]);
            }
            usage.n_last_void += u64::from(active[i].last() == Some(&false));
            usage.n_none_active += u64::from(!active[i].iter().any(|&a| a));
            if self.config.record_maps {
                maps.push(TokenMap {
                    phase: call.phase,
                    call: call_idx,
                    row: i / call.n_pos,
                    token_pos: call.positions.get(i).copied().unwrap_or(i % call.n_pos),
                    token_id: call.token_ids.get(i).copied().unwrap_or(0),
                    norms: std::mem::take(&mut norms[i]),
                    deltas: std::mem::take(&mut deltas[i]),
                    thresholds: std::mem::take(&mut thresholds[i]),
                    active: std::mem::take(&mut active[i]),
                    skipped: std::mem::take(&mut skipped[i]),
                });
            }
        }
        self.result.tokens.extend(maps);
    }

    fn call_mut(&mut self, site: Site) -> Result<&mut Call<B>> {
        self.call
            .as_mut()
            .ok_or_else(|| probe_error(site, "no forward call started (blocks.0.hook_resid_pre)"))
    }
}

type Result<T> = strata_core::Result<T>;

fn probe_error(site: Site, reason: &str) -> strata_core::Error {
    strata_core::Error::Probe {
        site: site.to_string(),
        reason: reason.to_string(),
    }
}

/// `||x||_2` over the last axis, per token, as f32 on the host; refuses non-finite norms.
fn token_norms<B: Backend>(x: &Tensor<B, 3>, site: Site) -> Result<Vec<f32>> {
    let [_, n_pos, _] = x.dims();
    let norms = HostTensor::from_tensor((x.clone() * x.clone()).sum_dim(2).sqrt()).data;
    if let Some(i) = norms.iter().position(|n| !n.is_finite()) {
        return Err(strata_core::Error::Probe {
            site: site.to_string(),
            reason: format!(
                "the residual norm of row {} position {} is {} (the void rule needs finite norms)",
                i / n_pos.max(1),
                i % n_pos.max(1),
                norms[i]
            ),
        });
    }
    Ok(norms)
}

impl<B: Backend> Probe<B> for VoidProbe<B> {
    fn wants(&self, site: Site) -> bool {
        matches!(site, Site::ResidPre { .. } | Site::ResidPost { .. })
    }

    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        match site {
            Site::ResidPre { layer } => {
                self.resid_pre(layer, &activation, ctx)?;
                Ok(activation)
            }
            Site::ResidPost { layer } => self.resid_post(layer, activation),
            _ => Ok(activation),
        }
    }

    fn skip_block(&mut self, layer: usize, ctx: &HookContext<B>) -> Result<BlockSkip> {
        let answer = match self.layer_skip.as_mut() {
            Some(rule) => rule.skip_block(layer, ctx)?,
            None => BlockSkip::Run,
        };
        self.skipping = answer == BlockSkip::All;
        Ok(answer)
    }
}
