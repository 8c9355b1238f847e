//! Loading each family's HF checkpoint onto the shared [`Decoder`].
//!
//! The names come from the family's table in [`super::hf_names`]; what differs between the
//! families (fused projections, `Conv1D` layouts, row orders) is written here as explicit
//! steps, each as `// hf part -> strata part`.

use burn::tensor::backend::Backend;

use super::attention::Attention;
use super::decoder::{Decoder, DecoderBlock};
use super::hf_names::{HfNames, QkvNames};
use super::loader::{Loader, gather_rows, neox_qkv_indices, split_columns, split_vector};
use super::mlp::Mlp;
use crate::config::{Family, ModelConfig};
use crate::error::Result;
use crate::weights::WeightSource;

/// Builds a decoder of any decoder family from its checkpoint.
pub fn load_decoder<B: Backend>(
    store: &dyn WeightSource,
    cfg: &ModelConfig,
    device: &B::Device,
) -> Result<Decoder<B>> {
    let ld = Loader::<B>::new(store, device);
    let Some(names) = HfNames::of(cfg.family) else {
        return Err(crate::error::Error::InvalidArgument {
            what: "model family".into(),
            reason: "BERT is an encoder, loaded by its own loader".into(),
        });
    };
    let body = body_prefix(store, names);
    match cfg.family {
        Family::Gpt2 => load_gpt2(&ld, cfg, names, &body),
        Family::GptNeox => load_gpt_neox(&ld, cfg, names, &body),
        _ => load_llama_like(&ld, cfg, names, &body),
    }
}

/// The prefix under which a checkpoint stores its body: `transformer.` for
/// `GPT2LMHeadModel`, nothing for a bare `GPT2Model`.
fn body_prefix(store: &dyn WeightSource, names: &HfNames) -> String {
    if store.contains(&format!("{}{}.weight", names.body, names.embed)) {
        names.body.to_string()
    } else {
        String::new()
    }
}

fn attention<B: Backend>(
    cfg: &ModelConfig,
    q: burn::nn::Linear<B>,
    k: burn::nn::Linear<B>,
    v: burn::nn::Linear<B>,
    o: burn::nn::Linear<B>,
) -> Attention<B> {
    Attention {
        q,
        k,
        v,
        o,
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        d_head: cfg.d_head,
    }
}

fn load_gpt2<B: Backend>(
    ld: &Loader<'_, B>,
    cfg: &ModelConfig,
    n: &HfNames,
    p: &str,
) -> Result<Decoder<B>> {
    let (d, d_mlp) = (cfg.d_model, cfg.d_mlp);
    // The vocabulary matrices first, while little else is resident: this keeps the peak
    // host memory of a load near one copy of the weights.
    let embed = ld.embedding(&format!("{p}{}.weight", n.embed), cfg.vocab_size, d)?;
    let unembed = unembed(ld, cfg, n.unembed)?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let b = n.block(p, l);
        // attn.c_attn [d, 3d] (Conv1D, [in, out]) -> q, k, v: split the columns.
        let qkv = n.fused_qkv();
        let c_attn = ld.matrix(&format!("{b}.{qkv}.weight"), d, 3 * d)?;
        let c_attn_b = ld.store.read_shaped(&format!("{b}.{qkv}.bias"), &[3 * d])?;
        let mut w = split_columns(&c_attn, &[d, d, d]).into_iter();
        let mut bias = split_vector(&c_attn_b, &[d, d, d]).into_iter();
        let mut next = || ld.linear_from(w.next().expect("3 parts"), bias.next());
        let (q, k, v) = (next(), next(), next());
        blocks.push(DecoderBlock {
            // ln_1 -> ln1
            ln1: ld.norm(&format!("{b}.{}", n.ln1), cfg)?,
            // attn.c_proj -> attn.o
            attn: attention(
                cfg,
                q,
                k,
                v,
                ld.conv1d(&format!("{b}.{}", n.attn_out), d, d)?,
            ),
            // ln_2 -> ln2
            ln2: ld.norm(&format!("{b}.{}", n.ln2), cfg)?,
            mlp: Mlp {
                // mlp.c_fc -> mlp.up_or_gate
                up_or_gate: ld.conv1d(&format!("{b}.{}", n.mlp_in), d, d_mlp)?,
                up: None,
                // mlp.c_proj -> mlp.down
                down: ld.conv1d(&format!("{b}.{}", n.mlp_out), d_mlp, d)?,
                activation: cfg.activation,
            },
            parallel_residual: false,
        });
    }
    Ok(Decoder {
        // wte -> embed, wpe -> pos_embed
        embed,
        pos_embed: match n.pos_embed {
            Some(name) => Some(ld.embedding(&format!("{p}{name}.weight"), cfg.n_ctx, d)?),
            None => None,
        },
        blocks,
        // ln_f -> ln_final
        ln_final: ld.norm(&format!("{p}{}", n.final_norm), cfg)?,
        unembed,
        config: cfg.clone(),
    })
}

fn load_gpt_neox<B: Backend>(
    ld: &Loader<'_, B>,
    cfg: &ModelConfig,
    n: &HfNames,
    p: &str,
) -> Result<Decoder<B>> {
    let (d, d_mlp, dh, h) = (cfg.d_model, cfg.d_mlp, cfg.d_head, cfg.n_heads);
    let qkv_idx = neox_qkv_indices(h, dh);
    let embed = ld.embedding(&format!("{p}{}.weight", n.embed), cfg.vocab_size, d)?;
    let unembed = unembed(ld, cfg, n.unembed)?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let b = n.block(p, l);
        // attention.query_key_value [3 h dh, d] with outputs ordered [h, 3, dh]
        // -> q, k, v: gather each one's rows, then transpose to [d, h dh].
        let fused_name = n.fused_qkv();
        let qkv = ld.matrix(&format!("{b}.{fused_name}.weight"), 3 * h * dh, d)?;
        let qkv_b = if cfg.qkv_bias {
            Some(
                ld.store
                    .read_shaped(&format!("{b}.{fused_name}.bias"), &[3 * h * dh])?,
            )
        } else {
            None
        };
        let part = |i: usize| {
            ld.linear_from(
                gather_rows(&qkv, &qkv_idx[i]).transposed(),
                qkv_b.as_ref().map(|bias| gather_rows(bias, &qkv_idx[i])),
            )
        };
        let (q, k, v) = (part(0), part(1), part(2));
        blocks.push(DecoderBlock {
            // input_layernorm -> ln1
            ln1: ld.norm(&format!("{b}.{}", n.ln1), cfg)?,
            // attention.dense -> attn.o
            attn: attention(
                cfg,
                q,
                k,
                v,
                ld.torch_linear(&format!("{b}.{}", n.attn_out), h * dh, d, cfg.attn_out_bias)?,
            ),
            // post_attention_layernorm -> ln2
            ln2: ld.norm(&format!("{b}.{}", n.ln2), cfg)?,
            mlp: Mlp {
                // mlp.dense_h_to_4h -> mlp.up_or_gate
                up_or_gate: ld.torch_linear(
                    &format!("{b}.{}", n.mlp_in),
                    d,
                    d_mlp,
                    cfg.mlp_bias,
                )?,
                up: None,
                // mlp.dense_4h_to_h -> mlp.down
                down: ld.torch_linear(&format!("{b}.{}", n.mlp_out), d_mlp, d, cfg.mlp_bias)?,
                activation: cfg.activation,
            },
            parallel_residual: cfg.parallel_residual,
        });
    }
    Ok(Decoder {
        // embed_in -> embed
        embed,
        pos_embed: None,
        blocks,
        // final_layer_norm -> ln_final
        ln_final: ld.norm(&format!("{p}{}", n.final_norm), cfg)?,
        // embed_out -> unembed
        unembed,
        config: cfg.clone(),
    })
}

fn load_llama_like<B: Backend>(
    ld: &Loader<'_, B>,
    cfg: &ModelConfig,
    n: &HfNames,
    p: &str,
) -> Result<Decoder<B>> {
    let (d, d_mlp, dh) = (cfg.d_model, cfg.d_mlp, cfg.d_head);
    let (q_out, kv_out) = (cfg.n_heads * dh, cfg.n_kv_heads * dh);
    let QkvNames::Separate { q, k, v } = n.qkv else {
        unreachable!("the Llama table has separate projections")
    };
    let Some(up) = n.mlp_up else {
        unreachable!("the Llama table has a gated MLP")
    };
    let embed = ld.embedding(&format!("{p}{}.weight", n.embed), cfg.vocab_size, d)?;
    let unembed = unembed(ld, cfg, n.unembed)?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let b = n.block(p, l);
        let linear = |name: &str, d_in: usize, d_out: usize, bias: bool| {
            ld.torch_linear(&format!("{b}.{name}"), d_in, d_out, bias)
        };
        blocks.push(DecoderBlock {
            // input_layernorm -> ln1
            ln1: ld.norm(&format!("{b}.{}", n.ln1), cfg)?,
            // self_attn.{q,k,v,o}_proj -> attn.{q,k,v,o} (transposed)
            attn: attention(
                cfg,
                linear(q, d, q_out, cfg.qkv_bias)?,
                linear(k, d, kv_out, cfg.qkv_bias)?,
                linear(v, d, kv_out, cfg.qkv_bias)?,
                linear(n.attn_out, q_out, d, cfg.attn_out_bias)?,
            ),
            // post_attention_layernorm -> ln2
            ln2: ld.norm(&format!("{b}.{}", n.ln2), cfg)?,
            mlp: Mlp {
                // mlp.gate_proj -> mlp.up_or_gate, mlp.up_proj -> mlp.up, mlp.down_proj -> mlp.down
                up_or_gate: linear(n.mlp_in, d, d_mlp, cfg.mlp_bias)?,
                up: Some(linear(up, d, d_mlp, cfg.mlp_bias)?),
                down: linear(n.mlp_out, d_mlp, d, cfg.mlp_bias)?,
                activation: cfg.activation,
            },
            parallel_residual: false,
        });
    }
    Ok(Decoder {
        // embed_tokens -> embed
        embed,
        pos_embed: None,
        blocks,
        // norm -> ln_final
        ln_final: ld.norm(&format!("{p}{}", n.final_norm), cfg)?,
        // lm_head -> unembed
        unembed,
        config: cfg.clone(),
    })
}

/// The unembedding: `None` (tied to the embedding) when the config ties them, as
/// transformers does even if the file also holds a separate `{name}.weight` (which is then
/// reported as unused); otherwise `{name}.weight` `[d_vocab, d_model]` transposed.
fn unembed<B: Backend>(
    ld: &Loader<'_, B>,
    cfg: &ModelConfig,
    name: &str,
) -> Result<Option<burn::nn::Linear<B>>> {
    let key = format!("{name}.weight");
    if cfg.tied_embeddings {
        if ld.store.contains(&key) {
            tracing::warn!(
                tensor = %key,
                "tie_word_embeddings is true: the unembedding is the token embedding, as in \
                 transformers; the separate `{key}` in the file is not used"
            );
        }
        return Ok(None);
    }
    if ld.store.contains(&key) {
        return Ok(Some(ld.torch_linear(
            name,
            cfg.d_model,
            cfg.vocab_size,
            false,
        )?));
    }
    // Neither a head nor tying: report the missing tensor.
    ld.store.read_f32(&key).map(|_| None)
}
