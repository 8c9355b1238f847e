//! [`ModelConfig`]: what strata's models are built from, in TransformerLens vocabulary.

use serde::{Deserialize, Serialize};

/// The architecture family, which fixes weight names and a few structural choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// GPT-2 (`gpt2`): learned positions, pre-LN, GELU (tanh) MLP, Conv1D weights.
    Gpt2,
    /// GPT-NeoX / Pythia (`gpt_neox`): partial rotary, parallel or serial residual.
    GptNeox,
    /// Llama (`llama`): RMSNorm, rotary, gated SiLU MLP, grouped-query attention.
    Llama,
    /// Mistral (`mistral`): Llama with sliding-window attention.
    Mistral,
    /// Qwen2 (`qwen2`): Llama with q/k/v biases and, in small models, tied embeddings.
    Qwen2,
    /// BERT encoders (`bert`): post-LN, bidirectional attention, no LM head.
    Bert,
}

impl Family {
    /// Whether the model is a causal decoder (everything but BERT).
    pub fn is_decoder(self) -> bool {
        self != Family::Bert
    }
}

/// The MLP non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU with erf (`gelu`).
    Gelu,
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// SiLU / swish (`silu`, `swish`).
    Silu,
    /// ReLU (`relu`).
    Relu,
}

impl Activation {
    /// Maps an HF activation name.
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "silu" | "swish" => Some(Self::Silu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    /// The HF name written back to `config.json`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_new",
            Self::Silu => "silu",
            Self::Relu => "relu",
        }
    }
}

/// The normalisation layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Norm {
    /// LayerNorm with weight and bias.
    LayerNorm {
        /// Variance epsilon.
        eps: f64,
    },
    /// RMSNorm with weight only.
    RmsNorm {
        /// Variance epsilon.
        eps: f64,
    },
}

/// Rotary frequency scaling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3's frequency-dependent scaling.
    Llama3 {
        /// Scale of the low frequencies.
        factor: f64,
        /// Wavelength bound (in units of the original context) below which frequencies scale.
        low_freq_factor: f64,
        /// Wavelength bound above which frequencies are kept.
        high_freq_factor: f64,
        /// The context length before scaling.
        original_max_position_embeddings: usize,
    },
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Positions {
    /// A learned table added to the embeddings (GPT-2, BERT).
    Learned,
    /// Rotary embeddings on the first `rotary_dim` dims of each query and key head.
    Rotary {
        /// Frequency base.
        theta: f64,
        /// Number of rotated dims per head (GPT-NeoX rotates a fraction).
        rotary_dim: usize,
        /// Optional frequency scaling.
        scaling: Option<RopeScaling>,
    },
}

/// A validated, family-independent model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The family.
    pub family: Family,
    /// The HF `model_type` string.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Query heads per block.
    pub n_heads: usize,
    /// Key/value heads per block (< `n_heads` with grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// MLP hidden width (neurons per layer).
    pub d_mlp: usize,
    /// Position limit (a hard limit for learned positions).
    pub n_ctx: usize,
    /// MLP non-linearity.
    pub activation: Activation,
    /// Gated MLP: `down(act(gate(x)) * up(x))`.
    pub gated_mlp: bool,
    /// Normalisation layers.
    pub norm: Norm,
    /// Position encoding.
    pub positions: Positions,
    /// GPT-NeoX parallel residual: `x + attn(ln1(x)) + mlp(ln2(x))`.
    pub parallel_residual: bool,
    /// Bias on the query/key/value projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub attn_out_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// The unembedding is the embedding matrix (no `lm_head.weight` needed).
    pub tied_embeddings: bool,
    /// Sliding-window attention width, where the family uses one.
    pub sliding_window: Option<usize>,
    /// BERT: number of token types.
    pub type_vocab_size: usize,
    /// The stored dtype named in config.json (`float32`, `bfloat16`, ...).
    pub dtype: String,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id.
    pub eos_token_id: Option<u32>,
}

impl ModelConfig {
    /// Layer norm epsilon, whatever the norm kind.
    pub fn norm_eps(&self) -> f64 {
        match self.norm {
            Norm::LayerNorm { eps } | Norm::RmsNorm { eps } => eps,
        }
    }

    /// Whether positions are a learned table, which makes `n_ctx` a hard limit.
    pub fn has_learned_positions(&self) -> bool {
        self.positions == Positions::Learned
    }
}
