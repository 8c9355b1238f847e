//! Fused kernels for burn's Flex (CPU) backend: attention and the MLP's activations.
//!
//! The decoder is generic over burn backends and runs every backend through the same tensor
//! operations. On Flex some of those operations run on one thread, with a scalar `exp`, and
//! allocate a tensor each; the kernels here do the same arithmetic in one multi-threaded,
//! vectorised pass. Each is taken only when the backend is Flex itself (not Flex under
//! autodiff, so training keeps differentiable operations) and returns `None`, or hands its
//! inputs back, otherwise. Each is tested against the generic operations it replaces.

pub(crate) mod activation;
pub(crate) mod attention;

use std::any::Any;

use burn::backend::flex::FlexTensor;
use burn::tensor::{Tensor, TensorData, TensorPrimitive, backend::Backend};

/// Moves a value into the type it is (checked at run time): `Some` when `From` is `To`.
pub(crate) fn same_type<From: 'static, To: 'static>(value: From) -> Option<To> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<To>>()
        .and_then(Option::take)
}

/// The Flex tensor under a float tensor of backend `B`, or the tensor back when `B` is not
/// Flex (autodiff and GPU backends).
pub(crate) fn to_flex<B: Backend, const D: usize>(
    t: Tensor<B, D>,
) -> Result<FlexTensor, Tensor<B, D>> {
    let primitive = t.into_primitive();
    if let TensorPrimitive::Float(inner) = primitive {
        let mut slot = Some(inner);
        match (&mut slot as &mut dyn Any).downcast_mut::<Option<FlexTensor>>() {
            Some(flex) => Ok(flex.take().expect("the slot was just filled")),
            None => Err(Tensor::from_primitive(TensorPrimitive::Float(
                slot.expect("not taken"),
            ))),
        }
    } else {
        Err(Tensor::from_primitive(primitive))
    }
}

/// A float tensor of backend `B` (which must be Flex) holding `values` in `shape`.
pub(crate) fn from_flex<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
) -> Option<Tensor<B, D>> {
    into_tensor(FlexTensor::from_data(TensorData::new(values, shape)))
}

/// A Flex tensor as a float tensor of backend `B`, when `B` is Flex.
pub(crate) fn into_tensor<B: Backend, const D: usize>(flex: FlexTensor) -> Option<Tensor<B, D>> {
    let primitive = same_type::<_, B::FloatTensorPrimitive>(flex)?;
    Some(Tensor::from_primitive(TensorPrimitive::Float(primitive)))
}

/// Defines `fn $name(args) -> ret` calling `$body`, compiled for AVX2 and FMA when the CPU
/// has them (so the loops of an `#[inline(always)]` body vectorise 8 wide), plainly otherwise.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:ident) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use with_avx2;

/// `e^x` to about 2 ulp, in operations that vectorise: `x = n ln2 + r` with `|r| <= ln2/2`,
/// Cephes' degree-6 polynomial for `e^r`, and `2^n` built in the exponent bits. Below
/// -87.3 (and at -inf) it returns 0; above 88.3 it saturates at `e^88.3`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if underflow { 0.0 } else { p * scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_within_3_ulp_over_its_range() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 3.0 * f32::EPSILON * want,
                "exp({x}) = {got}, std gives {want}"
            );
            x += 0.0137;
        }
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }
}
