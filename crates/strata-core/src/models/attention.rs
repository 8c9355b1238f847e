//! Multi-head attention with grouped-query heads, rotary positions and a KV cache.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor, backend::Backend};

use super::rotary;

/// Self-attention: `o(softmax(q k^T / sqrt(d_head) + mask) v)`.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection, `[d_model, n_heads * d_head]`.
    pub q: Linear<B>,
    /// Key projection, `[d_model, n_kv_heads * d_head]`.
    pub k: Linear<B>,
    /// Value projection, `[d_model, n_kv_heads * d_head]`.
    pub v: Linear<B>,
    /// Output projection, `[n_heads * d_head, d_model]`.
    pub o: Linear<B>,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
}

/// Keys and values of the tokens seen so far, for one layer.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    /// `[batch, n_kv_heads, n_cached, d_head]`.
    pub keys: Tensor<B, 4>,
    /// `[batch, n_kv_heads, n_cached, d_head]`.
    pub values: Tensor<B, 4>,
}

/// Rotary tables for one forward call, shared by every layer.
#[derive(Debug, Clone)]
pub struct RotaryTables<B: Backend> {
    /// `[batch, 1, pos, rotary_dim]`.
    pub cos: Tensor<B, 4>,
    /// `[batch, 1, pos, rotary_dim]`.
    pub sin: Tensor<B, 4>,
}

impl<B: Backend> Attention<B> {
    /// Attends over the cached tokens and the new ones.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]`
    /// - `mask`: `[batch, 1, pos, n_cached + pos]`, true where attention is forbidden
    /// - returns `[batch, pos, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        mask: &Tensor<B, 4, Bool>,
        rotary: Option<&RotaryTables<B>>,
        cache: Option<&mut Option<LayerCache<B>>>,
    ) -> Tensor<B, 3> {
        let [batch, pos, _] = x.dims();
        let (h, kvh, dh) = (self.n_heads, self.n_kv_heads, self.d_head);
        let split =
            |t: Tensor<B, 3>, heads: usize| t.reshape([batch, pos, heads, dh]).swap_dims(1, 2);
        let mut q = split(self.q.forward(x.clone()), h);
        let mut k = split(self.k.forward(x.clone()), kvh);
        let mut v = split(self.v.forward(x), kvh);
        if let Some(tables) = rotary {
            q = rotary::apply(q, &tables.cos, &tables.sin);
            k = rotary::apply(k, &tables.cos, &tables.sin);
        }
        if let Some(slot) = cache {
            if let Some(past) = slot.take() {
                k = Tensor::cat(vec![past.keys, k], 2);
                v = Tensor::cat(vec![past.values, v], 2);
            }
            *slot = Some(LayerCache {
                keys: k.clone(),
                values: v.clone(),
            });
        }
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
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt());
        let scores = scores.mask_fill(mask.clone(), f32::MIN);
        let weights = softmax(scores, 3);
        let out = weights
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, pos, h * dh]);
        self.o.forward(out)
    }
}
