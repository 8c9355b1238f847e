//! A GPT-2-small-shaped checkpoint with random weights, shared by the forward benchmark and
//! the `forward_throughput` example.

use std::path::Path;

use rand::{Rng, SeedableRng};
use strata::core::weights::{HostTensor, write_safetensors};

/// GPT-2 small: 12 layers, 12 heads, d_model 768, vocab 50257, 1024 positions.
pub const N_LAYERS: usize = 12;
pub const D: usize = 768;
pub const VOCAB: usize = 50257;
const N_CTX: usize = 1024;

/// Writes a GPT-2-small-shaped HF checkpoint with N(0, 0.02) weights.
pub fn write_random(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut normal = |shape: Vec<usize>, std: f32| {
        let n: usize = shape.iter().product();
        // Irwin-Hall approximation of a normal: cheap and good enough for benchmark weights.
        let data = (0..n)
            .map(|_| (0..4).map(|_| rng.random::<f32>()).sum::<f32>() - 2.0)
            .map(|u| u * std * 1.732)
            .collect();
        HostTensor::new(shape, data)
    };
    let mut tensors = vec![
        (
            "transformer.wte.weight".to_string(),
            normal(vec![VOCAB, D], 0.02),
        ),
        (
            "transformer.wpe.weight".to_string(),
            normal(vec![N_CTX, D], 0.01),
        ),
        (
            "transformer.ln_f.weight".to_string(),
            HostTensor::new(vec![D], vec![1.0; D]),
        ),
        (
            "transformer.ln_f.bias".to_string(),
            HostTensor::new(vec![D], vec![0.0; D]),
        ),
    ];
    for l in 0..N_LAYERS {
        let p = format!("transformer.h.{l}");
        for ln in ["ln_1", "ln_2"] {
            tensors.push((
                format!("{p}.{ln}.weight"),
                HostTensor::new(vec![D], vec![1.0; D]),
            ));
            tensors.push((
                format!("{p}.{ln}.bias"),
                HostTensor::new(vec![D], vec![0.0; D]),
            ));
        }
        for (name, d_in, d_out) in [
            ("attn.c_attn", D, 3 * D),
            ("attn.c_proj", D, D),
            ("mlp.c_fc", D, 4 * D),
            ("mlp.c_proj", 4 * D, D),
        ] {
            tensors.push((
                format!("{p}.{name}.weight"),
                normal(vec![d_in, d_out], 0.02),
            ));
            tensors.push((format!("{p}.{name}.bias"), normal(vec![d_out], 0.01)));
        }
    }
    std::fs::create_dir_all(dir)?;
    write_safetensors(&dir.join("model.safetensors"), &tensors, None)?;
    let config = serde_json::json!({
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": VOCAB,
        "n_positions": N_CTX, "n_embd": D, "n_layer": N_LAYERS, "n_head": 12,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": true,
        "bos_token_id": 50256, "eos_token_id": 50256, "torch_dtype": "float32"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    Ok(())
}
