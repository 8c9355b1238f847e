//! What a void measurement returns: layer usage per phase (sums and counts) and, when asked
//! for, the per-token maps.

use serde::{Deserialize, Serialize};
use strata_core::probe::Merge;

use crate::probe::VoidConfig;

/// Which part of a generation a forward call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Prompt processing: one pass over the whole prompt (generation step 0), and every
    /// forward call outside generation (scoring, perplexity).
    Prompt,
    /// Response generation: one pass per new token with the KV cache (step 1 and later).
    Generation,
}

impl Phase {
    /// `prompt` or `generation`, as the tables spell it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prompt => "prompt",
            Phase::Generation => "generation",
        }
    }
}

/// Layer usage of one phase: how many (token, layer) pairs were active, as counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PhaseUsage {
    /// Real (unpadded) tokens measured.
    pub n_tokens: u64,
    /// Per layer (`layer_idx`): tokens for which the layer was active.
    pub n_active: Vec<u64>,
    /// Per layer: tokens for which the layer's compute was skipped (not measured, counted
    /// as void).
    pub n_skipped: Vec<u64>,
    /// Tokens whose last layer was a void (in variant A only these tokens' outputs change).
    pub n_last_void: u64,
    /// Tokens with no active layer at all (variant A decodes them from the embedding).
    pub n_none_active: u64,
}

impl PhaseUsage {
    /// Empty counts for `n_layers` blocks.
    pub fn new(n_layers: usize) -> Self {
        Self {
            n_active: vec![0; n_layers],
            n_skipped: vec![0; n_layers],
            ..Self::default()
        }
    }

    /// Average layer usage: the share of (token, layer) pairs that are active (NaN for no
    /// tokens).
    pub fn usage(&self) -> f64 {
        let n_pairs = self.n_tokens as f64 * self.n_active.len() as f64;
        self.n_active.iter().sum::<u64>() as f64 / n_pairs
    }

    /// Per layer: the share of tokens for which the layer is active (the usage profile).
    pub fn layer_usage(&self) -> Vec<f64> {
        self.n_active
            .iter()
            .map(|&n| n as f64 / self.n_tokens as f64)
            .collect()
    }

    /// Share of tokens whose last layer is a void.
    pub fn last_void_share(&self) -> f64 {
        self.n_last_void as f64 / self.n_tokens as f64
    }

    /// Share of (token, layer) pairs whose compute was skipped.
    pub fn skipped_share(&self) -> f64 {
        let n_pairs = self.n_tokens as f64 * self.n_skipped.len() as f64;
        self.n_skipped.iter().sum::<u64>() as f64 / n_pairs
    }

    fn merge_counts(mut self, other: &PhaseUsage) -> Self {
        if self.n_active.is_empty() {
            self.n_active = vec![0; other.n_active.len()];
            self.n_skipped = vec![0; other.n_skipped.len()];
        }
        self.n_tokens += other.n_tokens;
        for (a, b) in self.n_active.iter_mut().zip(&other.n_active) {
            *a += b;
        }
        for (a, b) in self.n_skipped.iter_mut().zip(&other.n_skipped) {
            *a += b;
        }
        self.n_last_void += other.n_last_void;
        self.n_none_active += other.n_none_active;
        self
    }
}

/// One token's map: per layer its norm change, threshold and decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMap {
    /// The phase of the forward call.
    pub phase: Phase,
    /// Index of the forward call among those the probe saw (0 first).
    pub call: usize,
    /// Row of the token in its call's batch.
    pub row: usize,
    /// Position of the token in its sequence (cache included).
    pub token_pos: usize,
    /// Token id.
    pub token_id: u32,
    /// `||h_l||` of the input of each layer and of the last layer's output: `n_layers + 1`
    /// values (f32).
    pub norms: Vec<f32>,
    /// Per layer: `delta_l = ||h_{l+1}|| - ||h_l||` (0 for a layer whose compute was skipped).
    pub deltas: Vec<f32>,
    /// Per layer: the threshold `alpha * (max - min)` of the earlier layers' deltas.
    pub thresholds: Vec<f32>,
    /// Per layer: active (`delta >= threshold`) or void.
    pub active: Vec<bool>,
    /// Per layer: whether its compute was skipped for this token.
    pub skipped: Vec<bool>,
}

impl TokenMap {
    /// The deepest active layer, `None` when every layer is a void (variant A then decodes
    /// from the embedding).
    pub fn deepest_active(&self) -> Option<usize> {
        self.active.iter().rposition(|&a| a)
    }
}

/// The result of a void measurement: its configuration, usage per phase and the recorded
/// maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoidResult {
    /// The configuration measured with.
    pub config: VoidConfig,
    /// Blocks of the model.
    pub n_layers: usize,
    /// Forward calls seen.
    pub n_calls: usize,
    /// Usage over prompt tokens.
    pub prompt: PhaseUsage,
    /// Usage over generated tokens.
    pub generation: PhaseUsage,
    /// Per-token maps, in the order measured (empty unless `config.record_maps`).
    pub tokens: Vec<TokenMap>,
}

impl VoidResult {
    /// An empty result for `n_layers` blocks.
    pub fn new(config: VoidConfig, n_layers: usize) -> Self {
        Self {
            config,
            n_layers,
            n_calls: 0,
            prompt: PhaseUsage::new(n_layers),
            generation: PhaseUsage::new(n_layers),
            tokens: Vec::new(),
        }
    }

    /// The usage counts of `phase`.
    pub fn phase(&self, phase: Phase) -> &PhaseUsage {
        match phase {
            Phase::Prompt => &self.prompt,
            Phase::Generation => &self.generation,
        }
    }

    /// Usage over every measured token of both phases.
    pub fn overall(&self) -> PhaseUsage {
        PhaseUsage::new(self.n_layers)
            .merge_counts(&self.prompt)
            .merge_counts(&self.generation)
    }
}

impl Merge for VoidResult {
    /// Adds the counts and appends `other`'s maps (its call indices shifted after ours).
    fn merge(mut self, other: Self) -> Self {
        self.prompt = self.prompt.merge_counts(&other.prompt);
        self.generation = self.generation.merge_counts(&other.generation);
        let shift = self.n_calls;
        self.tokens.extend(other.tokens.into_iter().map(|mut t| {
            t.call += shift;
            t
        }));
        self.n_calls += other.n_calls;
        self
    }
}
