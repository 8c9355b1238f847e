//! The massive-activation analysis end to end on the wgpu backend (CI runs it on Mesa's
//! software Vulkan driver, lavapipe): the same statistics and the same (layer, sequence,
//! position, dimension) of every top value as on the CPU. `cargo test -p strata-massive
//! --features wgpu --test wgpu_lane`; without the feature this file compiles to nothing.
#![cfg(feature = "wgpu")]

use std::path::PathBuf;

use burn::backend::{Flex, Wgpu};
use burn::tensor::backend::Backend;
use strata_core::Model;
use strata_massive::{MassiveConfig, MassiveResult, measure};

fn run<B: Backend>(fixture: &str) -> MassiveResult {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(fixture);
    let model = Model::<B>::load(&dir, &Default::default()).expect("the fixture loads");
    let sequences = vec![
        vec![3, 14, 15, 92, 65, 35, 89, 79, 32, 38],
        vec![27, 18, 28, 18, 28, 45, 90, 45, 23, 53],
    ];
    let config = MassiveConfig {
        top_k: 5,
        ..Default::default()
    };
    measure(&model, &sequences, &config, &mut |_, _| {}).expect("the analysis runs")
}

fn close(what: &str, gpu: f64, cpu: f64) {
    assert!(
        (gpu - cpu).abs() <= 1e-4 * cpu.abs().max(1.0),
        "{what}: wgpu {gpu}, CPU {cpu}"
    );
}

fn same_on_wgpu_as_on_cpu(fixture: &str) {
    let (gpu, cpu) = (run::<Wgpu>(fixture), run::<Flex>(fixture));
    assert_eq!(gpu.layers.len(), cpu.layers.len());
    for (g, c) in gpu.layers.iter().zip(&cpu.layers) {
        let layer = c.layer;
        close(
            &format!("{fixture} layer {layer} top-1"),
            g.mean_top1(),
            c.mean_top1(),
        );
        close(
            &format!("{fixture} layer {layer} median"),
            g.mean_median(),
            c.mean_median(),
        );
        assert_eq!(g.top.len(), c.top.len());
        for (ge, ce) in g.top.iter().zip(&c.top) {
            let at = |e: &strata_massive::MassiveEntry| (e.sequence, e.position, e.dim);
            assert_eq!(at(ge), at(ce), "{fixture} layer {layer}: a top value moved");
            close(
                &format!("{fixture} layer {layer} value"),
                ge.value,
                ce.value,
            );
        }
    }
}

#[test]
fn massive_activations_of_llama_tiny_are_the_same_on_wgpu() {
    same_on_wgpu_as_on_cpu("llama-tiny");
}

#[test]
fn massive_activations_of_gpt2_tiny_are_the_same_on_wgpu() {
    same_on_wgpu_as_on_cpu("gpt2-tiny");
}
