//! What a training run is: the architecture, the optimiser settings and the schedule, and
//! the presets `default` and `suite`.

use std::path::Path;

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use strata_core::ModelConfig;
use strata_core::config::hf::HfConfig;

/// The architecture of one tiny model, in the words of its HF config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchSpec {
    /// Name of the model (the folder it is written to inside a suite).
    pub name: String,
    /// HF `model_type`: `gpt_neox` or `llama`.
    pub model_type: String,
    /// Residual width.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Query heads per block.
    pub n_heads: usize,
    /// Key/value heads per block (Llama only; GPT-NeoX uses `n_heads`).
    pub n_kv_heads: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// HF activation name: `silu`, `relu` or `gelu`.
    pub activation: String,
    /// Whether the unembedding is the embedding matrix.
    pub tied_embeddings: bool,
}

/// Everything that determines a run: same spec, same corpus, same seed, same weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// The model.
    pub arch: ArchSpec,
    /// Tokens per training sequence (also the model's `max_position_embeddings`).
    pub seq_len: usize,
    /// Sequences per optimiser step.
    pub batch_size: usize,
    /// Optimiser steps.
    pub n_steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Steps of linear warmup from 0 to the peak.
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Maximum L2 norm of each parameter's gradient (burn clips tensor by tensor).
    pub grad_clip_norm: f64,
    /// AdamW first-moment decay.
    pub beta_1: f64,
    /// AdamW second-moment decay.
    pub beta_2: f64,
    /// Seed of the initial weights and of the data order.
    pub seed: u64,
    /// Checkpoints at 0 and powers of two below this, then at every multiple of it and at
    /// the last step.
    pub checkpoint_every: usize,
}

impl TrainSpec {
    /// Training tokens per optimiser step.
    pub fn tokens_per_step(&self) -> usize {
        self.seq_len * self.batch_size
    }

    /// The validated strata config of the model, for a tokenizer of `vocab_size` tokens
    /// whose `<|endoftext|>` is `eot`. Errors name the preset and the offending key.
    pub fn model_config(&self, vocab_size: usize, eot: u32) -> Result<ModelConfig> {
        let a = &self.arch;
        let hf = HfConfig {
            model_type: Some(a.model_type.clone()),
            vocab_size: Some(vocab_size),
            hidden_size: Some(a.d_model),
            num_hidden_layers: Some(a.n_layers),
            num_attention_heads: Some(a.n_heads),
            num_key_value_heads: Some(a.n_kv_heads),
            intermediate_size: Some(a.d_mlp),
            max_position_embeddings: Some(self.seq_len),
            hidden_act: Some(a.activation.clone()),
            tie_word_embeddings: Some(a.tied_embeddings),
            use_parallel_residual: Some(true),
            attention_bias: Some(a.model_type == "gpt_neox"),
            mlp_bias: Some(false),
            bos_token_id: Some(eot),
            eos_token_id: Some(eot.into()),
            dtype: Some("float32".into()),
            ..HfConfig::default()
        };
        let what = format!("model `{}`", a.name);
        let cfg = hf.into_model_config(Path::new(&what))?;
        if !matches!(a.model_type.as_str(), "gpt_neox" | "llama") {
            return Err(anyhow!(
                "{what}: model_type `{}` cannot be trained here; use gpt_neox or llama",
                a.model_type
            ));
        }
        strata_core::models::check_config(&cfg).map_err(|e| anyhow!("{what}: {e}"))?;
        Ok(cfg)
    }
}

/// Optimiser and schedule settings shared by the presets.
fn spec(arch: ArchSpec, n_steps: usize, checkpoint_every: usize, lr: f64) -> TrainSpec {
    TrainSpec {
        arch,
        seq_len: 128,
        batch_size: 16,
        n_steps,
        lr,
        min_lr_ratio: 0.1,
        warmup_steps: (n_steps / 20).max(10),
        weight_decay: 0.1,
        grad_clip_norm: 1.0,
        beta_1: 0.9,
        beta_2: 0.95,
        seed: 1234,
        checkpoint_every,
    }
}

#[allow(clippy::too_many_arguments)]
fn arch(
    name: &str,
    model_type: &str,
    d_model: usize,
    n_layers: usize,
    n_heads: usize,
    n_kv_heads: usize,
    d_mlp: usize,
    activation: &str,
) -> ArchSpec {
    ArchSpec {
        name: name.into(),
        model_type: model_type.into(),
        d_model,
        n_layers,
        n_heads,
        n_kv_heads,
        d_mlp,
        activation: activation.into(),
        tied_embeddings: false,
    }
}

/// The embedded default model: Llama-style (RMSNorm, rotary, gated SiLU MLP), 4 layers of
/// width 128, untied embeddings, about 1.9M parameters (7.6 MB in f32).
pub fn default_preset() -> TrainSpec {
    spec(
        arch("tiny-default", "llama", 128, 4, 4, 4, 384, "silu"),
        1000,
        100,
        3e-3,
    )
}

/// The suite: six architectures that vary depth (2 to 6), width (64 to 128) and heads (2
/// to 8), GPT-NeoX and Llama style, SiLU, ReLU and GELU MLPs; each with at least 12
/// checkpoints.
pub fn suite_preset() -> Vec<TrainSpec> {
    let steps = 400;
    let every = 50;
    vec![
        spec(
            arch("neox-l2-d64-h2-relu", "gpt_neox", 64, 2, 2, 2, 256, "relu"),
            steps,
            every,
            3e-3,
        ),
        spec(
            arch("neox-l4-d96-h4-relu", "gpt_neox", 96, 4, 4, 4, 384, "relu"),
            steps,
            every,
            3e-3,
        ),
        spec(
            arch("neox-l6-d64-h4-gelu", "gpt_neox", 64, 6, 4, 4, 256, "gelu"),
            steps,
            every,
            3e-3,
        ),
        spec(
            arch("llama-l2-d64-h4-silu", "llama", 64, 2, 4, 2, 192, "silu"),
            steps,
            every,
            3e-3,
        ),
        spec(
            arch("llama-l3-d96-h3-relu", "llama", 96, 3, 3, 3, 256, "relu"),
            steps,
            every,
            3e-3,
        ),
        spec(
            arch("llama-l4-d128-h8-silu", "llama", 128, 4, 8, 4, 384, "silu"),
            steps,
            every,
            3e-3,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_build_valid_configs() {
        for spec in std::iter::once(default_preset()).chain(suite_preset()) {
            let cfg = spec.model_config(4096, 0).unwrap();
            assert_eq!(cfg.d_head * cfg.n_heads, cfg.d_model, "{}", spec.arch.name);
        }
    }

    #[test]
    fn heads_that_do_not_divide_the_width_are_refused() {
        let mut spec = default_preset();
        spec.arch.n_heads = 3;
        spec.arch.n_kv_heads = 3;
        let err = spec.model_config(4096, 0).unwrap_err().to_string();
        assert!(err.contains("tiny-default"), "{err}");
        assert!(err.contains("num_attention_heads"), "{err}");
        assert!(
            err.contains("3 heads do not divide hidden_size 128"),
            "{err}"
        );
    }
}
