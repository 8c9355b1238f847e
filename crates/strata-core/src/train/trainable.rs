//! Freezing parameters for selective fine-tuning: the HF checkpoint name of every parameter
//! of a Llama-style decoder, and a gradient filter that drops the gradients of frozen
//! parameters before the optimiser step, so AdamW (its weight decay included) never touches
//! them. KappaTune's selection (`strata_spectra::TrainableMask`) names tensors by these HF
//! names.

use std::collections::{BTreeSet, HashSet};

use crate::error::{Error, Result};
use crate::models::decoder::Decoder;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

/// One parameter of a decoder: its HF checkpoint name, its burn id and its values.
#[derive(Debug, Clone)]
pub struct NamedParam {
    /// The name in an HF Llama checkpoint, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// The burn parameter id.
    pub id: ParamId,
    /// Number of values.
    pub n_params: usize,
    /// The values (row-major, in burn's layout: linear weights are `[in, out]`).
    pub data: TensorData,
}

/// Every parameter of a Llama-style decoder (`llama`, `mistral`, `qwen2` checkpoints) under
/// its HF name. Fails for decoders of other layouts (learned positions, no gate).
pub fn named_params<B: Backend>(decoder: &Decoder<B>) -> Result<Vec<NamedParam>> {
    let not_llama = |why: String| Error::InvalidArgument {
        what: "model to fine-tune".into(),
        reason: format!("named parameters are defined for Llama-style decoders only ({why})"),
    };
    if decoder.pos_embed.is_some() {
        return Err(not_llama("this one has learned positions".into()));
    }
    let mut out = Vec::new();
    let mut push = |name: String, id: ParamId, data: TensorData| {
        out.push(NamedParam {
            name,
            id,
            n_params: data.num_elements(),
            data,
        });
    };
    fn val<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> TensorData {
        p.val().into_data()
    }
    let linear =
        |name: String, l: &Linear<B>, push: &mut dyn FnMut(String, ParamId, TensorData)| {
            push(format!("{name}.weight"), l.weight.id, val(&l.weight));
            if let Some(b) = &l.bias {
                push(format!("{name}.bias"), b.id, val(b));
            }
        };
    push(
        "model.embed_tokens.weight".into(),
        decoder.embed.weight.id,
        val(&decoder.embed.weight),
    );
    for (l, block) in decoder.blocks.iter().enumerate() {
        let p = format!("model.layers.{l}");
        let Some(up) = &block.mlp.up else {
            return Err(not_llama(format!("block {l} has no gated MLP")));
        };
        push(
            format!("{p}.input_layernorm.weight"),
            block.ln1.weight.id,
            val(&block.ln1.weight),
        );
        linear(format!("{p}.self_attn.q_proj"), &block.attn.q, &mut push);
        linear(format!("{p}.self_attn.k_proj"), &block.attn.k, &mut push);
        linear(format!("{p}.self_attn.v_proj"), &block.attn.v, &mut push);
        linear(format!("{p}.self_attn.o_proj"), &block.attn.o, &mut push);
        push(
            format!("{p}.post_attention_layernorm.weight"),
            block.ln2.weight.id,
            val(&block.ln2.weight),
        );
        linear(
            format!("{p}.mlp.gate_proj"),
            &block.mlp.up_or_gate,
            &mut push,
        );
        linear(format!("{p}.mlp.up_proj"), up, &mut push);
        linear(format!("{p}.mlp.down_proj"), &block.mlp.down, &mut push);
    }
    push(
        "model.norm.weight".into(),
        decoder.ln_final.weight.id,
        val(&decoder.ln_final.weight),
    );
    if let Some(unembed) = &decoder.unembed {
        linear("lm_head".into(), unembed, &mut push);
    }
    if let Some(b) = &decoder.ln_final.bias {
        push("model.norm.bias".into(), b.id, val(b));
    }
    Ok(out)
}

/// Which parameters an optimiser may update; all others keep their values.
#[derive(Debug, Clone)]
pub struct TrainableParams {
    trainable: HashSet<ParamId>,
    /// HF names of the trainable parameters, sorted.
    pub trainable_names: BTreeSet<String>,
    /// Number of trainable values.
    pub n_trainable: usize,
}

impl TrainableParams {
    /// Makes trainable exactly the parameters of `decoder` whose HF name `keep` accepts.
    /// Fails when a name in `required` is not a parameter of the decoder.
    pub fn new<B: Backend>(
        decoder: &Decoder<B>,
        required: &BTreeSet<String>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let params = named_params(decoder)?;
        let known: BTreeSet<&str> = params.iter().map(|p| p.name.as_str()).collect();
        if let Some(missing) = required.iter().find(|n| !known.contains(n.as_str())) {
            return Err(Error::InvalidArgument {
                what: "trainable tensors".into(),
                reason: format!("`{missing}` is not a parameter of the model"),
            });
        }
        let kept: Vec<&NamedParam> = params.iter().filter(|p| keep(&p.name)).collect();
        Ok(Self {
            trainable: kept.iter().map(|p| p.id).collect(),
            trainable_names: kept.iter().map(|p| p.name.clone()).collect(),
            n_trainable: kept.iter().map(|p| p.n_params).sum(),
        })
    }

    /// Every parameter trainable (full fine-tuning).
    pub fn all<B: Backend>(decoder: &Decoder<B>) -> Result<Self> {
        Self::new(decoder, &BTreeSet::new(), |_| true)
    }

    /// Exactly the named tensors trainable (e.g. a KappaTune selection).
    pub fn only<B: Backend>(decoder: &Decoder<B>, names: &BTreeSet<String>) -> Result<Self> {
        Self::new(decoder, names, |name| names.contains(name))
    }

    /// Removes from `grads` the gradient of every parameter of `module` that is frozen.
    pub fn filter<B: AutodiffBackend, M: Module<B>>(
        &self,
        grads: &mut GradientsParams,
        module: &M,
    ) {
        struct Drop<'a> {
            trainable: &'a HashSet<ParamId>,
            grads: &'a mut GradientsParams,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Drop<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if !self.trainable.contains(&param.id) {
                    self.grads.remove::<B::InnerBackend, D>(param.id);
                }
            }
        }
        module.visit(&mut Drop {
            trainable: &self.trainable,
            grads,
        });
    }
}
