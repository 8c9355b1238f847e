//! Multi-head attention with grouped-query heads, rotary positions and a KV cache.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor, backend::Backend};

use super::flex;
use super::rotary::{self, RotaryTables};
use crate::error::Result;
use crate::probe::{HookContext, ProbeSet, Site};

/// Self-attention: `o(softmax(q k^T / sqrt(d_head) + mask) v)`.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection, `[d_model, n_heads * d_head]`.
    pub(crate) q: Linear<B>,
    /// Key projection, `[d_model, n_kv_heads * d_head]`.
    pub(crate) k: Linear<B>,
    /// Value projection, `[d_model, n_kv_heads * d_head]`.
    pub(crate) v: Linear<B>,
    /// Output projection, `[n_heads * d_head, d_model]`.
    pub(crate) o: Linear<B>,
    /// Query heads.
    pub(crate) n_heads: usize,
    /// Key/value heads.
    pub(crate) n_kv_heads: usize,
    /// Width of one head.
    pub(crate) d_head: usize,
}

/// Keys and values of the tokens seen so far, for one layer.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    /// `[batch, n_kv_heads, n_cached, d_head]`.
    pub(crate) keys: Tensor<B, 4>,
    /// `[batch, n_kv_heads, n_cached, d_head]`.
    pub(crate) values: Tensor<B, 4>,
}

impl<B: Backend> Attention<B> {
    /// Keys and values of `x` (rotated), shaped `[batch, n_kv_heads, pos, d_head]`.
    fn keys_values(
        &self,
        x: Tensor<B, 3>,
        rotary: Option<&RotaryTables<B>>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [batch, pos, _] = x.dims();
        let (kvh, dh) = (self.n_kv_heads, self.d_head);
        let split = |t: Tensor<B, 3>| t.reshape([batch, pos, kvh, dh]).swap_dims(1, 2);
        let mut k = self.k.forward(x.clone());
        if let Some(tables) = rotary {
            let rows = k.reshape([batch * pos * kvh, dh]);
            k = rotary::apply(rows, &tables.k_cos, &tables.k_sin, &tables.rotate_half).reshape([
                batch,
                pos,
                kvh * dh,
            ]);
        }
        (split(k), split(self.v.forward(x)))
    }

    /// Appends new keys and values to a layer's cache and returns all of them.
    fn extend_cache(
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let Some(slot) = cache else {
            return (k, v);
        };
        let (k, v) = match slot.take() {
            Some(past) => (
                Tensor::cat(vec![past.keys, k], 2),
                Tensor::cat(vec![past.values, v], 2),
            ),
            None => (k, v),
        };
        *slot = Some(LayerCache {
            keys: k.clone(),
            values: v.clone(),
        });
        (k, v)
    }

    /// What a skipped block still owes its cache: the keys and values of its input, so later
    /// tokens can attend to these positions. Computes nothing else.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` (normalised)
    pub fn cache_only(
        &self,
        x: Tensor<B, 3>,
        rotary: Option<&RotaryTables<B>>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) {
        if cache.is_some() {
            let (k, v) = self.keys_values(x, rotary);
            Self::extend_cache(k, v, cache);
        }
    }

    /// Attends over the cached tokens and the new ones, with probes at
    /// `attn.hook_pattern` and `attn.hook_z`.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]`
    /// - `mask`: `[batch, n_heads or 1, pos, n_cached + pos]`, true where attention is
    ///   forbidden (one copy per head saves expanding it in every layer)
    /// - returns `[batch, pos, d_model]`
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: &Tensor<B, 4, Bool>,
        rotary: Option<&RotaryTables<B>>,
        cache: Option<&mut Option<LayerCache<B>>>,
        layer: usize,
        probes: &mut ProbeSet<'_, B>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        let [batch, pos, _] = x.dims();
        let (h, kvh, dh) = (self.n_heads, self.n_kv_heads, self.d_head);
        // The attention scale goes on the queries (the rotary tables carry it), so the
        // scores, `n_keys / d_head` times larger, need no pass of their own.
        let q = self.q.forward(x.clone()).reshape([batch * pos * h, dh]);
        let q = match rotary {
            Some(tables) => rotary::apply(q, &tables.q_cos, &tables.q_sin, &tables.rotate_half),
            None => q.mul_scalar(1.0 / (dh as f64).sqrt()),
        };
        let (k, v) = self.keys_values(x, rotary);
        let (mut k, mut v) = Self::extend_cache(k, v, cache);
        let q = q.reshape([batch, pos, h * dh]);
        if !probes.wants(Site::AttnPattern { layer })
            && let Some(z) = flex::attention::attend(&q, &k, &v, mask, h)
        {
            let z = probes.apply(Site::AttnZ { layer }, z, ctx)?;
            return Ok(self.o.forward(z));
        }
        let q = q.reshape([batch, pos, h, dh]).swap_dims(1, 2);
        let n_keys = k.dims()[2];
        if kvh != h {
            let n_rep = h / kvh;
            let repeat = |t: Tensor<B, 4>| {
                t.unsqueeze_dim::<5>(2)
                    .repeat_dim(2, n_rep)
                    .reshape([batch, h, n_keys, dh])
            };
            k = repeat(k);
            v = repeat(v);
        }
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mask_fill(mask.clone(), f32::MIN);
        let weights = softmax(scores, 3);
        let weights = probes.apply_pattern(Site::AttnPattern { layer }, weights, ctx)?;
        let z = weights
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, pos, h * dh]);
        let z = probes.apply(Site::AttnZ { layer }, z, ctx)?;
        Ok(self.o.forward(z))
    }
}
