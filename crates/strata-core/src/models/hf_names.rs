//! One name table per decoder family: the Hugging Face checkpoint name of every part of the
//! shared [`super::Decoder`]. Loading, export and freezing (`train`) read their names here, so
//! each family's layout is written down once.

use crate::config::Family;

/// How a family stores the query, key and value projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QkvNames {
    /// One fused projection (GPT-2's `attn.c_attn`, GPT-NeoX's `attention.query_key_value`).
    Fused(&'static str),
    /// Three projections.
    Separate {
        q: &'static str,
        k: &'static str,
        v: &'static str,
    },
}

/// The HF names of one decoder family. Block parts are relative to `{body}{blocks}.{layer}`;
/// `embed`, `pos_embed` and `final_norm` to `{body}`; `unembed` is at the top level. Each
/// name is a module: its tensors are `{name}.weight` and, where present, `{name}.bias`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HfNames {
    /// The body's prefix in an `...ForCausalLM` checkpoint (a bare body has none).
    pub body: &'static str,
    /// Token embedding.
    pub embed: &'static str,
    /// Learned position embedding, if the family has one.
    pub pos_embed: Option<&'static str>,
    /// The list of blocks.
    pub blocks: &'static str,
    /// Norm before attention.
    pub ln1: &'static str,
    /// Norm before the MLP.
    pub ln2: &'static str,
    /// Query, key and value projections.
    pub qkv: QkvNames,
    /// Attention output projection.
    pub attn_out: &'static str,
    /// MLP input projection (the gate, for gated MLPs).
    pub mlp_in: &'static str,
    /// MLP up projection of gated MLPs.
    pub mlp_up: Option<&'static str>,
    /// MLP output projection.
    pub mlp_out: &'static str,
    /// Final norm.
    pub final_norm: &'static str,
    /// Unembedding (absent when tied to the embedding).
    pub unembed: &'static str,
}

/// GPT-2 (`GPT2LMHeadModel`); its linear layers are `Conv1D`, stored `[in, out]`.
const GPT2: HfNames = HfNames {
    body: "transformer.",
    embed: "wte",
    pos_embed: Some("wpe"),
    blocks: "h",
    ln1: "ln_1",
    ln2: "ln_2",
    qkv: QkvNames::Fused("attn.c_attn"),
    attn_out: "attn.c_proj",
    mlp_in: "mlp.c_fc",
    mlp_up: None,
    mlp_out: "mlp.c_proj",
    final_norm: "ln_f",
    unembed: "lm_head",
};

/// GPT-NeoX / Pythia (`GPTNeoXForCausalLM`).
const GPT_NEOX: HfNames = HfNames {
    body: "gpt_neox.",
    embed: "embed_in",
    pos_embed: None,
    blocks: "layers",
    ln1: "input_layernorm",
    ln2: "post_attention_layernorm",
    qkv: QkvNames::Fused("attention.query_key_value"),
    attn_out: "attention.dense",
    mlp_in: "mlp.dense_h_to_4h",
    mlp_up: None,
    mlp_out: "mlp.dense_4h_to_h",
    final_norm: "final_layer_norm",
    unembed: "embed_out",
};

/// Llama, Mistral and Qwen2 (`...ForCausalLM`).
const LLAMA: HfNames = HfNames {
    body: "model.",
    embed: "embed_tokens",
    pos_embed: None,
    blocks: "layers",
    ln1: "input_layernorm",
    ln2: "post_attention_layernorm",
    qkv: QkvNames::Separate {
        q: "self_attn.q_proj",
        k: "self_attn.k_proj",
        v: "self_attn.v_proj",
    },
    attn_out: "self_attn.o_proj",
    mlp_in: "mlp.gate_proj",
    mlp_up: Some("mlp.up_proj"),
    mlp_out: "mlp.down_proj",
    final_norm: "norm",
    unembed: "lm_head",
};

impl HfNames {
    /// The table of a decoder family; `None` for BERT, an encoder with its own loader.
    pub(crate) fn of(family: Family) -> Option<&'static HfNames> {
        match family {
            Family::Gpt2 => Some(&GPT2),
            Family::GptNeox => Some(&GPT_NEOX),
            Family::Llama | Family::Mistral | Family::Qwen2 => Some(&LLAMA),
            Family::Bert => None,
        }
    }

    /// The fused query-key-value projection of GPT-2 and GPT-NeoX.
    ///
    /// # Panics
    /// For a family with three projections: callers ask only for the fused families.
    pub(crate) fn fused_qkv(&self) -> &'static str {
        match self.qkv {
            QkvNames::Fused(name) => name,
            QkvNames::Separate { .. } => panic!("this family has separate q, k, v projections"),
        }
    }

    /// The prefix of block `layer` under `body` (`model.` or, for a bare body, nothing):
    /// `model.layers.3`.
    pub(crate) fn block(&self, body: &str, layer: usize) -> String {
        format!("{body}{}.{layer}", self.blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decoder_family_has_a_table_and_bert_has_none() {
        for family in [
            Family::Gpt2,
            Family::GptNeox,
            Family::Llama,
            Family::Mistral,
            Family::Qwen2,
        ] {
            assert!(HfNames::of(family).is_some(), "{family:?}");
        }
        assert!(HfNames::of(Family::Bert).is_none());
        assert_eq!(LLAMA.block(LLAMA.body, 3), "model.layers.3");
        assert_eq!(GPT2.block("", 0), "h.0");
    }
}
