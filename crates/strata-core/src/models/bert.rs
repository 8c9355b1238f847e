//! BERT encoders (`bert`): post-LN blocks, bidirectional attention, learned positions and
//! token types, no LM head. Follows transformers' `modeling_bert.py` (`BertModel`, eager
//! attention); the output is `last_hidden_state`.
//!
//! Sites follow TransformerLens's BERT: `hook_embed` (word embeddings), `hook_pos_embed`,
//! `blocks.{l}.hook_resid_pre` (the normalised embeddings for block 0), `hook_attn_out`,
//! the MLP sites, `hook_mlp_out` and `hook_resid_post` (after the second LayerNorm).

use burn::module::Module;
use burn::nn::Embedding;
use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use super::attention::Attention;
use super::loader::Loader;
use super::mlp::Mlp;
use super::norm::NormLayer;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::probe::{HookContext, ProbeSet, Site};
use crate::weights::WeightSource;

/// One post-LN encoder block.
#[derive(Module, Debug)]
pub struct BertBlock<B: Backend> {
    /// Self-attention (`attention.self` + `attention.output.dense`).
    pub attn: Attention<B>,
    /// `attention.output.LayerNorm`.
    pub ln_attn: NormLayer<B>,
    /// `intermediate.dense` and `output.dense`.
    pub mlp: Mlp<B>,
    /// `output.LayerNorm`.
    pub ln_mlp: NormLayer<B>,
}

/// A BERT encoder.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    /// `embeddings.word_embeddings`.
    pub embed: Embedding<B>,
    /// `embeddings.position_embeddings`.
    pub pos_embed: Embedding<B>,
    /// `embeddings.token_type_embeddings`.
    pub type_embed: Embedding<B>,
    /// `embeddings.LayerNorm`.
    pub ln_embed: NormLayer<B>,
    /// The blocks.
    pub blocks: Vec<BertBlock<B>>,
    /// The configuration this model was built from.
    #[module(skip)]
    pub config: ModelConfig,
}

impl<B: Backend> Bert<B> {
    /// Loads a `BertModel` checkpoint (keys with or without the `bert.` prefix).
    pub fn load(store: &dyn WeightSource, cfg: &ModelConfig, device: &B::Device) -> Result<Self> {
        let ld = Loader::<B>::new(store, device);
        let p = if store.contains("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let (d, d_mlp) = (cfg.d_model, cfg.d_mlp);
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let b = format!("{p}encoder.layer.{l}");
            let lin = |name: &str, d_in, d_out| {
                ld.torch_linear(&format!("{b}.{name}"), d_in, d_out, true)
            };
            blocks.push(BertBlock {
                attn: Attention {
                    // attention.self.{query,key,value} -> attn.{q,k,v}
                    q: lin("attention.self.query", d, d)?,
                    k: lin("attention.self.key", d, d)?,
                    v: lin("attention.self.value", d, d)?,
                    // attention.output.dense -> attn.o
                    o: lin("attention.output.dense", d, d)?,
                    n_heads: cfg.n_heads,
                    n_kv_heads: cfg.n_heads,
                    d_head: cfg.d_head,
                },
                ln_attn: ld.norm(&format!("{b}.attention.output.LayerNorm"), cfg)?,
                mlp: Mlp {
                    // intermediate.dense -> mlp.up_or_gate, output.dense -> mlp.down
                    up_or_gate: lin("intermediate.dense", d, d_mlp)?,
                    up: None,
                    down: lin("output.dense", d_mlp, d)?,
                    activation: cfg.activation,
                },
                ln_mlp: ld.norm(&format!("{b}.output.LayerNorm"), cfg)?,
            });
        }
        let e = format!("{p}embeddings");
        Ok(Self {
            embed: ld.embedding(&format!("{e}.word_embeddings.weight"), cfg.vocab_size, d)?,
            pos_embed: ld.embedding(&format!("{e}.position_embeddings.weight"), cfg.n_ctx, d)?,
            type_embed: ld.embedding(
                &format!("{e}.token_type_embeddings.weight"),
                cfg.type_vocab_size,
                d,
            )?,
            ln_embed: ld.norm(&format!("{e}.LayerNorm"), cfg)?,
            blocks,
            config: cfg.clone(),
        })
    }

    /// `last_hidden_state` with probes at every site (token type 0 everywhere).
    ///
    /// # Shapes
    /// - returns `[batch, pos, d_model]`
    pub fn forward_with(
        &self,
        batch: &TokenBatch,
        probes: &mut ProbeSet<'_, B>,
    ) -> Result<Tensor<B, 3>> {
        let cfg = &self.config;
        batch.check_vocab(cfg.vocab_size)?;
        if batch.pos > cfg.n_ctx {
            return Err(Error::SequenceTooLong {
                n_tokens: batch.pos,
                n_ctx: cfg.n_ctx,
            });
        }
        let device = self.embed.weight.device();
        let (n_rows, n_pos) = (batch.batch, batch.pos);
        let int2 = |v: Vec<i64>| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, [n_rows, n_pos]), &device)
        };
        let ids = int2(batch.ids.iter().map(|&i| i as i64).collect());
        let pos_ids = int2((0..n_rows).flat_map(|_| 0..n_pos as i64).collect());
        let padding_mask = batch
            .mask
            .as_ref()
            .map(|m| m.iter().map(|&v| v > 0.0).collect());
        let positions = (0..n_rows).flat_map(|_| 0..n_pos).collect();
        let ctx = HookContext::new(
            batch.ids.clone(),
            n_rows,
            n_pos,
            positions,
            padding_mask,
            &device,
        );
        let word = probes.apply(Site::Embed, self.embed.forward(ids), &ctx)?;
        let pos = probes.apply(
            Site::PosEmbed,
            self.pos_embed.forward(pos_ids.clone()),
            &ctx,
        )?;
        let types = self.type_embed.forward(pos_ids.zeros_like());
        let mut x = self.ln_embed.forward(word + pos + types);
        let forbidden: Vec<bool> = (0..n_rows)
            .flat_map(|r| (0..n_pos).flat_map(move |_| (0..n_pos).map(move |j| (r, j))))
            .map(|(r, j)| !batch.is_real(r, j))
            .collect();
        let mask = Tensor::<B, 3, Bool>::from_data(
            TensorData::new(forbidden, [n_rows, n_pos, n_pos]),
            &device,
        )
        .unsqueeze_dim::<4>(1);
        for (layer, block) in self.blocks.iter().enumerate() {
            x = probes.apply(Site::ResidPre { layer }, x, &ctx)?;
            let attn_out = block
                .attn
                .forward(x.clone(), &mask, None, None, layer, probes, &ctx)?;
            let attn_out = probes.apply(Site::AttnOut { layer }, attn_out, &ctx)?;
            let mid = block.ln_attn.forward(attn_out + x);
            let mlp_out = block.mlp.forward(mid.clone(), layer, probes, &ctx)?;
            let mlp_out = probes.apply(Site::MlpOut { layer }, mlp_out, &ctx)?;
            x = probes.apply(
                Site::ResidPost { layer },
                block.ln_mlp.forward(mlp_out + mid),
                &ctx,
            )?;
        }
        Ok(x)
    }
}
