//! The [`Probe`] trait, the [`HookContext`] it is handed and the [`ProbeSet`] a forward
//! pass carries.

use burn::tensor::{Tensor, backend::Backend};

use super::Site;
use crate::error::Result;

/// What a probe knows about the forward call besides the activation.
///
/// Everything here describes the tokens of *this* call, `[batch, n_pos]` row-major: with a
/// KV cache, that is only the new tokens. Built by the model; analyses read it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HookContext<B: Backend> {
    /// Token ids of this call, row-major `[batch, n_pos]`.
    pub token_ids: Vec<u32>,
    /// Rows of this call.
    pub batch: usize,
    /// Columns (new positions) of this call.
    pub n_pos: usize,
    /// The position id each token is embedded or rotated with, row-major `[batch, n_pos]`:
    /// the number of real tokens before it in its row, cache included, so it is correct under
    /// left padding (padding slots get 0).
    pub positions: Vec<usize>,
    /// Row-major `[batch, n_pos]`, true for real tokens and false for padding; `None` when
    /// nothing in this call is padded.
    pub padding_mask: Option<Vec<bool>>,
    /// The same mask on the device as `[batch, n_pos]` floats (1.0 real, 0.0 padding).
    pub attention_mask: Option<Tensor<B, 2>>,
    /// Tokens already in the KV cache before this call (0 without a cache).
    pub n_cached: usize,
    /// During generation, which new token this call produces (0 for the prompt pass);
    /// `None` outside generation.
    pub generation_step: Option<usize>,
}

impl<B: Backend> HookContext<B> {
    /// A context for one call. `positions` and `padding_mask` (if any) hold `batch * n_pos`
    /// entries.
    pub fn new(
        token_ids: Vec<u32>,
        batch: usize,
        n_pos: usize,
        positions: Vec<usize>,
        padding_mask: Option<Vec<bool>>,
        device: &B::Device,
    ) -> Self {
        let attention_mask = padding_mask.as_ref().map(|m| {
            let values: Vec<f32> = m.iter().map(|&real| if real { 1.0 } else { 0.0 }).collect();
            Tensor::<B, 2>::from_data(
                burn::tensor::TensorData::new(values, [batch, n_pos]),
                device,
            )
        });
        Self {
            token_ids,
            batch,
            n_pos,
            positions,
            padding_mask,
            attention_mask,
            n_cached: 0,
            generation_step: None,
        }
    }

    /// The same context with `n_cached` tokens already in the cache.
    pub fn with_cached(mut self, n_cached: usize) -> Self {
        self.n_cached = n_cached;
        self
    }

    /// The same context marked as step `step` of a generation.
    pub fn with_generation_step(mut self, step: Option<usize>) -> Self {
        self.generation_step = step;
        self
    }

    /// Whether token `(row, pos)` of this call is real (not padding).
    pub fn is_real(&self, row: usize, pos: usize) -> bool {
        self.padding_mask
            .as_ref()
            .is_none_or(|m| m.get(row * self.n_pos + pos).copied().unwrap_or(false))
    }
}

/// Whether a block runs, for which tokens: what [`Probe::skip_block`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BlockSkip {
    /// The block runs for every token.
    #[default]
    Run,
    /// The block is skipped for every token: its output is its input, and neither its
    /// attention nor its MLP is computed (with a KV cache, only the keys and values of its
    /// input are, so later tokens can attend to these positions).
    All,
    /// Row-major `[batch, n_pos]`, true where the block is skipped for that token. The block
    /// is computed and its output replaced by its input where true; a mask that is all true
    /// or all false behaves as [`BlockSkip::All`] or [`BlockSkip::Run`].
    Tokens(Vec<bool>),
}

impl BlockSkip {
    /// Combines two answers: a token is skipped if either skips it.
    pub fn union(self, other: BlockSkip) -> Result<BlockSkip> {
        Ok(match (self, other) {
            (BlockSkip::All, _) | (_, BlockSkip::All) => BlockSkip::All,
            (BlockSkip::Run, x) | (x, BlockSkip::Run) => x,
            (BlockSkip::Tokens(a), BlockSkip::Tokens(b)) => {
                if a.len() != b.len() {
                    return Err(crate::Error::Probe {
                        site: "block skip".into(),
                        reason: format!("two skip masks of {} and {} tokens", a.len(), b.len()),
                    });
                }
                BlockSkip::Tokens(a.iter().zip(&b).map(|(x, y)| *x || *y).collect())
            }
        })
    }

    /// [`BlockSkip::Tokens`] with every entry equal becomes `All` or `Run`.
    pub fn simplified(self) -> BlockSkip {
        match self {
            BlockSkip::Tokens(mask) if mask.iter().all(|&s| s) => BlockSkip::All,
            BlockSkip::Tokens(mask) if !mask.iter().any(|&s| s) => BlockSkip::Run,
            other => other,
        }
    }
}

/// Observes or changes the forward pass at the sites it asks for.
///
/// `hook` receives the activation at `site` and returns the tensor the model continues with:
/// return `activation` itself to observe, anything of the same shape to intervene. A probe
/// that meets something it cannot handle (a shape it did not expect, a non-finite value)
/// returns an error, which ends the forward pass with that error. Reduce on the device and
/// keep only small results: probes should not copy whole activations to the host unless that
/// is their job (as with [`super::Capture`]).
pub trait Probe<B: Backend> {
    /// Whether this probe wants to see `site`. Called once per site per forward pass.
    fn wants(&self, site: Site) -> bool;

    /// Sees the activation at a rank-3 `site`, shaped `[batch, pos, width]`, and returns the
    /// tensor that replaces it. The default observes nothing and changes nothing.
    fn hook(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        let _ = (site, ctx);
        Ok(activation)
    }

    /// Sees the attention pattern `blocks.{l}.attn.hook_pattern`, shaped
    /// `[batch, n_heads, query_pos, key_pos]`, and returns the pattern the model continues
    /// with. The default changes nothing.
    fn hook_pattern(
        &mut self,
        site: Site,
        pattern: Tensor<B, 4>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 4>> {
        let _ = (site, ctx);
        Ok(pattern)
    }

    /// Whether block `layer` runs for the tokens of this call. Asked once per block per
    /// forward call (so once per generated token during generation), before the block's
    /// `hook_resid_pre`. The default runs every block.
    fn skip_block(&mut self, layer: usize, ctx: &HookContext<B>) -> Result<BlockSkip> {
        let _ = (layer, ctx);
        Ok(BlockSkip::Run)
    }
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

    /// Whether any attached probe wants `site` (the model skips computing optional sites,
    /// such as the attention pattern's copy, when none does).
    pub fn wants(&self, site: Site) -> bool {
        self.probes.iter().any(|p| p.wants(site))
    }

    /// Runs every probe that wants `site`, threading the activation through them.
    #[inline]
    pub fn apply(
        &mut self,
        site: Site,
        activation: Tensor<B, 3>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        let dims = activation.dims();
        let mut x = activation;
        for probe in self.probes.iter_mut() {
            if probe.wants(site) {
                x = probe.hook(site, x, ctx)?;
                if x.dims() != dims {
                    return Err(crate::Error::Probe {
                        site: site.to_string(),
                        reason: format!(
                            "a probe returned shape {:?} where the activation is {dims:?}",
                            x.dims()
                        ),
                    });
                }
            }
        }
        Ok(x)
    }

    /// Runs every probe that wants the rank-4 pattern `site`.
    pub fn apply_pattern(
        &mut self,
        site: Site,
        pattern: Tensor<B, 4>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 4>> {
        let dims = pattern.dims();
        let mut x = pattern;
        for probe in self.probes.iter_mut() {
            if probe.wants(site) {
                x = probe.hook_pattern(site, x, ctx)?;
                if x.dims() != dims {
                    return Err(crate::Error::Probe {
                        site: site.to_string(),
                        reason: format!(
                            "a probe returned shape {:?} where the pattern is {dims:?}",
                            x.dims()
                        ),
                    });
                }
            }
        }
        Ok(x)
    }

    /// Asks every probe whether block `layer` runs; a token is skipped if any probe skips it.
    pub fn skip_block(&mut self, layer: usize, ctx: &HookContext<B>) -> Result<BlockSkip> {
        let mut answer = BlockSkip::Run;
        for probe in self.probes.iter_mut() {
            let skip = probe.skip_block(layer, ctx)?;
            if let BlockSkip::Tokens(mask) = &skip
                && mask.len() != ctx.batch * ctx.n_pos
            {
                return Err(crate::Error::Probe {
                    site: format!("blocks.{layer}"),
                    reason: format!(
                        "a skip mask of {} tokens for a call of {} x {} tokens",
                        mask.len(),
                        ctx.batch,
                        ctx.n_pos
                    ),
                });
            }
            answer = answer.union(skip)?;
        }
        Ok(answer.simplified())
    }
}
