//! Parity with HF transformers on the Vulkan backend (wgpu with SPIR-V kernels, what
//! `--device vulkan` runs): every site of every fixture family and a padded batch. Run on an
//! NVIDIA GPU by `scripts/gpu-lanes.sh` when `vulkaninfo` shows NVIDIA's driver:
//! `cargo test -p strata-core --features vulkan --test parity_vulkan`. Without the `vulkan`
//! feature this file compiles to nothing.
#![cfg(feature = "vulkan")]

mod common;
mod gpu_parity;

use burn::backend::wgpu::WgpuDevice;

/// The default adapter: wgpu's choice, a discrete GPU when there is one.
fn device() -> WgpuDevice {
    WgpuDevice::default()
}

gpu_parity::gpu_parity_tests!(burn::backend::Vulkan, "vulkan", crate::device);
