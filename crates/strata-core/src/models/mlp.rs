//! The MLP: plain (`out(act(in(x)))`) or gated (`down(act(gate(x)) * up(x))`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::{Tensor, backend::Backend};

use super::flex;
use crate::config::Activation;
use crate::error::Result;
use crate::probe::{HookContext, ProbeSet, Site};

/// A transformer MLP with hook sites `mlp.hook_pre`, `mlp.hook_post` and `hook_mlp_out`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Input (or gate) projection, `[d_model, d_mlp]`; its output is `mlp.hook_pre`.
    pub(crate) up_or_gate: Linear<B>,
    /// The up projection of a gated MLP, `[d_model, d_mlp]`.
    pub(crate) up: Option<Linear<B>>,
    /// Output (down) projection, `[d_mlp, d_model]`.
    pub(crate) down: Linear<B>,
    /// The non-linearity.
    #[module(skip)]
    pub(crate) activation: Activation,
}

/// Applies an activation function.
pub fn activate<B: Backend, const D: usize>(act: Activation, x: Tensor<B, D>) -> Tensor<B, D> {
    match act {
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as transformers' NewGELU.
            let cube = x.clone() * x.clone() * x.clone();
            let inner = (x.clone() + cube.mul_scalar(0.044715))
                .mul_scalar((2.0 / std::f64::consts::PI).sqrt());
            x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
        }
        Activation::Silu => silu(x),
        Activation::Relu => relu(x),
    }
}

impl<B: Backend> Mlp<B> {
    /// Runs the MLP with probes at its three sites.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` (already normalised) -> `[batch, pos, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        layer: usize,
        probes: &mut ProbeSet<'_, B>,
        ctx: &HookContext<B>,
    ) -> Result<Tensor<B, 3>> {
        let pre = probes.apply(
            Site::MlpPre { layer },
            self.up_or_gate.forward(x.clone()),
            ctx,
        )?;
        let up = self.up.as_ref().map(|up| up.forward(x));
        let post = match flex::activation::activate_gated(self.activation, pre, up) {
            Ok(post) => post,
            Err((pre, up)) => {
                let act = activate(self.activation, pre);
                match up {
                    Some(up) => act * up,
                    None => act,
                }
            }
        };
        let post = probes.apply(Site::MlpPost { layer }, post, ctx)?;
        Ok(self.down.forward(post))
    }
}
