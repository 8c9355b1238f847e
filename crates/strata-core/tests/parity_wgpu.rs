//! Parity with HF transformers on the wgpu backend: the CubeCL kernels that the GPU backends
//! run. CI runs it on Mesa's software Vulkan driver (lavapipe): `cargo test --features wgpu
//! --test parity_wgpu`. Without the `wgpu` feature this file compiles to nothing.
#![cfg(feature = "wgpu")]

mod common;
// Only its every-site check runs here: lavapipe is slow, and the padded batch is checked on
// the CPU and on the GPU lanes.
#[allow(dead_code, unused_macros, unused_imports)]
mod gpu_parity;

use burn::backend::Wgpu;

/// Every site of a fixture, captured in one wgpu forward pass, against HF.
fn check_all_sites_on_wgpu(fixture: &str) {
    gpu_parity::check_every_site::<Wgpu>("wgpu", fixture, &Default::default());
}

#[test]
fn gpt2_every_site_matches_hf_on_wgpu() {
    check_all_sites_on_wgpu("gpt2-tiny");
}

#[test]
fn llama_every_site_matches_hf_on_wgpu() {
    check_all_sites_on_wgpu("llama-tiny");
}

#[test]
fn gpt_neox_every_site_matches_hf_on_wgpu() {
    check_all_sites_on_wgpu("gpt-neox-tiny");
}
