//! Parity with HF transformers on the CUDA backend: every site of every fixture family and a
//! padded batch, on an NVIDIA GPU (`STRATA_CUDA_DEVICE`, default 0). Run on a GPU machine by
//! `scripts/gpu-lanes.sh`: `cargo test -p strata-core --features cuda --test parity_cuda`.
//! Without the `cuda` feature this file compiles to nothing.
#![cfg(feature = "cuda")]

mod common;
mod gpu_parity;

use burn::backend::cuda::CudaDevice;

/// The GPU the tests run on: `STRATA_CUDA_DEVICE` (an index), 0 when unset.
fn device() -> CudaDevice {
    let index = std::env::var("STRATA_CUDA_DEVICE")
        .map(|v| v.parse().expect("STRATA_CUDA_DEVICE is a device index"))
        .unwrap_or(0);
    CudaDevice::new(index)
}

gpu_parity::gpu_parity_tests!(burn::backend::Cuda, "cuda", crate::device);
