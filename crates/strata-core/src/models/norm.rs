//! LayerNorm and RMSNorm, one module with the kind as a constant.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, backend::Backend};

/// A normalisation layer over the last dimension.
///
/// LayerNorm: `(x - mean) / sqrt(var + eps) * weight + bias` (biased variance, as PyTorch).
/// RMSNorm: `x / sqrt(mean(x^2) + eps) * weight`.
#[derive(Module, Debug)]
pub struct NormLayer<B: Backend> {
    /// Scale, `[d_model]`.
    pub(crate) weight: Param<Tensor<B, 1>>,
    /// Shift, `[d_model]` (LayerNorm only).
    pub(crate) bias: Option<Param<Tensor<B, 1>>>,
    /// Variance epsilon.
    pub(crate) eps: f64,
    /// RMSNorm (true) or LayerNorm (false).
    pub(crate) rms: bool,
}

impl<B: Backend> NormLayer<B> {
    /// Normalises the last dimension.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` -> `[batch, pos, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let d = x.dims()[2];
        let weight = self.weight.val().reshape([1, 1, d]);
        if self.rms {
            let inv = x
                .clone()
                .square()
                .mean_dim(2)
                .add_scalar(self.eps)
                .sqrt()
                .recip();
            return x * inv * weight;
        }
        let (var, mean) = x.clone().var_mean_bias(2);
        let normed = (x - mean) / var.add_scalar(self.eps).sqrt();
        let y = normed * weight;
        match &self.bias {
            Some(b) => y + b.val().reshape([1, 1, d]),
            None => y,
        }
    }
}
