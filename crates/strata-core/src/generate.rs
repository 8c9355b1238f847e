//! KV-cached generation: greedy, or temperature and nucleus (top-p) sampling with a seed.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use burn::tensor::{Tensor, backend::Backend};

use crate::error::{Error, Result};
use crate::input::{PadSide, TokenBatch};
use crate::models::{KvCache, Model};
use crate::probe::ProbeSet;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    /// The most likely token (ties: the lowest id).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the smallest set of tokens
    /// whose probability reaches `top_p`.
    TopP {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Nucleus mass in (0, 1].
        top_p: f32,
    },
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// Maximum number of new tokens per sequence.
    pub max_new_tokens: usize,
    /// Token choice rule.
    pub sampling: Sampling,
    /// Seed of the sampler.
    pub seed: u64,
    /// Stop a sequence at this token (included in the output).
    pub eos_token_id: Option<u32>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            sampling: Sampling::Greedy,
            seed: 0,
            eos_token_id: None,
        }
    }
}

/// Generates continuations of several prompts at once (left-padded, KV-cached), with probes
/// attached to every forward call (the prompt pass is generation step 0, each later token one
/// more: see [`crate::probe::HookContext::generation_step`]). Returns the new tokens of each
/// prompt.
pub fn generate_batch<B: Backend>(
    model: &Model<B>,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    probes: &mut ProbeSet<'_, B>,
) -> Result<Vec<Vec<u32>>> {
    if let Sampling::TopP { temperature, top_p } = config.sampling
        && (temperature.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || !(top_p > 0.0 && top_p <= 1.0))
    {
        return Err(Error::InvalidArgument {
            what: "sampling".into(),
            reason: format!("temperature {temperature} must be > 0 and top_p {top_p} in (0, 1]"),
        });
    }
    let decoder = model.decoder()?;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest > model.config.n_ctx {
        return Err(Error::SequenceTooLong {
            n_tokens: longest,
            n_ctx: model.config.n_ctx,
        });
    }
    if longest + config.max_new_tokens > model.config.n_ctx {
        return Err(Error::GenerationTooLong {
            n_prompt: longest,
            max_new_tokens: config.max_new_tokens,
            n_ctx: model.config.n_ctx,
        });
    }
    let pad = config
        .eos_token_id
        .or(model.config.eos_token_id)
        .unwrap_or(0);
    let mut batch = TokenBatch::padded(prompts, pad, PadSide::Left)?;
    let mut cache = KvCache::new(model.config.n_layers);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut done = vec![false; prompts.len()];
    for step in 0..config.max_new_tokens {
        let logits = decoder.forward_call(&batch, Some(&mut cache), probes, Some(step))?;
        let [b, p, v] = logits.dims();
        let last: Tensor<B, 2> = logits.slice([0..b, p - 1..p, 0..v]).reshape([b, v]);
        let rows = crate::weights::HostTensor::from_tensor(last);
        if rows.data.iter().any(|v| !v.is_finite()) {
            // Re-run the sequences so far without the cache to say where it starts.
            let so_far: Vec<Vec<u32>> = prompts
                .iter()
                .zip(&out)
                .map(|(p, o)| [p.as_slice(), o.as_slice()].concat())
                .collect();
            let full = TokenBatch::padded(&so_far, pad, PadSide::Left)?;
            crate::probe::ensure_finite(model, &full, &rows.data)?;
        }
        let mut next = Vec::with_capacity(b);
        for (r, row) in rows.data.chunks(v).enumerate() {
            let token = if done[r] {
                pad
            } else {
                choose(row, config.sampling, &mut rng)
            };
            if !done[r] {
                out[r].push(token);
                done[r] = Some(token) == config.eos_token_id;
            }
            next.push(token);
        }
        if done.iter().all(|&d| d) {
            break;
        }
        batch = TokenBatch {
            ids: next,
            batch: b,
            pos: 1,
            mask: None,
        };
    }
    Ok(out)
}

/// Generates a continuation of one prompt.
pub fn generate<B: Backend>(
    model: &Model<B>,
    prompt: &[u32],
    config: &GenerateConfig,
    probes: &mut ProbeSet<'_, B>,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(Error::EmptyInput {
            what: "prompt".into(),
        });
    }
    Ok(generate_batch(model, &[prompt.to_vec()], config, probes)?.remove(0))
}

/// Picks a token from one row of logits.
pub fn choose(logits: &[f32], sampling: Sampling, rng: &mut StdRng) -> u32 {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::TopP { temperature, top_p } => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut probs: Vec<(u32, f64)> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, (((l - max) / temperature) as f64).exp()))
                .collect();
            let total: f64 = probs.iter().map(|p| p.1).sum();
            probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut kept = 0;
            let mut mass = 0.0;
            for (_, p) in &probs {
                kept += 1;
                mass += p / total;
                if mass >= top_p as f64 {
                    break;
                }
            }
            let nucleus = &probs[..kept];
            let nucleus_total: f64 = nucleus.iter().map(|p| p.1).sum();
            let mut u = rand::Rng::random::<f64>(rng) * nucleus_total;
            for &(id, p) in nucleus {
                if u < p {
                    return id;
                }
                u -= p;
            }
            nucleus[kept - 1].0
        }
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}
