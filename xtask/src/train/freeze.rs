//! Freezing parameters for selective fine-tuning: the HF checkpoint name of every parameter
//! of a Llama-style decoder, and a gradient filter that drops the gradients of frozen
//! parameters before the optimiser step, so AdamW (its weight decay included) never touches
//! them.

use std::collections::{BTreeSet, HashSet};

use anyhow::{Result, bail};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use strata_core::models::decoder::Decoder;

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
    #[cfg_attr(not(test), allow(dead_code))]
    pub data: TensorData,
}

/// Every parameter of a Llama-style decoder (`llama`, `mistral`, `qwen2` checkpoints) under
/// its HF name. Fails for decoders of other layouts (learned positions, no gate).
pub fn named_params<B: Backend>(decoder: &Decoder<B>) -> Result<Vec<NamedParam>> {
    if decoder.pos_embed.is_some() {
        bail!(
            "named parameters are defined for Llama-style decoders only (this one has learned positions)"
        );
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
            bail!(
                "named parameters are defined for Llama-style decoders only (block {l} has no gated MLP)"
            );
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
pub struct Freeze {
    trainable: HashSet<ParamId>,
    /// HF names of the trainable parameters, sorted.
    pub trainable_names: BTreeSet<String>,
    /// Number of trainable values.
    pub n_trainable: usize,
}

impl Freeze {
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
            bail!("`{missing}` is not a parameter of the model");
        }
        let kept: Vec<&NamedParam> = params.iter().filter(|p| keep(&p.name)).collect();
        Ok(Self {
            trainable: kept.iter().map(|p| p.id).collect(),
            trainable_names: kept.iter().map(|p| p.name.clone()).collect(),
            n_trainable: kept.iter().map(|p| p.n_params).sum(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::run::{adamw, cross_entropy};
    use crate::train::spec::{ArchSpec, default_preset};
    use burn::backend::{Autodiff, Flex};
    use burn::optim::Optimizer;
    use strata_core::TokenBatch;
    use strata_core::models::init::init_decoder;

    type B = Autodiff<Flex>;

    fn tiny() -> Decoder<B> {
        let mut spec = default_preset();
        spec.arch = ArchSpec {
            name: "test".into(),
            model_type: "llama".into(),
            d_model: 16,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 2,
            d_mlp: 32,
            activation: "silu".into(),
            tied_embeddings: false,
        };
        spec.seq_len = 8;
        let cfg = spec.model_config(32, 0).unwrap();
        init_decoder(&cfg, &Default::default(), 3).unwrap()
    }

    #[test]
    fn every_parameter_has_one_hf_name() {
        let d = tiny();
        let params = named_params(&d).unwrap();
        assert_eq!(
            params.iter().map(|p| p.n_params).sum::<usize>(),
            d.num_params()
        );
        let names: BTreeSet<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), params.len());
        assert!(names.contains("model.layers.1.mlp.down_proj.weight"));
        assert!(names.contains("lm_head.weight"));
    }

    #[test]
    fn an_unknown_required_name_is_an_error() {
        let required = BTreeSet::from(["model.layers.9.self_attn.q_proj.weight".to_string()]);
        let err = Freeze::new(&tiny(), &required, |_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layers.9"), "{err}");
    }

    #[test]
    fn after_training_steps_exactly_the_selected_tensors_changed() {
        let mut decoder = tiny();
        let selected = BTreeSet::from([
            "model.layers.0.self_attn.q_proj.weight".to_string(),
            "model.layers.1.mlp.down_proj.weight".to_string(),
        ]);
        let freeze = Freeze::new(&decoder, &selected, |n| selected.contains(n)).unwrap();
        assert_eq!(freeze.trainable_names, selected);
        assert_eq!(freeze.n_trainable, 16 * 16 + 32 * 16);
        let before = named_params(&decoder).unwrap();
        // Weight decay on: a frozen parameter that reached the optimiser would shrink.
        let mut spec = default_preset();
        spec.weight_decay = 0.1;
        let mut optim = adamw(&spec).init::<B, Decoder<B>>();
        let ids: Vec<u32> = (0..16).map(|i| (i * 5 % 32) as u32).collect();
        let targets: Vec<u32> = (0..16).map(|i| ((i * 5 + 3) % 32) as u32).collect();
        for _ in 0..3 {
            let input = TokenBatch {
                ids: ids.clone(),
                batch: 2,
                pos: 8,
                mask: None,
            };
            let loss = cross_entropy(decoder.forward(&input).unwrap(), &targets);
            let mut grads = GradientsParams::from_grads(loss.backward(), &decoder);
            freeze.filter(&mut grads, &decoder);
            decoder = optim.step(1e-2, decoder, grads);
        }
        let after = named_params(&decoder).unwrap();
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.name, a.name);
            let same = b.data.as_bytes() == a.data.as_bytes();
            if selected.contains(&b.name) {
                assert!(!same, "{} was selected but did not change", b.name);
            } else {
                assert!(same, "{} was frozen but changed", b.name);
            }
        }
    }
}
