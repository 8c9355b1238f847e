//! LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): every
//! parameter of the decoder frozen, and each chosen linear weight `W0` replaced by
//! `W0 + (alpha / rank) * A B` with trainable low-rank factors.
//!
//! The factors live outside the decoder, in [`LoraFactors`]; before each step the merged
//! weights are written into the decoder as tensors that autodiff traces back to `A` and
//! `B`, so one backward pass gives the factors their exact gradients and nothing else is
//! differentiated with respect to a frozen weight. Initialisation follows PEFT: `A`
//! Kaiming-uniform (bound `1 / sqrt(d_in)`), `B` zero, so the adapted model starts as the
//! base model.
//!
//! Layout: burn's linear weights are `[d_in, d_out]`, so here `A` is `[d_in, rank]` and `B`
//! is `[rank, d_out]` (PEFT's `lora_A.weight` and `lora_B.weight` transposed).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor, TensorData};

use super::step::{FineTuneConfig, TrainBatch, batch_loss, run_steps};
use super::{AdamWSettings, named_params};
use crate::error::{Error, Result};
use crate::models::Decoder;

/// The adapters' shape: which weights, what rank, what scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// HF names of the adapted weights, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub targets: Vec<String>,
    /// Rank of every adapter.
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Seed of `A`'s initialisation.
    pub seed: u64,
}

impl LoraConfig {
    /// Trainable values of adapters of `rank` on weights of these `[d_in, d_out]` shapes:
    /// `rank * (d_in + d_out)` each.
    pub fn n_params(rank: usize, shapes: &[[usize; 2]]) -> usize {
        shapes.iter().map(|[i, o]| rank * (i + o)).sum()
    }
}

/// The trainable low-rank factors, one pair per adapted weight.
#[derive(Module, Debug)]
pub struct LoraFactors<B: Backend> {
    /// `A` of each target, `[d_in, rank]`.
    pub down: Vec<Param<Tensor<B, 2>>>,
    /// `B` of each target, `[rank, d_out]`.
    pub up: Vec<Param<Tensor<B, 2>>>,
}

/// The optimiser of the factors under AdamW.
pub type LoraOptimizer<B> = OptimizerAdaptor<AdamW, LoraFactors<B>, B>;

/// Adapters on some weights of one decoder: the frozen base weights and the factors.
#[derive(Debug)]
pub struct LoraAdapters<B: AutodiffBackend> {
    /// HF names of the adapted weights, in the order of the factors.
    pub targets: Vec<String>,
    ids: Vec<ParamId>,
    base: Vec<Tensor<B::InnerBackend, 2>>,
    /// The factors (trainable).
    pub factors: LoraFactors<B>,
    /// `alpha / rank`.
    pub scale: f64,
}

impl<B: AutodiffBackend> LoraAdapters<B> {
    /// Fresh adapters for `decoder` (PEFT's initialisation: `B = 0`). Fails for a name that
    /// is not a 2-D weight of the decoder or a rank of 0.
    pub fn new(decoder: &Decoder<B>, config: &LoraConfig) -> Result<Self> {
        if config.rank == 0 {
            return Err(Error::InvalidArgument {
                what: "LoRA rank".into(),
                reason: "must be at least 1".into(),
            });
        }
        let (ids, base) = base_weights(decoder, &config.targets)?;
        let device = decoder.embed.weight.val().device();
        B::seed(&device, config.seed);
        let (down, up) = base
            .iter()
            .map(|w| {
                let [d_in, d_out] = w.dims();
                let bound = 1.0 / (d_in as f64).sqrt();
                (
                    Tensor::<B::InnerBackend, 2>::random(
                        [d_in, config.rank],
                        Distribution::Uniform(-bound, bound),
                        &device,
                    ),
                    Tensor::<B::InnerBackend, 2>::zeros([config.rank, d_out], &device),
                )
            })
            .unzip();
        Self::assemble(
            config.targets.clone(),
            ids,
            base,
            down,
            up,
            config.alpha / config.rank as f64,
        )
    }

    /// Adapters with given factors (`down[i]`: `[d_in, rank]`, `up[i]`: `[rank, d_out]`) and
    /// scale, e.g. loaded from a file or set by a test.
    pub fn from_factors(
        decoder: &Decoder<B>,
        targets: &[String],
        down: Vec<Tensor<B::InnerBackend, 2>>,
        up: Vec<Tensor<B::InnerBackend, 2>>,
        scale: f64,
    ) -> Result<Self> {
        let (ids, base) = base_weights(decoder, targets)?;
        Self::assemble(targets.to_vec(), ids, base, down, up, scale)
    }

    fn assemble(
        targets: Vec<String>,
        ids: Vec<ParamId>,
        base: Vec<Tensor<B::InnerBackend, 2>>,
        down: Vec<Tensor<B::InnerBackend, 2>>,
        up: Vec<Tensor<B::InnerBackend, 2>>,
        scale: f64,
    ) -> Result<Self> {
        if down.len() != targets.len() || up.len() != targets.len() {
            return Err(Error::InvalidArgument {
                what: "LoRA factors".into(),
                reason: format!(
                    "{} targets but {} A and {} B factors",
                    targets.len(),
                    down.len(),
                    up.len()
                ),
            });
        }
        for (((name, w), a), b) in targets.iter().zip(&base).zip(&down).zip(&up) {
            let [d_in, d_out] = w.dims();
            let ([a_in, r], [r_b, b_out]) = (a.dims(), b.dims());
            if a_in != d_in || b_out != d_out || r != r_b {
                return Err(Error::InvalidArgument {
                    what: format!("LoRA factors of `{name}`"),
                    reason: format!(
                        "A is [{a_in}, {r}] and B [{r_b}, {b_out}] for a [{d_in}, {d_out}] weight"
                    ),
                });
            }
        }
        let param = |t: Tensor<B::InnerBackend, 2>| Param::from_tensor(Tensor::from_inner(t));
        Ok(Self {
            targets,
            ids,
            base,
            factors: LoraFactors {
                down: down.into_iter().map(param).collect(),
                up: up.into_iter().map(param).collect(),
            },
            scale,
        })
    }

    /// Trainable values: the elements of every factor.
    pub fn n_trainable(&self) -> usize {
        self.factors.num_params()
    }

    /// `decoder` with every parameter frozen and each target weight replaced by
    /// `W0 + scale * A B`, traced back to the factors.
    pub fn attach(&self, decoder: Decoder<B>) -> Decoder<B> {
        let merged: HashMap<ParamId, Tensor<B, 2>> = self
            .ids
            .iter()
            .zip(&self.base)
            .zip(self.factors.down.iter().zip(&self.factors.up))
            .map(|((id, w0), (a, b))| {
                let delta = a.val().matmul(b.val()).mul_scalar(self.scale);
                (*id, Tensor::from_inner(w0.clone()) + delta)
            })
            .collect();
        decoder.no_grad().map(&mut Replace { merged })
    }

    /// The gradients of the factors on `batch` and the batch's loss.
    pub fn gradients(
        &self,
        decoder: Decoder<B>,
        batch: &TrainBatch,
    ) -> Result<(GradientsParams, f64)> {
        let decoder = self.attach(decoder);
        let (loss, value) = batch_loss(&decoder, batch)?;
        Ok((
            GradientsParams::from_grads(loss.backward(), &self.factors),
            value,
        ))
    }

    /// One AdamW step of the factors on `batch` at learning rate `lr`; returns the batch's
    /// loss before the step.
    pub fn step(
        &mut self,
        decoder: Decoder<B>,
        optim: &mut LoraOptimizer<B>,
        batch: &TrainBatch,
        lr: f64,
    ) -> Result<f64> {
        let (grads, value) = self.gradients(decoder, batch)?;
        let factors = std::mem::replace(
            &mut self.factors,
            LoraFactors {
                down: Vec::new(),
                up: Vec::new(),
            },
        );
        self.factors = optim.step(lr, factors, grads);
        Ok(value)
    }
}

/// A fresh AdamW for the factors.
pub fn lora_optimizer<B: AutodiffBackend>(adamw: &AdamWSettings) -> LoraOptimizer<B> {
    adamw.config().init::<B, LoraFactors<B>>()
}

/// Fine-tunes `adapters` on `decoder` as [`super::fine_tune`] does its parameters (same
/// stopping rule, same batches and schedule); returns the decoder with the adapters merged
/// and every step's loss.
pub fn fine_tune_lora<B: AutodiffBackend>(
    decoder: Decoder<B>,
    adapters: &mut LoraAdapters<B>,
    config: &FineTuneConfig,
    batch: &mut dyn FnMut(usize) -> TrainBatch,
    lr: &dyn Fn(usize) -> f64,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(Decoder<B>, Vec<f64>)> {
    let mut optim = lora_optimizer::<B>(&config.adamw);
    let decoder = decoder.no_grad();
    let ((), losses) = run_steps(config, (), progress, &mut |step, ()| {
        let loss = adapters.step(decoder.clone(), &mut optim, &batch(step), lr(step))?;
        Ok(((), loss))
    })?;
    Ok((adapters.attach(decoder), losses))
}

/// The ids of some weights of a decoder and their frozen values.
type BaseWeights<B> = (
    Vec<ParamId>,
    Vec<Tensor<<B as AutodiffBackend>::InnerBackend, 2>>,
);

/// The ids and values of the named 2-D weights of `decoder`.
fn base_weights<B: AutodiffBackend>(
    decoder: &Decoder<B>,
    targets: &[String],
) -> Result<BaseWeights<B>> {
    if targets.is_empty() {
        return Err(Error::InvalidArgument {
            what: "LoRA targets".into(),
            reason: "no weight named".into(),
        });
    }
    let params = named_params(decoder)?;
    let device = decoder.embed.weight.val().device();
    targets
        .iter()
        .map(|name| {
            let p =
                params
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| Error::InvalidArgument {
                        what: "LoRA targets".into(),
                        reason: format!("`{name}` is not a parameter of the model"),
                    })?;
            if p.data.shape.len() != 2 {
                return Err(Error::InvalidArgument {
                    what: "LoRA targets".into(),
                    reason: format!("`{name}` is not a 2-D weight ({:?})", p.data.shape),
                });
            }
            let data: TensorData = p.data.clone();
            Ok((p.id, Tensor::from_data(data, &device)))
        })
        .collect::<Result<Vec<_>>>()
        .map(|pairs| pairs.into_iter().unzip())
}

/// Replaces the parameters with the given ids by the given (graph-carrying) values.
struct Replace<B: Backend> {
    merged: HashMap<ParamId, Tensor<B, 2>>,
}

impl<B: Backend> ModuleMapper<B> for Replace<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        match self.merged.remove(&param.id) {
            Some(value) => {
                let (id, old, mapper) = param.consume();
                let value: Tensor<B, D> = value.reshape(old.shape());
                Param::from_mapped_value(id, value, mapper)
            }
            None => param,
        }
    }
}
