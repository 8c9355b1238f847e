//! Saving a [`Decoder`] as a Hugging Face model folder: the inverse of [`super::names`].
//!
//! [`save_hf`] writes `config.json` (the keys transformers' `GPTNeoXConfig`, `LlamaConfig`,
//! `MistralConfig`, `Qwen2Config` or `GPT2Config` reads) and `model.safetensors` (f32, HF
//! tensor names from [`super::hf_names`] and PyTorch layouts), so the folder loads in strata and
//! in transformers' `AutoModelForCausalLM` alike. Every rename is written as
//! `// strata part -> hf part`;
//! the transposes (burn `[d_in, d_out]` to torch `[d_out, d_in]`) and the re-fusing of
//! GPT-NeoX's `query_key_value` are explicit steps.

use std::path::Path;

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use serde_json::{Map, Value, json};

use super::decoder::Decoder;
use super::hf_names::{HfNames, QkvNames};
use super::loader::neox_qkv_indices;
use super::norm::NormLayer;
use crate::config::{Family, ModelConfig, Positions, RopeScaling};
use crate::error::{Error, Result};
use crate::weights::{HostTensor, write_safetensors};

/// Writes `config.json` and `model.safetensors` for `decoder` into `dir` (created if needed).
///
/// GPT-2, GPT-NeoX, Llama, Mistral and Qwen2 are supported. A config the family's HF
/// config cannot express (e.g. a GPT-NeoX model with a bias on q/k/v but not on the output
/// projection) is an error, never a silently different model.
pub fn save_hf<B: Backend>(decoder: &Decoder<B>, dir: &Path) -> Result<()> {
    let cfg = &decoder.config;
    let (config, tensors) = match cfg.family {
        Family::Gpt2 => (gpt2_config(cfg)?, gpt2_tensors(decoder)),
        Family::GptNeox => (gpt_neox_config(cfg)?, gpt_neox_tensors(decoder)),
        Family::Llama | Family::Mistral | Family::Qwen2 => {
            (llama_like_config(cfg)?, llama_like_tensors(decoder))
        }
        Family::Bert => {
            return Err(Error::InvalidArgument {
                what: "model to export".into(),
                reason: "BERT encoders cannot be exported; save_hf writes causal decoders".into(),
            });
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config_path = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config).expect("a JSON value always serializes");
    crate::io::write_bytes_atomic(&config_path, (text + "\n").as_bytes())?;
    let metadata = [("format".to_string(), "pt".to_string())].into();
    write_safetensors(&dir.join("model.safetensors"), &tensors, Some(metadata))
}

/// The HF `config.json` of `cfg`, as a JSON object.
pub fn hf_config_json(cfg: &ModelConfig) -> Result<Value> {
    match cfg.family {
        Family::Gpt2 => gpt2_config(cfg),
        Family::GptNeox => gpt_neox_config(cfg),
        Family::Llama | Family::Mistral | Family::Qwen2 => llama_like_config(cfg),
        Family::Bert => Err(unsupported(cfg, "family", "BERT cannot be exported".into())),
    }
}

fn unsupported(cfg: &ModelConfig, what: &str, reason: String) -> Error {
    Error::InvalidArgument {
        what: format!("{} config `{what}` for export", cfg.model_type),
        reason,
    }
}

/// Keys every family shares.
fn common(cfg: &ModelConfig, architecture: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("architectures".into(), json!([architecture]));
    map.insert("model_type".into(), json!(cfg.model_type));
    map.insert("vocab_size".into(), json!(cfg.vocab_size));
    map.insert("tie_word_embeddings".into(), json!(cfg.tied_embeddings));
    map.insert("bos_token_id".into(), json!(cfg.bos_token_id));
    map.insert("eos_token_id".into(), json!(cfg.eos_token_id));
    // The tensors are written in f32 whatever the source dtype was.
    map.insert("dtype".into(), json!("float32"));
    map.insert("use_cache".into(), json!(true));
    map
}

/// `rope_parameters` (transformers v5) for rotary configs, with the rotated fraction.
fn rope_parameters(cfg: &ModelConfig) -> Result<(f64, f64, Value)> {
    let Positions::Rotary {
        theta,
        rotary_dim,
        scaling,
    } = cfg.positions
    else {
        return Err(unsupported(
            cfg,
            "positions",
            "this family needs rotary positions".into(),
        ));
    };
    let fraction = rotary_dim as f64 / cfg.d_head as f64;
    let mut params = Map::new();
    match scaling {
        None => {
            params.insert("rope_type".into(), json!("default"));
        }
        Some(RopeScaling::Linear { factor }) => {
            params.insert("rope_type".into(), json!("linear"));
            params.insert("factor".into(), json!(factor));
        }
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            params.insert("rope_type".into(), json!("llama3"));
            params.insert("factor".into(), json!(factor));
            params.insert("low_freq_factor".into(), json!(low_freq_factor));
            params.insert("high_freq_factor".into(), json!(high_freq_factor));
            params.insert(
                "original_max_position_embeddings".into(),
                json!(original_max_position_embeddings),
            );
        }
    }
    params.insert("rope_theta".into(), json!(theta));
    Ok((theta, fraction, Value::Object(params)))
}

fn gpt2_config(cfg: &ModelConfig) -> Result<Value> {
    if cfg.positions != Positions::Learned || cfg.gated_mlp || cfg.parallel_residual {
        return Err(unsupported(
            cfg,
            "structure",
            "GPT-2 has learned positions, a plain MLP and a serial residual".into(),
        ));
    }
    if !(cfg.qkv_bias && cfg.attn_out_bias && cfg.mlp_bias) {
        return Err(unsupported(
            cfg,
            "biases",
            "GPT-2 has a bias on every projection".into(),
        ));
    }
    let mut map = common(cfg, "GPT2LMHeadModel");
    map.insert("n_embd".into(), json!(cfg.d_model));
    map.insert("n_layer".into(), json!(cfg.n_layers));
    map.insert("n_head".into(), json!(cfg.n_heads));
    map.insert("n_inner".into(), json!(cfg.d_mlp));
    map.insert("n_positions".into(), json!(cfg.n_ctx));
    map.insert(
        "activation_function".into(),
        json!(cfg.activation.hf_name()),
    );
    map.insert("layer_norm_epsilon".into(), json!(cfg.norm_eps()));
    Ok(Value::Object(map))
}

fn gpt_neox_config(cfg: &ModelConfig) -> Result<Value> {
    if cfg.gated_mlp || cfg.n_kv_heads != cfg.n_heads || cfg.d_head * cfg.n_heads != cfg.d_model {
        return Err(unsupported(
            cfg,
            "structure",
            "GPT-NeoX has a plain MLP, no grouped-query heads and d_head = d_model / n_heads"
                .into(),
        ));
    }
    if cfg.qkv_bias != cfg.attn_out_bias || !cfg.mlp_bias {
        return Err(unsupported(
            cfg,
            "biases",
            "GPT-NeoX's `attention_bias` covers q/k/v and the output together, and its MLP has biases"
                .into(),
        ));
    }
    let (theta, fraction, mut params) = rope_parameters(cfg)?;
    params
        .as_object_mut()
        .expect("rope parameters are an object")
        .insert("partial_rotary_factor".into(), json!(fraction));
    let mut map = common(cfg, "GPTNeoXForCausalLM");
    map.insert("hidden_size".into(), json!(cfg.d_model));
    map.insert("num_hidden_layers".into(), json!(cfg.n_layers));
    map.insert("num_attention_heads".into(), json!(cfg.n_heads));
    map.insert("intermediate_size".into(), json!(cfg.d_mlp));
    map.insert("hidden_act".into(), json!(cfg.activation.hf_name()));
    map.insert("max_position_embeddings".into(), json!(cfg.n_ctx));
    map.insert("layer_norm_eps".into(), json!(cfg.norm_eps()));
    map.insert("use_parallel_residual".into(), json!(cfg.parallel_residual));
    map.insert("attention_bias".into(), json!(cfg.qkv_bias));
    // v4 spellings, read by older transformers and by strata.
    map.insert("rotary_pct".into(), json!(fraction));
    map.insert("rotary_emb_base".into(), json!(theta));
    map.insert("rope_parameters".into(), params);
    Ok(Value::Object(map))
}

fn llama_like_config(cfg: &ModelConfig) -> Result<Value> {
    let architecture = match cfg.family {
        Family::Mistral => "MistralForCausalLM",
        Family::Qwen2 => "Qwen2ForCausalLM",
        _ => "LlamaForCausalLM",
    };
    if !cfg.gated_mlp || cfg.parallel_residual {
        return Err(unsupported(
            cfg,
            "structure",
            format!("{architecture} has a gated MLP and a serial residual"),
        ));
    }
    let (theta, fraction, params) = rope_parameters(cfg)?;
    if fraction != 1.0 {
        return Err(unsupported(
            cfg,
            "positions",
            format!("{architecture} rotates the whole head"),
        ));
    }
    let biases_ok = match cfg.family {
        Family::Qwen2 => cfg.qkv_bias && !cfg.attn_out_bias,
        _ => cfg.qkv_bias == cfg.attn_out_bias,
    };
    if !biases_ok {
        return Err(unsupported(
            cfg,
            "biases",
            "Llama's `attention_bias` covers q/k/v and the output together; Qwen2 has q/k/v biases only".into(),
        ));
    }
    let mut map = common(cfg, architecture);
    map.insert("hidden_size".into(), json!(cfg.d_model));
    map.insert("num_hidden_layers".into(), json!(cfg.n_layers));
    map.insert("num_attention_heads".into(), json!(cfg.n_heads));
    map.insert("num_key_value_heads".into(), json!(cfg.n_kv_heads));
    map.insert("head_dim".into(), json!(cfg.d_head));
    map.insert("intermediate_size".into(), json!(cfg.d_mlp));
    map.insert("hidden_act".into(), json!(cfg.activation.hf_name()));
    map.insert("max_position_embeddings".into(), json!(cfg.n_ctx));
    map.insert("rms_norm_eps".into(), json!(cfg.norm_eps()));
    map.insert("rope_theta".into(), json!(theta));
    map.insert("rope_parameters".into(), params);
    match cfg.family {
        Family::Qwen2 => {
            map.insert(
                "use_sliding_window".into(),
                json!(cfg.sliding_window.is_some()),
            );
            map.insert("sliding_window".into(), json!(cfg.sliding_window));
        }
        Family::Mistral => {
            map.insert("sliding_window".into(), json!(cfg.sliding_window));
        }
        _ => {
            map.insert("attention_bias".into(), json!(cfg.qkv_bias));
            map.insert("mlp_bias".into(), json!(cfg.mlp_bias));
        }
    }
    Ok(Value::Object(map))
}

/// Named tensors in the order they are pushed.
#[derive(Default)]
struct Tensors(Vec<(String, HostTensor)>);

impl Tensors {
    fn push(&mut self, name: String, t: HostTensor) {
        self.0.push((name, t));
    }

    /// A burn linear `[d_in, d_out]` transposed to torch's `nn.Linear` `[d_out, d_in]`.
    fn torch_linear<B: Backend>(&mut self, prefix: &str, linear: &Linear<B>) {
        self.push(format!("{prefix}.weight"), weight(linear).transposed());
        if let Some(b) = &linear.bias {
            self.push(format!("{prefix}.bias"), HostTensor::from_tensor(b.val()));
        }
    }

    /// A burn linear kept as GPT-2's `Conv1D` `[d_in, d_out]`: no transpose.
    fn conv1d<B: Backend>(&mut self, prefix: &str, linear: &Linear<B>) {
        self.push(format!("{prefix}.weight"), weight(linear));
        if let Some(b) = &linear.bias {
            self.push(format!("{prefix}.bias"), HostTensor::from_tensor(b.val()));
        }
    }

    fn norm<B: Backend>(&mut self, prefix: &str, norm: &NormLayer<B>) {
        self.push(
            format!("{prefix}.weight"),
            HostTensor::from_tensor(norm.weight.val()),
        );
        if let Some(b) = &norm.bias {
            self.push(format!("{prefix}.bias"), HostTensor::from_tensor(b.val()));
        }
    }

    /// The unembedding `[d_model, d_vocab]` as `{name}.weight` `[d_vocab, d_model]`, unless tied.
    fn unembed<B: Backend>(&mut self, name: &str, decoder: &Decoder<B>) {
        if let Some(unembed) = &decoder.unembed {
            self.push(format!("{name}.weight"), weight(unembed).transposed());
        }
    }
}

fn weight<B: Backend>(linear: &Linear<B>) -> HostTensor {
    HostTensor::from_tensor(linear.weight.val())
}

fn bias<B: Backend>(linear: &Linear<B>) -> Option<HostTensor> {
    linear
        .bias
        .as_ref()
        .map(|b| HostTensor::from_tensor(b.val()))
}

fn embedding<B: Backend>(e: &burn::nn::Embedding<B>) -> HostTensor {
    HostTensor::from_tensor(e.weight.val())
}

fn gpt2_tensors<B: Backend>(decoder: &Decoder<B>) -> Vec<(String, HostTensor)> {
    let n = names_of(decoder);
    let mut out = Tensors::default();
    // embed -> wte, pos_embed -> wpe
    out.push(
        format!("{}{}.weight", n.body, n.embed),
        embedding(&decoder.embed),
    );
    if let (Some(pos), Some(name)) = (&decoder.pos_embed, n.pos_embed) {
        out.push(format!("{}{name}.weight", n.body), embedding(pos));
    }
    for (l, block) in decoder.blocks.iter().enumerate() {
        let b = n.block(n.body, l);
        // ln1 -> ln_1
        out.norm(&format!("{b}.{}", n.ln1), &block.ln1);
        // attn.{q,k,v} [d, d] each -> attn.c_attn [d, 3d]: concatenate the columns.
        let qkv = format!("{b}.{}", n.fused_qkv());
        let parts = [&block.attn.q, &block.attn.k, &block.attn.v];
        let weights: Vec<HostTensor> = parts.iter().map(|l| weight(l)).collect();
        out.push(format!("{qkv}.weight"), concat_columns(&weights));
        let biases: Vec<HostTensor> = parts.iter().filter_map(|l| bias(l)).collect();
        if biases.len() == 3 {
            out.push(format!("{qkv}.bias"), concat_vectors(&biases));
        }
        // attn.o -> attn.c_proj
        out.conv1d(&format!("{b}.{}", n.attn_out), &block.attn.o);
        // ln2 -> ln_2
        out.norm(&format!("{b}.{}", n.ln2), &block.ln2);
        // mlp.up_or_gate -> mlp.c_fc, mlp.down -> mlp.c_proj
        out.conv1d(&format!("{b}.{}", n.mlp_in), &block.mlp.up_or_gate);
        out.conv1d(&format!("{b}.{}", n.mlp_out), &block.mlp.down);
    }
    // ln_final -> ln_f
    out.norm(&format!("{}{}", n.body, n.final_norm), &decoder.ln_final);
    // unembed -> lm_head
    out.unembed(n.unembed, decoder);
    out.0
}

fn gpt_neox_tensors<B: Backend>(decoder: &Decoder<B>) -> Vec<(String, HostTensor)> {
    let n = names_of(decoder);
    let cfg = &decoder.config;
    let mut out = Tensors::default();
    let qkv_idx = neox_qkv_indices(cfg.n_heads, cfg.d_head);
    // embed -> embed_in
    out.push(
        format!("{}{}.weight", n.body, n.embed),
        embedding(&decoder.embed),
    );
    for (l, block) in decoder.blocks.iter().enumerate() {
        let b = n.block(n.body, l);
        // ln1 -> input_layernorm, ln2 -> post_attention_layernorm
        out.norm(&format!("{b}.{}", n.ln1), &block.ln1);
        out.norm(&format!("{b}.{}", n.ln2), &block.ln2);
        // attn.{q,k,v} [d, h dh] -> attention.query_key_value [3 h dh, d]:
        // transpose each to torch layout, then scatter their rows into the fused output
        // order [h, 3, dh].
        let qkv = format!("{b}.{}", n.fused_qkv());
        let parts = [&block.attn.q, &block.attn.k, &block.attn.v];
        let rows: Vec<HostTensor> = parts.iter().map(|l| weight(l).transposed()).collect();
        out.push(format!("{qkv}.weight"), scatter_rows(&rows, &qkv_idx));
        let biases: Vec<HostTensor> = parts.iter().filter_map(|l| bias(l)).collect();
        if biases.len() == 3 {
            out.push(format!("{qkv}.bias"), scatter_rows(&biases, &qkv_idx));
        }
        // attn.o -> attention.dense
        out.torch_linear(&format!("{b}.{}", n.attn_out), &block.attn.o);
        // mlp.up_or_gate -> mlp.dense_h_to_4h, mlp.down -> mlp.dense_4h_to_h
        out.torch_linear(&format!("{b}.{}", n.mlp_in), &block.mlp.up_or_gate);
        out.torch_linear(&format!("{b}.{}", n.mlp_out), &block.mlp.down);
    }
    // ln_final -> final_layer_norm
    out.norm(&format!("{}{}", n.body, n.final_norm), &decoder.ln_final);
    // unembed -> embed_out
    out.unembed(n.unembed, decoder);
    out.0
}

fn llama_like_tensors<B: Backend>(decoder: &Decoder<B>) -> Vec<(String, HostTensor)> {
    let n = names_of(decoder);
    let mut out = Tensors::default();
    // embed -> embed_tokens
    out.push(
        format!("{}{}.weight", n.body, n.embed),
        embedding(&decoder.embed),
    );
    for (l, block) in decoder.blocks.iter().enumerate() {
        let b = n.block(n.body, l);
        // ln1 -> input_layernorm
        out.norm(&format!("{b}.{}", n.ln1), &block.ln1);
        // attn.{q,k,v,o} -> self_attn.{q,k,v,o}_proj (transposed)
        if let QkvNames::Separate { q, k, v } = n.qkv {
            out.torch_linear(&format!("{b}.{q}"), &block.attn.q);
            out.torch_linear(&format!("{b}.{k}"), &block.attn.k);
            out.torch_linear(&format!("{b}.{v}"), &block.attn.v);
        }
        out.torch_linear(&format!("{b}.{}", n.attn_out), &block.attn.o);
        // ln2 -> post_attention_layernorm
        out.norm(&format!("{b}.{}", n.ln2), &block.ln2);
        // mlp.up_or_gate -> mlp.gate_proj, mlp.up -> mlp.up_proj, mlp.down -> mlp.down_proj
        out.torch_linear(&format!("{b}.{}", n.mlp_in), &block.mlp.up_or_gate);
        if let (Some(up), Some(name)) = (&block.mlp.up, n.mlp_up) {
            out.torch_linear(&format!("{b}.{name}"), up);
        }
        out.torch_linear(&format!("{b}.{}", n.mlp_out), &block.mlp.down);
    }
    // ln_final -> norm
    out.norm(&format!("{}{}", n.body, n.final_norm), &decoder.ln_final);
    // unembed -> lm_head
    out.unembed(n.unembed, decoder);
    out.0
}

/// The name table of a decoder's family.
fn names_of<B: Backend>(decoder: &Decoder<B>) -> &'static HfNames {
    HfNames::of(decoder.config.family).expect("save_hf only exports decoder families")
}

/// Concatenates `[rows, c_i]` matrices along their columns.
fn concat_columns(parts: &[HostTensor]) -> HostTensor {
    let rows = parts[0].shape[0];
    let cols: usize = parts.iter().map(|p| p.shape[1]).sum();
    let mut data = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for p in parts {
            let c = p.shape[1];
            data.extend_from_slice(&p.data[r * c..(r + 1) * c]);
        }
    }
    HostTensor::new(vec![rows, cols], data)
}

fn concat_vectors(parts: &[HostTensor]) -> HostTensor {
    let data: Vec<f32> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    HostTensor::new(vec![data.len()], data)
}

/// The inverse of [`super::loader::gather_rows`] for a fused projection: row `i` of
/// `parts[k]` goes to row `idx[k][i]` of the result. Works on matrices and vectors.
fn scatter_rows(parts: &[HostTensor], idx: &[Vec<usize>; 3]) -> HostTensor {
    let n_rows: usize = parts.iter().map(|p| p.shape[0]).sum();
    let cols = if parts[0].shape.len() == 2 {
        parts[0].shape[1]
    } else {
        1
    };
    let mut data = vec![0.0f32; n_rows * cols];
    for (part, rows) in parts.iter().zip(idx) {
        for (i, &r) in rows.iter().enumerate() {
            data[r * cols..(r + 1) * cols].copy_from_slice(&part.data[i * cols..(i + 1) * cols]);
        }
    }
    let mut shape = parts[0].shape.clone();
    shape[0] = n_rows;
    HostTensor::new(shape, data)
}
