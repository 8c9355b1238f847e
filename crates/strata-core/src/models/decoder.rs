//! The shared causal decoder: GPT-2, GPT-NeoX (Pythia), Llama, Mistral and Qwen2.
//!
//! One config-driven implementation of a pre-norm transformer decoder. The family quirks are
//! [`ModelConfig`] fields: learned vs rotary positions (with a rotary fraction and scaling),
//! LayerNorm vs RMSNorm, plain vs gated MLP, serial vs parallel residual, biases, tied
//! embeddings and sliding-window attention. Weight names per family live in
//! [`super::names`]. Follows transformers' `modeling_gpt2.py`, `modeling_gpt_neox.py`,
//! `modeling_llama.py`, `modeling_mistral.py` and `modeling_qwen2.py` (eager attention).

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use super::attention::{Attention, RotaryTables};
use super::cache::KvCache;
use super::mlp::Mlp;
use super::norm::NormLayer;
use super::rotary;
use crate::config::{ModelConfig, Positions};
use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::probe::{HookContext, ProbeSet, Site};

/// One decoder block: attention and MLP, each behind a norm, serial or parallel.
#[derive(Module, Debug)]
pub struct DecoderBlock<B: Backend> {
    /// Norm before attention.
    pub ln1: NormLayer<B>,
    /// Self-attention.
    pub attn: Attention<B>,
    /// Norm before the MLP.
    pub ln2: NormLayer<B>,
    /// The MLP.
    pub mlp: Mlp<B>,
    /// GPT-NeoX parallel residual: both branches read the block input.
    pub parallel_residual: bool,
}

/// A causal language model.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embedding, `[d_vocab, d_model]`.
    pub embed: Embedding<B>,
    /// Learned position embedding, `[n_ctx, d_model]` (GPT-2 only).
    pub pos_embed: Option<Embedding<B>>,
    /// The blocks.
    pub blocks: Vec<DecoderBlock<B>>,
    /// Final norm.
    pub ln_final: NormLayer<B>,
    /// Unembedding, `[d_model, d_vocab]`; `None` when tied to `embed`.
    pub unembed: Option<Linear<B>>,
    /// The configuration this model was built from.
    #[module(skip)]
    pub config: ModelConfig,
}

impl<B: Backend> DecoderBlock<B> {
    /// Runs the block with probes at `hook_resid_pre`, `hook_attn_out`, the MLP sites,
    /// `hook_mlp_out` and `hook_resid_post`.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]`; `mask`: `[batch, 1, pos, n_keys]` -> `[batch, pos, d_model]`
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        layer: usize,
        mask: &Tensor<B, 4, Bool>,
        rotary: Option<&RotaryTables<B>>,
        cache: Option<&mut Option<super::attention::LayerCache<B>>>,
        probes: &mut ProbeSet<'_, B>,
        ctx: &HookContext<B>,
    ) -> Tensor<B, 3> {
        let x = probes.apply(Site::ResidPre { layer }, x, ctx);
        let attn_out = self
            .attn
            .forward(self.ln1.forward(x.clone()), mask, rotary, cache);
        let attn_out = probes.apply(Site::AttnOut { layer }, attn_out, ctx);
        let out = if self.parallel_residual {
            let mlp_out = self
                .mlp
                .forward(self.ln2.forward(x.clone()), layer, probes, ctx);
            let mlp_out = probes.apply(Site::MlpOut { layer }, mlp_out, ctx);
            mlp_out + attn_out + x
        } else {
            let mid = attn_out + x;
            let mlp_out = self
                .mlp
                .forward(self.ln2.forward(mid.clone()), layer, probes, ctx);
            let mlp_out = probes.apply(Site::MlpOut { layer }, mlp_out, ctx);
            mlp_out + mid
        };
        probes.apply(Site::ResidPost { layer }, out, ctx)
    }
}

impl<B: Backend> Decoder<B> {
    /// Logits of a batch with no probes and no cache.
    ///
    /// # Shapes
    /// - returns `[batch, pos, d_vocab]`
    pub fn forward(&self, batch: &TokenBatch) -> Result<Tensor<B, 3>> {
        self.forward_with(batch, None, &mut ProbeSet::none())
    }

    /// The forward pass with probes at every site and an optional KV cache.
    ///
    /// With a cache, `batch` holds only the new tokens; its mask (if any) covers them, and
    /// the cache keeps the mask of earlier positions.
    ///
    /// # Shapes
    /// - returns `[batch, pos, d_vocab]` logits
    pub fn forward_with(
        &self,
        batch: &TokenBatch,
        mut cache: Option<&mut KvCache<B>>,
        probes: &mut ProbeSet<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        let cfg = &self.config;
        batch.check_vocab(cfg.vocab_size)?;
        let device = self.embed.weight.device();
        let (n_rows, n_new) = (batch.batch, batch.pos);
        let n_cached = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_ref()
            && !c.is_empty()
            && c.mask.len() != n_rows
        {
            return Err(Error::InvalidArgument {
                what: "batch size".into(),
                reason: format!("the cache holds {} rows, the input {n_rows}", c.mask.len()),
            });
        }
        // Padding mask over cached + new positions, one row per sequence.
        let full_mask: Vec<Vec<f32>> = (0..n_rows)
            .map(|r| {
                let mut row = cache
                    .as_ref()
                    .map_or_else(Vec::new, |c| c.mask.get(r).cloned().unwrap_or_default());
                row.extend((0..n_new).map(|p| if batch.is_real(r, p) { 1.0 } else { 0.0 }));
                row
            })
            .collect();
        let n_keys = n_cached + n_new;
        // Position of each new token: the number of real tokens before it (left padding
        // shifts positions, as transformers' generate does).
        let mut positions = Vec::with_capacity(n_rows * n_new);
        for row in &full_mask {
            let mut n_real_before = 0usize;
            for (j, &m) in row.iter().enumerate() {
                if j >= n_cached {
                    positions.push(if m > 0.0 { n_real_before } else { 0 });
                }
                if m > 0.0 {
                    n_real_before += 1;
                }
            }
        }
        let max_pos = positions.iter().copied().max().unwrap_or(0);
        if cfg.has_learned_positions() && max_pos >= cfg.n_ctx {
            return Err(Error::SequenceTooLong {
                n_tokens: max_pos + 1,
                n_ctx: cfg.n_ctx,
            });
        }
        let mut forbidden = Vec::with_capacity(n_rows * n_new * n_keys);
        for row in &full_mask {
            for i in 0..n_new {
                let q = n_cached + i;
                for (j, &m) in row.iter().enumerate() {
                    let outside_window = cfg.sliding_window.is_some_and(|w| q >= j + w);
                    forbidden.push(j > q || m == 0.0 || outside_window);
                }
            }
        }
        let mask = Tensor::<B, 3, Bool>::from_data(
            TensorData::new(forbidden, [n_rows, n_new, n_keys]),
            &device,
        )
        .unsqueeze_dim::<4>(1);
        let ctx = HookContext {
            attention_mask: batch.mask.as_ref().map(|m| {
                Tensor::<B, 2>::from_data(TensorData::new(m.clone(), [n_rows, n_new]), &device)
            }),
            pos_offset: n_cached,
        };

        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(
                batch.ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [n_rows, n_new],
            ),
            &device,
        );
        let mut x = probes.apply(Site::Embed, self.embed.forward(ids), &ctx);
        if let Some(pos_embed) = &self.pos_embed {
            let pos_ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(
                    positions.iter().map(|&p| p as i64).collect::<Vec<_>>(),
                    [n_rows, n_new],
                ),
                &device,
            );
            x = x + probes.apply(Site::PosEmbed, pos_embed.forward(pos_ids), &ctx);
        }
        let rotary_tables = match cfg.positions {
            Positions::Rotary {
                theta,
                rotary_dim,
                scaling,
            } => {
                let inv_freq = rotary::inverse_frequencies(theta, rotary_dim, scaling);
                let (cos, sin) =
                    rotary::cos_sin::<B>(&inv_freq, &positions, n_rows, n_new, &device);
                Some(RotaryTables { cos, sin })
            }
            Positions::Learned => None,
        };
        for (layer, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[layer]);
            x = block.forward(x, layer, &mask, rotary_tables.as_ref(), slot, probes, &ctx);
        }
        if let Some(c) = cache {
            c.mask = full_mask;
        }
        let x = probes.apply(Site::LnFinal, self.ln_final.forward(x), &ctx);
        let logits = match &self.unembed {
            Some(unembed) => unembed.forward(x),
            None => {
                let [b, p, d] = x.dims();
                x.reshape([b * p, d])
                    .matmul(self.embed.weight.val().transpose())
                    .reshape([b, p, cfg.vocab_size])
            }
        };
        Ok(probes.apply(Site::Logits, logits, &ctx))
    }
}
