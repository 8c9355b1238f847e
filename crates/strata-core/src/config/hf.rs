//! `config.json` as written by transformers v4 and v5: every key strata reads, with the HF
//! names and aliases. This is the only file that spells HF config keys.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{Activation, Family, ModelConfig, Norm, Positions, RopeScaling};
use crate::error::{Error, Result};

/// The families strata implements, by HF `model_type`.
pub const KNOWN_MODEL_TYPES: &[&str] = &["gpt2", "gpt_neox", "llama", "mistral", "qwen2", "bert"];

/// Rotary parameters as transformers v5 groups them (`rope_parameters`), or v4's
/// `rope_scaling` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HfRopeParameters {
    /// `default`, `llama3`, `linear`, ... (v4 spells it `type` in old files).
    #[serde(alias = "type")]
    pub rope_type: Option<String>,
    /// Base of the rotary frequencies (v5).
    pub rope_theta: Option<f64>,
    /// Fraction of each head that is rotated (v5).
    pub partial_rotary_factor: Option<f64>,
    /// Scaling factor (`llama3`, `linear`).
    pub factor: Option<f64>,
    /// `llama3`: low-frequency factor.
    pub low_freq_factor: Option<f64>,
    /// `llama3`: high-frequency factor.
    pub high_freq_factor: Option<f64>,
    /// `llama3`: the context length the model was trained with before scaling.
    pub original_max_position_embeddings: Option<usize>,
}

/// Every `config.json` key strata reads, across families and transformers versions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HfConfig {
    /// The family.
    pub model_type: Option<String>,
    /// Vocabulary size.
    pub vocab_size: Option<usize>,
    /// Residual width (GPT-2: `n_embd`).
    #[serde(alias = "n_embd")]
    pub hidden_size: Option<usize>,
    /// Number of blocks (GPT-2: `n_layer`).
    #[serde(alias = "n_layer")]
    pub num_hidden_layers: Option<usize>,
    /// Number of attention heads (GPT-2: `n_head`).
    #[serde(alias = "n_head")]
    pub num_attention_heads: Option<usize>,
    /// Number of key/value heads (grouped-query attention).
    pub num_key_value_heads: Option<usize>,
    /// Width of each head, when not `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    /// MLP width (GPT-2: `n_inner`, null meaning 4x).
    #[serde(alias = "n_inner")]
    pub intermediate_size: Option<usize>,
    /// Position limit (GPT-2: `n_positions`).
    #[serde(alias = "n_positions")]
    pub max_position_embeddings: Option<usize>,
    /// Activation (GPT-2: `activation_function`).
    #[serde(alias = "activation_function")]
    pub hidden_act: Option<String>,
    /// LayerNorm epsilon (GPT-2: `layer_norm_epsilon`).
    #[serde(alias = "layer_norm_epsilon")]
    pub layer_norm_eps: Option<f64>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: Option<f64>,
    /// Rotary base (v4; GPT-NeoX v4 spells it `rotary_emb_base`).
    #[serde(alias = "rotary_emb_base")]
    pub rope_theta: Option<f64>,
    /// GPT-NeoX v4: fraction of each head that is rotated.
    pub rotary_pct: Option<f64>,
    /// v4 rotary scaling.
    pub rope_scaling: Option<HfRopeParameters>,
    /// v5 rotary parameters.
    pub rope_parameters: Option<HfRopeParameters>,
    /// GPT-NeoX: attention and MLP read the same input.
    pub use_parallel_residual: Option<bool>,
    /// Bias on the attention projections (Llama, GPT-NeoX).
    pub attention_bias: Option<bool>,
    /// Bias on the MLP projections (Llama).
    pub mlp_bias: Option<bool>,
    /// Whether the unembedding shares the embedding matrix.
    pub tie_word_embeddings: Option<bool>,
    /// Mistral/Qwen2 sliding-window attention width.
    pub sliding_window: Option<usize>,
    /// Qwen2: whether the sliding window is used at all.
    pub use_sliding_window: Option<bool>,
    /// BERT: number of token types.
    pub type_vocab_size: Option<usize>,
    /// Stored dtype (v4).
    pub torch_dtype: Option<String>,
    /// Stored dtype (v5).
    pub dtype: Option<String>,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token (a list in some files; the first entry is used).
    pub eos_token_id: Option<serde_json::Value>,
    /// Architectures list, kept for `strata info`.
    pub architectures: Option<Vec<String>>,
}

impl HfConfig {
    /// Reads and parses a `config.json` (a UTF-8 byte-order mark is skipped; anything but a
    /// JSON object is refused with what was found).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `config.json`; `path` is named in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if !value.is_object() {
            let found = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(Error::BadConfig {
                file: path.to_path_buf(),
                key: "(top level)".into(),
                reason: format!("a config must be a JSON object, this file holds {found}"),
            });
        }
        serde_json::from_value(value).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Validates the config and turns it into strata's family-independent [`ModelConfig`].
    /// `file` is named in any error.
    pub fn into_model_config(self, file: &Path) -> Result<ModelConfig> {
        let bad = |key: &str, reason: String| Error::BadConfig {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let need = |value: Option<usize>, key: &str| {
            value
                .filter(|v| *v > 0)
                .ok_or_else(|| bad(key, "missing or zero".into()))
        };
        let model_type = self
            .model_type
            .clone()
            .ok_or_else(|| bad("model_type", "missing".into()))?;
        let family = match model_type.as_str() {
            "gpt2" => Family::Gpt2,
            "gpt_neox" => Family::GptNeox,
            "llama" => Family::Llama,
            "mistral" => Family::Mistral,
            "qwen2" => Family::Qwen2,
            "bert" => Family::Bert,
            other => {
                return Err(Error::UnknownModelType {
                    file: file.to_path_buf(),
                    value: other.to_string(),
                    known: KNOWN_MODEL_TYPES.join(", "),
                });
            }
        };
        let d_model = need(self.hidden_size, "hidden_size")?;
        let n_layers = need(self.num_hidden_layers, "num_hidden_layers")?;
        let n_heads = need(self.num_attention_heads, "num_attention_heads")?;
        let vocab_size = need(self.vocab_size, "vocab_size")?;
        let n_kv_heads = self.num_key_value_heads.unwrap_or(n_heads);
        let d_head = match self.head_dim {
            Some(d) => d,
            None => {
                if d_model % n_heads != 0 {
                    return Err(bad(
                        "num_attention_heads",
                        format!("{n_heads} heads do not divide hidden_size {d_model}"),
                    ));
                }
                d_model / n_heads
            }
        };
        if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(bad(
                "num_key_value_heads",
                format!("{n_kv_heads} does not divide num_attention_heads {n_heads}"),
            ));
        }
        let d_mlp = match family {
            Family::Gpt2 => self.intermediate_size.unwrap_or(d_model.saturating_mul(4)),
            _ => need(self.intermediate_size, "intermediate_size")?,
        };
        let n_ctx = match family {
            Family::Gpt2 | Family::Bert => need(self.max_position_embeddings, "n_positions")?,
            _ => self.max_position_embeddings.unwrap_or(2048),
        };
        let act_name = self.hidden_act.clone().unwrap_or_else(|| match family {
            Family::Gpt2 => "gelu_new".into(),
            Family::GptNeox | Family::Bert => "gelu".into(),
            _ => "silu".into(),
        });
        let activation = Activation::from_hf(&act_name)
            .ok_or_else(|| bad("hidden_act", format!("unsupported activation `{act_name}`")))?;
        let norm = match family {
            Family::Gpt2 | Family::GptNeox | Family::Bert => Norm::LayerNorm {
                eps: self.layer_norm_eps.unwrap_or(match family {
                    Family::Bert => 1e-12,
                    _ => 1e-5,
                }),
            },
            _ => Norm::RmsNorm {
                eps: self.rms_norm_eps.unwrap_or(1e-6),
            },
        };
        let positions = match family {
            Family::Gpt2 | Family::Bert => Positions::Learned,
            _ => self.rotary(family, d_head, file)?,
        };
        let sliding_window = match family {
            Family::Mistral => self.sliding_window,
            Family::Qwen2 if self.use_sliding_window == Some(true) => self.sliding_window,
            _ => None,
        };
        let dtype = self
            .dtype
            .clone()
            .or(self.torch_dtype.clone())
            .unwrap_or_else(|| "float32".into());
        let eos_token_id = match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| v as u32),
            Some(serde_json::Value::Array(a)) => {
                a.first().and_then(|v| v.as_u64()).map(|v| v as u32)
            }
            _ => None,
        };
        let config = ModelConfig {
            family,
            model_type,
            vocab_size,
            d_model,
            n_layers,
            n_heads,
            n_kv_heads,
            d_head,
            d_mlp,
            n_ctx,
            activation,
            gated_mlp: matches!(family, Family::Llama | Family::Mistral | Family::Qwen2),
            norm,
            positions,
            parallel_residual: family == Family::GptNeox
                && self.use_parallel_residual.unwrap_or(true),
            qkv_bias: match family {
                Family::Gpt2 | Family::Bert | Family::Qwen2 => true,
                Family::GptNeox => self.attention_bias.unwrap_or(true),
                _ => self.attention_bias.unwrap_or(false),
            },
            attn_out_bias: match family {
                Family::Gpt2 | Family::Bert => true,
                Family::GptNeox => self.attention_bias.unwrap_or(true),
                Family::Qwen2 => false,
                _ => self.attention_bias.unwrap_or(false),
            },
            mlp_bias: match family {
                Family::Gpt2 | Family::GptNeox | Family::Bert => true,
                _ => self.mlp_bias.unwrap_or(false),
            },
            tied_embeddings: self.tie_word_embeddings.unwrap_or(matches!(
                family,
                Family::Gpt2 | Family::Qwen2 | Family::Bert
            )),
            sliding_window,
            type_vocab_size: self.type_vocab_size.unwrap_or(2),
            dtype,
            bos_token_id: self.bos_token_id,
            eos_token_id,
        };
        super::limits::check(&config, file)?;
        Ok(config)
    }

    fn rotary(&self, family: Family, d_head: usize, file: &Path) -> Result<Positions> {
        let params = self.rope_parameters.clone().unwrap_or_default();
        let theta = params.rope_theta.or(self.rope_theta).unwrap_or(10000.0);
        let fraction = params
            .partial_rotary_factor
            .or(self.rotary_pct)
            .unwrap_or(if family == Family::GptNeox { 0.25 } else { 1.0 });
        let rotary_dim = ((d_head as f64) * fraction) as usize;
        let (scaling_src, scaling_key) = match (&self.rope_scaling, &self.rope_parameters) {
            (Some(s), _) => (Some(s.clone()), "rope_scaling"),
            (None, Some(p)) => (Some(p.clone()), "rope_parameters"),
            (None, None) => (None, "rope_scaling"),
        };
        let scaling = match scaling_src {
            Some(s) => match s.rope_type.as_deref() {
                None | Some("default") => None,
                Some("llama3") => Some(RopeScaling::Llama3 {
                    factor: s.factor.unwrap_or(8.0),
                    low_freq_factor: s.low_freq_factor.unwrap_or(1.0),
                    high_freq_factor: s.high_freq_factor.unwrap_or(4.0),
                    original_max_position_embeddings: s
                        .original_max_position_embeddings
                        .unwrap_or(8192),
                }),
                Some("linear") => Some(RopeScaling::Linear {
                    factor: s.factor.unwrap_or(1.0),
                }),
                Some(other) => {
                    return Err(Error::BadConfig {
                        file: file.to_path_buf(),
                        key: format!("{scaling_key}.rope_type"),
                        reason: format!(
                            "unsupported rope type `{other}`; strata knows default, linear, llama3"
                        ),
                    });
                }
            },
            None => None,
        };
        let bad = |key: &str, reason: String| Error::BadConfig {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let theta_key = if params.rope_theta.is_some() {
            "rope_parameters.rope_theta"
        } else {
            "rope_theta"
        };
        if !(theta.is_finite() && theta > 0.0) {
            return Err(bad(
                theta_key,
                format!("{theta}; the rotary base must be a positive number"),
            ));
        }
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(bad(
                "partial_rotary_factor",
                format!("{fraction}; the rotated fraction of a head must be in (0, 1]"),
            ));
        }
        // transformers rotates 2 * ceil(rotary_dim / 2) dims (an odd count rounds up).
        let rotated = rotary_dim.div_ceil(2).checked_mul(2);
        if rotary_dim == 0 || rotated.is_none_or(|width| width > d_head) {
            return Err(bad(
                "partial_rotary_factor",
                format!(
                    "{fraction} of a head of {d_head} rotates {rotary_dim} dims; rotary \
                     embeddings need at least 1 and at most the head width"
                ),
            ));
        }
        if let Some(RopeScaling::Linear { factor } | RopeScaling::Llama3 { factor, .. }) = scaling
            && !(factor.is_finite() && factor > 0.0)
        {
            return Err(bad(
                &format!("{scaling_key}.factor"),
                format!("{factor}; a rotary scaling factor must be positive"),
            ));
        }
        Ok(Positions::Rotary {
            theta,
            rotary_dim,
            scaling,
        })
    }
}
