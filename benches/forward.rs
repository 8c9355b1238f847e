//! Forward-pass throughput on Flex: a GPT-2-small-shaped model (batch 4 x 256 tokens), plain
//! and with every `hook_resid_post` captured, and a tiny parity fixture.
//!
//! `cargo bench --bench forward`. The side-by-side comparison with PyTorch is
//! `scripts/bench_forward.py` (`cargo xtask bench-compare forward`).

#[path = "support/gpt2_small.rs"]
mod gpt2_small;

use std::path::PathBuf;

use burn::backend::Flex;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata::core::probe::{Capture, ProbeSet, Site};
use strata::core::{Model, PadSide, TokenBatch};

fn gpt2_small_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/gpt2-small-random");
    if !dir.join("model.safetensors").is_file() {
        gpt2_small::write_random(&dir).expect("random checkpoint written");
    }
    dir
}

fn forward(c: &mut Criterion) {
    let device = Default::default();
    let model = Model::<Flex>::load(&gpt2_small_dir(), &device).expect("checkpoint loads");
    let rows: Vec<Vec<u32>> = (0..4)
        .map(|r| {
            (0..256)
                .map(|p| ((r * 7919 + p * 104729) % 50257) as u32)
                .collect()
        })
        .collect();
    let batch = TokenBatch::padded(&rows, 0, PadSide::Right).unwrap();
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    group.throughput(Throughput::Elements(4 * 256));
    group.bench_function("gpt2-small/b4xs256", |b| {
        b.iter(|| {
            model
                .forward(&batch)
                .unwrap()
                .slice([0..1, 0..1, 0..1])
                .into_data()
        })
    });
    group.bench_function("gpt2-small-capture-resid-post/b4xs256", |b| {
        b.iter(|| {
            let mut capture =
                Capture::new((0..gpt2_small::N_LAYERS).map(|layer| Site::ResidPost { layer }));
            model
                .forward_with(&batch, None, &mut ProbeSet::one(&mut capture))
                .unwrap()
                .slice([0..1, 0..1, 0..1])
                .into_data()
        })
    });
    group.finish();

    let tiny = Model::<Flex>::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-tiny"),
        &device,
    )
    .expect("fixture loads");
    let ids: Vec<u32> = (0..12).collect();
    let batch = TokenBatch::single(&ids).unwrap();
    c.bench_function("forward/llama-tiny/seq12", |b| {
        b.iter(|| tiny.forward(&batch).unwrap().into_data())
    });
}

criterion_group!(benches, forward);
criterion_main!(benches);
