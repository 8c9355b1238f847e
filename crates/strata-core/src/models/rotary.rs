//! Rotary position embeddings (RoPE), with partial rotation (GPT-NeoX) and Llama 3 scaling.
//!
//! Follows transformers' `rotate_half` convention (`modeling_llama.py`,
//! `modeling_gpt_neox.py`): the rotated dims are split in two halves, not interleaved.

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::config::RopeScaling;

/// Inverse frequencies of the rotary dims, `[ceil(rotary_dim / 2)]`, as transformers computes
/// them (`1 / theta^(2i / rotary_dim)` for even `2i < rotary_dim`, then the scaling rule). An
/// odd `rotary_dim` (GPT-NeoX with head size 12 and `rotary_pct` 0.25, say) gets one more
/// frequency, so `2 * ceil(rotary_dim / 2)` dims rotate, as in transformers.
pub fn inverse_frequencies(
    theta: f64,
    rotary_dim: usize,
    scaling: Option<RopeScaling>,
) -> Vec<f32> {
    let base: Vec<f32> = (0..rotary_dim.div_ceil(2))
        .map(|i| {
            let exponent = (2 * i) as f32 / rotary_dim as f32;
            1.0 / (theta as f32).powf(exponent)
        })
        .collect();
    match scaling {
        None => base,
        Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor as f32).collect(),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            // transformers `_compute_llama3_parameters`.
            let old_ctx = original_max_position_embeddings as f32;
            let (factor, low, high) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
            );
            let low_freq_wavelen = old_ctx / low;
            let high_freq_wavelen = old_ctx / high;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        f
                    };
                    let smooth = (old_ctx / wavelen - low) / (high - low);
                    let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
                    let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                    if is_medium { smoothed } else { scaled }
                })
                .collect()
        }
    }
}

/// Cosine and sine tables for given positions.
///
/// # Shapes
/// - `positions`: `batch * pos` absolute positions, row-major.
/// - returns `(cos, sin)`, each `[batch, 1, pos, rotary_dim]` (broadcast over heads).
pub fn cos_sin<B: Backend>(
    inv_freq: &[f32],
    positions: &[usize],
    batch: usize,
    pos: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let half = inv_freq.len();
    let pos_t = Tensor::<B, 2>::from_data(
        TensorData::new(
            positions.iter().map(|&p| p as f32).collect::<Vec<_>>(),
            [batch * pos, 1],
        ),
        device,
    );
    let freq_t = Tensor::<B, 2>::from_data(TensorData::new(inv_freq.to_vec(), [1, half]), device);
    let angles = pos_t.matmul(freq_t);
    let emb = Tensor::cat(vec![angles.clone(), angles], 1).reshape([batch, 1, pos, 2 * half]);
    (emb.clone().cos(), emb.sin())
}

/// Applies the rotation to the first `rotary_dim` dims of each head.
///
/// # Shapes
/// - `x`: `[batch, heads, pos, d_head]`; `cos`, `sin`: `[batch, 1, pos, rotary_dim]`.
pub fn apply<B: Backend>(x: Tensor<B, 4>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, h, p, d] = x.dims();
    let rot = cos.dims()[3];
    let half = rot / 2;
    let x_rot = x.clone().slice([0..b, 0..h, 0..p, 0..rot]);
    let x1 = x_rot.clone().slice([0..b, 0..h, 0..p, 0..half]);
    let x2 = x_rot.clone().slice([0..b, 0..h, 0..p, half..rot]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    let out = x_rot * cos.clone() + rotated * sin.clone();
    if rot == d {
        out
    } else {
        let x_pass = x.slice([0..b, 0..h, 0..p, rot..d]);
        Tensor::cat(vec![out, x_pass], 3)
    }
}
