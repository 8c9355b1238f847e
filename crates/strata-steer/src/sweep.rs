//! Dose-response: how a behaviour metric and the fluency cost move with the multiplier `α`.
//!
//! The behaviour metric is the **log-odds of the concept** on held-out pairs: for each pair,
//! `log p(x⁺) − log p(x⁻)` under the steered model (sum of next-token log-probabilities of
//! each text, first token excluded), averaged over pairs. Steering toward the concept raises
//! it. The fluency cost is the perplexity of a neutral token stream with the same steering
//! attached ([`strata_core::eval::perplexity`]).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};
use strata_core::eval::{PerplexityConfig, perplexity};
use strata_core::weights::HostTensor;
use strata_core::{Model, PadSide, ProbeSet, TokenBatch};

use crate::apply::Steering;
use crate::error::{Error, Result};

/// One point of a dose-response curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DosePoint {
    /// The multiplier.
    pub alpha: f64,
    /// Mean `log p(x⁺) − log p(x⁻)` over the evaluation pairs, in nats.
    pub log_odds: f64,
    /// Perplexity of the neutral stream.
    pub ppl: f64,
}

/// Sum of next-token log-probabilities of each sequence (its first token is not predicted),
/// in batches of `batch_size`, with `probes` attached.
pub fn sequence_log_probs<B: Backend>(
    model: &Model<B>,
    sequences: &[Vec<u32>],
    batch_size: usize,
    probes: &mut ProbeSet<'_, B>,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(sequences.len());
    let pad = model.config().eos_token_id.unwrap_or(0);
    for chunk in sequences.chunks(batch_size.max(1)) {
        let batch = TokenBatch::padded(chunk, pad, PadSide::Right)?;
        let logits = model.forward_with(&batch, None, probes)?;
        let [b, p, v] = logits.dims();
        let device = logits.device();
        let log_probs = log_softmax(logits, 2);
        // Targets: the next token at each position (the last column predicts nothing).
        let mut targets = vec![0i64; b * p];
        let mut weights = vec![0.0f32; b * p];
        for (r, seq) in chunk.iter().enumerate() {
            for t in 0..seq.len().saturating_sub(1) {
                targets[r * p + t] = seq[t + 1] as i64;
                weights[r * p + t] = 1.0;
            }
        }
        let targets = Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [b, p, 1]), &device);
        let picked = log_probs.gather(2, targets);
        let weights = Tensor::<B, 3>::from_data(TensorData::new(weights, [b, p, 1]), &device);
        let _ = v;
        let sums: Tensor<B, 2> = (picked * weights).sum_dim(1).reshape([b, 1]);
        out.extend(
            HostTensor::from_tensor(sums)
                .data
                .into_iter()
                .map(f64::from),
        );
    }
    Ok(out)
}

/// The dose-response of `steering_at(α)` over `alphas`: log-odds of the concept on
/// `pairs` (token ids of positive and negative texts) and perplexity of `neutral` in windows
/// of `ppl_config`. `progress(done, total)` is called after each `α`.
pub fn dose_response<B: Backend>(
    model: &Model<B>,
    steering_at: &dyn Fn(f32) -> Result<Steering>,
    alphas: &[f64],
    pairs: (&[Vec<u32>], &[Vec<u32>]),
    neutral: &[u32],
    ppl_config: &PerplexityConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<DosePoint>> {
    let (positive, negative) = pairs;
    if positive.is_empty() || positive.len() != negative.len() {
        return Err(Error::Unpaired {
            what: "evaluation pairs".into(),
            n_positive: positive.len(),
            n_negative: negative.len(),
            reason: "both sides need the same number of sequences, at least one".into(),
        });
    }
    let mut points = Vec::with_capacity(alphas.len());
    for (i, &alpha) in alphas.iter().enumerate() {
        let mut steering = steering_at(alpha as f32)?;
        let lp_pos = sequence_log_probs(model, positive, 16, &mut ProbeSet::one(&mut steering))?;
        let lp_neg = sequence_log_probs(model, negative, 16, &mut ProbeSet::one(&mut steering))?;
        let log_odds =
            lp_pos.iter().zip(&lp_neg).map(|(a, b)| a - b).sum::<f64>() / lp_pos.len() as f64;
        let ppl = perplexity(
            model,
            neutral,
            ppl_config,
            &mut ProbeSet::one(&mut steering),
            &mut |_, _| {},
        )?
        .ppl();
        tracing::info!(alpha, log_odds, ppl, "dose point");
        points.push(DosePoint {
            alpha,
            log_odds,
            ppl,
        });
        progress(i + 1, alphas.len());
    }
    Ok(points)
}
