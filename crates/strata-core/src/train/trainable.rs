//! Freezing parameters for selective fine-tuning: the HF checkpoint name of every parameter
//! of a Llama-style decoder (from the family's name table), and a gradient filter that drops the gradients of frozen
//! parameters before the optimiser step, so AdamW (its weight decay included) never touches
//! them. KappaTune's selection (`strata_spectra::TrainableMask`) names tensors by these HF
//! names.

use std::collections::{BTreeSet, HashSet};

use crate::error::{Error, Result};
use crate::models::Decoder;
use crate::models::hf_names::{HfNames, QkvNames};
use crate::models::norm::NormLayer;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
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
/// its HF name, from the family's name table. Fails for families whose checkpoints fuse
/// q, k and v into one tensor (GPT-2, GPT-NeoX): one name there covers three parameters.
pub fn named_params<B: Backend>(decoder: &Decoder<B>) -> Result<Vec<NamedParam>> {
    let family = decoder.config().family;
    let not_separate = || Error::InvalidArgument {
        what: "model to fine-tune".into(),
        reason: format!(
            "named parameters are defined for Llama-style decoders only (`{}` fuses q, k \
             and v into one checkpoint tensor)",
            decoder.config().model_type
        ),
    };
    let n = HfNames::of(family).ok_or_else(not_separate)?;
    let QkvNames::Separate { q, k, v } = n.qkv else {
        return Err(not_separate());
    };
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
    let norm =
        |name: String, l: &NormLayer<B>, push: &mut dyn FnMut(String, ParamId, TensorData)| {
            push(format!("{name}.weight"), l.weight.id, val(&l.weight));
            if let Some(b) = &l.bias {
                push(format!("{name}.bias"), b.id, val(b));
            }
        };
    push(
        format!("{}{}.weight", n.body, n.embed),
        decoder.embed.weight.id,
        val(&decoder.embed.weight),
    );
    for (l, block) in decoder.blocks.iter().enumerate() {
        let p = n.block(n.body, l);
        norm(format!("{p}.{}", n.ln1), &block.ln1, &mut push);
        linear(format!("{p}.{q}"), &block.attn.q, &mut push);
        linear(format!("{p}.{k}"), &block.attn.k, &mut push);
        linear(format!("{p}.{v}"), &block.attn.v, &mut push);
        linear(format!("{p}.{}", n.attn_out), &block.attn.o, &mut push);
        norm(format!("{p}.{}", n.ln2), &block.ln2, &mut push);
        linear(
            format!("{p}.{}", n.mlp_in),
            &block.mlp.up_or_gate,
            &mut push,
        );
        if let (Some(up), Some(name)) = (&block.mlp.up, n.mlp_up) {
            linear(format!("{p}.{name}"), up, &mut push);
        }
        linear(format!("{p}.{}", n.mlp_out), &block.mlp.down, &mut push);
    }
    norm(
        format!("{}{}", n.body, n.final_norm),
        &decoder.ln_final,
        &mut push,
    );
    if let Some(unembed) = &decoder.unembed {
        linear(n.unembed.to_string(), unembed, &mut push);
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

    /// `module` with every frozen parameter detached from autodiff, so the backward pass
    /// computes no gradient for it (the values are unchanged).
    pub fn freeze<B: AutodiffBackend, M: Module<B>>(&self, module: M) -> M {
        struct Detach<'a> {
            trainable: &'a HashSet<ParamId>,
        }
        impl<B: AutodiffBackend> ModuleMapper<B> for Detach<'_> {
            fn map_float<const D: usize>(
                &mut self,
                param: Param<Tensor<B, D>>,
            ) -> Param<Tensor<B, D>> {
                if self.trainable.contains(&param.id) {
                    param
                } else {
                    param.set_require_grad(false)
                }
            }
        }
        module.map(&mut Detach {
            trainable: &self.trainable,
        })
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
