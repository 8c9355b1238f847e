//! Perplexity of a token stream with a sliding window, as transformers' perplexity guide
//! computes it: each window predicts only the tokens the previous window did not.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use serde::{Deserialize, Serialize};

use super::log_likelihood::target_nll;
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

    /// How many windows a sliding-window perplexity of `n_tokens` tokens runs (0 for fewer
    /// than 2 tokens): the units [`perplexity_of_windows`] shards.
    pub fn n_windows(&self, n_tokens: usize) -> usize {
        if n_tokens < 2 || self.stride == 0 {
            return 0;
        }
        sliding_windows(n_tokens, self.window, self.stride).len()
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
    let all = 0..config.n_windows(tokens.len());
    perplexity_of_windows(model, tokens, config, all, probes, progress)
}

/// [`perplexity`] of only the windows `windows` (indices among the
/// [`PerplexityConfig::n_windows`] windows of the whole run), for one shard of a corpus.
/// Each window predicts exactly the tokens it predicts in the whole run, so the results of
/// disjoint ranges [`Merge`] into the whole run's (up to the order of the f64 sums, and
/// windows may go through the model in other groups). `progress` is called with (tokens
/// done, tokens total) of the whole stream.
pub fn perplexity_of_windows<B: Backend>(
    model: &Model<B>,
    tokens: &[u32],
    config: &PerplexityConfig,
    windows: std::ops::Range<usize>,
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
    let all = sliding_windows(tokens.len(), window, stride);
    if windows.start > windows.end || windows.end > all.len() {
        return Err(Error::InvalidArgument {
            what: "windows".into(),
            reason: format!(
                "{}..{} is not a range of the {} windows of {} tokens (window {window}, \
                 stride {stride})",
                windows.start,
                windows.end,
                all.len(),
                tokens.len()
            ),
        });
    }
    let windows = &all[windows];
    // Every window is `window` long but perhaps the last: equal windows go through the model
    // together, about TOKENS_PER_PASS tokens per forward pass, so the matrix products are
    // large enough to keep every core busy. The result is the same as one window at a time.
    let per_pass = (TOKENS_PER_PASS / window).max(1);
    let mut result = Perplexity {
        nll_sum: 0.0,
        n_predicted: 0,
    };
    let mut first = 0usize;
    while first < windows.len() {
        let len = windows[first].len();
        let group_len = windows[first..]
            .iter()
            .take(per_pass)
            .take_while(|w| w.len() == len)
            .count();
        let group = &windows[first..first + group_len];
        first += group_len;
        let mut ids = Vec::with_capacity(group.len() * len);
        // Row r, column i predicts token begin + i + 1; columns before the first target
        // point at token 0 and are not counted.
        let mut target_ids = Vec::with_capacity(group.len() * len);
        for w in group {
            ids.extend_from_slice(&tokens[w.begin..w.end]);
            for i in 0..len {
                let predicted = w.begin + i + 1;
                let counted = predicted >= w.first_target && predicted < w.end;
                target_ids.push(if counted {
                    i64::from(tokens[predicted])
                } else {
                    0
                });
            }
        }
        let batch = TokenBatch {
            ids,
            batch: group.len(),
            pos: len,
            mask: None,
        };
        let logits = decoder.forward_with(&batch, None, probes)?;
        let [rows, p, v] = logits.dims();
        let targets = Tensor::<B, 2, Int>::from_data(
            TensorData::new(target_ids, [rows * p, 1]),
            &logits.device(),
        );
        let (nll, _) = target_nll(logits.reshape([rows * p, v]), targets);
        let nll = HostTensor::from_tensor(nll);
        for (r, w) in group.iter().enumerate() {
            let counted = w.first_target - 1 - w.begin..w.end - 1 - w.begin;
            let row_nll: f64 = nll.data[r * len..(r + 1) * len][counted]
                .iter()
                .map(|&x| f64::from(x))
                .sum();
            if !row_nll.is_finite() {
                return Err(Error::NonFiniteResult {
                    what: format!("the log-likelihood of tokens {}..{}", w.first_target, w.end),
                    value: row_nll,
                });
            }
            result.nll_sum += row_nll;
            result.n_predicted += w.end - w.first_target;
        }
        progress(group.last().map_or(0, |w| w.end), tokens.len());
    }
    Ok(result)
}

/// Tokens per forward pass that perplexity aims for when windows are short.
const TOKENS_PER_PASS: usize = 1024;

/// One window of a sliding-window perplexity: tokens `begin..end`, predicting
/// `first_target..end` (the tokens the previous window did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    begin: usize,
    end: usize,
    first_target: usize,
}

impl Window {
    fn len(&self) -> usize {
        self.end - self.begin
    }
}

/// The windows of transformers' perplexity guide over `n_tokens` tokens.
fn sliding_windows(n_tokens: usize, window: usize, stride: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    let (mut begin, mut prev_end) = (0usize, 0usize);
    loop {
        let end = (begin + window).min(n_tokens);
        windows.push(Window {
            begin,
            end,
            first_target: prev_end.max(begin + 1),
        });
        if end == n_tokens {
            return windows;
        }
        prev_end = end;
        begin += stride;
    }
}
