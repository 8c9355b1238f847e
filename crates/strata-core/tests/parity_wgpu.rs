//! Parity with HF transformers on the wgpu backend: the CubeCL kernels that the GPU backends
//! run. CI runs it on Mesa's software Vulkan driver (lavapipe): `cargo test --features wgpu
//! --test parity_wgpu`. Without the `wgpu` feature this file compiles to nothing.
#![cfg(feature = "wgpu")]

mod common;

use burn::backend::Wgpu;
use strata_core::Model;
use strata_core::probe::Site;

use common::{assert_close, reference_ids};

/// Every site of a fixture, captured in one wgpu forward pass, against HF.
fn check_all_sites_on_wgpu(fixture: &str) {
    let device = Default::default();
    let model = Model::<Wgpu>::load(&common::fixture(fixture), &device).expect("fixture loads");
    let (_, ids) = reference_ids(fixture, "input_ids");
    let sites = Site::all(model.config());
    let captured = common::capture_sites(&model, &ids, &sites);
    for site in &sites {
        let (shape, expected) = common::reference_any(fixture, &site.to_string());
        assert_close(
            &format!("wgpu {fixture} {site}"),
            &captured[site],
            &shape,
            &expected,
        );
    }
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
