//! One training step and the fine-tuning loop built from it: next-token cross-entropy,
//! AdamW with per-tensor gradient clipping, and frozen parameters left untouched.

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::TrainableParams;
use crate::error::{Error, Result};
use crate::eval::log_likelihood::target_nll;
use crate::input::TokenBatch;
use crate::models::Decoder;

/// AdamW's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWSettings {
    /// First-moment decay.
    pub beta_1: f64,
    /// Second-moment decay.
    pub beta_2: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Per-tensor gradient norm clip.
    pub grad_clip_norm: f64,
}

impl AdamWSettings {
    /// burn's AdamW configuration of these settings (epsilon 1e-8).
    pub fn config(&self) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.beta_1 as f32)
            .with_beta_2(self.beta_2 as f32)
            .with_epsilon(1e-8)
            .with_weight_decay(self.weight_decay as f32)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(
                self.grad_clip_norm as f32,
            )))
    }

    /// A fresh optimiser for a decoder.
    pub fn init<B: AutodiffBackend>(&self) -> DecoderOptimizer<B> {
        self.config().init::<B, Decoder<B>>()
    }
}

/// The optimiser type of a decoder under AdamW.
pub type DecoderOptimizer<B> = OptimizerAdaptor<AdamW, Decoder<B>, B>;

/// Mean next-token cross-entropy (nats) of a batch.
///
/// The value and the gradient are computed outside the autodiff graph from one softmax
/// pass, and joined by a stop-gradient: the graph holds only `sum(logits * p) - sum(logit_t)`,
/// whose gradient `(p - onehot(t)) / n` is the cross-entropy's exact gradient. A
/// log-softmax built from differentiable elementary ops would instead record and replay
/// six full-vocabulary passes.
///
/// # Shapes
/// - `logits`: `[batch, pos, d_vocab]`; `targets`: `batch * pos` ids -> scalar `[1]`
pub fn cross_entropy<B: AutodiffBackend>(logits: Tensor<B, 3>, targets: &[u32]) -> Tensor<B, 1> {
    let [b, p, v] = logits.dims();
    let n = b * p;
    let logits = logits.reshape([n, v]);
    let device = logits.device();
    let ids = Tensor::<B::InnerBackend, 2, Int>::from_data(
        TensorData::new(
            targets.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(),
            [n, 1],
        ),
        &device,
    );
    let (nll, probs) = target_nll(logits.clone().inner(), ids.clone());
    let value = Tensor::<B, 1>::from_inner(nll.mean());
    let surrogate = (logits.clone() * Tensor::from_inner(probs)).sum()
        - logits.gather(1, Tensor::from_inner(ids)).sum();
    let surrogate = surrogate.div_scalar(n as f64);
    surrogate.clone() - surrogate.detach() + value
}

/// One batch of a training stream: row-major inputs and their next-token targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainBatch {
    /// `n_rows * seq_len` input ids.
    pub inputs: Vec<u32>,
    /// `n_rows * seq_len` target ids (the inputs shifted by one).
    pub targets: Vec<u32>,
    /// Rows.
    pub n_rows: usize,
    /// Tokens per row.
    pub seq_len: usize,
}

/// One optimiser step on `batch` at learning rate `lr`, updating only the parameters
/// `trainable` allows (`None`: all). Returns the decoder and the batch's loss (before the
/// step); a non-finite loss is an error, never a silent update.
pub fn train_step<B: AutodiffBackend>(
    decoder: Decoder<B>,
    optim: &mut DecoderOptimizer<B>,
    batch: &TrainBatch,
    lr: f64,
    trainable: Option<&TrainableParams>,
) -> Result<(Decoder<B>, f64)> {
    let (loss, value) = batch_loss(&decoder, batch)?;
    let mut grads = GradientsParams::from_grads(loss.backward(), &decoder);
    if let Some(trainable) = trainable {
        trainable.filter(&mut grads, &decoder);
    }
    Ok((optim.step(lr, decoder, grads), value))
}

/// The mean next-token cross-entropy of `batch` under `decoder`, as a graph node and as a
/// number; a non-finite loss is an error.
pub(crate) fn batch_loss<B: AutodiffBackend>(
    decoder: &Decoder<B>,
    batch: &TrainBatch,
) -> Result<(Tensor<B, 1>, f64)> {
    let input = TokenBatch {
        ids: batch.inputs.clone(),
        batch: batch.n_rows,
        pos: batch.seq_len,
        mask: None,
    };
    let loss = cross_entropy(decoder.forward(&input)?, &batch.targets);
    let value = f64::from(loss.clone().into_scalar().elem::<f32>());
    if !value.is_finite() {
        return Err(Error::NonFiniteResult {
            what: "the training loss".into(),
            value,
        });
    }
    Ok((loss, value))
}

/// How a fine-tuning run goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// Most optimiser steps.
    pub max_steps: usize,
    /// Stop once the mean loss of the last `loss_window` steps is at most this.
    pub target_loss: Option<f64>,
    /// Steps averaged for the stopping rule.
    pub loss_window: usize,
    /// The optimiser.
    pub adamw: AdamWSettings,
}

/// Fine-tunes the `trainable` parameters of `decoder` (all when `None`): step `s` trains on
/// `batch(s)` at learning rate `lr(s)`, until `max_steps` or the target loss. `progress`
/// sees (step, loss) after each step. Returns the decoder and every step's loss.
pub fn fine_tune<B: AutodiffBackend>(
    mut decoder: Decoder<B>,
    config: &FineTuneConfig,
    trainable: Option<&TrainableParams>,
    batch: &mut dyn FnMut(usize) -> TrainBatch,
    lr: &dyn Fn(usize) -> f64,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(Decoder<B>, Vec<f64>)> {
    let mut optim = config.adamw.init::<B>();
    if let Some(trainable) = trainable {
        decoder = trainable.freeze(decoder);
    }
    run_steps(config, decoder, progress, &mut |step, decoder| {
        train_step(decoder, &mut optim, &batch(step), lr(step), trainable)
    })
}

/// Runs `step` (which takes the state, returns the next one and the step's loss) until
/// `config.max_steps` or the target loss; `progress` sees (step, loss) after each. A failing
/// step is reported with its index. Returns the last state and every loss.
pub(crate) fn run_steps<S>(
    config: &FineTuneConfig,
    mut state: S,
    progress: &mut dyn FnMut(usize, f64),
    step: &mut dyn FnMut(usize, S) -> Result<(S, f64)>,
) -> Result<(S, Vec<f64>)> {
    let mut losses = Vec::with_capacity(config.max_steps);
    for index in 0..config.max_steps {
        let (next, loss) = step(index, state).map_err(|e| match e {
            Error::NonFiniteResult { value, .. } => Error::NonFiniteResult {
                what: format!("the training loss at step {index}"),
                value,
            },
            other => other,
        })?;
        state = next;
        losses.push(loss);
        progress(index, loss);
        if let Some(target) = config.target_loss
            && losses.len() >= config.loss_window
            && mean_tail(&losses, config.loss_window) <= target
        {
            break;
        }
    }
    Ok((state, losses))
}

/// Mean of the last `window` values (all of them when fewer).
pub fn mean_tail(values: &[f64], window: usize) -> f64 {
    let tail = &values[values.len().saturating_sub(window)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}
