//! The MLP's activation, times the up projection when gated, in one pass on Flex.
//!
//! The generic path is `silu(gate) * up` (two passes on one thread, `exp` scalar) or, for
//! GPT-2's tanh GELU, seven element-wise operations. Here each is one pass over the gate's
//! buffer (in place when nothing else holds it), split across rayon's threads, with the
//! vectorised [`super::exp`].

use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rayon::prelude::*;

use super::{exp, into_tensor, to_flex, with_avx2};
use crate::config::Activation;

/// Elements per task: large enough to amortise a task, small enough to split a layer.
const CHUNK: usize = 16 * 1024;

/// `act(pre) * up` (or `act(pre)` without `up`), or both inputs back when the backend is not
/// Flex or the activation has no fused kernel (exact GELU, ReLU).
///
/// # Shapes
/// - `pre`, `up`: `[batch, pos, d_mlp]` -> `[batch, pos, d_mlp]`
#[allow(clippy::type_complexity)]
pub(crate) fn activate_gated<B: Backend>(
    activation: Activation,
    pre: Tensor<B, 3>,
    up: Option<Tensor<B, 3>>,
) -> Result<Tensor<B, 3>, (Tensor<B, 3>, Option<Tensor<B, 3>>)> {
    let kernel: fn(&mut [f32], Option<&[f32]>) = match activation {
        Activation::Silu => silu_chunk,
        Activation::GeluTanh => gelu_tanh_chunk,
        Activation::Gelu | Activation::Relu => return Err((pre, up)),
    };
    let shape = pre.dims();
    let up_flex = match up.map(to_flex) {
        None => None,
        Some(Ok(u)) => Some(u.to_contiguous()),
        Some(Err(u)) => return Err((pre, Some(u))),
    };
    let mut pre = match to_flex(pre) {
        Ok(p) => p.to_contiguous(),
        Err(p) => return Err((p, None)),
    };
    let up_values = up_flex.as_ref().map(|u| u.storage::<f32>());
    let run = |values: &mut [f32]| match up_values {
        Some(u) => values
            .par_chunks_mut(CHUNK)
            .zip(u.par_chunks(CHUNK))
            .for_each(|(x, u)| kernel(x, Some(u))),
        None => values.par_chunks_mut(CHUNK).for_each(|x| kernel(x, None)),
    };
    // In place when nothing else holds the gate's buffer (a probe that kept it does).
    let out = match pre.try_storage_mut::<f32>() {
        Some(values) => {
            run(values);
            pre
        }
        None => {
            let mut values = pre.storage::<f32>().to_vec();
            run(&mut values);
            FlexTensor::from_data(TensorData::new(values, shape))
        }
    };
    Ok(into_tensor(out).expect("to_flex proved the backend is Flex"))
}

with_avx2! {
    /// `silu(x) * up` in place: `x / (1 + e^-x)`.
    fn silu_chunk(x: &mut [f32], up: Option<&[f32]>) => silu_body
}

#[inline(always)]
fn silu_body(x: &mut [f32], up: Option<&[f32]>) {
    let silu = |v: f32| v / (1.0 + exp(-v));
    match up {
        Some(up) => x.iter_mut().zip(up).for_each(|(v, &u)| *v = silu(*v) * u),
        None => x.iter_mut().for_each(|v| *v = silu(*v)),
    }
}

with_avx2! {
    /// `gelu_tanh(x) * up` in place: `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    fn gelu_tanh_chunk(x: &mut [f32], up: Option<&[f32]>) => gelu_tanh_body
}

#[inline(always)]
fn gelu_tanh_body(x: &mut [f32], up: Option<&[f32]>) {
    const K: f32 = 0.797_884_6; // sqrt(2/pi)
    // (1 + tanh(y)) / 2 = 1 - 1 / (1 + e^(2y)), finite however large e^(2y) saturates.
    let gelu = |v: f32| {
        let e = exp(2.0 * K * (v + 0.044_715 * v * v * v));
        v - v / (1.0 + e)
    };
    match up {
        Some(up) => x.iter_mut().zip(up).for_each(|(v, &u)| *v = gelu(*v) * u),
        None => x.iter_mut().for_each(|v| *v = gelu(*v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::mlp::activate;
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    type B = Flex;

    fn max_difference(activation: Activation, gated: bool) -> f32 {
        let device = Default::default();
        // Wide enough to reach both tails of every activation, and more than one chunk.
        let normal = Distribution::Normal(0.0, 6.0);
        let pre = Tensor::<B, 3>::random([2, 50, 400], normal, &device);
        let up = gated.then(|| Tensor::<B, 3>::random([2, 50, 400], normal, &device));
        let want = match &up {
            Some(u) => activate(activation, pre.clone()) * u.clone(),
            None => activate(activation, pre.clone()),
        };
        let got = activate_gated(activation, pre, up).expect("Flex has the fused kernel");
        (got - want).abs().max().into_scalar()
    }

    #[test]
    fn fused_activations_match_the_generic_operations() {
        for activation in [Activation::Silu, Activation::GeluTanh] {
            for gated in [false, true] {
                let diff = max_difference(activation, gated);
                assert!(diff < 1e-4, "{activation:?} gated={gated}: {diff}");
            }
        }
    }

    #[test]
    fn activations_without_a_kernel_and_autodiff_get_their_inputs_back() {
        let device = Default::default();
        let pre = Tensor::<B, 3>::ones([1, 2, 3], &device);
        assert!(activate_gated(Activation::Relu, pre, None).is_err());
        type Ad = burn::backend::Autodiff<Flex>;
        let pre = Tensor::<Ad, 3>::ones([1, 2, 3], &device);
        let (back, _) = activate_gated(Activation::Silu, pre, None).unwrap_err();
        assert_eq!(back.dims(), [1, 2, 3]);
    }
}
