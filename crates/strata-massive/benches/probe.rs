//! What the massive-activation probe costs over a plain forward pass on Flex: the embedded
//! tiny model at 128 tokens and, when `STRATA_SMOLLM2_GGUF` names the file, SmolLM2-135M at
//! 128 tokens. `cargo bench -p strata-massive --bench probe`.

use std::path::PathBuf;

use burn::backend::Flex;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_core::probe::ProbeSet;
use strata_core::{Model, TokenBatch};
use strata_massive::{MassiveConfig, MassiveProbe};

fn models() -> Vec<(String, PathBuf)> {
    let mut out = vec![(
        "tiny-default".to_string(),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/models/tiny-default"),
    )];
    if let Ok(path) = std::env::var("STRATA_SMOLLM2_GGUF")
        && !path.is_empty()
    {
        out.push(("smollm2-135m".to_string(), PathBuf::from(path)));
    }
    out
}

fn probe_overhead(c: &mut Criterion) {
    let device = Default::default();
    let mut group = c.benchmark_group("massive");
    group.sample_size(20);
    for (name, path) in models() {
        let model = Model::<Flex>::load(&path, &device).expect("model loads");
        let vocab = model.config().vocab_size as u32;
        let ids: Vec<u32> = (0..128u32).map(|p| (p * 7919 + 13) % vocab).collect();
        let batch = TokenBatch::single(&ids).expect("a valid batch");
        group.throughput(Throughput::Elements(128));
        group.bench_function(format!("plain/{name}/seq128"), |b| {
            b.iter(|| model.forward(&batch).expect("forward").into_data())
        });
        group.bench_function(format!("probe/{name}/seq128"), |b| {
            b.iter(|| {
                let mut probe =
                    MassiveProbe::new(model.config().n_layers, MassiveConfig::default());
                let logits = model
                    .forward_with(&batch, None, &mut ProbeSet::one(&mut probe))
                    .expect("forward");
                (logits.into_data(), probe.into_result())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, probe_overhead);
criterion_main!(benches);
