//! Perplexity of a token stream with a sliding window, as transformers' perplexity guide
//! computes it: each window predicts only the tokens the previous window did not.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::models::Model;
use crate::weights::HostTensor;

/// Mean negative log-likelihood over a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perplexity {
    /// Sum of negative log-likelihoods, in nats.
    pub nll_sum: f64,
    /// Number of predicted tokens.
    pub n_predicted: usize,
}

impl Perplexity {
    /// Mean negative log-likelihood per predicted token, in nats.
    pub fn nats_per_token(&self) -> f64 {
        self.nll_sum / self.n_predicted as f64
    }

    /// `exp(nats_per_token)`.
    pub fn ppl(&self) -> f64 {
        self.nats_per_token().exp()
    }

    /// Combines the results of two disjoint token streams.
    pub fn merge(self, other: Self) -> Self {
        Self {
            nll_sum: self.nll_sum + other.nll_sum,
            n_predicted: self.n_predicted + other.n_predicted,
        }
    }
}

/// Perplexity of `tokens` with windows of `window` tokens advanced by `stride`.
/// `progress` is called with (tokens done, tokens total).
pub fn perplexity<B: Backend>(
    model: &Model<B>,
    tokens: &[u32],
    window: usize,
    stride: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    if tokens.len() < 2 {
        return Err(Error::EmptyInput {
            what: format!(
                "a corpus of {} tokens (perplexity needs at least 2)",
                tokens.len()
            ),
        });
    }
    if window < 2 || stride == 0 || stride > window {
        return Err(Error::InvalidArgument {
            what: "window/stride".into(),
            reason: format!("need window >= 2 and 0 < stride <= window, got {window}/{stride}"),
        });
    }
    let decoder = model.decoder()?;
    let mut result = Perplexity {
        nll_sum: 0.0,
        n_predicted: 0,
    };
    let mut prev_end = 0usize;
    let mut begin = 0usize;
    loop {
        let end = (begin + window).min(tokens.len());
        // Targets are positions max(prev_end, begin + 1)..end: tokens not yet predicted.
        let first_target = prev_end.max(begin + 1);
        let chunk = &tokens[begin..end];
        let logits = decoder.forward(&TokenBatch::single(chunk)?)?;
        let [_, p, v] = logits.dims();
        let logp = log_softmax(logits.reshape([p, v]), 1);
        let n_targets = end - first_target;
        // Row i predicts token begin + i + 1.
        let rows = first_target - 1 - begin;
        let logp = logp.slice([rows..rows + n_targets, 0..v]);
        let device = logp.device();
        let targets = Tensor::<B, 2, Int>::from_data(
            TensorData::new(
                tokens[first_target..end]
                    .iter()
                    .map(|&t| t as i64)
                    .collect::<Vec<_>>(),
                [n_targets, 1],
            ),
            &device,
        );
        let picked = HostTensor::from_tensor(logp.gather(1, targets));
        result.nll_sum -= picked.data.iter().map(|&x| x as f64).sum::<f64>();
        result.n_predicted += n_targets;
        progress(end, tokens.len());
        prev_end = end;
        if end == tokens.len() {
            break;
        }
        begin += stride;
    }
    Ok(result)
}
