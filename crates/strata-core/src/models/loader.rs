//! Building modules from a [`WeightSource`]: shape checks, PyTorch-to-burn transposes and
//! fused-projection splits, each named as an explicit step.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::tensor::{Tensor, backend::Backend};

use super::norm::NormLayer;
use crate::config::{ModelConfig, Norm};
use crate::error::Result;
use crate::weights::{HostTensor, WeightSource};

/// Reads tensors by HF name and turns them into burn modules on a device.
pub struct Loader<'a, B: Backend> {
    /// The weights.
    pub store: &'a dyn WeightSource,
    /// Where modules are created.
    pub device: &'a B::Device,
}

impl<'a, B: Backend> Loader<'a, B> {
    /// A loader over `store`.
    pub fn new(store: &'a dyn WeightSource, device: &'a B::Device) -> Self {
        Self { store, device }
    }

    /// A 1-D tensor of length `len`.
    pub fn vector(&self, name: &str, len: usize) -> Result<Param<Tensor<B, 1>>> {
        let t = self.store.read_shaped(name, &[len])?;
        Ok(Param::from_tensor(t.into_device(self.device)))
    }

    /// A 2-D host tensor with a checked shape.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<HostTensor> {
        self.store.read_shaped(name, &[rows, cols])
    }

    /// A linear map from host parts: `weight` is `[d_in, d_out]` (burn's layout).
    pub fn linear_from(&self, weight: HostTensor, bias: Option<HostTensor>) -> Linear<B> {
        Linear {
            weight: Param::from_tensor(weight.into_device(self.device)),
            bias: bias.map(|b| Param::from_tensor(b.into_device(self.device))),
        }
    }

    /// An `nn.Linear` stored as PyTorch does, `weight` `[d_out, d_in]`: transposed to burn's
    /// `[d_in, d_out]`.
    pub fn torch_linear(
        &self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear<B>> {
        let weight = self
            .matrix(&format!("{prefix}.weight"), d_out, d_in)?
            .transposed();
        let bias = if bias {
            Some(
                self.store
                    .read_shaped(&format!("{prefix}.bias"), &[d_out])?,
            )
        } else {
            None
        };
        Ok(self.linear_from(weight, bias))
    }

    /// A GPT-2 `Conv1D`, stored `[d_in, d_out]` already: no transpose.
    pub fn conv1d(&self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear<B>> {
        let weight = self.matrix(&format!("{prefix}.weight"), d_in, d_out)?;
        let bias = self
            .store
            .read_shaped(&format!("{prefix}.bias"), &[d_out])?;
        Ok(self.linear_from(weight, Some(bias)))
    }

    /// An embedding table `[n, d]`.
    pub fn embedding(&self, name: &str, n: usize, d: usize) -> Result<Embedding<B>> {
        let t = self.matrix(name, n, d)?;
        Ok(Embedding {
            weight: Param::from_tensor(t.into_device(self.device)),
        })
    }

    /// A LayerNorm (`weight` + `bias`) or RMSNorm (`weight`) under `prefix`.
    pub fn norm(&self, prefix: &str, cfg: &ModelConfig) -> Result<NormLayer<B>> {
        self.norm_named(&format!("{prefix}.weight"), &format!("{prefix}.bias"), cfg)
    }

    /// A norm whose tensors have arbitrary names (BERT's `LayerNorm.gamma` in old files).
    pub fn norm_named(&self, weight: &str, bias: &str, cfg: &ModelConfig) -> Result<NormLayer<B>> {
        let d = cfg.d_model;
        let rms = matches!(cfg.norm, Norm::RmsNorm { .. });
        Ok(NormLayer {
            weight: self.vector(weight, d)?,
            bias: if rms {
                None
            } else {
                Some(self.vector(bias, d)?)
            },
            eps: cfg.norm_eps(),
            rms,
        })
    }
}

/// Splits the columns of a `[rows, cols]` host matrix into consecutive blocks of the given
/// widths (GPT-2 `c_attn`: `[d_model, 3 d_model]` -> q, k, v).
pub fn split_columns(t: &HostTensor, widths: &[usize]) -> Vec<HostTensor> {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut out = Vec::with_capacity(widths.len());
    let mut start = 0;
    for &w in widths {
        let mut data = Vec::with_capacity(rows * w);
        for r in 0..rows {
            data.extend_from_slice(&t.data[r * cols + start..r * cols + start + w]);
        }
        out.push(HostTensor::new(vec![rows, w], data));
        start += w;
    }
    out
}

/// Splits a vector into consecutive blocks.
pub fn split_vector(t: &HostTensor, widths: &[usize]) -> Vec<HostTensor> {
    let mut out = Vec::with_capacity(widths.len());
    let mut start = 0;
    for &w in widths {
        out.push(HostTensor::new(vec![w], t.data[start..start + w].to_vec()));
        start += w;
    }
    out
}

/// GPT-NeoX `query_key_value`: the fused output dim is ordered `[n_heads, 3, d_head]`.
/// Returns the output-dim indices of q, k and v in head order.
pub fn neox_qkv_indices(n_heads: usize, d_head: usize) -> [Vec<usize>; 3] {
    let mut idx: [Vec<usize>; 3] = Default::default();
    for (which, out) in idx.iter_mut().enumerate() {
        for h in 0..n_heads {
            for i in 0..d_head {
                out.push(h * 3 * d_head + which * d_head + i);
            }
        }
    }
    idx
}

/// Gathers rows of a `[rows, cols]` matrix (or elements of a vector when 1-D).
pub fn gather_rows(t: &HostTensor, rows: &[usize]) -> HostTensor {
    if t.shape.len() == 1 {
        return HostTensor::new(vec![rows.len()], rows.iter().map(|&r| t.data[r]).collect());
    }
    let cols = t.shape[1];
    let mut data = Vec::with_capacity(rows.len() * cols);
    for &r in rows {
        data.extend_from_slice(&t.data[r * cols..(r + 1) * cols]);
    }
    HostTensor::new(vec![rows.len(), cols], data)
}
