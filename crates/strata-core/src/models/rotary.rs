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

/// Rotary tables of one forward call, shared by every layer.
///
/// The rotation runs on the projections as they come out of the linear layers, one row per
/// `(batch, pos, head)` and `d_head` columns, so every operation reads contiguous memory:
/// `rotate(x) = x * cos + (x @ rotate_half) * sin`, with `cos = 1` and `sin = 0` on the dims
/// that do not rotate. The query tables carry the attention scale `1 / sqrt(d_head)` (HF scales
/// the scores instead; the two differ by rounding only).
#[derive(Debug, Clone)]
pub struct RotaryTables<B: Backend> {
    /// `[batch * pos * n_heads, d_head]`, times the attention scale.
    pub(crate) q_cos: Tensor<B, 2>,
    /// `[batch * pos * n_heads, d_head]`, times the attention scale.
    pub(crate) q_sin: Tensor<B, 2>,
    /// `[batch * pos * n_kv_heads, d_head]`.
    pub(crate) k_cos: Tensor<B, 2>,
    /// `[batch * pos * n_kv_heads, d_head]`.
    pub(crate) k_sin: Tensor<B, 2>,
    /// `[d_head, d_head]`: `x @ rotate_half` is transformers' `rotate_half(x)` on the rotary
    /// dims and zero on the others.
    pub(crate) rotate_half: Tensor<B, 2>,
}

/// The heads of one forward call that the rotary tables are laid out for.
#[derive(Debug, Clone, Copy)]
pub struct HeadLayout {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// The factor folded into the query tables (`1 / sqrt(d_head)`).
    pub q_scale: f32,
}

impl<B: Backend> RotaryTables<B> {
    /// Tables for `positions` (`batch * pos` absolute positions, row-major) and the
    /// inverse frequencies of [`inverse_frequencies`].
    pub fn new(
        inv_freq: &[f32],
        positions: &[usize],
        heads: HeadLayout,
        device: &B::Device,
    ) -> Self {
        let HeadLayout {
            n_heads,
            n_kv_heads,
            d_head,
            q_scale,
        } = heads;
        let half = inv_freq.len();
        let rot = (2 * half).min(d_head);
        // One row of cos and sin per position; the rotary dims repeat the frequencies twice
        // (transformers' `cat((freqs, freqs))`), the rest pass through.
        let mut cos_rows = Vec::with_capacity(positions.len() * d_head);
        let mut sin_rows = Vec::with_capacity(positions.len() * d_head);
        for &p in positions {
            for i in 0..d_head {
                if i < rot {
                    let angle = p as f32 * inv_freq[i % half];
                    cos_rows.push(angle.cos());
                    sin_rows.push(angle.sin());
                } else {
                    cos_rows.push(1.0);
                    sin_rows.push(0.0);
                }
            }
        }
        let per_head = |rows: &[f32], heads: usize, scale: f32| {
            let mut out = Vec::with_capacity(rows.len() * heads);
            for row in rows.chunks_exact(d_head) {
                for _ in 0..heads {
                    out.extend(row.iter().map(|v| v * scale));
                }
            }
            Tensor::<B, 2>::from_data(
                TensorData::new(out, [positions.len() * heads, d_head]),
                device,
            )
        };
        let mut rotate = vec![0.0f32; d_head * d_head];
        for j in 0..half.min(rot) {
            // rotate_half(x)[j] = -x[j + half] and rotate_half(x)[j + half] = x[j].
            if j + half < rot {
                rotate[(j + half) * d_head + j] = -1.0;
                rotate[j * d_head + j + half] = 1.0;
            }
        }
        Self {
            q_cos: per_head(&cos_rows, n_heads, q_scale),
            q_sin: per_head(&sin_rows, n_heads, q_scale),
            k_cos: per_head(&cos_rows, n_kv_heads, 1.0),
            k_sin: per_head(&sin_rows, n_kv_heads, 1.0),
            rotate_half: Tensor::from_data(TensorData::new(rotate, [d_head, d_head]), device),
        }
    }
}

/// Rotates the rows of `x` (`[batch * pos * heads, d_head]`) by the given tables.
pub fn apply<B: Backend>(
    x: Tensor<B, 2>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
    rotate_half: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    let rotated = x.clone().matmul(rotate_half.clone()) * sin.clone();
    x * cos.clone() + rotated
}
