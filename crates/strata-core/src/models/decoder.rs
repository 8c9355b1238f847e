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

use super::attention::Attention;
use super::cache::KvCache;
use super::mlp::Mlp;
use super::norm::NormLayer;
use super::rotary::{self, HeadLayout, RotaryTables};
use crate::config::{ModelConfig, Positions};
use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::probe::{BlockSkip, HookContext, ProbeSet, Site};

/// One decoder block: attention and MLP, each behind a norm, serial or parallel.
#[derive(Module, Debug)]
pub struct DecoderBlock<B: Backend> {
    /// Norm before attention.
    pub ln1: NormLayer<B>,
    /// Self-attention.
    pub(crate) attn: Attention<B>,
    /// Norm before the MLP.
    pub ln2: NormLayer<B>,
    /// The MLP.
    pub(crate) mlp: Mlp<B>,
    /// GPT-NeoX parallel residual: both branches read the block input.
    pub(crate) parallel_residual: bool,
}

/// A causal language model.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embedding, `[d_vocab, d_model]`.
    pub(crate) embed: Embedding<B>,
    /// Learned position embedding, `[n_ctx, d_model]` (GPT-2 only).
    pub(crate) pos_embed: Option<Embedding<B>>,
    /// The blocks.
    pub(crate) blocks: Vec<DecoderBlock<B>>,
    /// Final norm.
    pub(crate) ln_final: NormLayer<B>,
    /// Unembedding, `[d_model, d_vocab]`; `None` when tied to `embed`.
    pub(crate) unembed: Option<Linear<B>>,
    /// The configuration this model was built from.
    #[module(skip)]
    pub(crate) config: ModelConfig,
}

impl<B: Backend> Decoder<B> {
    /// The configuration this decoder was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
}

impl<B: Backend> DecoderBlock<B> {
    /// Runs the block with probes at every block site, after asking the probes whether it
    /// runs at all ([`crate::Probe::skip_block`]).
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]`; `mask`: `[batch, n_heads, pos, n_keys]` -> `[batch, pos, d_model]`
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
    ) -> Result<Tensor<B, 3>> {
        let skip = probes.skip_block(layer, ctx)?;
        let x = probes.apply(Site::ResidPre { layer }, x, ctx)?;
        if skip == BlockSkip::All {
            self.attn
                .cache_only(self.ln1.forward(x.clone()), rotary, cache);
            return probes.apply(Site::ResidPost { layer }, x, ctx);
        }
        let normed = probes.apply(
            Site::Ln1Normalized { layer },
            self.ln1.forward(x.clone()),
            ctx,
        )?;
        let attn_out = self
            .attn
            .forward(normed, mask, rotary, cache, layer, probes, ctx)?;
        let attn_out = probes.apply(Site::AttnOut { layer }, attn_out, ctx)?;
        let out = if self.parallel_residual {
            let normed = probes.apply(
                Site::Ln2Normalized { layer },
                self.ln2.forward(x.clone()),
                ctx,
            )?;
            let mlp_out = self.mlp.forward(normed, layer, probes, ctx)?;
            let mlp_out = probes.apply(Site::MlpOut { layer }, mlp_out, ctx)?;
            mlp_out + attn_out + x.clone()
        } else {
            let mid = probes.apply(Site::ResidMid { layer }, attn_out + x.clone(), ctx)?;
            let normed = probes.apply(
                Site::Ln2Normalized { layer },
                self.ln2.forward(mid.clone()),
                ctx,
            )?;
            let mlp_out = self.mlp.forward(normed, layer, probes, ctx)?;
            let mlp_out = probes.apply(Site::MlpOut { layer }, mlp_out, ctx)?;
            mlp_out + mid
        };
        let out = match skip {
            BlockSkip::Tokens(skipped) => {
                let [batch, pos, d] = out.dims();
                let skipped = Tensor::<B, 2, Bool>::from_data(
                    TensorData::new(skipped, [batch, pos]),
                    &out.device(),
                )
                .unsqueeze_dim::<3>(2)
                .expand([batch, pos, d]);
                out.mask_where(skipped, x)
            }
            _ => out,
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
        cache: Option<&mut KvCache<B>>,
        probes: &mut ProbeSet<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        self.forward_call(batch, cache, probes, None)
    }

    /// [`Decoder::forward_with`], telling the probes which generation step this call is.
    pub(crate) fn forward_call(
        &self,
        batch: &TokenBatch,
        mut cache: Option<&mut KvCache<B>>,
        probes: &mut ProbeSet<'_, B>,
        generation_step: Option<usize>,
    ) -> Result<Tensor<B, 3>> {
        let cfg = &self.config;
        batch.check_vocab(cfg.vocab_size)?;
        let device = self.embed.weight.device();
        let (n_rows, n_new) = (batch.batch, batch.pos);
        let n_cached = cache.as_ref().map_or(0, |c| c.len());
        if n_cached + n_new > cfg.n_ctx {
            return Err(Error::SequenceTooLong {
                n_tokens: n_cached + n_new,
                n_ctx: cfg.n_ctx,
            });
        }
        crate::config::limits::check_memory(
            &format!("a forward pass over {n_rows} x {n_new} tokens"),
            crate::config::limits::forward_bytes(cfg, n_rows, n_new, n_cached + n_new),
            None,
        )?;
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
        // One copy of each row's mask per head: the scores are masked in place of a
        // broadcast, which would be expanded again in every layer.
        let heads = cfg.n_heads;
        let mut forbidden = Vec::with_capacity(n_rows * heads * n_new * n_keys);
        let mut row_mask = Vec::with_capacity(n_new * n_keys);
        for row in &full_mask {
            row_mask.clear();
            for i in 0..n_new {
                let q = n_cached + i;
                for (j, &m) in row.iter().enumerate() {
                    let outside_window = cfg.sliding_window.is_some_and(|w| q >= j + w);
                    row_mask.push(j > q || m == 0.0 || outside_window);
                }
            }
            for _ in 0..heads {
                forbidden.extend_from_slice(&row_mask);
            }
        }
        let mask = Tensor::<B, 4, Bool>::from_data(
            TensorData::new(forbidden, [n_rows, heads, n_new, n_keys]),
            &device,
        );
        let padding_mask = batch
            .mask
            .as_ref()
            .map(|m| m.iter().map(|&v| v > 0.0).collect());
        let ctx = HookContext::new(
            batch.ids.clone(),
            n_rows,
            n_new,
            positions.clone(),
            padding_mask,
            &device,
        )
        .with_cached(n_cached)
        .with_generation_step(generation_step);

        let ids = Tensor::<B, 2, Int>::from_data(
            TensorData::new(
                batch.ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [n_rows, n_new],
            ),
            &device,
        );
        let mut x = probes.apply(Site::Embed, self.embed.forward(ids), &ctx)?;
        if let Some(pos_embed) = &self.pos_embed {
            let pos_ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(
                    positions.iter().map(|&p| p as i64).collect::<Vec<_>>(),
                    [n_rows, n_new],
                ),
                &device,
            );
            x = x + probes.apply(Site::PosEmbed, pos_embed.forward(pos_ids), &ctx)?;
        }
        let rotary_tables = match cfg.positions {
            Positions::Rotary {
                theta,
                rotary_dim,
                scaling,
            } => {
                let inv_freq = rotary::inverse_frequencies(theta, rotary_dim, scaling);
                let heads = HeadLayout {
                    n_heads: cfg.n_heads,
                    n_kv_heads: cfg.n_kv_heads,
                    d_head: cfg.d_head,
                    q_scale: 1.0 / (cfg.d_head as f32).sqrt(),
                };
                Some(RotaryTables::new(&inv_freq, &positions, heads, &device))
            }
            Positions::Learned => None,
        };
        for (layer, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[layer]);
            x = block.forward(x, layer, &mask, rotary_tables.as_ref(), slot, probes, &ctx)?;
        }
        if let Some(c) = cache {
            c.mask = full_mask;
        }
        let x = probes.apply(Site::LnFinal, self.ln_final.forward(x), &ctx)?;
        let logits = self.unembed_normalized(x);
        probes.apply(Site::Logits, logits, &ctx)
    }

    /// The unembedding of an already normalised residual (`ln_final.hook_normalized`).
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` -> `[batch, pos, d_vocab]`
    fn unembed_normalized(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match &self.unembed {
            Some(unembed) => unembed.forward(x),
            None => {
                let [b, p, d] = x.dims();
                x.reshape([b * p, d])
                    .matmul(self.embed.weight.val().transpose())
                    .reshape([b, p, self.config.vocab_size])
            }
        }
    }

    /// Final norm and unembedding of any residual-stream tensor: the logits the model would
    /// give if the stream ended here (the logit lens, from any block's `hook_resid_post`).
    ///
    /// # Shapes
    /// - `residual`: `[batch, pos, d_model]` -> `[batch, pos, d_vocab]`
    pub fn unembed(&self, residual: Tensor<B, 3>) -> Result<Tensor<B, 3>> {
        let width = residual.dims()[2];
        if width != self.config.d_model {
            return Err(Error::InvalidArgument {
                what: "residual".into(),
                reason: format!(
                    "width {width}, but the model's residual stream is {} wide",
                    self.config.d_model
                ),
            });
        }
        Ok(self.unembed_normalized(self.ln_final.forward(residual)))
    }
}
