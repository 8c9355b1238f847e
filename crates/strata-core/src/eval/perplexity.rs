//! Perplexity of a token stream with a sliding window, as transformers' perplexity guide
//! computes it: each window predicts only the tokens the previous window did not.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::input::TokenBatch;
use crate::models::Model;
use crate::probe::{Merge, ProbeSet};
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
}

impl Merge for Perplexity {
    /// Combines the results of two disjoint token streams (or disjoint sets of targets).
    fn merge(self, other: Self) -> Self {
        Self {
            nll_sum: self.nll_sum + other.nll_sum,
            n_predicted: self.n_predicted + other.n_predicted,
        }
    }
}

/// Window and stride of a sliding-window perplexity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerplexityConfig {
    /// Tokens per forward pass (at most the model's context).
    pub window: usize,
    /// How far each window starts after the previous one (`0 < stride <= window`).
    pub stride: usize,
}

impl PerplexityConfig {
    /// `window` tokens advanced by `stride`; fails unless `window >= 2` and
    /// `0 < stride <= window`.
    pub fn new(window: usize, stride: usize) -> Result<Self> {
        if window < 2 || stride == 0 || stride > window {
            return Err(Error::InvalidArgument {
                what: "window/stride".into(),
                reason: format!("need window >= 2 and 0 < stride <= window, got {window}/{stride}"),
            });
        }
        Ok(Self { window, stride })
    }

    /// The model's whole context (at most 1024 tokens) as window, half of it as stride.
    pub fn for_model(config: &ModelConfig) -> Result<Self> {
        let window = config.n_ctx.min(1024);
        Self::new(window, (window / 2).max(1))
    }

    /// Fails if the window is longer than the model's context.
    pub fn check_fits(&self, config: &ModelConfig) -> Result<()> {
        if self.window > config.n_ctx {
            return Err(Error::InvalidArgument {
                what: "window".into(),
                reason: format!(
                    "{} tokens, but the model's context is {} (max_position_embeddings / \
                     n_positions); choose a window of at most {}",
                    self.window, config.n_ctx, config.n_ctx
                ),
            });
        }
        Ok(())
    }
}

/// Perplexity of `tokens` with a sliding window, with `probes` attached to every forward
/// pass. `progress` is called with (tokens done, tokens total).
pub fn perplexity<B: Backend>(
    model: &Model<B>,
    tokens: &[u32],
    config: &PerplexityConfig,
    probes: &mut ProbeSet<'_, B>,
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
    let PerplexityConfig { window, stride } = PerplexityConfig::new(config.window, config.stride)?;
    config.check_fits(&model.config)?;
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
        let logits = decoder.forward_with(&TokenBatch::single(chunk)?, None, probes)?;
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
                    .map(|&t| i64::from(t))
                    .collect::<Vec<_>>(),
                [n_targets, 1],
            ),
            &device,
        );
        let picked = HostTensor::from_tensor(logp.gather(1, targets));
        let nll: f64 = -picked.data.iter().map(|&x| f64::from(x)).sum::<f64>();
        if !nll.is_finite() {
            return Err(Error::NonFiniteResult {
                what: format!("the log-likelihood of tokens {first_target}..{end}"),
                value: nll,
            });
        }
        result.nll_sum += nll;
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
